"""When an online analyser without a sample counter has a new sample (the iodine profile's
``sampling: change | periodic``; ``counter`` uses :class:`gateway.profiles.watch.CounterWatch`).

* :class:`ChangeSampler` — a new sample whenever the value moved by more than ``tolerance`` from
  the last *sampled* value (0: any change), so a slow drift adds up to a sample. The first value
  is a baseline, as a counter's is: what the analyser measured before the gateway watched is not
  recorded.
* :class:`PeriodicSampler` — one sample every ``every`` while the line runs. The schedule starts
  at the first reading of a run (first sample one interval later), stops while the line stands,
  skips missed intervals instead of catching up in a burst, and starts over when the clock went
  back.

Neither reads a clock: time comes from the readings, so golden cases replay them exactly.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from drivers.base import Reading

__all__ = ["ChangeSampler", "PeriodicSampler"]


def _number(reading: Reading, tag: str) -> float | None:
    raw = reading.values.get(tag)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        return None
    return float(raw)


class ChangeSampler:
    """A new sample when ``tag`` moved by more than ``tolerance`` from the last sample."""

    def __init__(self, tag: str, tolerance: float) -> None:
        self.tag = tag
        self.tolerance = tolerance
        self.last: float | None = None  # the value last taken as a sample (or the baseline)
        self.count = 0  # samples taken since the gateway started

    def take(self, reading: Reading) -> bool:
        value = _number(reading, self.tag)
        if value is None:  # unreadable: the runtime and the age check report it
            return False
        if self.last is None:
            self.last = value
            return False
        if abs(value - self.last) <= self.tolerance:
            return False
        self.last = value
        self.count += 1
        return True


class PeriodicSampler:
    """One sample every ``every`` while the line runs."""

    def __init__(self, every: timedelta) -> None:
        self.every = every
        self.next_due: datetime | None = None
        self.count = 0  # samples taken since the gateway started

    def take(self, ts: datetime, running: bool) -> bool:
        due = self.next_due
        if not running:
            self.next_due = None
            return False
        if due is None or ts < due - self.every:  # a new run, or the clock went back
            self.next_due = ts + self.every
            return False
        if ts < due:
            return False
        while due <= ts:  # missed intervals are skipped, not taken in a burst
            due += self.every
        self.next_due = due
        self.count += 1
        return True
