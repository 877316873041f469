"""Report by exception (gateway/telemetry/filter.py) with a fake clock."""

from __future__ import annotations

from gateway.telemetry.config import TagPolicy
from gateway.telemetry.filter import ExceptionFilter
from gateway.telemetry.record import Quality, TagPoint


def _f(**kw: float | None) -> ExceptionFilter:
    return ExceptionFilter({"w": TagPolicy(**kw), "on": TagPolicy(**kw)})  # type: ignore[arg-type]


def test_first_value_then_only_changes() -> None:
    f = _f()
    assert f.offer(0.0, {"w": 1.0, "on": True}) == {
        "w": TagPoint(1.0, Quality.GOOD),
        "on": TagPoint(True, Quality.GOOD),
    }
    assert f.offer(0.1, {"w": 1.0, "on": True}) == {}
    assert f.offer(0.2, {"w": 1.5, "on": True}) == {"w": TagPoint(1.5, Quality.GOOD)}
    assert f.offer(0.3, {"w": 1.5, "on": False}) == {"on": TagPoint(False, Quality.GOOD)}


def test_absolute_deadband_compares_with_the_last_reported_value() -> None:
    f = _f(deadband=0.5)
    f.offer(0.0, {"w": 10.0})
    assert f.offer(1.0, {"w": 10.4}) == {}
    assert f.offer(2.0, {"w": 10.5}) == {}  # exactly the deadband: not more than it
    assert f.offer(3.0, {"w": 10.6}) == {"w": TagPoint(10.6, Quality.GOOD)}  # drift adds up
    assert f.offer(4.0, {"w": 10.2}) == {}
    assert f.offer(5.0, {"w": 10.0}) == {"w": TagPoint(10.0, Quality.GOOD)}


def test_percent_deadband() -> None:
    f = _f(deadband_percent=10.0)
    f.offer(0.0, {"w": 200})
    assert f.offer(1.0, {"w": 219}) == {}
    assert f.offer(2.0, {"w": 221}) == {"w": TagPoint(221, Quality.GOOD)}
    f.offer(3.0, {"w": 0})
    assert f.offer(4.0, {"w": 1}) == {"w": TagPoint(1, Quality.GOOD)}  # from 0: any change


def test_min_interval_holds_changes_back_without_losing_the_latest() -> None:
    f = _f(min_interval_secs=1.0)
    f.offer(0.0, {"w": 1})
    assert f.offer(0.5, {"w": 2}) == {}
    assert f.offer(0.9, {"w": 3}) == {}
    assert f.offer(1.0, {"w": 3}) == {"w": TagPoint(3, Quality.GOOD)}
    assert f.offer(1.5, {"w": 1}) == {}
    assert f.offer(2.0, {"w": 3}) == {}  # back where it was reported: nothing to say


def test_max_interval_is_a_heartbeat() -> None:
    f = _f(max_interval_secs=10.0)
    f.offer(0.0, {"w": 5})
    assert f.offer(9.9, {"w": 5}) == {}
    assert f.offer(10.0, {"w": 5}) == {"w": TagPoint(5, Quality.GOOD)}
    assert f.offer(15.0, {"w": 6}) == {"w": TagPoint(6, Quality.GOOD)}
    assert f.offer(24.9, {"w": 6}) == {}
    assert f.offer(25.0, {"w": 6}) == {"w": TagPoint(6, Quality.GOOD)}


def test_quality_changes_are_always_reported_even_within_min_interval() -> None:
    f = _f(min_interval_secs=60.0, deadband=100.0)
    f.offer(0.0, {"w": 1.0, "on": True})
    assert f.offer(0.1, {"on": True}, errors=["w"]) == {"w": TagPoint(None, Quality.BAD)}
    assert f.offer(0.2, {"on": True}, errors=["w"]) == {}
    assert f.offer(0.3, {"w": 1.0, "on": True}) == {"w": TagPoint(1.0, Quality.GOOD)}
    stale = f.stale(0.4)
    assert stale == {"w": TagPoint(1.0, Quality.STALE), "on": TagPoint(True, Quality.STALE)}
    assert f.stale(0.5) == {}  # already stale
    assert f.offer(0.6, {"w": 1.0, "on": True}) == {
        "w": TagPoint(1.0, Quality.GOOD),
        "on": TagPoint(True, Quality.GOOD),
    }


def test_stale_keeps_the_last_good_value_even_if_not_reported() -> None:
    f = _f(deadband=5.0)
    f.offer(0.0, {"w": 10.0})
    f.offer(1.0, {"w": 12.0})  # within the deadband: not reported, but the last good value
    assert f.stale(2.0)["w"] == TagPoint(12.0, Quality.STALE)
    g = ExceptionFilter({"never": TagPolicy()})
    assert g.stale(0.0) == {"never": TagPoint(None, Quality.STALE)}


def test_tags_outside_the_policy_are_ignored_and_types_matter() -> None:
    f = ExceptionFilter({"s": TagPolicy(deadband=10.0)})
    assert f.offer(0.0, {"s": "A", "other": 1}) == {"s": TagPoint("A", Quality.GOOD)}
    assert f.offer(1.0, {"s": "B"}) == {"s": TagPoint("B", Quality.GOOD)}  # deadband: numbers
    g = ExceptionFilter({"x": TagPolicy()})
    g.offer(0.0, {"x": 1})
    assert g.offer(1.0, {"x": True}) == {"x": TagPoint(True, Quality.GOOD)}  # bool is not 1
