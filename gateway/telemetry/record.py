"""What telemetry outputs (UNS topics, Sparkplug B, …) read: the shared definitions.

A :class:`TagRecord` is one poll of one device as far as telemetry is concerned: the tags that
are to be reported now (by exception, deadband and interval, or all of them when the device's
quality changed), each a :class:`TagPoint` with its value and quality. Records are stored
durably, in order, in the telemetry store; an output reads them through a
:class:`TelemetryFeed` from its own cursor and acknowledges what it has delivered. A record is
deleted once every output acknowledged it (or by the store's documented full/age policy,
counted as intentional).

Quality (the contract's second-wave additions): ``good`` a value read now; ``bad`` the tag
could not be decoded (the driver's ``Reading.errors``), value ``None``; ``stale`` the device is
offline, value the last good one (``None`` if there never was one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from drivers.base import TagValue

__all__ = ["Quality", "TagMeta", "TagPoint", "TagRecord", "TelemetryFeed", "TelemetryOutput"]

ValueType = Literal["bool", "int", "float", "string"]


class Quality(StrEnum):
    GOOD = "good"
    BAD = "bad"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class TagMeta:
    """What is known of a tag before any value: for births (Sparkplug) and documentation.

    ``type`` is the value's kind after the tag map's scaling (a scaled int16 is a ``float``);
    ``unit`` the tag map's unit, or None."""

    device: str
    tag: str
    type: ValueType
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class TagPoint:
    value: TagValue | None
    quality: Quality


@dataclass(frozen=True, slots=True)
class TagRecord:
    """One device's tags to report, as read at ``ts`` (aware; the time of the read).

    ``id`` is the store's order: strictly increasing, the cursor an output acknowledges.
    ``points`` holds only the tags to report in this record (by exception).
    ``coalesced``: 0 for a record as read; n > 0 when the store's full/age policy folded n
    records of the device into this one (the latest value of each of their tags; ``ts`` and
    ``id`` those of the newest of them)."""

    id: int
    device: str
    ts: datetime
    points: Mapping[str, TagPoint]
    coalesced: int = 0


class TelemetryFeed(Protocol):
    """An output's view of the telemetry store (one per output name)."""

    def metas(self) -> Sequence[TagMeta]:
        """Every tag that telemetry may report, in a stable order (config order)."""
        ...

    def read(self, limit: int) -> Sequence[TagRecord]:
        """Up to ``limit`` records after this output's acknowledged cursor, oldest first.
        Records already returned and not acknowledged are returned again (at-least-once)."""
        ...

    def ack(self, upto: int) -> None:
        """Everything up to record id ``upto`` (inclusive) is delivered by this output."""
        ...

    def wait(self, timeout: float) -> bool:
        """Block until a record may be newer than the cursor, or ``timeout`` s; True if so."""
        ...


class TelemetryOutput(Protocol):
    """A telemetry output: started with its feed, runs its own thread(s), stopped at shutdown."""

    name: str

    def start(self, feed: TelemetryFeed) -> None: ...

    def alive(self) -> bool: ...

    def stop(self, timeout: float) -> None: ...
