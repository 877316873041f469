"""The event envelope of the contract (../shared/design/contract.md, "Event envelope").

A rule produces an :class:`EventDraft` (type, time, device, data); the gateway stamps it into an
:class:`Event` with identity (``id``), origin (gateway, enterprise, site, line), the current batch,
and the per-gateway ``seq`` that the journal allocates when the event is durably accepted.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Event", "EventDraft", "Origin", "format_ts", "uuid7"]

TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


_COUNTER_BITS = 74  # rand_a (12 bits) and rand_b (62 bits) of a version 7 UUID
_uuid7_lock = threading.Lock()
_uuid7_last = (0, 0)  # (unix ms, 74-bit counter) of the last id made in this process


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): 48-bit Unix ms, then 74 random bits.

    Monotonic within the process (RFC 9562 6.2, method 2): an id made in the same millisecond
    as the last, or after the wall clock went back, keeps the last one's millisecond and adds a
    random step to its random bits, so ids keep increasing across a backward clock jump (their
    time part stays ahead until the clock catches up)."""
    global _uuid7_last
    ms = time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF
    with _uuid7_lock:
        last_ms, last_counter = _uuid7_last
        counter = int.from_bytes(os.urandom(10), "big") >> 7  # 73 bits: room to count up
        if ms <= last_ms:
            ms, counter = last_ms, last_counter + 1 + (counter >> 41)  # a 32-bit random step
            if counter >> _COUNTER_BITS:  # counted past the end: borrow the next millisecond
                ms, counter = ms + 1, counter & ((1 << 73) - 1)
        _uuid7_last = (ms, counter)
    rand_a, rand_b = counter >> 62, counter & ((1 << 62) - 1)
    return uuid.UUID(int=ms << 80 | 0x7 << 76 | rand_a << 64 | 0x2 << 62 | rand_b)


def format_ts(ts: datetime) -> str:
    """RFC 3339 with milliseconds and an explicit offset (never a naive time)."""
    if ts.tzinfo is None:
        raise ValueError("event time must carry a UTC offset")
    return ts.isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class EventDraft:
    """What a rule hands to the gateway: ``type`` is ``group.kind`` (contract)."""

    type: str
    ts: datetime
    data: dict[str, Any]
    device: str | None = None
    batch: str | None = None  # None: the line's current batch is used
    # (key, value) the journal stores in the same transaction as the event, handed back to the
    # profile after a restart (gateway/profiles/context.py, Resumable); never published
    cursor: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        if not TYPE_RE.match(self.type):
            raise ValueError(f"event type {self.type!r} is not 'group.kind'")

    @property
    def group(self) -> str:
        return self.type.split(".", 1)[0]

    @property
    def kind(self) -> str:
        return self.type.split(".", 1)[1]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where events come from: fixed for a gateway process."""

    gateway: str
    enterprise: str
    site: str
    line: str


@dataclass(frozen=True, slots=True)
class Event:
    """One accepted event, exactly the contract's envelope."""

    id: str
    gateway: str
    seq: int
    type: str
    ts: str
    enterprise: str
    site: str
    line: str
    device: str | None
    batch: str | None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "gateway": self.gateway,
                "seq": self.seq,
                "type": self.type,
                "ts": self.ts,
                "enterprise": self.enterprise,
                "site": self.site,
                "line": self.line,
                "device": self.device,
                "batch": self.batch,
                "data": self.data,
            },
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
        ).encode()

    @classmethod
    def from_json(cls, payload: bytes | str) -> Event:
        obj = json.loads(payload)
        obj.pop("sig", None)  # the gateway's signature (gateway/signing.py), not a field
        return cls(**obj)
