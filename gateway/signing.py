"""Signed event envelopes: a bridge stores only what a gateway it knows published
(QB/T 5279-2018 11.4, anti-tamper and defence against attack; docs/security.md, issue 15).

Wire form (docs/events.md, "Signature"): the gateway serialises a message as compact JSON
``{…}`` (``gateway/events.py``), computes HMAC-SHA-256 with its key over exactly those bytes,
and publishes them with ``,"sig":"<64 lowercase hex>"`` written in before the closing ``}``.
The signature is therefore the last member, with no whitespace around it; a verifier takes the
last :data:`TAIL_LEN` bytes off, puts the ``}`` back and recomputes the MAC over the result. No
canonical re-serialisation is needed (floats, key order and escapes stay as the gateway wrote
them), it works the same over MQTT 3.1.1 and 5, and the payload is still one JSON object that
subscribers who ignore ``sig`` read as before.

The journal signs each event once, when it stores it (``Journal(signer=…)``): what the forwarder
publishes, and what a replay sends again, are the same signed bytes. The forwarder signs its
seq marks the same way.

The key: ``gateway.event_key_env`` (when set and not empty), else ``gateway.event_key_file``;
with neither configured, the file ``{journal}-event.key`` beside the journal, generated (32
random bytes, hex, mode 0600) the first time a gateway starts without one. A bridge in the same
process reads the same key, so ``saltgw run`` / ``saltgw demo`` with a ``bridge:`` section need
no configuration.
"""

from __future__ import annotations

import hmac
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.secrets import SecretError, generate_key_file, read_secret_file, secret

if TYPE_CHECKING:
    from gateway.config.models import ConfigBase

__all__ = [
    "MIN_KEY_CHARS",
    "TAIL_LEN",
    "EnvelopeSigner",
    "default_key_path",
    "event_key",
    "mac",
    "sign",
    "signed_part",
]

log = logging.getLogger(__name__)

MIN_KEY_CHARS = 16  # a shorter key is refused: `openssl rand -hex 32` makes a good one
_TAIL_RE = re.compile(rb',"sig":"([0-9a-f]{64})"\}')
TAIL_LEN = len(b',"sig":""}') + 64  # 74 bytes


def mac(key: bytes, body: bytes) -> str:
    """HMAC-SHA-256 of ``body`` under ``key``, lowercase hex."""
    return hmac.digest(key, body, "sha256").hex()  # the one-shot C path: a few µs an event


def sign(key: bytes, body: bytes) -> bytes:
    """``body`` (a compact JSON object with at least one member) with its signature as the
    last member ``"sig"``."""
    if len(body) < 3 or not body.startswith(b"{") or not body.endswith(b"}"):
        raise ValueError("only a non-empty JSON object can be signed")
    return body[:-1] + b',"sig":"' + mac(key, body).encode() + b'"}'


def signed_part(payload: bytes) -> tuple[bytes, str] | None:
    """(the bytes the signature covers, the signature) of a signed payload; None when the
    payload does not end with a signature member."""
    m = _TAIL_RE.fullmatch(payload, max(0, len(payload) - TAIL_LEN))
    if m is None:
        return None
    return payload[: m.start()] + b"}", m.group(1).decode()


class EnvelopeSigner:
    """Signs one gateway's payloads (a callable ``bytes -> bytes``)."""

    def __init__(self, gateway: str, key: bytes) -> None:
        self.gateway = gateway
        self._key = key

    def __call__(self, body: bytes) -> bytes:
        return sign(self._key, body)

    def __repr__(self) -> str:  # never the key
        return f"EnvelopeSigner({self.gateway!r})"


def default_key_path(journal: Path) -> Path:
    """The generated key's file beside the journal: ``var/journal.db`` →
    ``var/journal-event.key``."""
    return journal.with_name(f"{journal.stem}-event.key")


def event_key(cfg: ConfigBase) -> bytes:
    """The gateway's event signing key (see the module text for where it comes from)."""
    g = cfg.gateway
    what = f"event signing key of gateway {g.id!r}"
    value = secret(g.event_key_env, g.event_key_file, what)
    if value is None and g.event_key_env:
        raise SecretError(f"{what}: environment variable {g.event_key_env!r} is not set")
    if value is None:
        path = default_key_path(Path(cfg.journal.path))
        if not path.exists():
            generate_key_file(path)
        value = read_secret_file(path, what)
    if len(value) < MIN_KEY_CHARS:
        raise SecretError(
            f"{what}: {len(value)} characters; at least {MIN_KEY_CHARS} are needed "
            "(make one with: openssl rand -hex 32)"
        )
    return value.encode()
    log.warning(
        "generated the event signing key %s: a bridge in another process must be given it "
        "(bridge.gateways in its config, docs/bridge.md)",
        path,
    )
