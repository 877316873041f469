"""The Modbus farm simulator (firmware-sim/modbus_farm.py) with the Modbus driver over real
sockets: many registers per device read as one consistent snapshot, 64-bit tags, and writes
(FC 5/6/15/16) with their refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from drivers.base import DeviceFault, DeviceOffline, Reading, WriteRejected
from drivers.modbus import ModbusDeviceConfig, ModbusDriver
from firmware_sim.modbus_farm import (
    FARM_HEADER_REGISTERS,
    ModbusFarmSim,
    ModbusFarmSimConfig,
    farm_devices,
)
from firmware_sim.registry import simulator_specs

pytestmark = pytest.mark.integration

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


class FakeClock:
    """Unix seconds that move only when told (changed_ms without wall-clock luck)."""

    def __init__(self, now: float = 1_714_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


@asynccontextmanager
async def farm(**cfg: Any) -> AsyncIterator[ModbusFarmSim]:
    sim = ModbusFarmSim(
        ModbusFarmSimConfig.model_validate({"id": "farm", "kind": "modbus_farm", "port": 0, **cfg}),
        clock=FakeClock(),
    )
    await sim.start()
    try:
        yield sim
    finally:
        await asyncio.wait_for(sim.stop(), 5.0)


def driver(entry: dict[str, Any], **overrides: Any) -> ModbusDriver:
    return ModbusDriver(
        ModbusDeviceConfig.model_validate({**entry, "timeout_ms": 500, **overrides})
    )


def torn(reading: Reading, registers: int) -> set[int]:
    """The change counts a reading's registers come from (one: consistent; more: torn)."""
    return {(int(reading.values[f"v{i}"]) - i) & 0xFFFF for i in range(registers)}


async def poll(drv: ModbusDriver, n: int) -> list[Reading]:
    await drv.connect()
    try:
        return [await asyncio.wait_for(drv.read(), 5.0) for _ in range(n)]
    finally:
        await drv.close()


def test_the_farm_is_registered_for_saltgw_sim() -> None:
    spec = simulator_specs()["modbus_farm"]
    cfg = spec.config_model.model_validate({"id": "f", "kind": "modbus_farm", "port": 0})
    assert isinstance(spec.create(cfg), ModbusFarmSim)


def test_each_device_on_its_own_port_reads_one_state_with_its_change_time() -> None:
    async def scenario() -> None:
        async with farm(devices=3, registers=100, period_ms=0) as sim:
            assert len(set(sim.ports)) == 3
            entries = farm_devices(sim.ports, 100, poll_interval_ms=10)
            for dev, entry in zip(sim.devices, entries, strict=True):
                drv = driver(entry)
                assert len(drv.blocks) == 1  # 104 registers: one request
                (reading,) = await poll(drv, 1)
                assert reading.errors == {}
                assert reading.values["changed_ms"] == dev.changed_ms  # uint64, exact
                assert torn(reading, 100) == {dev.k & 0xFFFF}

    run(scenario())


def test_timed_changes_reach_every_register() -> None:
    async def scenario() -> None:
        async with farm(devices=1, registers=20, period_ms=20) as sim:
            drv = driver(farm_devices(sim.ports, 20, poll_interval_ms=50)[0])
            got = await poll(drv, 6)
            counts = [next(iter(torn(r, 20))) for r in got]
            assert all(len(torn(r, 20)) == 1 for r in got)
            assert counts == sorted(counts) and counts[-1] > counts[0]
            stamps = [int(r.values["changed_ms"]) for r in got]
            assert stamps == sorted(stamps) and stamps[-1] > stamps[0]

    run(scenario())


# -- hundreds of registers: several blocks, one snapshot -------------------------------------------
REGS = 300  # 304 registers: blocks of 125, 125 and 54


def test_without_snapshot_a_device_changing_between_requests_tears_readings() -> None:
    """The reproduction: the farm changes after every second read request, so a poll of three
    blocks mixes two states."""

    async def scenario() -> None:
        async with farm(devices=1, registers=REGS, period_ms=0, advance_every_reads=2) as sim:
            entry = {**farm_devices(sim.ports, REGS)[0], "poll_interval_ms": 5, "snapshot": None}
            drv = driver(entry)
            assert [b.count for b in drv.blocks] == [125, 125, 54]
            got = await poll(drv, 10)
            assert sum(len(torn(r, REGS)) > 1 for r in got) >= 5

    run(scenario())


