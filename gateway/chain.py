"""Hash chains that make the journal and the trace store tamper-evident (QB/T 5279-2018 4.4:
records must be kept complete and unaltered; 11.4: the system must be protected against
tampering).

Every record carries ``chain = SHA-256(previous record's chain || body)``; the first record of a
store links to :data:`GENESIS`. Changing, inserting, removing or reordering a record breaks the
link to its successor; changing the newest record breaks the link to the stored head. What the
``body`` of a record is belongs to each store (:func:`journal_body`, the trace store's
``row_body``). ``saltgw verify`` walks the chains (:mod:`gateway.verify`).

A chain proves integrity against edits that do not recompute every later link; anchoring the head
outside the machine (e.g. the platform's receipts) is what makes a full rewrite detectable.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["GENESIS", "journal_body", "link"]

GENESIS = bytes(32)


def link(prev: bytes, body: bytes) -> bytes:
    """The chain value of a record whose predecessor's chain value is ``prev``."""
    return hashlib.sha256(prev + body).digest()


def journal_body(seq: int, type_: str, payload: bytes) -> bytes:
    """What the journal's chain covers of one row: seq, type and the exact payload bytes."""
    t = type_.encode()
    return struct.pack(">QI", seq, len(t)) + t + payload
