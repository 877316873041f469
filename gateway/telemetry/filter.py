"""Report by exception, per tag: which of a reading's values telemetry reports now.

Pure and clock-injected: :meth:`ExceptionFilter.offer` takes the read's monotonic time and
returns the points to report (possibly none). For each tag, in this order:

1. a change of quality (good / bad / stale) is always reported, at once;
2. nothing is reported sooner than ``min_interval`` after the tag's last report (a change
   held back this way is not lost: it is reported by the first later reading past the
   interval that still differs from the last reported value by more than the deadband);
3. a number is reported when it differs from the last *reported* value by more than the
   deadband (absolute, or percent of the last reported value's magnitude); any other value
   (bool, string) on every change; the deadband compares with the last reported value, not
   the previous reading, so a slow drift is reported once it adds up;
4. an unchanged value is reported again ``max_interval`` after the tag's last report (a
   heartbeat), when one is set.

The first value of a tag is always reported. ``stale`` (device offline) reports every tag of
the device with its last good value; the next good reading reports every tag again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from drivers.base import TagValue
from gateway.telemetry.config import TagPolicy
from gateway.telemetry.record import Quality, TagPoint

__all__ = ["ExceptionFilter"]


@dataclass(slots=True)
class _Last:
    value: TagValue | None  # last reported value
    quality: Quality
    at: float  # monotonic time of the last report
    good: TagValue | None  # last good value (for stale)


class ExceptionFilter:
    """One device's tags: the policy per tag and what was last reported."""

    def __init__(self, policies: Mapping[str, TagPolicy]) -> None:
        self.policies = dict(policies)
        self._last: dict[str, _Last] = {}

    def offer(
        self, now: float, values: Mapping[str, TagValue], errors: Iterable[str] = ()
    ) -> dict[str, TagPoint]:
        """The points of one reading to report now: good values from ``values``, ``bad``
        (value None) for the tags in ``errors``; tags not in the policies are ignored."""
        out: dict[str, TagPoint] = {}
        for tag in errors:
            if tag in self.policies and self._due(tag, None, Quality.BAD, now):
                out[tag] = TagPoint(None, Quality.BAD)
        for tag, value in values.items():
            if tag in self.policies and self._due(tag, value, Quality.GOOD, now):
                out[tag] = TagPoint(value, Quality.GOOD)
        return out

    def stale(self, now: float) -> dict[str, TagPoint]:
        """The device went offline: every tag ``stale`` with its last good value (None if it
        never had one); tags already stale are not reported again."""
        out: dict[str, TagPoint] = {}
        for tag in self.policies:
            last = self._last.get(tag)
            if last is not None and last.quality is Quality.STALE:
                continue
            good = last.good if last is not None else None
            self._last[tag] = _Last(good, Quality.STALE, now, good)
            out[tag] = TagPoint(good, Quality.STALE)
        return out

    def _due(self, tag: str, value: TagValue | None, quality: Quality, now: float) -> bool:
        last = self._last.get(tag)
        good = value if quality is Quality.GOOD else (last.good if last else None)
        if last is None or last.quality is not quality:
            self._last[tag] = _Last(value, quality, now, good)
            return True
        p = self.policies[tag]
        since = now - last.at
        if since < p.min_interval_secs:
            return False
        heartbeat = p.max_interval_secs is not None and since >= p.max_interval_secs
        if heartbeat or _changed(last.value, value, p):
            self._last[tag] = _Last(value, quality, now, good)
            return True
        last.good = good
        return False


def _changed(before: TagValue | None, now: TagValue | None, p: TagPolicy) -> bool:
    if _number(before) and _number(now):
        assert isinstance(before, int | float) and isinstance(now, int | float)
        if math.isnan(before) or math.isnan(now):
            return not (math.isnan(before) and math.isnan(now))
        diff = abs(now - before)
        if p.deadband_percent is not None:
            return diff > abs(before) * p.deadband_percent / 100.0 or (before == 0 and diff > 0)
        return diff > p.deadband if p.deadband > 0 else diff != 0
    return before != now or type(before) is not type(now)


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
