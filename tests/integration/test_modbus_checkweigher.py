"""The Modbus driver against the checkweigher simulator, over real TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.base import DeviceFault, DeviceOffline, Reading
from drivers.modbus import ModbusDeviceConfig, ModbusDriver
from firmware_sim.checkweigher import CheckweigherSim, CheckweigherSimConfig, Weighing
from firmware_sim.registry import simulator_specs
from tests.support.net import free_port

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "drivers" / "modbus" / "example.yaml"
T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 15.0) -> T:
    """Run one test coroutine with a hard upper bound."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@asynccontextmanager
async def checkweigher(**overrides: Any) -> AsyncIterator[CheckweigherSim]:
    settings: dict[str, Any] = {
        "id": "cw",
        "kind": "checkweigher",
        "port": 0,
        "seed": 7,
        "rate_per_min": 1200,
    }
    settings.update(overrides)
    sim = CheckweigherSim(CheckweigherSimConfig.model_validate(settings))
    await sim.start()
    try:
        yield sim
    finally:
        await asyncio.wait_for(sim.stop(), 5.0)


def driver_for(port: int, **overrides: Any) -> ModbusDriver:
    """The example device entry, pointed at 127.0.0.1:port with short timings."""
    entry: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())[0]
    entry["connection"] = {"type": "tcp", "host": "127.0.0.1", "port": port}
    entry["poll_interval_ms"] = 20
    entry["timeout_ms"] = 300
    entry.update(overrides)
    return ModbusDriver(ModbusDeviceConfig.model_validate(entry))


async def read_for(driver: ModbusDriver, seconds: float) -> list[Reading]:
    readings: list[Reading] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readings.append(await asyncio.wait_for(driver.read(), 2.0))
    return readings


