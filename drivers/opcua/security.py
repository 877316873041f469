"""Secure channel set-up: our certificate, the server's certificate checked against the trust
list (pinning), user identity. Every refusal is a :class:`DeviceFault` whose message says what
to fix; an unreachable server is :class:`DeviceOffline`.

The server's certificate comes from its endpoint list (GetEndpoints on an unsecured channel,
the standard discovery step); it is trusted only when it is byte-for-byte one of
``trusted_server_certificates`` or of the certificates in ``trust_dir``, and not expired. It is
checked again when the session is created.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path

from asyncua import Client, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import security_policies
from asyncua.crypto.uacrypto import CertProperties
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from drivers.base import DeviceFault, DeviceOffline
from drivers.opcua.config import Identity, SecureChannel
from drivers.secrets import SecretError, secret

__all__ = [
    "apply_identity",
    "apply_security",
    "certificate_uri",
    "check_server_certificate",
    "fingerprint",
]

_POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
}
_TRUST_SUFFIXES = (".der", ".pem", ".crt", ".cer")


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint as colon-separated hex (as UaExpert and openssl show it)."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _read(path: Path, what: str) -> tuple[bytes, str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DeviceFault(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from exc
    return data, ("pem" if data.lstrip().startswith(b"-----BEGIN") else "der")


def _load_cert(path: Path, what: str) -> x509.Certificate:
    data, fmt = _read(path, what)
    try:
        if fmt == "pem":
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise DeviceFault(f"{what} {str(path)!r} is not a certificate: {exc}") from exc


def certificate_uri(path: Path) -> str | None:
    """The application URI in a certificate's SubjectAltName, if any."""
    cert = _load_cert(path, "client certificate")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def _trusted(cfg: SecureChannel) -> set[bytes]:
    """DER of every trusted server certificate (files and trust_dir, read now)."""
    paths = list(cfg.trusted_server_certificates)
    if cfg.trust_dir is not None:
        try:
            paths += sorted(
                p for p in cfg.trust_dir.iterdir() if p.suffix.lower() in _TRUST_SUFFIXES
            )
        except OSError as exc:
            raise DeviceFault(
                f"cannot read trust_dir {str(cfg.trust_dir)!r}: {exc.strerror or exc}"
            ) from exc
    return {_load_cert(p, "trusted server certificate").public_bytes(Encoding.DER) for p in paths}


def _describe(cert: x509.Certificate, der: bytes) -> str:
    return f"subject {cert.subject.rfc4514_string()!r}, SHA-256 {fingerprint(der)}"


def check_server_certificate(der: bytes, trusted: set[bytes], where: str) -> None:
    """Raise DeviceFault unless ``der`` is trusted and valid now."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise DeviceFault(f"server {where} sent an unreadable certificate: {exc}") from exc
    if der not in trusted:
        raise DeviceFault(
            f"server certificate of {where} is not trusted ({_describe(cert, der)}): add it to "
            "security.trusted_server_certificates or security.trust_dir"
        )
    now = datetime.now(UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise DeviceFault(
            f"server certificate of {where} is not valid now (valid "
            f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}; "
            f"{_describe(cert, der)})"
        )


def _first_cert(der: bytes) -> bytes:
    """The leading certificate of a DER chain (servers may append their CA chain)."""
    length = int.from_bytes(der[2:4], "big") + 4
    return der[:length]


async def apply_security(
    client: Client, cfg: SecureChannel, where: str, request_secs: float
) -> None:
    """Configure ``client`` for ``cfg``; the server must offer the policy and mode and present a
    trusted certificate."""
    policy = _POLICIES[cfg.policy]
    mode = getattr(ua.MessageSecurityMode, cfg.mode)
    cert, cert_fmt = _read(cfg.certificate, "client certificate")
    key, key_fmt = _read(cfg.private_key, "client private key")
    password = None
    if cfg.private_key_password_env is not None or cfg.private_key_password_file is not None:
        password = _secret(
            cfg.private_key_password_env, cfg.private_key_password_file, "private key password"
        )
    trusted = _trusted(cfg)
    try:
        endpoints = await asyncio.wait_for(client.connect_and_get_server_endpoints(), request_secs)
    except (OSError, TimeoutError, ConnectionError) as exc:
        raise DeviceOffline(f"cannot reach {where} to read its endpoints: {exc!r}") from exc
    except ua.UaError as exc:
        raise DeviceFault(f"{where} refused to list its endpoints: {exc}") from exc
    chosen = [
        ep for ep in endpoints if ep.SecurityPolicyUri == policy.URI and ep.SecurityMode == mode
    ]
    if not chosen:
        offered = sorted(
            {f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name}" for e in endpoints}
        )
        raise DeviceFault(
            f"{where} offers no endpoint with policy {cfg.policy} and mode {cfg.mode} "
            f"(it offers: {', '.join(offered) or 'nothing'})"
        )
    server_der = _first_cert(chosen[0].ServerCertificate or b"")
    if not server_der:
        raise DeviceFault(f"{where} sent no certificate for policy {cfg.policy}")
    check_server_certificate(server_der, trusted, where)

    async def recheck(certificate: x509.Certificate, app: ua.ApplicationDescription) -> None:
        der = certificate.public_bytes(Encoding.DER)
        if der not in trusted:
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    client.certificate_validator = recheck
    try:
        await client.set_security(
            policy,
            certificate=CertProperties(cert, extension=cert_fmt),
            private_key=CertProperties(key, extension=key_fmt, password=password),
            server_certificate=CertProperties(server_der, extension="der"),
            mode=mode,
        )
    except (ValueError, TypeError) as exc:
        raise DeviceFault(
            f"cannot use client certificate {str(cfg.certificate)!r} / key "
            f"{str(cfg.private_key)!r}: {exc}"
        ) from exc


def apply_identity(client: Client, identity: Identity) -> None:
    """User name and password (from the environment) for ActivateSession."""
    password = _secret(
        identity.password_env,
        identity.password_file,
        f"password of OPC UA user {identity.username!r}",
    )
    client.set_user(identity.username)
    client.set_password(password)


def _secret(env: str | None, file: Path | None, what: str) -> str:
    """A password from its variable or owner-only file; a device fault (with the fix) if it
    cannot be had, since retrying will not help."""
    try:
        value = secret(env, file, what)
    except SecretError as exc:
        raise DeviceFault(str(exc)) from None
    if value is None:
        raise DeviceFault(f"{what}: environment variable {env!r} is not set")
    return value
