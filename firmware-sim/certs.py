"""Self-signed OPC UA application instance certificates (OPC 10000-6 6.2.2): RSA 2048, the
application URI and host names in the SubjectAltName. For the simulated PLC, for tests and for
commissioning a gateway against a test server."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
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
    days: int = 365,
) -> CertificatePair:
    """:func:`make_certificate`, written as DER (certificate) and PEM (key, mode 0600)."""
    pair = make_certificate(application_uri, common_name, server=server, days=days)
    certificate.parent.mkdir(parents=True, exist_ok=True)
    private_key.parent.mkdir(parents=True, exist_ok=True)
    certificate.write_bytes(pair.certificate_der)
    private_key.write_bytes(pair.private_key_pem)
    private_key.chmod(0o600)
    return pair
