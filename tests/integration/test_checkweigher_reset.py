"""A checkweigher whose counter restarts (issue 13: a reset took it from 103 to 10 and the
weighings before the first one seen were neither recorded nor counted as missed).

The simulator resets its counter once it reaches ``reset_counter_at``; the Modbus driver reads
it over real TCP and the checkweigher profile turns the readings into events. Every weighing
after the reset is either recorded or counted as missed, and the reset is reported once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC
from typing import Any

import pytest

from drivers.modbus import ModbusDeviceConfig, ModbusDriver
from firmware_sim.checkweigher import CheckweigherSim, CheckweigherSimConfig
from gateway.events import EventDraft
from gateway.profiles.checkweigher import CHECKWEIGHER, CheckweigherProfile

pytestmark = pytest.mark.integration

RESET_AT = 40


def _profile() -> CheckweigherProfile:
    cfg = CHECKWEIGHER.config_model.model_validate(
        {"profile": "checkweigher", "device": "cw1", "nominal_g": 400}
    )
    tags = CHECKWEIGHER.bind(cfg.tags, {"count", "weight_g", "rejected"})
    prof = CHECKWEIGHER.create(cfg, tags, UTC)
    assert isinstance(prof, CheckweigherProfile)
    return prof


async def _run() -> tuple[CheckweigherSim, list[EventDraft]]:
    sim = CheckweigherSim(
        CheckweigherSimConfig.model_validate(
            {
                "id": "cw",
                "kind": "checkweigher",
                "port": 0,
                "seed": 5,
                "rate_per_min": 1200,
                "reset_counter_at": RESET_AT,
            }
        )
    )
    await sim.start()
    entry: dict[str, Any] = {
        "id": "cw1",
        "driver": "modbus",
        "connection": {"type": "tcp", "host": "127.0.0.1", "port": sim.port},
        "poll_interval_ms": 20,
        "timeout_ms": 500,
        "byte_order": "big",
        "word_order": "big",
        "tags": {
            "count": {"table": "holding_register", "address": 0, "type": "uint32"},
            "weight_g": {"table": "holding_register", "address": 2, "type": "float32"},
            "rejected": {"table": "holding_register", "address": 4, "type": "bool", "bit": 0},
        },
    }
    driver = ModbusDriver(ModbusDeviceConfig.model_validate(entry))
    prof = _profile()
    events: list[EventDraft] = []
    try:
        await driver.connect()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            reading = await asyncio.wait_for(driver.read(), 5)
            events += prof.on_reading(reading)
            if sim.resets and int(reading.values["count"]) >= 15:  # well after the reset
                break
    finally:
        await driver.close()
        await asyncio.wait_for(sim.stop(), 5)
    return sim, events


def test_a_counter_reset_is_reported_and_no_weighing_after_it_is_lost() -> None:
    sim, events = asyncio.run(asyncio.wait_for(_run(), 30))
    assert sim.resets == [(RESET_AT, 0)]
    resets = [e.data for e in events if e.data.get("state") == "counter_reset"]
    assert len(resets) == 1, resets
    (reset,) = resets
    # from: the last weighing seen before the reset (those after it until the reset are
    # unknowable); to: the first seen after it
    assert reset["from"] <= RESET_AT and 1 <= reset["to"] < 15
    assert reset["missed"] == reset["to"] - 1
    at = next(i for i, e in enumerate(events) if e.data.get("state") == "counter_reset")
    before = [e.data for e in events[:at] if e.type == "ccp.net_content"]
    after = [e.data for e in events[at:] if e.type == "ccp.net_content"]
    assert before and before[-1]["count"] == reset["from"]
    assert [d["count"] for d in before] == sorted({d["count"] for d in before})
    assert after[0]["count"] == reset["to"] and after[0].get("missed", 0) == reset["missed"]
    # every weighing since the reset: recorded, or counted as missed
    last = after[-1]["count"]
    assert len(after) + sum(d.get("missed", 0) for d in after) == last
    assert [d["count"] for d in after] == sorted({d["count"] for d in after})
    for d in after:  # and each record is the simulator's weighing of that number
        w = sim.weighing(d["count"])
        assert w is not None and d["value"] == round(w.weight_g, 2)