@pytest.mark.parametrize("every", [5, 6, 7, 9])
def test_a_snapshot_counter_keeps_300_registers_to_one_state(every: int) -> None:
    """Counter block, two more blocks, counter again: four reads in one state make a reading
    (the farm changes after every ``every``-th read, so polls are read again, never torn)."""

    async def scenario() -> None:
        async with farm(devices=1, registers=REGS, period_ms=0, advance_every_reads=every) as sim:
            entry = {**farm_devices(sim.ports, REGS)[0], "poll_interval_ms": 5}
            entry["snapshot"] = {"counter": "changed_ms", "retries": 20, "max_skipped": 50}
            drv = driver(entry)
            assert len(drv.blocks) == 3
            got = await poll(drv, 12)
            assert all(len(torn(r, REGS)) == 1 for r in got), [torn(r, REGS) for r in got]
            assert drv.snapshot_retried >= 1  # the guard had something to catch
            counts = [next(iter(torn(r, REGS))) for r in got]
            assert counts == sorted(counts) and len(set(counts)) >= 6

    run(scenario())


def test_300_registers_changing_every_few_ms_while_polled_stay_consistent() -> None:
    """Real time: 300 registers changing every 3 ms, polled every 5 ms in three requests.
    Whatever the timing, no reading mixes two states (retries and skips may vary)."""

    async def scenario() -> None:
        async with farm(devices=1, registers=REGS, period_ms=3) as sim:
            entry = {**farm_devices(sim.ports, REGS)[0], "poll_interval_ms": 5}
            entry["snapshot"] = {"counter": "changed_ms", "retries": 20, "max_skipped": 1000}
            drv = driver(entry)
            got = await poll(drv, 40)
            assert all(len(torn(r, REGS)) == 1 for r in got)
            counts = [next(iter(torn(r, REGS))) for r in got]
            assert counts == sorted(counts) and counts[-1] > counts[0]

    run(scenario())


# -- writes ---------------------------------------------------------------------------------------
CMD = FARM_HEADER_REGISTERS + 8  # first command register of a farm of 8 registers
COMMAND_TAGS: dict[str, Any] = {
    "setpoint": {"table": "holding_register", "address": CMD, "type": "uint16", "writable": True},
    "setpoint16": {
        "table": "holding_register",
        "address": CMD + 1,
        "type": "int16",
        "writable": True,
        "write_function": 16,
        "scale": 0.1,
    },
    "total": {"table": "holding_register", "address": CMD + 2, "type": "int64", "writable": True},
    "ratio": {
        "table": "holding_register",
        "address": CMD + 6,
        "type": "float32",
        "writable": True,
        "word_order": "little",
    },
    "batch": {
        "table": "holding_register",
        "address": CMD + 8,
        "type": "string",
        "length": 6,
        "writable": True,
    },
    "start": {"table": "coil", "address": 0, "type": "bool", "writable": True},
    "stop": {
        "table": "coil",
        "address": 5,
        "type": "bool",
        "writable": True,
        "write_function": 15,
    },
    "v0": {
        "table": "holding_register",
        "address": FARM_HEADER_REGISTERS,
        "type": "uint16",
        "writable": True,
    },  # the device refuses: not a command register
    "v1": {"table": "holding_register", "address": FARM_HEADER_REGISTERS + 1, "type": "uint16"},
}


def write_driver(port: int, **tags: Any) -> ModbusDriver:
    entry = farm_devices([port], 8)[0]
    entry["tags"] = {**COMMAND_TAGS, **tags}
    entry["snapshot"] = None
    return driver(entry, poll_interval_ms=5)


