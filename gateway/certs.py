"""Self-signed OPC UA application instance certificates (OPC 10000-6 6.2.2): RSA 2048, the
application URI and host names in the SubjectAltName, for a server (the simulated PLC) or a
client application (the gateway: ``saltgw certs``, gateway/certs_cmd.py).

The OPC UA driver takes its application URI from its certificate's SubjectAltName unless
``application_uri`` is set (drivers/opcua/README.md), so the URI written here is the one the
gateway presents. Needs the ``opcua`` extra (asyncua, cryptography).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

__all__ = ["CertificatePair", "make_certificate", "write_certificate"]


@dataclass(frozen=True, slots=True)
class CertificatePair:
    certificate_der: bytes
    private_key_pem: bytes

    def _cert(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)

    @property
    def not_before(self) -> datetime:
        return self._cert().not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self._cert().not_valid_after_utc

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER as colon-separated hex (as UaExpert, openssl and the OPC UA
        driver's log show it)."""
        return hashlib.sha256(self.certificate_der).digest().hex(":").upper()


def make_certificate(
    application_uri: str,
    common_name: str,
    *,
    server: bool,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days: int = 365,
) -> CertificatePair:
    """A self-signed certificate for a server (``server=True``) or a client application."""
    key = cert_gen.generate_private_key()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usage = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = cert_gen.generate_self_signed_app_certificate(
        key, common_name, {}, names, extended=usage, days=days
    )
    return CertificatePair(cert.public_bytes(Encoding.DER), cert_gen.dump_private_key_as_pem(key))


def write_certificate(
    certificate: Path,
    private_key: Path,
    application_uri: str,
    common_name: str,
    *,
    server: bool,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days: int = 365,
    force: bool = True,
) -> CertificatePair:
    """:func:`make_certificate`, written as DER (certificate) and PEM (key, created mode 0600).
    Without ``force`` an existing file is not replaced (FileExistsError naming it)."""
    if not force:
        for path in (certificate, private_key):
            if path.exists():
                raise FileExistsError(f"{path} exists (--force replaces it)")
    pair = make_certificate(application_uri, common_name, server=server, hosts=hosts, days=days)
    certificate.parent.mkdir(parents=True, exist_ok=True)
    private_key.parent.mkdir(parents=True, exist_ok=True)
    certificate.write_bytes(pair.certificate_der)
    # the key is never readable by others, not even between its creation and a chmod
    fd = os.open(private_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pair.private_key_pem)
    private_key.chmod(0o600)
    return pair
