"""Whatever a device sends — NaN, ±Inf, negatives, strings, missing tags, counters going back,
readings out of order — a CCP profile never crashes and never gives a verdict on a value that
is not a sane number."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import Reading
from gateway.profiles import profile_specs

TZ = timezone(timedelta(hours=8))
BASE = datetime(2026, 11, 22, 10, 0, tzinfo=TZ)

PROFILES: dict[str, dict[str, Any]] = {
    "metal_detector": {"reject_confirm_s": 2, "verification_interval_min": 1},
    "magnet_rod": {"inspection_interval_min": 1},
    "sieve": {"inspection_interval_min": 1, "aperture_mm": 2},
    "iodine": {"target_mg_kg": 25, "kio3_g_per_l": 50, "record_interval_s": 5},
    "iodine-analyser": {"target_mg_kg": 25, "source": "analyser", "max_sample_age_s": 30},
}

junk = st.one_of(
    st.none(),  # missing (a decode error)
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.floats(-1e6, 1e6),
    st.integers(-5, 50),
    st.booleans(),
    st.text(max_size=3),
)
counter = st.one_of(st.integers(0, 12), junk)


def build(name: str) -> tuple[Any, list[str]]:
    entry = {"profile": name.split("-")[0], "device": "d1", **PROFILES[name]}
    spec = profile_specs()[entry["profile"]]
    cfg = spec.config_model.model_validate(entry)
    tags = spec.bind(cfg.tags, {r.default for r in spec.roles}, entry)
    return spec.create(cfg, tags, TZ), sorted(tags.values())


step = st.tuples(
    st.booleans(),  # tick or reading
    st.floats(-15, 40),  # time step, s (negative: a reading out of order)
    st.dictionaries(st.sampled_from(range(12)), st.one_of(counter, junk), max_size=12),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(PROFILES)), steps=st.lists(step, max_size=40))
def test_profiles_survive_any_input_and_judge_only_sane_values(
    name: str, steps: list[tuple[bool, float, dict[int, Any]]]
) -> None:
    prof, tags = build(name)
    t = 0.0
    events = []
    for is_tick, dt, raw in steps:
        t += dt
        ts = BASE + timedelta(seconds=t)
        if is_tick:
            events.extend(prof.on_tick(ts))
            continue
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for i, value in raw.items():
            tag = tags[i % len(tags)]
            if value is None:
                errors[tag] = "not a number (nan in float32)"
            else:
                values[tag] = value
        events.extend(prof.on_reading(Reading("d1", ts, values, errors)))
    for ev in events:
        assert ev.device == "d1"
        if ev.type.startswith("ccp."):
            d = ev.data
            assert d["verdict"] in ("pass", "fail")
            assert set(d) >= {"value", "unit", "limits", "verdict"}
            if isinstance(d["value"], bool):
                assert d["limits"]["expected"] is True
                assert (d["verdict"] == "pass") == (d["value"] is True) or "max_size_mm" in d[
                    "limits"
                ]
            else:
                assert math.isfinite(d["value"]) and d["value"] >= 0
                lo, hi = d["limits"]["lo"], d["limits"]["hi"]
                inside = (lo is None or d["value"] >= lo) and (hi is None or d["value"] <= hi)
                assert (d["verdict"] == "pass") == inside
        elif ev.type == "alarm.device":
            assert ev.data["state"] in ("bad_value", "stale", "values_ok", "counter_reset")
            assert ev.data["tag"] in tags
        else:
            assert ev.type in ("alarm.ccp", "pack.reject")