def test_writes_reach_the_device_with_each_function_code_and_read_back() -> None:
    async def scenario() -> None:
        async with farm(devices=1, registers=8, period_ms=0, command_registers=16) as sim:
            dev = sim.devices[0]
            drv = write_driver(sim.port)
            await drv.connect()
            try:
                await drv.write("setpoint", 1234)  # FC 6
                await drv.write("setpoint16", -12.5)  # FC 16, scaled: raw -125
                await drv.write("total", -(2**62) - 3)  # FC 16, four registers
                await drv.write("ratio", 0.75)  # FC 16, CDAB
                await drv.write("batch", "B2024-7")  # FC 16, string
                await drv.write("start", True)  # FC 5
                await drv.write("stop", True)  # FC 15
                assert dev.registers[CMD] == 1234
                assert dev.registers[CMD + 1] == (-125) & 0xFFFF
                assert dev.registers[CMD + 6 : CMD + 8] == [0x0000, 0x3F40]
                assert dev.coils[0] is True and dev.coils[5] is True and dev.coils[1] is False
                reading = await asyncio.wait_for(drv.read(), 5.0)
                assert reading.values["setpoint"] == 1234
                assert reading.values["setpoint16"] == -12.5
                assert reading.values["total"] == -(2**62) - 3
                assert reading.values["ratio"] == 0.75
                assert reading.values["batch"] == "B2024-7"
                assert reading.values["start"] is True and reading.values["stop"] is True
                await drv.write("start", False)
                assert dev.coils[0] is False
            finally:
                await drv.close()

    run(scenario())


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        ("nope", 1, "has no tag 'nope'"),
        ("v1", 1, "not writable .*does not say writable: true"),
        ("setpoint", 70000, "does not fit uint16"),
        ("setpoint", -1, "does not fit uint16"),
        ("setpoint16", 1.25, r"does not scale to a whole int16.*12\.5"),
        ("total", 2**63, "does not fit int64"),
        ("start", "on", "not a bool"),
        ("batch", "B2024-0000001", "13 bytes does not fit 6 registers"),
    ],
)
def test_refused_writes_send_nothing(tag: str, value: Any, reason: str) -> None:
    async def scenario() -> None:
        async with farm(devices=1, registers=8, period_ms=0) as sim:
            drv = write_driver(sim.port)
            await drv.connect()
            try:
                before = sim.devices[0].requests
                with pytest.raises(WriteRejected, match=reason):
                    await drv.write(tag, value)
                assert sim.devices[0].requests == before
            finally:
                await drv.close()

    run(scenario())


def test_a_read_only_table_is_refused_by_the_config() -> None:
    entry = farm_devices([502], 8)[0]
    entry["tags"] = {"x": {"table": "input_register", "address": 0, "type": "uint16",
                           "writable": True}}  # fmt: skip
    with pytest.raises(ValueError, match="input_register is read-only"):
        ModbusDeviceConfig.model_validate(entry)


def test_a_device_exception_is_a_fault_naming_function_and_address() -> None:
    async def scenario() -> None:
        async with farm(devices=1, registers=8, period_ms=0) as sim:
            past = {"table": "coil", "address": 40, "type": "bool", "writable": True}
            drv = write_driver(sim.port, past=past)  # the farm has 16 coils
            await drv.connect()
            try:
                with pytest.raises(DeviceFault) as exc:
                    await drv.write("v0", 7)
                assert str(exc.value) == (
                    "modbus exception 2 (illegal data address) writing holding_register 4..4 "
                    "of unit 1 (function 6, write single register)"
                )
                with pytest.raises(DeviceFault, match=r"coil 40\.\.40 of unit 1 \(function 5, "):
                    await drv.write("past", True)
                sim.set_exception(6)
                with pytest.raises(
                    DeviceFault,
                    match=r"exception 6 \(server device busy\) "
                    r"writing holding_register 14\.\.17 of unit 1 \(function 16",
                ):
                    await drv.write("total", 1)
                sim.set_exception(None)
                await drv.write("total", 1)  # the link stayed up
            finally:
                await drv.close()

    run(scenario())


def test_a_write_without_a_link_is_offline() -> None:
    async def scenario() -> None:
        async with farm(devices=1, registers=8, period_ms=0) as sim:
            drv = write_driver(sim.port)
            with pytest.raises(DeviceOffline, match="not connected"):
                await drv.write("setpoint", 1)

    run(scenario())


def test_writes_and_polls_share_the_link() -> None:
    """write() may run while read() polls: pymodbus serialises the requests."""

    async def scenario() -> None:
        async with farm(devices=1, registers=8, period_ms=0, advance_every_reads=1) as sim:
            drv = write_driver(sim.port)
            await drv.connect()
            try:

                async def reader() -> list[Reading]:
                    return [await asyncio.wait_for(drv.read(), 5.0) for _ in range(10)]

                async def writer() -> None:
                    for n in range(30):
                        await drv.write("setpoint", n)
                        await asyncio.sleep(0.002)

                got, _ = await asyncio.gather(reader(), writer())
                assert all(r.errors == {} for r in got)
                seen = [int(r.values["setpoint"]) for r in got]
                assert seen == sorted(seen) and set(seen) <= set(range(30))
                assert sim.devices[0].registers[CMD] == 29
            finally:
                await drv.close()

    run(scenario())
