"""Small state machines the CCP profiles share: device counters, periodic checks, stale values.

None of them reads a clock: time comes from readings (``Reading.ts``) and ticks (``now``), so a
golden test replays a profile's input exactly.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from drivers.base import Reading
from gateway.events import EventDraft
from gateway.profiles.records import device_alarm

__all__ = [
    "MAX_COUNTER_STEP",
    "CounterWatch",
    "FrozenWatch",
    "PeriodicWatch",
    "ReadingAge",
    "TagHealth",
]

log = logging.getLogger(__name__)

#: A device counter that jumps further than this in one poll was reset or swapped, not advanced.
MAX_COUNTER_STEP = 1000


class CounterWatch:
    """New increments of a device counter (detections, verifications, inspections).

    The first value seen is a baseline (what happened before the gateway watched is not ours
    to report). A counter that goes back was reset (a power cycle, an operator): the device
    counted from 0 again, so the new value's increments are new (the profile records the
    current one and counts the rest as missed, as for any jump), and the reset is reported
    (:meth:`reset_alarms`: ``alarm.device`` ``counter_reset``, like the checkweigher's; what
    happened between the last value seen and the reset is unknowable). A jump forward of more
    than :data:`MAX_COUNTER_STEP` is a swapped device: a new baseline, reported the same way.
    """

    def __init__(self, device: str, tag: str) -> None:
        self.device = device
        self.tag = tag
        self.last: int | None = None
        self._resets: list[tuple[int, int, int]] = []  # (from, to, increments taken as new)

    def advance(self, reading: Reading) -> int:
        """How many new counts this reading shows (0 when unreadable: the runtime reports it)."""
        raw = reading.values.get(self.tag)
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            return 0
        count = int(raw)
        prev, self.last = self.last, count
        if prev is None or count == prev:
            return 0
        if count < prev or count - prev > MAX_COUNTER_STEP:
            new = count if count < prev and count <= MAX_COUNTER_STEP else 0
            log.warning(
                "%s: counter %r went from %d to %d: taken as a reset", self.device, self.tag,
                prev, count,
            )  # fmt: skip
            self._resets.append((prev, count, new))
            return new
        return count - prev

    def reset_alarms(self, ts: datetime) -> list[EventDraft]:
        """``alarm.device`` ``counter_reset`` for each reset seen since the last call."""
        out = []
        for before, count, new in self._resets:
            missed = max(0, new - 1)
            detail = (
                f"{self.tag} went from {before} to {count}: the device's counter was reset; "
                f"what it counted after {before} and before the reset is unknown"
                + (f"; {missed} since the reset were not seen" if missed else "")
            )
            extra = {"from": before, "to": count, "missed": missed}
            reason = f"counter went from {before} to {count}"
            out.append(
                device_alarm(
                    ts,
                    self.device,
                    state="counter_reset",
                    tag=self.tag,
                    reason=reason,
                    detail=detail,
                    **extra,
                )
            )
        self._resets.clear()
        return out


class PeriodicWatch:
    """A check due every ``interval`` (QB/T 5279 7.2: the periodic checks of a CCP are records).

    The clock starts at the first reading or tick the profile sees (the gateway cannot know
    what happened before it ran) and restarts at every check done. :meth:`overdue` reports each
    missed interval once, not on every tick.
    """

    def __init__(self, interval: timedelta) -> None:
        self.interval = interval
        self.since: datetime | None = None  # last check done, or start of watching
        self.last_done: datetime | None = None
        self.last_pass: datetime | None = None
        self.misses = 0

    def start(self, ts: datetime) -> None:
        if self.since is None:
            self.since = ts

    def done(self, ts: datetime, *, passed: bool | None) -> None:
        """A check was recorded at ``ts`` (``passed`` None: done, but its result unreadable)."""
        self.since = ts if self.since is None else max(self.since, ts)
        self.last_done = ts
        if passed:
            self.last_pass = ts
        self.misses = 0

    def overdue(self, now: datetime) -> int:
        """The number of the miss when ``now`` starts a new missed interval, else 0. When the
        wall clock went back past the start of the interval, the interval starts over at
        ``now`` (else no miss would be reported until the clock caught up: hours)."""
        if self.since is None or now < self.since:
            self.since = now
            self.misses = 0
            return 0
        elapsed = now - self.since
        missed = 0
        while elapsed > self.interval * (self.misses + 1):
            self.misses += 1
            missed = self.misses
        return missed

    def minutes_since(self, now: datetime) -> float:
        assert self.since is not None
        return round((now - self.since).total_seconds() / 60, 1)


class FrozenWatch:
    """A value that stopped changing while the device's counter says it should change.

    ``threshold`` is how far the counter may advance (samples taken, kilograms of salt passed)
    while the value stays exactly the same before the value counts as stale: a live measurement
    jitters, a frozen transmitter or a hung analyser repeats itself.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.value: float | None = None
        self.base: float | None = None  # the counter when the value last changed
        self.changed_at: datetime | None = None
        self.stale = False

    def update(self, ts: datetime, value: float, counter: float | None) -> bool:
        """Feed one value and the counter read with it; True when the value changed.
        :attr:`stale` tells whether it is stale now."""
        if value != self.value:
            self.value, self.base, self.changed_at, self.stale = value, counter, ts, False
            return True
        if counter is None:
            return False
        if self.base is None or counter < self.base:  # no base yet, or counter reset
            self.base = counter
        elif counter - self.base >= self.threshold:
            self.stale = True
        return False


