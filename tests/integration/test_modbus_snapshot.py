"""Torn readings (issue 13): a checkweigher whose reject flag is a coil needs two requests per
poll (coils, then holding registers); when it weighs a bag between them, a reading pairs the
reject of one weighing with the count of the next, and ``pack.reject`` lands on a good bag.

The simulator reproduces it deterministically: ``advance_on_coil_read_every: 2`` weighs the next
bag right after every second coil read is answered, and (``rate_per_min`` tiny) at no other
time. Every reading is checked against the simulator's own record of each weighing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from drivers.base import DeviceFault, Reading
from drivers.modbus import ModbusDeviceConfig, ModbusDriver
from firmware_sim.checkweigher import CheckweigherSim, CheckweigherSimConfig
from firmware_sim.runner import start_simulators, stop_simulators
from gateway.config.loader import load_config
from gateway.runtime import Gateway
from tests.support.broker import Mosquitto
from tests.support.loop import BackgroundLoop
from tests.support.net import free_port
from tests.support.subscriber import Collector

pytestmark = pytest.mark.integration

T = TypeVar("T")

#: the device's tags: the reject flag on a coil, count and weight on holding registers
TAGS: dict[str, Any] = {
    "count": {"table": "holding_register", "address": 0, "type": "uint32"},
    "weight_g": {"table": "holding_register", "address": 2, "type": "float32"},
    "rejected": {"table": "coil", "address": 0, "type": "bool"},
}
#: the simulator: coin-flip rejects, a bag only when the knob says so
SIM: dict[str, Any] = {
    "kind": "checkweigher",
    "seed": 11,
    "rate_per_min": 0.001,
    "underweight_ratio": 0.5,
    "reject_coil": True,
    "advance_on_coil_read_every": 2,
}


def run(coro: Awaitable[T], timeout: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@asynccontextmanager
async def checkweigher(**overrides: Any) -> AsyncIterator[CheckweigherSim]:
    sim = CheckweigherSim(
        CheckweigherSimConfig.model_validate({"id": "cw", "port": 0, **SIM, **overrides})
    )
    await sim.start()
    try:
        yield sim
    finally:
        await asyncio.wait_for(sim.stop(), 5.0)


def driver_for(port: int, snapshot: dict[str, Any] | None) -> ModbusDriver:
    entry: dict[str, Any] = {
        "id": "cw1",
        "driver": "modbus",
        "connection": {"type": "tcp", "host": "127.0.0.1", "port": port},
        "poll_interval_ms": 10,
        "timeout_ms": 500,
        "byte_order": "big",
        "word_order": "big",
        "tags": TAGS,
    }
    if snapshot is not None:
        entry["snapshot"] = snapshot
    return ModbusDriver(ModbusDeviceConfig.model_validate(entry))


async def readings(sim: CheckweigherSim, driver: ModbusDriver, n: int) -> list[Reading]:
    await driver.connect()
    try:
        return [await asyncio.wait_for(driver.read(), 5.0) for _ in range(n)]
    finally:
        await driver.close()


def torn(sim: CheckweigherSim, got: list[Reading]) -> list[tuple[int, bool, bool]]:
    """Readings whose reject flag is not that of the weighing their count names."""
    out = []
    for r in got:
        count = int(r.values["count"])
        if count == 0:  # before the first bag
            continue
        w = sim.weighing(count)
        assert w is not None, count
        if r.values["rejected"] is not w.rejected or r.values["weight_g"] != w.weight_g:
            out.append((count, bool(r.values["rejected"]), w.rejected))
    return out


def test_the_simulator_tears_readings_of_a_driver_without_snapshot() -> None:
    """The reproduction itself: without the guard (the driver before issue 13), readings pair
    the reject coil of one weighing with the count of the next."""

    async def scenario() -> None:
        async with checkweigher() as sim:
            got = await readings(sim, driver_for(sim.port, snapshot=None), 40)
            bad = torn(sim, got)
            assert len(bad) >= 3, bad
            assert sim.weighings >= 15  # a new weighing every second poll

    run(scenario())


def test_a_snapshot_counter_keeps_each_reading_to_one_weighing() -> None:
    async def scenario() -> None:
        async with checkweigher() as sim:
            driver = driver_for(sim.port, snapshot={"counter": "count"})
            got = await readings(sim, driver, 40)
            assert torn(sim, got) == []
            counts = [int(r.values["count"]) for r in got]
            assert counts == sorted(counts) and counts[-1] - counts[0] >= 15
            rejects = {bool(r.values["rejected"]) for r in got}
            assert rejects == {True, False}  # the check had something to tell apart
            assert driver.snapshot_retried >= 15  # the counter moved in every second poll
            assert driver.snapshot_skipped == 0

    run(scenario())


def test_a_counter_that_never_holds_still_skips_polls_then_faults() -> None:
    """A bag between every two requests: no poll can be consistent. None is handed on; after
    max_skipped polls in a row the device is in fault (the supervisor reports it)."""

    async def scenario() -> None:
        async with checkweigher(advance_on_coil_read_every=1) as sim:
            snapshot = {"counter": "count", "retries": 2, "max_skipped": 4}
            driver = driver_for(sim.port, snapshot=snapshot)
            await driver.connect()
            try:
                with pytest.raises(DeviceFault, match="counter 'count' moved during each of 3"):
                    await asyncio.wait_for(driver.read(), 10.0)
            finally:
                await driver.close()
            assert driver.snapshot_skipped == 4
            assert driver.snapshot_retried == 4 * 2

    run(scenario())


# --- the whole line: pack.reject lands on the rejected bag -------------------------------------


def _line(tmp: Path, broker_port: int) -> Path:
    sim_port = free_port()
    cfg: dict[str, Any] = {
        "gateway": {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "mqtt": {"url": f"mqtt://127.0.0.1:{broker_port}"},
        "journal": {"path": str(tmp / "journal.db")},
        "devices": [
            {
                "id": "cw1",
                "driver": "modbus",
                "connection": {"type": "tcp", "host": "127.0.0.1", "port": sim_port},
                "poll_interval_ms": 20,
                "timeout_ms": 500,
                "byte_order": "big",
                "word_order": "big",
                "tags": TAGS,  # no snapshot: the checkweigher profile's counter is the default
            }
        ],
        "profiles": [{"profile": "checkweigher", "device": "cw1", "nominal_g": 400}],
        "simulators": [{"id": "cw1-sim", "port": sim_port, "nominal_g": 400, **SIM}],
    }
    path = tmp / "line.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


async def _make_event() -> asyncio.Event:
    return asyncio.Event()


def test_pack_reject_lands_on_the_rejected_bag(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = load_config(_line(tmp_path, mosquitto.port))
    sub = Collector(mosquitto.port).start()
    try:
        with BackgroundLoop() as bg:
            sims = bg.run(start_simulators(cfg.simulators))
            sim = sims["cw1-sim"]
            assert isinstance(sim, CheckweigherSim)
            gw = Gateway(cfg)
            stop = bg.run(_make_event())
            done: concurrent.futures.Future[int] = asyncio.run_coroutine_threadsafe(
                gw.run(stop), bg.loop
            )
            try:
                sub.wait_for(
                    lambda _: sum(e["type"] == "pack.reject" for e in sub.events()) >= 5
                    and sum(e["type"] == "ccp.net_content" for e in sub.events()) >= 10,
                    30,
                    "5 rejects among at least 10 weighings",
                )
            finally:
                bg.loop.call_soon_threadsafe(stop.set)
                done.result(30)
                bg.run(stop_simulators(sims))
        time.sleep(0.5)
        events = sub.events()
    finally:
        sub.stop()
    weighed = [e["data"] for e in events if e["type"] == "ccp.net_content"]
    rejects = [e["data"]["count"] for e in events if e["type"] == "pack.reject"]
    assert len(weighed) >= 10
    for data in weighed:  # every record is of one weighing
        w = sim.weighing(data["count"])
        assert w is not None and data["value"] == round(w.weight_g, 2), (data, w)
    wrong = [c for c in rejects if not sim.history[c - 1].rejected]
    assert wrong == [], f"pack.reject on good bags {wrong} (rejects {rejects})"
    should = [d["count"] for d in weighed if sim.history[d["count"] - 1].rejected]
    assert rejects == should
