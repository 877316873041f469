"""A steady poll schedule, shared by the polling drivers (Modbus, OPC UA in poll mode)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["PollTicker"]


class PollTicker:
    """A steady poll schedule on a monotonic clock.

    Ticks fall every ``interval`` seconds from the first call of :meth:`wait`, independent of how
    long each poll takes. A poll that overran its slot is followed by one immediate poll and the
    schedule continues from there: missed ticks are dropped, never replayed in a burst.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._next: float | None = None

    def delay(self) -> float:
        """Seconds to wait before the next poll; advances the schedule by one tick."""
        now = self._clock()
        if self._next is None:
            self._next = now
        else:
            self._next += self.interval
            if self._next < now:  # overran: poll now, keep the cadence from here
                self._next = now
        return self._next - now

    async def wait(self) -> None:
        """Sleep until the next tick."""
        delay = self.delay()
        if delay > 0:
            await asyncio.sleep(delay)

    def reset(self) -> None:
        """Start over: the next :meth:`wait` returns at once."""
        self._next = None