async def connect_when_back(driver: ModbusDriver, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            await driver.connect()
            return
        except DeviceOffline:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def test_simulator_is_registered() -> None:
    assert simulator_specs()["checkweigher"].create is CheckweigherSim


def test_counts_and_weights_match_the_simulator() -> None:
    async def scenario() -> None:
        async with checkweigher() as sim:
            driver = driver_for(sim.port)
            await driver.connect()
            try:
                readings = await read_for(driver, 1.0)
            finally:
                await driver.close()
            counts = [int(r.values["count"]) for r in readings]
            assert counts == sorted(counts)
            assert counts[-1] - counts[0] >= 10  # 20 bags/s for 1 s
            assert all(not r.errors for r in readings)
            history = {w.count: w for w in sim.history}
            checked = 0
            for r in readings:
                assert r.device == "checkweigher_l3"
                assert r.ts.tzinfo is not None
                assert r.values["nominal_g"] == 400
                assert r.values["running"] is True
                count = int(r.values["count"])
                if count == 0:
                    continue
                w = history[count]
                assert r.values["weight_g"] == w.weight_g  # same float32, same weighing
                assert r.values["rejected"] is w.rejected
                rejects = sum(h.rejected for c, h in history.items() if c <= count)
                assert r.values["rejects"] == rejects
                assert 300.0 < float(r.values["weight_g"]) < 500.0
                checked += 1
            assert checked >= 10

    run(scenario())


def test_polls_on_a_steady_schedule_without_bursts() -> None:
    async def scenario() -> None:
        async with checkweigher(rate_per_min=60) as sim:
            driver = driver_for(sim.port, poll_interval_ms=50)
            await driver.connect()
            try:
                # the schedule itself (immediate poll after an overrun, no burst) is proven on
                # an injected clock in tests/unit/test_poll_ticker.py; here only lower bounds,
                # which no load can break: the driver waits for its ticks
                start = time.monotonic()
                for _ in range(11):  # the first read is immediate, then 10 intervals
                    await driver.read()
                assert time.monotonic() - start >= 0.5 - 0.005
                await asyncio.sleep(0.3)  # a slow consumer: six ticks missed
                t0 = time.monotonic()
                await driver.read()  # one immediate poll ...
                await driver.read()  # ... then the cadence again: a burst would not wait
                assert time.monotonic() - t0 >= 0.05 - 0.005
            finally:
                await driver.close()

    run(scenario())


def test_exception_response_is_a_device_fault() -> None:
    async def scenario() -> None:
        async with checkweigher() as sim:
            driver = driver_for(sim.port)
            await driver.connect()
            try:
                await driver.read()
                sim.set_exception_mode(True)
                with pytest.raises(DeviceFault) as info:
                    await asyncio.wait_for(driver.read(), 2.0)
                msg = str(info.value)
                assert "illegal" in msg
                assert "modbus exception 2 (illegal data address)" in msg
                assert "holding_register 0..7 from unit 1" in msg
                sim.set_exception_mode(False)
                reading = await asyncio.wait_for(driver.read(), 2.0)  # the link stayed up
                assert "count" in reading.values
            finally:
                await driver.close()

    run(scenario())


def test_unsupported_table_and_wrong_unit_are_faults() -> None:
    async def scenario() -> None:
        async with checkweigher() as sim:
            coils = driver_for(
                sim.port, tags={"x": {"table": "coil", "address": 0, "type": "bool"}}
            )
            other_unit = driver_for(sim.port, unit_id=9)
            for driver, expected in (
                (coils, "exception 1 (illegal function) reading coil 0..0 from unit 1"),
                (other_unit, "exception 11 (gateway target device failed to respond)"),
            ):
                await driver.connect()
                try:
                    with pytest.raises(DeviceFault, match=re.escape(expected)):
                        await asyncio.wait_for(driver.read(), 2.0)
                finally:
                    await driver.close()

    run(scenario())


def test_drop_is_offline_then_a_fresh_connect_works() -> None:
    async def scenario() -> None:
        async with checkweigher() as sim:
            port = sim.port
            driver = driver_for(port)
            await driver.connect()
            try:
                before = await driver.read()
                await sim.drop(0.8)
                assert not sim.online
                started = time.monotonic()
                with pytest.raises(DeviceOffline, match=r"127\.0\.0\.1"):
                    await asyncio.wait_for(driver.read(), 2.0)
                assert time.monotonic() - started < 1.0
                with pytest.raises(DeviceOffline):  # stays offline until connect()
                    await asyncio.wait_for(driver.read(), 2.0)
                with pytest.raises(DeviceOffline, match="cannot connect"):
                    await driver.connect()
                await connect_when_back(driver, within=3.0)
                assert sim.port == port
                after = await asyncio.wait_for(driver.read(), 2.0)
                assert int(after.values["count"]) > int(before.values["count"])  # weighing went on
            finally:
                await driver.close()

    run(scenario())


def test_periodic_dropouts_are_survivable() -> None:
    async def scenario() -> None:
        async with checkweigher(dropout_every_s=0.3, dropout_for_s=0.3) as sim:
            driver = driver_for(sim.port)
            offline = good = 0
            deadline = time.monotonic() + 1.5
            connected = False
            while time.monotonic() < deadline:
                try:
                    if not connected:
                        await driver.connect()
                        connected = True
                    await asyncio.wait_for(driver.read(), 2.0)
                    good += 1
                except DeviceOffline:
                    offline += 1
                    connected = False
                    await asyncio.sleep(0.05)
            await driver.close()
            assert offline >= 1
            assert good >= 5

    run(scenario())


def test_nan_weight_is_a_tag_error_while_count_decodes() -> None:
    async def scenario() -> None:
        async with checkweigher(rate_per_min=300) as sim:  # a weighing stays up for 200 ms
            driver = driver_for(sim.port)
            await driver.connect()
            try:
                await driver.read()
                sim.inject_garbage()
                bad: list[Reading] = []
                deadline = time.monotonic() + 2.0
                while not bad and time.monotonic() < deadline:
                    reading = await asyncio.wait_for(driver.read(), 2.0)
                    if "weight_g" in reading.errors:
                        bad.append(reading)
                assert bad, "never saw the NaN weighing"
                reading = bad[0]
                assert "not a number" in reading.errors["weight_g"]
                assert "weight_g" not in reading.values
                count = int(reading.values["count"])
                w = sim.weighing(count)
                assert w is not None
                assert math.isnan(w.weight_g)
                assert w.rejected
                assert reading.values["rejected"] is True
            finally:
                await driver.close()

    run(scenario())


def test_out_of_range_weight_is_a_tag_error() -> None:
    async def scenario() -> None:
        async with checkweigher(rate_per_min=600) as sim:
            tags = yaml.safe_load(EXAMPLE.read_text())[0]["tags"]
            tags["weight_g"]["min"] = 1000.0
            driver = driver_for(sim.port, tags=tags)
            await driver.connect()
            try:
                reading: Reading | None = None
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline:
                    reading = await asyncio.wait_for(driver.read(), 2.0)
                    if reading.values["count"]:
                        break
                assert reading is not None
                assert reading.errors["weight_g"].startswith("below min 1000.0")
                assert reading.values["count"]
            finally:
                await driver.close()

    run(scenario())


def test_closed_port_is_offline() -> None:
    async def scenario() -> None:
        driver = driver_for(free_port())
        with pytest.raises(DeviceOffline, match="not connected"):
            await driver.read()
        with pytest.raises(DeviceOffline, match=r"cannot connect to modbus tcp 127\.0\.0\.1:"):
            await asyncio.wait_for(driver.connect(), 3.0)
        await driver.close()
        await driver.close()  # idempotent, never raises

    run(scenario())


def test_silent_device_is_offline_after_the_timeout() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(256):
                pass  # accept requests, never answer
        finally:
            writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            driver = driver_for(port)
            await driver.connect()
            started = time.monotonic()
            with pytest.raises(DeviceOffline, match="no valid response"):
                await asyncio.wait_for(driver.read(), 3.0)
            assert 0.25 <= time.monotonic() - started < 1.5
            with pytest.raises(DeviceOffline, match="not connected"):
                await driver.read()
            await driver.close()
        finally:
            server.close()

    run(scenario())


def test_rtu_framing_through_a_pyserial_socket_url() -> None:
    async def scenario() -> None:
        device = SimDevice(
            id=5, simdata=[SimData(0, values=[0x1234, 0x5678, 7], datatype=DataType.REGISTERS)]
        )
        server = ModbusTcpServer(device, framer=FramerType.RTU, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        try:
            listener: Any = server.transport  # an asyncio.Server once listening
            port = listener.sockets[0].getsockname()[1]
            driver = ModbusDriver(
                ModbusDeviceConfig.model_validate(
                    {
                        "id": "rtu_dev",
                        "driver": "modbus",
                        "connection": {"type": "rtu", "port": f"socket://127.0.0.1:{port}"},
                        "unit_id": 5,
                        "timeout_ms": 300,
                        "tags": {
                            "cdab": {"table": "holding_register", "address": 0, "type": "uint32"},
                            "small": {"table": "holding_register", "address": 2, "type": "int16"},
                        },
                    }
                )
            )
            await driver.connect()
            try:
                reading = await asyncio.wait_for(driver.read(), 2.0)
            finally:
                await driver.close()
            assert reading.values == {"cdab": 0x56781234, "small": 7}
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]

    run(scenario())


def test_same_seed_same_weighings() -> None:
    cfg = CheckweigherSimConfig(id="a", kind="checkweigher", port=0, seed=3, garbage_ratio=0.1)
    a, b = CheckweigherSim(cfg), CheckweigherSim(cfg)
    first = [a.weigh_one() for _ in range(200)]
    second = [b.weigh_one() for _ in range(200)]

    def key(w: Weighing) -> tuple[int, str, bool]:
        return (w.count, repr(w.weight_g), w.rejected)  # repr: NaN != NaN

    assert [key(w) for w in first] == [key(w) for w in second]
    assert a.weighings == len(a.history) == 200
    assert any(w.rejected for w in first)
    assert any(math.isnan(w.weight_g) for w in first)
    under = [w for w in first if not math.isnan(w.weight_g) and w.weight_g < 388.0]
    assert all(w.rejected for w in under)