class TagHealth:
    """One ``alarm.device`` per episode of a bad or stale tag, and one when it is good again.

    For continuous values (flows, analyser results) read many times a second, so that a bad
    transmitter raises one alarm, not ten a second. ``key`` tells apart two troubles of one tag
    (a bad value, a reading too old); it defaults to the tag.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.states: dict[str, str] = {}

    def bad(
        self, ts: datetime, tag: str, state: str, reason: str, detail: str, key: str | None = None
    ) -> list[EventDraft]:
        key = key or tag
        if self.states.get(key) == state:
            return []
        self.states[key] = state
        return [device_alarm(ts, self.device, state=state, tag=tag, reason=reason, detail=detail)]

    def ok(self, ts: datetime, tag: str, key: str | None = None) -> list[EventDraft]:
        if self.states.pop(key or tag, None) is None:
            return []
        detail = f"{tag} is readable and live again"
        return [
            device_alarm(ts, self.device, state="values_ok", tag=tag, reason="ok", detail=detail)
        ]

    def is_bad(self, key: str) -> bool:
        return key in self.states


class ReadingAge:
    """Readings older than ``max_age_s`` against the gateway's clock (the last tick) are stale:
    delivered late, replayed, or stamped by a device clock that stopped. The profile gives no
    verdict on them; ``tag`` (the profile's main tag) names them in the alarm."""

    KEY = "<reading age>"

    def __init__(self, health: TagHealth, tag: str, max_age_s: float) -> None:
        self.health = health
        self.tag = tag
        self.max_age_s = max_age_s
        self.now: datetime | None = None

    def tick(self, now: datetime) -> None:
        self.now = now  # follows the wall clock back too: readings are stamped by the same clock

    def check(self, reading: Reading) -> tuple[bool, list[EventDraft]]:
        """``(fresh, alarms)``: whether to use the reading, and the alarms to raise."""
        if self.now is None:
            return True, []
        age = round((self.now - reading.ts).total_seconds(), 1)
        if age <= self.max_age_s:
            return True, self.health.ok(reading.ts, self.tag, self.KEY)
        detail = (
            f"reading taken at {reading.ts.isoformat(timespec='seconds')} is {age:g} s old "
            f"(max {self.max_age_s:g} s): ignored, no verdict"
        )
        alarms = self.health.bad(
            reading.ts, self.tag, "stale", f"reading {age:g} s old", detail, self.KEY
        )
        return False, alarms
