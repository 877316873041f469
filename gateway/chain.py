"""Keyed hash chains that make the journal and the trace store tamper-evident (QB/T 5279-2018
4.4: records must be kept complete and unaltered; 11.4: the system must be protected against
tampering).

Every record carries ``chain = HMAC-SHA-256(key, previous record's chain || body)``; the first
record of a store links to :data:`GENESIS`. Changing, inserting, removing or reordering a record
breaks the link to its successor; changing the newest record breaks the link to the stored head.
Without the key nobody can compute a valid link, so a rewrite that recomputes every link breaks
too. What the ``body`` of a record is belongs to each store (:func:`journal_body`, the trace
store's ``row_body``). ``saltgw verify`` walks the chains (:mod:`gateway.verify`).

Stores chained before the key existed used plain SHA-256 (:data:`ALG_SHA256`). A store records
from which record on it is keyed in a *marker* (``alg``, ``keyed_from``, ``mac``), the mac being
an HMAC of both under the key (:func:`marker_mac`): a marker cannot be moved or forged without
the key, so records at or after ``keyed_from`` must carry a keyed link, and ``saltgw verify``
says how many older ones carry only an unkeyed one.

The key (:func:`chain_key`) comes like every secret from an environment variable or an
owner-only file (:mod:`drivers.secrets`); with neither configured, one is generated
once into an owner-only file beside the store (``{store}.chain-key``, mode 0600). The head of
each chain is published outside the machine (the journal's on MQTT, ``Topics.chain_head``; the
trace store's in every upload document), so that a rewrite by someone holding the key still
disagrees with the anchor.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from drivers.secrets import SecretError, generate_key_file, read_secret_file, secret

__all__ = [
    "ALG_HMAC",
    "ALG_SHA256",
    "GENESIS",
    "KEY_FILE_SUFFIX",
    "MIN_KEY_CHARS",
    "ChainKeyError",
    "Marker",
    "chain_key",
    "configured_chain_key",
    "default_key_file",
    "existing_chain_key",
    "journal_body",
    "link",
    "marker_mac",
]

log = logging.getLogger(__name__)

GENESIS = bytes(32)
ALG_HMAC = "hmac-sha256"
ALG_SHA256 = "sha256"  # stores chained before the key existed (unkeyed)
KEY_FILE_SUFFIX = ".chain-key"
MIN_KEY_CHARS = 16


class ChainKeyError(SecretError):
    """A chain key that cannot be used, or a store marked with another key."""


def link(prev: bytes, body: bytes, key: bytes | None) -> bytes:
    """The chain value of a record whose predecessor's chain value is ``prev``: HMAC-SHA-256
    under ``key``; ``key=None`` is the unkeyed SHA-256 of stores chained before keys existed
    (read by ``saltgw verify`` only)."""
    if key is None:
        return hashlib.sha256(prev + body).digest()
    return hmac.new(key, prev + body, hashlib.sha256).digest()


def journal_body(seq: int, type_: str, payload: bytes) -> bytes:
    """What the journal's chain covers of one row: seq, type and the exact payload bytes."""
    t = type_.encode()
    return struct.pack(">QI", seq, len(t)) + t + payload


@dataclass(frozen=True, slots=True)
class Marker:
    """From which record on a chain is keyed (journal seq, trace store rid, access row id)."""

    alg: str
    keyed_from: int
    mac: bytes

    @classmethod
    def make(cls, key: bytes, chain: str, keyed_from: int) -> Marker:
        return cls(ALG_HMAC, keyed_from, marker_mac(key, chain, keyed_from))

    def valid(self, key: bytes, chain: str) -> bool:
        return self.alg == ALG_HMAC and hmac.compare_digest(
            self.mac, marker_mac(key, chain, self.keyed_from)
        )

    def text(self) -> str:
        """``alg:keyed_from:machex``, as kept in a store's ``meta`` table."""
        return f"{self.alg}:{self.keyed_from}:{self.mac.hex()}"

    @classmethod
    def parse(cls, text: str) -> Marker:
        """Raises ValueError when ``text`` is not ``alg:keyed_from:machex``."""
        alg, from_, mac = str(text).split(":")
        return cls(alg, int(from_), bytes.fromhex(mac))


def marker_mac(key: bytes, chain: str, keyed_from: int) -> bytes:
    """What binds a marker to the key: the chain's name ("journal", "trace store", "access
    log") and ``keyed_from``."""
    msg = f"saltgw chain marker\n{chain}\n{ALG_HMAC}\n{keyed_from}".encode()
    return hmac.new(key, msg, hashlib.sha256).digest()


# -- the key -------------------------------------------------------------------------------------
def default_key_file(store: Path) -> Path:
    """Where the generated key of ``store`` lives: ``{store}.chain-key`` beside it."""
    store = Path(store)
    return store.with_name(store.name + KEY_FILE_SUFFIX)


def _as_key(value: str, what: str, where: str) -> bytes:
    if len(value) < MIN_KEY_CHARS:
        raise ChainKeyError(
            f"{what}: the key in {where} has {len(value)} characters; at least "
            f"{MIN_KEY_CHARS} are needed (e.g. `openssl rand -hex 32`)"
        )
    return value.encode()


def configured_chain_key(env: str | None, file: Path | None, what: str) -> bytes | None:
    """The key from ``env`` (set and not empty), else from ``file``; None when neither gives
    one."""
    value = secret(env, file, what)
    if value is None:
        return None
    return _as_key(value, what, f"${env}" if env and os.environ.get(env) else str(file))


def existing_chain_key(
    store: Path, env: str | None = None, file: Path | None = None, what: str = "chain key"
) -> bytes | None:
    """The key of ``store`` from ``env``, else ``file``, else the generated file beside the
    store; None when none of them exists (nothing is created: ``saltgw verify``)."""
    key = configured_chain_key(env, file, what)
    if key is not None:
        return key
    default = default_key_file(store)
    if not default.exists():
        return None
    return _as_key(read_secret_file(default, what), what, str(default))


def chain_key(
    store: Path, env: str | None = None, file: Path | None = None, what: str = "chain key"
) -> bytes:
    """:func:`existing_chain_key`, generating the file beside the store (32 random bytes,
    hex, mode 0600, created atomically: concurrent openers agree) when there is none."""
    key = existing_chain_key(store, env, file, what)
    if key is not None:
        return key
    path = default_key_file(store)
    if generate_key_file(path):
        log.warning(
            "%s: no key configured; generated one in %s (mode 0600). Keep a copy elsewhere: "
            "without it the chain cannot be verified (docs/security.md)", what, path,
        )  # fmt: skip
    return _as_key(read_secret_file(path, what), what, str(path))
