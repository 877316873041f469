"""Jump the wall clock of this process, as NTP or an operator does, leaving the monotonic clock
alone (``CLOCK_REALTIME`` moves, ``CLOCK_MONOTONIC`` does not).

Patched: ``time.time`` and ``time.time_ns`` (uuid7, the journal's ``accepted`` column, metrics)
and ``datetime.now`` as the gateway's modules see it (readings, ticks, device states). The C
level clock cannot be moved from Python, so this covers what saltgw's own code reads;
``time.monotonic`` (asyncio, paho, tenacity's waits, the poll ticker) is deliberately untouched.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, tzinfo
from types import ModuleType

#: Modules of saltgw that call ``datetime.now()`` on the event path.
MODULES = (
    "gateway.runtime",
    "gateway.supervisor",
    "gateway.commands",
    "drivers.modbus.driver",
    "drivers.scanner.driver",
)


class WallClock:
    """The offset added to the real wall clock; change :attr:`offset` to jump."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def jump(self, delta: timedelta) -> None:
        self.offset += delta

    def time(self) -> float:
        return _real_time() + self.offset.total_seconds()

    def time_ns(self) -> int:
        return _real_time_ns() + int(self.offset.total_seconds() * 1e9)

    def datetime_class(self) -> type[datetime]:
        clock = self

        class ShiftedDatetime(datetime):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
                return datetime.now(tz) + clock.offset

        return ShiftedDatetime


_real_time = time.time
_real_time_ns = time.time_ns


@contextmanager
def shifted_wall_clock(modules: tuple[str, ...] = MODULES) -> Iterator[WallClock]:
    clock = WallClock()
    shifted = clock.datetime_class()
    saved: list[tuple[ModuleType, object]] = []
    for name in modules:
        mod = importlib.import_module(name)
        saved.append((mod, mod.datetime))
        mod.datetime = shifted  # type: ignore[attr-defined]
    time.time, time.time_ns = clock.time, clock.time_ns  # type: ignore[assignment]
    try:
        yield clock
    finally:
        time.time, time.time_ns = _real_time, _real_time_ns
        for mod, original in saved:
            mod.datetime = original  # type: ignore[attr-defined]
