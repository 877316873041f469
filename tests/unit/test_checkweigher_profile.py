from datetime import UTC, datetime

from drivers.base import Reading
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
