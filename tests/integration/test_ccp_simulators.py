"""The CCP simulators read by the Modbus driver over real TCP on 127.0.0.1, with the demo line's
own device entries and profiles (so the shipped map's addresses must match the simulators'
register maps), and the events the profiles make of them checked against the simulators' truth.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from drivers.modbus import ModbusDeviceConfig, ModbusDriver
from firmware_sim.base import SimulatorConfigBase
from firmware_sim.inspection_panel import InspectionPanelSim
from firmware_sim.iodine_doser import IodineDoserSim
from firmware_sim.metal_detector import MetalDetectorSim
from firmware_sim.registry import simulator_specs
from gateway.events import EventDraft
from gateway.profiles import Profile, profile_specs

pytestmark = pytest.mark.integration

DEMO = yaml.safe_load((Path(__file__).parents[2] / "mappings" / "demo-line.yaml").read_text())
TZ = timezone(timedelta(hours=8))
T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@asynccontextmanager
async def simulator(kind: str, **settings: Any) -> AsyncIterator[Any]:
    spec = simulator_specs()[kind]
    cfg: SimulatorConfigBase = spec.config_model.model_validate(
        {"id": f"{kind}-test", "kind": kind, "port": 0, "seed": 3, **settings}
    )
    sim = spec.create(cfg)
    await sim.start()
    try:
        yield sim
    finally:
        await asyncio.wait_for(sim.stop(), 5.0)


def demo_driver(device: str, port: int) -> ModbusDriver:
    entry = copy.deepcopy(next(d for d in DEMO["devices"] if d["id"] == device))
    entry["connection"]["port"] = port
    entry["poll_interval_ms"] = 30
    entry["timeout_ms"] = 500
    return ModbusDriver(ModbusDeviceConfig.model_validate(entry))


def demo_profile(device: str, kind: str, **overrides: Any) -> Profile:
    entries = [p for p in DEMO["profiles"] if p["device"] == device and p["profile"] == kind]
    source = overrides.get("source")
    entry = next(p for p in entries if p.get("source") == source or source is None)
    entry = {**entry, **overrides}
    spec = profile_specs()[kind]
    device_tags = set(next(d for d in DEMO["devices"] if d["id"] == device)["tags"])
    cfg = spec.config_model.model_validate(entry)
    return spec.create(cfg, spec.bind(cfg.tags, device_tags, entry), TZ)


class Pump:
    """Reads the device and feeds every profile, ticking them with the wall clock."""

    def __init__(self, driver: ModbusDriver, *profiles: Profile) -> None:
        self.driver = driver
        self.profiles = profiles
        self.events: list[EventDraft] = []

    async def __aenter__(self) -> Pump:
        await self.driver.connect()
        await self.poll(2)  # baselines
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.driver.close()

    async def poll(self, n: int = 1) -> None:
        for _ in range(n):
            reading = await asyncio.wait_for(self.driver.read(), 2.0)
            for prof in self.profiles:
                self.events.extend(prof.on_reading(reading))
                self.events.extend(prof.on_tick(datetime.now(TZ)))

    async def until(
        self, pred: Callable[[list[EventDraft]], bool], within: float, what: str
    ) -> list[EventDraft]:
        deadline = time.monotonic() + within
        while not pred(self.events):
            if time.monotonic() > deadline:
                seen = [(e.type, e.data.get("verdict")) for e in self.events]
                raise AssertionError(f"no {what} within {within}s; events: {seen}")
            await self.poll()
        return self.events

    def of(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e.data
            for e in self.events
            if e.type == type_ and all(e.data.get(k) == v for k, v in match.items())
        ]


def test_simulators_are_registered() -> None:
    specs = simulator_specs()
    assert specs["metal_detector"].create is MetalDetectorSim
    assert specs["inspection_panel"].create is InspectionPanelSim
    assert specs["iodine_doser"].create is IodineDoserSim


def test_metal_detector_detections_rejects_and_verifications() -> None:
    async def scenario() -> None:
        quiet = {"detection_every_s": None, "verification_every_s": None, "reject_delay_s": 0.1}
        async with simulator("metal_detector", **quiet) as sim:
            prof = demo_profile("md1", "metal_detector", reject_confirm_s=0.5)
            async with Pump(demo_driver("md1", sim.port), prof) as pump:
                ok = sim.detect()
                lost = sim.detect(rejected=False)
                await pump.until(lambda e: len(pump.of("ccp.metal_detector")) >= 2, 5, "2")
                sim.verify()
                sim.verify(missed="non_fe")
                await pump.until(lambda e: len(pump.of("ccp.metal_detector")) >= 5, 5, "5")
                await pump.poll(3)
        assert pump.of("ccp.metal_detector", check="detection", detection=ok)[0]["verdict"] == (
            "pass"
        )
        assert pump.of("pack.reject") == [{"reason": "metal", "detection": ok}]
        assert pump.of("ccp.metal_detector", detection=lost)[0]["verdict"] == "fail"
        assert pump.of("alarm.ccp", check="detection")[0]["detection"] == lost
        verifications = pump.of("ccp.metal_detector", check="verification")
        # the gateway saw verification 2 only: 1 and 2 came between two polls, or 1 then 2
        last = {v["test_piece"]: v for v in verifications if v["verification"] == 2}
        assert last["non_fe"]["verdict"] == "fail" and last["non_fe"]["value"] is False
        assert last["fe"]["verdict"] == "pass" and last["fe"]["size_mm"] == 1.5
        assert last["stainless"]["verdict"] == "pass" and last["stainless"]["size_mm"] == 2.5
        (alarm,) = pump.of("alarm.ccp", check="verification")
        assert alarm["test_piece"] == "non_fe" and alarm["limits"]["max_size_mm"] == 2.0
        assert sim.missed_pieces == {1: None, 2: "non_fe"}

    run(scenario())


def test_inspection_panel_magnet_rods_and_sieve() -> None:
    async def scenario() -> None:
        quiet = {"rod_every_s": None, "sieve_every_s": None, "tear_every_s": None}
        async with simulator("inspection_panel", **quiet) as sim:
            rods = demo_profile("panel1", "magnet_rod")
            sieve = demo_profile("panel1", "sieve")
            async with Pump(demo_driver("panel1", sim.port), rods, sieve) as pump:
                sim.inspect_rods(strength_gs=11234, iron_g=0.75)
                await pump.until(lambda e: bool(pump.of("ccp.magnet_rod")), 5, "rod record")
                sim.inspect_rods(strength_gs=7350, iron_g=1.5)
                sim.tear()
                await pump.until(lambda e: len(pump.of("ccp.magnet_rod")) >= 2, 5, "weak rod")
                await pump.until(lambda e: bool(pump.of("ccp.sieve")), 5, "sensor record")
                sim.inspect_sieve()
                await pump.until(lambda e: len(pump.of("ccp.sieve")) >= 2, 5, "sieve check")
                sim.inspect_sieve()
                await pump.until(lambda e: len(pump.of("ccp.sieve")) >= 3, 5, "sieve check")
                sim.inspect_rods(strength_gs=9000, iron_g=-2.0)  # a typo at the panel
                await pump.until(lambda e: len(pump.of("ccp.magnet_rod")) >= 3, 5, "rod 3")
        good, weak, third = pump.of("ccp.magnet_rod")
        assert good["value"] == 11234 and good["iron_g"] == 0.75 and good["verdict"] == "pass"
        assert weak["value"] == 7350 and weak["verdict"] == "fail"
        assert weak["limits"] == {"lo": 8000.0, "hi": None} and weak["unit"] == "Gs"
        assert "iron_g" not in third and third["verdict"] == "pass"
        bad = pump.of("alarm.device", tag="rod_iron_g")
        assert bad and bad[0]["state"] == "bad_value" and "below min" in bad[0]["reason"]
        sensor, broken, intact = pump.of("ccp.sieve")
        assert sensor["check"] == "sensor" and sensor["verdict"] == "fail"
        assert broken["check"] == "inspection" and broken["value"] is False
        assert intact["value"] is True and intact["verdict"] == "pass"
        assert {a["ccp"] for a in pump.of("alarm.ccp")} == {"magnet_rod", "sieve"}
        assert len(pump.of("alarm.ccp", ccp="sieve")) == 2

    run(scenario())


def test_iodine_doser_dosing_drift_analyser_and_frozen_transmitter() -> None:
    async def scenario() -> None:
        quiet = {"sample_every_s": None, "drift_every_s": None, "drift_factor": 0.5}
        async with simulator("iodine_doser", **quiet) as sim:
            dosing = demo_profile("io1", "iodine", record_interval_s=1, stale_after_kg=3)
            analyser = demo_profile("io1", "iodine", source="analyser")
            async with Pump(demo_driver("io1", sim.port), dosing, analyser) as pump:
                sim.sample()
                await pump.until(lambda e: len(pump.of("ccp.iodine")) >= 3, 8, "3 records")
                good = pump.of("ccp.iodine")
                sim.drift(30)
                sim.sample()  # the analyser's result for before the drift
                await pump.until(lambda e: bool(pump.of("alarm.ccp")), 8, "a drift alarm")
                sim.sample()  # and for the drift
                await pump.until(
                    lambda e: len(pump.of("ccp.iodine", source="analyser")) >= 3, 5, "sample"
                )
                sim.freeze()
                await pump.until(
                    lambda e: bool(pump.of("alarm.device", state="stale")), 8, "stale flow"
                )
                n = len(pump.of("ccp.iodine", source="dosing"))
                await pump.poll(70)  # 2 s frozen: no dosing record meanwhile
                assert len(pump.of("ccp.iodine", source="dosing")) == n
        assert all(r["verdict"] == "pass" and 23 < r["value"] < 27 for r in good)
        dosed = [r for r in good if r["source"] == "dosing"]
        assert dosed and all(r["limits"] == {"lo": 18.0, "hi": 33.0} for r in dosed)
        assert all(9000 < r["salt_flow_kg_h"] < 11000 for r in dosed)
        drifted = pump.of("alarm.ccp")[0]
        assert drifted["value"] < 18.0 and drifted["ccp"] == "iodine"
        first, before, during = pump.of("ccp.iodine", source="analyser")
        assert first["verdict"] == before["verdict"] == "pass"
        assert during["verdict"] == "fail" and during["value"] == pytest.approx(12.5, abs=2.0)
        (stale,) = pump.of("alarm.device", state="stale")
        assert stale["tag"] == "salt_flow_kg_h"

    run(scenario(), timeout=40)


def test_wrong_unit_and_writes_are_refused() -> None:
    async def scenario() -> None:
        from pymodbus.client import AsyncModbusTcpClient

        async with simulator("metal_detector", detection_every_s=None) as sim:
            client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0)
            await client.connect()
            try:
                ok = await client.read_holding_registers(0, count=12, device_id=1)
                assert not ok.isError() and len(ok.registers) == 12
                past = await client.read_holding_registers(0, count=13, device_id=1)
                assert past.isError() and past.exception_code == 2
                other = await client.read_holding_registers(0, count=2, device_id=9)
                assert other.isError() and other.exception_code == 11
                write = await client.write_register(0, 5, device_id=1)
                assert write.isError() and write.exception_code == 1
            finally:
                client.close()

    run(scenario())
