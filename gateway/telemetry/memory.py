"""An in-memory :class:`~gateway.telemetry.record.TelemetryFeed`: the test double for telemetry
outputs, shipped for third parties (like httpx's ``MockTransport``).

The test puts records (:meth:`MemoryFeed.put`); the output under test reads and acknowledges
them exactly as it would from the store, from one cursor: :meth:`read` returns the records
after the acknowledged cursor (again and again until acknowledged), :meth:`ack` moves the
cursor. :meth:`wait_acked` lets the test wait, bounded, until the output delivered a record.
Thread-safe: the test's thread puts, the output's thread reads.

    feed = MemoryFeed([TagMeta("cw1", "weight", "float", "g")])
    output.start(feed)
    rec = feed.put("cw1", {"weight": 501.2})
    assert feed.wait_acked(rec.id, timeout=5)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from drivers.base import TagValue
from gateway.telemetry.record import Quality, TagMeta, TagPoint, TagRecord

__all__ = ["MemoryFeed"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MemoryFeed:
    """Records in a list, one cursor; see the module docstring."""

    def __init__(
        self, metas: Iterable[TagMeta] = (), *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._metas = tuple(metas)
        self._clock = clock
        self._cond = threading.Condition()
        self._records: list[TagRecord] = []  # not yet acknowledged, oldest first
        self._next_id = 1
        self._acked = 0
        self._last: dict[str, dict[str, TagValue]] = {}  # device -> tag -> last value put
        self.reads = 0  # calls of read() (an output that polls shows here)

    # -- the test's side -----------------------------------------------------------------------
    def put(
        self,
        device: str,
        points: Mapping[str, TagPoint | TagValue | None],
        ts: datetime | None = None,
    ) -> TagRecord:
        """Append a record; a plain value is a ``good`` point (``None``: ``bad``). ``ts`` must
        be aware (default: the clock's now). Returns the record with its id."""
        when = self._clock() if ts is None else ts
        if when.tzinfo is None:
            raise ValueError(f"MemoryFeed.put({device!r}): ts must be timezone-aware, got {when}")
        pts = {tag: _point(v) for tag, v in points.items()}
        with self._cond:
            rec = TagRecord(self._next_id, device, when, pts)
            self._next_id += 1
            self._records.append(rec)
            last = self._last.setdefault(device, {})
            last.update({t: p.value for t, p in pts.items() if p.value is not None})
            self._cond.notify_all()
        return rec

    def offline(self, device: str, ts: datetime | None = None) -> TagRecord:
        """The record the store writes when ``device`` goes offline: every tag of the device
        ``stale`` with its last value put here (None if never)."""
        last: dict[str, TagValue | None] = {m.tag: None for m in self._metas if m.device == device}
        with self._cond:
            last.update(self._last.get(device, {}))
        return self.put(device, {t: TagPoint(v, Quality.STALE) for t, v in last.items()}, ts)

    @property
    def acked(self) -> int:
        with self._cond:
            return self._acked

    @property
    def last_id(self) -> int:
        with self._cond:
            return self._next_id - 1

    def pending(self) -> list[TagRecord]:
        """Records not yet acknowledged, oldest first."""
        with self._cond:
            return list(self._records)

    def wait_acked(self, upto: int, timeout: float) -> bool:
        """Wait until everything up to record id ``upto`` is acknowledged, at most ``timeout``
        seconds; True if it was."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._acked < upto:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # -- the output's side (TelemetryFeed) -----------------------------------------------------
    def metas(self) -> Sequence[TagMeta]:
        return self._metas

    def read(self, limit: int) -> Sequence[TagRecord]:
        with self._cond:
            self.reads += 1
            return self._records[: max(0, limit)]

    def ack(self, upto: int) -> None:
        with self._cond:
            if upto >= self._next_id:
                raise ValueError(
                    f"MemoryFeed.ack({upto}): no such record (the last one is {self._next_id - 1})"
                )
            if upto <= self._acked:
                return
            self._acked = upto
            self._records = [r for r in self._records if r.id > upto]
            self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._cond:
            if not self._records:
                self._cond.wait_for(lambda: bool(self._records), max(0.0, timeout))
            return bool(self._records)


def _point(v: TagPoint | TagValue | None) -> TagPoint:
    if isinstance(v, TagPoint):
        return v
    return TagPoint(v, Quality.BAD if v is None else Quality.GOOD)
