"""Sampling an analyser without a sample counter (gateway/profiles/sampling.py): the rules of
``sampling: change`` and ``periodic``, with the time given by the readings (no clock read).
Whole-profile behaviour: tests/unit/profile_cases/iodine-analyser-{change,periodic}."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drivers.base import Reading
from gateway.profiles import profile_specs
from gateway.profiles.sampling import ChangeSampler, PeriodicSampler

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def at(seconds: float, **values: float) -> Reading:
    return Reading("io1", T0 + timedelta(seconds=seconds), values)


def test_any_change_is_a_sample_with_no_tolerance_and_drift_adds_up_with_one() -> None:
    exact = ChangeSampler("i", 0.0)
    taken = [exact.take(at(t, i=v)) for t, v in enumerate((25.0, 25.0, 25.01, 25.01, 24.0))]
    assert taken == [False, False, True, False, True] and exact.count == 2
    drift = ChangeSampler("i", 0.35)  # 0.1 per reading: 0.4 from the baseline is a sample
    taken = [drift.take(at(t, i=25 + t / 10)) for t in range(5)]
    assert taken == [False, False, False, False, True] and drift.last == 25.4
    assert not drift.take(Reading("io1", T0, {}, {"i": "timeout"}))  # unreadable: nothing


def test_periodic_samples_on_schedule_only_while_running_and_never_in_a_burst() -> None:
    every = timedelta(seconds=60)
    p = PeriodicSampler(every)

    def take(s: float, running: bool = True) -> bool:
        return p.take(T0 + timedelta(seconds=s), running)

    assert [take(0), take(59), take(60), take(61), take(120)] == [False, False, True, False, True]
    assert take(400) and p.next_due == T0 + timedelta(seconds=420)  # 180..360 skipped, one sample
    assert not take(420, running=False) and p.next_due is None  # the line stands
    assert [take(500), take(559), take(560)] == [False, False, True]  # a new run, a new schedule
    assert not take(100) and p.next_due == T0 + timedelta(seconds=160)  # the clock went back
    assert p.count == 4


def test_only_counter_sampling_needs_the_samples_role() -> None:
    spec = profile_specs()["iodine"]
    base = {"source": "analyser", "target_mg_kg": 25}
    assert set(spec.bind({}, {"iodine_mg_kg"}, base)) == {"iodine", "samples"}
    for sampling in ("change", "periodic"):
        bound = spec.bind({}, {"iodine_mg_kg"}, {**base, "sampling": sampling})
        assert set(bound) == {"iodine"}
