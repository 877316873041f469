"""The line_plc profile on synthetic readings, and the simulated line it is meant for."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drivers.base import Reading
from firmware_sim.line_model import LineModel, LineSettings
from gateway.events import EventDraft, Origin
from gateway.packml import PackMLState, mode_name, state_name
from gateway.profiles import profile_specs
from gateway.profiles.context import LineAware, LineContext
from gateway.profiles.line_plc import LINE_PLC, LinePlcProfile, LinePlcProfileConfig

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ALL_TAGS = {
    "batch_number",
    "product",
    "shift",
    "state",
    "mode",
    "bag_count",
    "case_count",
    "speed",
}


def profile(**cfg: Any) -> LinePlcProfile:
    config = LinePlcProfileConfig.model_validate(
        {"profile": "line_plc", "device": "plc1", "line": "L1", **cfg}
    )
    return LINE_PLC.create(config, LINE_PLC.bind(config.tags, ALL_TAGS), UTC)  # type: ignore[return-value]


class Feed:
    """Readings a second apart, as the OPC UA driver hands them on (changes only)."""

    def __init__(self, prof: LinePlcProfile) -> None:
        self.prof = prof
        self.t = T0

    def __call__(self, **values: Any) -> list[EventDraft]:
        self.t += timedelta(seconds=1)
        return self.prof.on_reading(Reading("plc1", self.t, values))


def types(drafts: list[EventDraft]) -> list[str]:
    return [d.type for d in drafts]


def test_registered_with_its_roles() -> None:
    spec = profile_specs()["line_plc"]
    assert spec is LINE_PLC
    assert {r.name: r.default for r in spec.roles}["bags"] == "bag_count"
    assert [r.name for r in spec.roles if r.required] == ["batch"]


def test_a_batch_from_start_to_end_with_its_counts() -> None:
    feed = Feed(profile())
    first = feed(batch_number="", state=4, mode=1, bag_count=100, case_count=5, product="盐")
    assert types(first) == ["line.state"]  # no batch running: only the state
    start = feed(batch_number="B1", state=3, shift="A")
    assert types(start) == ["batch.start", "line.state"]
    assert start[0].data == {
        "batch": "B1",
        "product": "盐",
        "line": "L1",
        "shift": "A",
        "resumed": False,
    }
    assert start[0].batch == "B1" and start[0].device == "plc1"
    assert types(feed(state=6)) == ["line.state"]
    for n in range(1, 41):
        feed(bag_count=100 + n, **({"case_count": 5 + n // 20} if n % 20 == 0 else {}))
    assert feed(speed=150.0) == []  # nothing to say about speed alone
    end = feed(batch_number="", state=17)
    assert types(end) == ["batch.end", "line.state"]
    data = end[0].data
    assert (data["batch"], data["bags"], data["cases"], data["reason"]) == ("B1", 40, 2, "cleared")
    assert data["duration_s"] == 43.0 and data["started"] == "2026-11-22T08:00:02.000+00:00"
    assert (data["product"], data["shift"], data["line"]) == ("盐", "A", "L1")
    assert end[0].batch == "B1"
    assert feed(batch_number="") == []  # still no batch


def test_a_new_number_ends_the_open_batch_and_starts_the_next() -> None:
    feed = Feed(profile())
    feed(batch_number="", bag_count=0)
    feed(batch_number="B1")
    feed(bag_count=5)
    out = feed(batch_number="B2", bag_count=7)  # counted before the switch: belongs to B1
    assert types(out) == ["batch.end", "batch.start"]
    assert out[0].data["batch"] == "B1" and out[0].data["reason"] == "replaced"
    assert out[0].data["bags"] == 7
    assert out[1].data["batch"] == "B2"
    assert feed(batch_number=" B2 ") == []  # blanks around the number do not make a new batch


def test_a_batch_running_when_the_gateway_starts_is_resumed() -> None:
    feed = Feed(profile())
    out = feed(batch_number="B9", state=6, bag_count=500)
    assert types(out) == ["batch.start", "line.state"]
    assert out[0].data["resumed"] is True
    feed(bag_count=510)
    # a reconnect re-sends every value: nothing new happened
    assert feed(batch_number="B9", state=6, mode=None, bag_count=510) == []
    end = feed(batch_number="")
    assert end[0].data["bags"] == 10  # counted from what the gateway saw


def test_counters_that_reset_or_wrap_still_add_up() -> None:
    feed = Feed(profile())
    feed(batch_number="B1", bag_count=2**32 - 3)
    feed(bag_count=2)  # wrapped: 3 + 2
    feed(bag_count=0)  # the PLC reset its counter
    feed(bag_count=4)
    end = feed(batch_number="")
    assert end[0].data["bags"] == 9


def test_unbound_counters_are_null_in_batch_end() -> None:
    config = LinePlcProfileConfig.model_validate({"profile": "line_plc", "device": "plc1"})
    prof = LinePlcProfile(config, LINE_PLC.bind({}, {"batch_number"}), UTC)
    feed = Feed(prof)
    feed(batch_number="B1")
    end = feed(batch_number="")
    assert end[0].data["bags"] is None and end[0].data["cases"] is None
    assert end[0].data["line"] is None
    assert isinstance(prof, LineAware)
    prof.bind_line(LineContext(Origin("gw-1", "8035", "daiyue", "L7")))
    assert feed(batch_number="B2")[0].data["line"] == "L7"  # the gateway's line by default
    named = profile(line="Line-3")
    named.bind_line(LineContext(Origin("gw-1", "8035", "daiyue", "L7")))
    assert Feed(named)(batch_number="B3")[0].data["line"] == "Line-3"


def test_state_events_name_state_mode_and_previous() -> None:
    feed = Feed(profile())
    first = feed(state=4, mode=1)[0].data
    assert first == {
        "state": 4,
        "state_name": "Idle",
        "mode": 1,
        "mode_name": "Production",
        "previous": None,
        "previous_name": None,
    }
    held = feed(state=11)[0].data
    assert (held["state_name"], held["previous"], held["previous_name"]) == ("Held", 4, "Idle")
    assert feed(state=11) == []
    assert feed(mode=3)[0].data["mode_name"] == "Manual"
    assert feed(state=42)[0].data["state_name"] == "State 42"  # not PackML: still reported


def test_counters_are_periodic_and_only_when_they_moved() -> None:
    prof = profile(counters_every_secs=10)
    feed = Feed(prof)
    feed(batch_number="B1", bag_count=0, case_count=0, speed=150.0)
    assert prof.on_tick(T0) == []  # starts the interval
    for n in range(1, 26):
        feed(bag_count=n)
    feed(case_count=1)
    assert prof.on_tick(T0 + timedelta(seconds=5)) == []  # too early
    out = prof.on_tick(T0 + timedelta(seconds=30))
    assert types(out) == ["line.counters"]
    assert out[0].data == {
        "bags": 25,
        "cases": 1,
        "batch": "B1",
        "batch_bags": 25,
        "batch_cases": 1,
        "speed": 150.0,
        "rate": 50.0,
        "interval_s": 30.0,
    }
    assert prof.on_tick(T0 + timedelta(seconds=60)) == []  # nothing moved since


def test_packml_names() -> None:
    assert [state_name(n) for n in (2, 6, 11, 17)] == ["Stopped", "Execute", "Held", "Complete"]
    assert PackMLState.EXECUTE == 6 and mode_name(2) == "Maintenance"


# -- the simulated line ---------------------------------------------------------------------------
def run_line(
    model: LineModel, until: float, dt: float = 0.05, start: float = 0.0
) -> list[tuple[float, str, str]]:
    """Step the model from ``start`` to ``until``; returns (time, state, batch) at each change."""
    seen: list[tuple[float, str, str]] = []
    t = start
    while t < until:
        t += dt
        model.step(t, T0 + timedelta(seconds=t))
        now = (model.state.label, model.batch)
        if not seen or seen[-1][1:] != now:
            seen.append((round(t, 2), *now))
    return seen


def test_the_simulated_line_runs_batches_by_itself() -> None:
    settings = LineSettings(
        speed_min=120, speed_max=120, first_batch_after_secs=2, batch_secs=10, idle_secs=3
    )
    model = LineModel(settings, random.Random(1), 0.0)
    changes = run_line(model, 40)
    states = [s for _, s, _ in changes]
    cycle = ["Idle", "Starting", "Execute", "Completing", "Complete", "Resetting", "Idle"]
    assert states[:7] == cycle
    batches = sorted({b for _, _, b in changes if b})
    assert batches == ["20261122-L1-01", "20261122-L1-02", "20261122-L1-03"]
    assert changes[1][0] == pytest.approx(2.0, abs=0.1)  # first batch after 2 s
    complete = next(c for c in changes if c[1] == "Complete")
    assert complete[2] == ""  # the batch number is cleared when the batch completes
    assert 44 <= model.bag_count <= 48  # 120 bags/min during 10 + 10 + 3 s of Execute
    assert model.case_count == model.bag_count // 20


def test_commands_take_the_line_over_from_the_schedule() -> None:
    model = LineModel(LineSettings(first_batch_after_secs=100), random.Random(1), 0.0)
    run_line(model, 1)
    model.start_batch("MES-1", "精制盐", "B", T0)
    assert model.remote and model.batch == "MES-1" and model.shift == "B"
    model.step(3.0, T0)
    model.step(3.1, T0)
    assert model.state == PackMLState.EXECUTE
    model.start_batch("MES-2", None, None, T0)  # replaces the running batch
    assert model.batch == "MES-2" and model.product == "精制盐"
    model.end_batch()
    assert model.state == PackMLState.COMPLETING
    for t in (5.0, 6.5, 8.0, 9.5):
        model.step(t, T0)
    assert model.state == PackMLState.IDLE and model.batch == ""
    model.step(500.0, T0)
    assert model.state == PackMLState.IDLE  # no automatic batch once commanded


def test_holds_interrupt_execution_without_ending_the_batch() -> None:
    settings = LineSettings(first_batch_after_secs=0, batch_secs=20, hold_every_s=5, hold_for_s=2)
    model = LineModel(settings, random.Random(1), 0.0)
    changes = run_line(model, 20)
    states = [s for _, s, _ in changes]
    assert "Held" in states and states.count("Holding") >= 2
    assert all(b == "20261122-L1-01" for _, s, b in changes if s in ("Held", "Execute"))
    holds = [t for t, s, _ in changes if s == "Holding"]
    assert all(b - a == pytest.approx(5.0, abs=0.06) for a, b in itertools.pairwise(holds))
    model.start_batch("MES-1", None, None, T0)  # interrupts a hold or production
    after = run_line(model, 24.0, start=20.0)  # the next hold is 5 s into production
    assert [s for _, s, _ in after] == ["Starting", "Execute"]
