"""Scenario 5, rule by rule: what a wall clock jump did to the pieces that measure time with it
(found by test_clock_jumps.py; each stalled for as long as the clock had gone back)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drivers.base import Reading
from gateway.events import uuid7
from gateway.profiles.line_plc import LINE_PLC, LinePlcProfile, LinePlcProfileConfig
from gateway.profiles.watch import PeriodicWatch, ReadingAge, TagHealth

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
BACK = timedelta(hours=-6)


def test_uuid7_keeps_increasing_when_the_clock_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    real = time.time_ns
    before = [uuid7() for _ in range(1000)]
    monkeypatch.setattr(time, "time_ns", lambda: real() + int(BACK.total_seconds() * 1e9))
    after = [uuid7() for _ in range(1000)]
    ids = before + after
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert [u.int for u in ids] == sorted(u.int for u in ids)
    assert len({u.int for u in ids}) == len(ids)


def test_periodic_check_starts_over_when_the_clock_goes_back() -> None:
    watch = PeriodicWatch(timedelta(minutes=10))
    watch.start(T0)
    assert watch.overdue(T0 + timedelta(minutes=11)) == 1
    back = T0 + BACK
    assert watch.overdue(back) == 0  # the interval starts over now…
    assert watch.overdue(back + timedelta(minutes=9)) == 0
    assert watch.overdue(back + timedelta(minutes=11)) == 1  # …not in six hours


def test_readings_are_not_hours_old_after_the_clock_went_back() -> None:
    age = ReadingAge(TagHealth("md1"), "detections", max_age_s=10)
    age.tick(T0)
    back = T0 + BACK
    age.tick(back)
    fresh, alarms = age.check(Reading("md1", back + timedelta(seconds=1), {"detections": 1}))
    assert fresh and alarms == []


def _line_plc() -> LinePlcProfile:
    config = LinePlcProfileConfig.model_validate(
        {"profile": "line_plc", "device": "plc1", "line": "L1", "counters_every_secs": 10}
    )
    tags = LINE_PLC.bind(config.tags, {"batch_number", "bag_count", "case_count", "speed"})
    return LINE_PLC.create(config, tags, UTC)  # type: ignore[return-value]


def test_line_counters_keep_their_pace_when_the_clock_goes_back() -> None:
    prof = _line_plc()

    def feed(ts: datetime, **values: Any) -> None:
        prof.on_reading(Reading("plc1", ts, values))

    feed(T0, batch_number="B1", bag_count=0, case_count=0, speed=150.0)
    assert prof.on_tick(T0) == []
    feed(T0 + timedelta(seconds=1), bag_count=10)
    assert [d.type for d in prof.on_tick(T0 + timedelta(seconds=11))] == ["line.counters"]
    back = T0 + BACK
    feed(back, bag_count=20)
    assert prof.on_tick(back) == []  # the interval starts over…
    out = prof.on_tick(back + timedelta(seconds=11))
    assert [d.type for d in out] == ["line.counters"]  # …and ends on time
    assert out[0].data["bags"] == 20
