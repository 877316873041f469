from datetime import UTC, datetime
from pathlib import Path

from drivers.base import Reading
from gateway.events import Origin
from gateway.journal import Journal
from gateway.profiles.checkweigher import (
    CHECKWEIGHER,
    CheckweigherProfile,
    CheckweigherProfileConfig,
    LimitsConfig,
)

T = datetime(2026, 11, 22, 2, 15, 30, tzinfo=UTC)


def rule(**kw: object) -> CheckweigherProfile:
    args: dict[str, object] = {"profile": "checkweigher", "device": "cw1", "nominal_g": 400}
    args.update(kw)
    cfg = CheckweigherProfileConfig.model_validate(args)
    tags = CHECKWEIGHER.bind(cfg.tags, {"count", "weight_g", "rejected"})
    return CheckweigherProfile(cfg, tags, UTC)


def r(count: int, weight: float, errors: dict[str, str] | None = None, **extra: object) -> Reading:
    values: dict[str, object] = {"count": count, "weight_g": weight, **extra}
    for k in errors or {}:
        values.pop(k, None)
    return Reading("cw1", T, values, errors or {})  # type: ignore[arg-type]


def test_first_reading_is_a_baseline_then_one_event_per_weighing() -> None:
    ru = rule()
    assert ru.on_reading(r(10, 401.0)) == []
    assert ru.on_reading(r(10, 401.0)) == []
    (ev,) = ru.on_reading(r(11, 402.5))
    assert ev.type == "ccp.net_content"
    assert ev.device == "cw1"
    assert ev.data == {
        "value": 402.5,
        "unit": "g",
        "limits": {"lo": 388.0, "hi": None},
        "verdict": "pass",
        "nominal": 400,
        "count": 11,
    }


def test_underweight_fails_and_raises_alarm_and_reject() -> None:
    ru = rule()
    ru.on_reading(r(1, 400.0))
    evs = ru.on_reading(r(2, 380.0, rejected=True))
    assert [e.type for e in evs] == ["ccp.net_content", "alarm.ccp", "pack.reject"]
    assert evs[0].data["verdict"] == "fail"
    assert evs[1].data["limits"] == {"lo": 388.0, "hi": None}
    assert (evs[1].data["check"], evs[1].data["count"]) == ("weighing", 2)  # like every CCP alarm
    assert evs[2].data["count"] == 2


def test_boundary_is_a_pass_and_override_limits_apply() -> None:
    ru = rule()
    ru.on_reading(r(1, 400))
    assert ru.on_reading(r(2, 388.0))[0].data["verdict"] == "pass"
    ru = rule(limits=LimitsConfig(lo=395, hi=410))
    ru.on_reading(r(1, 400))
    assert ru.on_reading(r(2, 411.0))[0].data["verdict"] == "fail"


def test_missed_weighings_are_counted() -> None:
    ru = rule()
    ru.on_reading(r(1, 400))
    (ev,) = ru.on_reading(r(4, 400))
    assert ev.data["missed"] == 2


def test_unreadable_weight_gives_device_alarm_not_a_verdict() -> None:
    ru = rule()
    ru.on_reading(r(1, 400))
    (ev,) = ru.on_reading(r(2, 0, errors={"weight_g": "not a number (NaN)"}))
    assert ev.data["count"] == 2
    assert ev.type == "alarm.device"
    assert "NaN" in ev.data["reason"]
    assert "verdict" not in ev.data


def test_a_restart_resumes_from_the_last_accepted_weighing(tmp_path: Path) -> None:
    """Weighings made while the gateway was down are counted as missed, not lost: the journal
    keeps the counter of the last accepted event (its cursor) and hands it back."""
    path = tmp_path / "j.db"
    before = rule()
    before.on_reading(r(10, 401.0))
    events = before.on_reading(r(11, 402.0)) + before.on_reading(r(12, 380.0))
    assert {e.cursor for e in events if e.type == "ccp.net_content"} == {
        ("checkweigher:cw1:count", 11),
        ("checkweigher:cw1:count", 12),
    }
    with Journal(path, Origin("gw", "8035", "s", "L1")) as j:
        j.append(events).result(timeout=10)
        assert j.cursors() == {"checkweigher:cw1:count": 12}
    after = rule()  # a new process
    with Journal(path, Origin("gw", "8035", "s", "L1")) as j:
        after.resume(j.cursors())
    (ev,) = after.on_reading(r(17, 399.0))  # the device weighed 13..17 meanwhile
    assert (ev.data["count"], ev.data["missed"]) == (17, 4)
    assert after.on_reading(r(17, 399.0)) == []


def test_resume_when_nothing_happened_or_the_device_reset() -> None:
    same = rule()
    same.resume({"checkweigher:cw1:count": 12})
    assert same.on_reading(r(12, 401.0)) == []  # nothing weighed while down
    (ev,) = same.on_reading(r(13, 401.0))
    assert "missed" not in ev.data
    reset = rule()
    reset.resume({"checkweigher:cw1:count": 5000})
    alarm, ev = reset.on_reading(r(3, 401.0))  # counter reset while down: reported
    assert alarm.type == "alarm.device" and alarm.data["state"] == "counter_reset"
    assert (alarm.data["from"], alarm.data["to"], alarm.data["missed"]) == (5000, 3, 2)
    assert (ev.data["count"], ev.data["missed"]) == (3, 2)  # 1, 2 missed; 3 recorded
    assert ev.cursor == ("checkweigher:cw1:count", 3)
    (ev,) = reset.on_reading(r(4, 401.0))
    assert ev.data["count"] == 4 and "missed" not in ev.data
    fresh = rule()
    fresh.resume({"checkweigher:cw9:count": 1})  # another device's cursor
    assert fresh.on_reading(r(40, 401.0)) == []


def test_a_reset_to_zero_moves_the_journal_cursor_with_the_alarm() -> None:
    """No weighing to record after a reset to 0: the alarm carries the cursor, so that a
    restart counts from 0, not from the value before the reset."""
    ru = rule()
    ru.on_reading(r(40, 401.0))
    (alarm,) = ru.on_reading(r(0, 401.0))
    assert alarm.data["state"] == "counter_reset" and alarm.data["missed"] == 0
    assert alarm.cursor == ("checkweigher:cw1:count", 0)
    (ev,) = ru.on_reading(r(2, 400.0))
    assert (ev.data["count"], ev.data["missed"]) == (2, 1)
