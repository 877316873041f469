"""Secrets that would cross the network in clear (QB/T 5279-2018 11.4: protection against
unauthorised access): a platform token over ``http://``, an MQTT username and password over
``mqtt://`` (no TLS), a bridge's AMQP username and password over ``amqp://``, an OPC UA user
identity over security policy None.

Each is an error in ``saltgw validate`` and at start, unless the connection says
``allow_cleartext_secrets: true`` (an isolated network): then it is a warning at every start.
Loopback hosts (``127.0.0.0/8``, ``::1``, ``localhost``) are exempt: what is sent to them never
leaves the machine, and whoever can read the loopback interface can already read the secret's
file or environment (docs/security.md, "Secrets in clear").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Cleartext", "cleartext_risks", "cleartext_warnings", "is_loopback"]

Loc = tuple[str | int, ...]
OPT_OUT = "allow_cleartext_secrets: true"


@dataclass(frozen=True, slots=True)
class Cleartext:
    loc: Loc  # where the connection's address is in the config
    what: str  # which secret goes where in clear
    fix: str
    allowed: bool  # the connection opted out: a warning, not an error

    @property
    def message(self) -> str:
        if self.allowed:
            return f"{self.what} (allowed by {OPT_OUT}: an isolated network only)"
        return f"{self.what}: {self.fix}"


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and addresses in ``127.0.0.0/8`` or ``::1``."""
    if not host:
        return False
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def cleartext_risks(cfg: Any) -> Iterator[Cleartext]:
    """Every secret of a validated config that would be sent in clear to another host."""
    mqtt = cfg.mqtt
    for i, murl in enumerate(mqtt.endpoints):  # mqtt.urls (failover) or mqtt.url
        scheme = urlsplit(murl).scheme
        if mqtt.username and scheme in ("mqtt", "tcp") and not is_loopback(_host(murl)):
            yield Cleartext(
                ("mqtt", "urls", i) if mqtt.urls else ("mqtt", "url"),
                f"the MQTT password of user {mqtt.username!r} would cross the network in clear "
                f"over {murl} (no TLS)",
                f"use mqtts:// (docs/security.md), or set mqtt.{OPT_OUT} for an isolated network",
                mqtt.allow_cleartext_secrets,
            )
    amqp: Any = getattr(cfg.bridge, "amqp", None) if cfg.bridge is not None else None
    for i, aurl in enumerate(amqp.urls if amqp is not None else ()):  # bridge.source: amqp
        if amqp.username and urlsplit(aurl).scheme == "amqp" and not is_loopback(_host(aurl)):
            yield Cleartext(
                ("bridge", "amqp", "urls", i),
                f"the AMQP password of user {amqp.username!r} would cross the network in clear "
                f"over {aurl} (no TLS)",
                f"use amqps:// (docs/security.md), or set bridge.amqp.{OPT_OUT} for an "
                "isolated network",
                amqp.allow_cleartext_secrets,
            )
    upload: Any = getattr(cfg.bridge, "upload", None) if cfg.bridge is not None else None
    url = getattr(upload, "url", None)
    if (
        upload is not None
        and isinstance(url, str)
        and (upload.token_env is not None or upload.token_file is not None)
        and urlsplit(url).scheme == "http"
        and not is_loopback(_host(url))
    ):
        yield Cleartext(
            ("bridge", "upload", "url"),
            f"the platform's bearer token would cross the network in clear over {url}",
            f"use https://, or set bridge.upload.{OPT_OUT} for an isolated network",
            upload.allow_cleartext_secrets,
        )
    for i, dev in enumerate(cfg.devices):
        identity = getattr(dev, "identity", None)
        security = getattr(dev, "security", None)
        endpoint = getattr(dev, "endpoint", None)
        if (
            identity is not None
            and getattr(security, "policy", None) == "None"
            and isinstance(endpoint, str)
            and not is_loopback(_host(endpoint))
        ):
            yield Cleartext(
                ("devices", i, "security"),
                f"device {dev.id!r}: the OPC UA password of user {identity.username!r} would "
                f"cross the network in clear (security policy None to {endpoint})",
                f"use Basic256Sha256 or Aes128_Sha256_RsaOaep with mode SignAndEncrypt, or set "
                f"{OPT_OUT} on the device for an isolated network",
                bool(getattr(dev, "allow_cleartext_secrets", False)),
            )


def cleartext_warnings(cfg: Any) -> list[str]:
    """The start's warnings: secrets in clear on connections that allowed it."""
    return [f"SECRET IN CLEAR: {r.message}" for r in cleartext_risks(cfg) if r.allowed]
