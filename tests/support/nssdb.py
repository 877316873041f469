"""Make Chromium trust a test CA, as a person does with ``certutil -A -t C,,``, without
Debian's libnss3-tools: the same calls through ctypes into libnss3, the library Chromium itself
reads its trust store with (a dependency of the ``chromium`` package).

On Linux Chromium takes locally added roots from the NSS database ``$HOME/.pki/nssdb``; the
browser fixture (tests/support/browser.py) gives chromedriver a ``HOME`` in the test's
``tmp_path`` and writes the test CA into that database, so the HTTPS page is checked against a
real trust anchor, not waved through with ``--ignore-certificate-errors``.

NSS keeps process-wide state, so the import runs in a child process:
``python -m tests.support.nssdb DBDIR CA.pem``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ssl
import subprocess
import sys
from pathlib import Path

__all__ = ["trust_ca"]

_LIBNSS = "libnss3.so"  # the name Debian's libnss3 installs; find_library also tries it
_CK_INVALID_HANDLE = 0


class _SecItem(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("data", ctypes.c_char_p),
        ("len", ctypes.c_uint),
    )


class _Trust(ctypes.Structure):
    _fields_ = (
        ("sslFlags", ctypes.c_uint),
        ("emailFlags", ctypes.c_uint),
        ("objectSigningFlags", ctypes.c_uint),
    )


def trust_ca(home: Path, ca_pem: Path, nickname: str = "saltgw test CA") -> Path:
    """Create ``home/.pki/nssdb`` (if new) and add ``ca_pem`` as a trusted TLS root; return the
    database folder. Raises RuntimeError naming the NSS call that failed."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.nssdb", str(db), str(ca_pem), nickname],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"adding {ca_pem} to the NSS database {db} failed: {proc.stderr}")
    return db


def _import(db: Path, ca_pem: Path, nickname: str) -> None:
    name = ctypes.util.find_library("nss3") or _LIBNSS
    nss = ctypes.CDLL(name)
    nss.NSS_InitReadWrite.argtypes = [ctypes.c_char_p]
    nss.PK11_GetInternalKeySlot.restype = ctypes.c_void_p
    nss.PK11_NeedUserInit.argtypes = [ctypes.c_void_p]
    nss.PK11_InitPin.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    nss.CERT_GetDefaultCertDB.restype = ctypes.c_void_p
    nss.CERT_NewTempCertificate.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_SecItem),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    nss.CERT_NewTempCertificate.restype = ctypes.c_void_p
    nss.PK11_ImportCert.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    nss.CERT_DecodeTrustString.argtypes = [ctypes.POINTER(_Trust), ctypes.c_char_p]
    nss.CERT_ChangeCertTrust.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_Trust)]
    nss.CERT_DestroyCertificate.argtypes = [ctypes.c_void_p]
    nss.PK11_FreeSlot.argtypes = [ctypes.c_void_p]

    def check(status: int, call: str) -> None:
        if status != 0:
            raise SystemExit(f"{call} failed (NSS error {nss.PORT_GetError()})")

    check(nss.NSS_InitReadWrite(f"sql:{db}".encode()), f"NSS_InitReadWrite(sql:{db})")
    slot = nss.PK11_GetInternalKeySlot()
    if nss.PK11_NeedUserInit(slot):  # a new database: an empty password, as certutil -N
        check(nss.PK11_InitPin(slot, None, b""), "PK11_InitPin")
    try:
        der = ssl.PEM_cert_to_DER_cert(ca_pem.read_text())
    except ValueError as e:
        raise SystemExit(f"{ca_pem} is not a PEM certificate: {e}") from None
    item = _SecItem(0, der, len(der))
    certdb = nss.CERT_GetDefaultCertDB()
    cert = nss.CERT_NewTempCertificate(certdb, ctypes.byref(item), None, 0, 1)
    if not cert:
        raise SystemExit(f"CERT_NewTempCertificate: NSS refused {ca_pem} ({nss.PORT_GetError()})")
    check(
        nss.PK11_ImportCert(slot, cert, _CK_INVALID_HANDLE, nickname.encode(), 0),
        "PK11_ImportCert",
    )
    trust = _Trust()
    check(nss.CERT_DecodeTrustString(ctypes.byref(trust), b"C,,"), "CERT_DecodeTrustString")
    check(
        nss.CERT_ChangeCertTrust(certdb, cert, ctypes.byref(trust)),
        "CERT_ChangeCertTrust",
    )
    nss.CERT_DestroyCertificate(cert)
    nss.PK11_FreeSlot(slot)
    check(nss.NSS_Shutdown(), "NSS_Shutdown")


if __name__ == "__main__":
    _import(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
