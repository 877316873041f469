"""Three Modbus RTU slaves daisy-chained on one serial line (issue 17): a checkweigher, a metal
detector and an iodine doser served by firmware-sim's ``modbus_rtu_line`` on one side of a pty,
the gateway's drivers under their supervisors on the other side, sharing one link
(drivers/modbus/bus.py). The doser starts dead: the two live devices keep polling, it goes
offline alone, and it comes online when it answers again; no request ever overlaps an answer.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from drivers.base import Reading
from drivers.modbus import bus as buses
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.driver import ModbusDriver
from firmware_sim.checkweigher import CheckweigherSim
from firmware_sim.metal_detector import MetalDetectorSim
from firmware_sim.modbus_rtu_line import ModbusRtuLineSim, ModbusRtuLineSimConfig
from gateway.supervisor import DeviceState, DeviceSupervisor, State

pytestmark = pytest.mark.integration

POLL_MS = 50
DEAD_TIMEOUT_MS = 250
LIVE_TIMEOUT_MS = 300
WAIT_S = 20.0  # upper bound of every wait below (the conditions come much sooner)


def _line() -> ModbusRtuLineSim:
    return ModbusRtuLineSim(
        ModbusRtuLineSimConfig.model_validate(
            {
                "id": "rs485",
                "kind": "modbus_rtu_line",
                "slaves": [
                    {"id": "cw", "kind": "checkweigher", "unit_id": 1, "rate_per_min": 600},
                    {"id": "md", "kind": "metal_detector", "unit_id": 2, "products_per_min": 600},
                    {"id": "doser", "kind": "iodine_doser", "unit_id": 3, "seed": 7},
                ],
                "dead": [3],
            }
        )
    )


def _device(dev_id: str, unit: int, port: str, timeout_ms: int, tags: dict[str, Any]) -> Any:
    return ModbusDeviceConfig.model_validate(
        {
            "id": dev_id,
            "driver": "modbus",
            # a pty takes a baud rate but refuses parity (tcsetattr: EINVAL): 8N1
            "connection": {"type": "rtu", "port": port, "baudrate": 19200},
            "unit_id": unit,
            "timeout_ms": timeout_ms,
            "poll_interval_ms": POLL_MS,
            "word_order": "big",
            "tags": tags,
        }
    )


class Watch:
    """Readings and state changes of the supervised devices."""

    def __init__(self) -> None:
        self.readings: dict[str, list[Reading]] = {}
        self.states: dict[str, list[State]] = {}

    async def on_reading(self, reading: Reading) -> None:
        self.readings.setdefault(reading.device, []).append(reading)

    def on_state(self, state: DeviceState, _prev: DeviceState | None) -> None:
        self.states.setdefault(state.device, []).append(state.state)

    def count(self, device: str) -> int:
        return len(self.readings.get(device, []))


async def _until(what: str, cond: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not cond():
        assert loop.time() < deadline, f"not within {WAIT_S} s: {what}"
        await asyncio.sleep(0.02)


async def _running(line: ModbusRtuLineSim, watch: Watch) -> AsyncIterator[list[ModbusDriver]]:
    drivers = [
        ModbusDriver(
            _device(
                "cw",
                1,
                line.tty,
                LIVE_TIMEOUT_MS,
                {
                    "count": {"table": "holding_register", "address": 0, "type": "uint32"},
                    "weight_g": {"table": "holding_register", "address": 2, "type": "float32"},
                },
            )
        ),
        ModbusDriver(
            _device(
                "md",
                2,
                line.tty,
                LIVE_TIMEOUT_MS,
                {"products": {"table": "holding_register", "address": 0, "type": "uint32"}},
            )
        ),
        ModbusDriver(
            _device(
                "doser",
                3,
                line.tty,
                DEAD_TIMEOUT_MS,
                {
                    "salt_flow": {"table": "holding_register", "address": 0, "type": "float32"},
                    "status": {"table": "holding_register", "address": 10, "type": "uint16"},
                },
            )
        ),
    ]
    sups = [
        DeviceSupervisor(
            d.config.id,
            d,
            watch.on_reading,
            watch.on_state,
            backoff_initial_secs=0.1,
            backoff_max_secs=0.5,
        )
        for d in drivers
    ]
    tasks = [asyncio.create_task(s.run()) for s in sups]
    try:
        yield drivers
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=5)


def test_three_slaves_on_one_port_one_dead_then_revived() -> None:
    async def scenario() -> None:
        line = _line()
        await line.start()
        watch = Watch()
        try:
            gen = _running(line, watch)
            drivers = await gen.__anext__()
            try:
                await _check(line, watch, drivers)
            finally:
                await gen.aclose()
        finally:
            await line.stop()
        assert not buses._BUSES, "the port stays open after its last device left"

    asyncio.run(asyncio.wait_for(scenario(), 90))


async def _check(line: ModbusRtuLineSim, watch: Watch, drivers: list[ModbusDriver]) -> None:
    dead_tries = lambda: sum(1 for unit, _ in line.requests if unit == 3)  # noqa: E731
    await _until(
        "20 readings of each live device and 4 tries of the dead one",
        lambda: watch.count("cw") >= 20 and watch.count("md") >= 20 and dead_tries() >= 4,
    )
    # one port, opened once, shared by the three
    bus = drivers[0]._bus
    assert bus is not None and bus.opened == 1
    assert sorted(bus.members) == ["cw", "doser", "md"] or "doser" not in bus.members

    # the dead one is offline, alone; the live ones never were
    assert watch.states["doser"][0] == State.OFFLINE
    assert State.ONLINE not in watch.states["doser"]
    assert watch.states["cw"] == [State.ONLINE] and watch.states["md"] == [State.ONLINE]
    assert watch.count("doser") == 0

    # right values from both live slaves (one line, no answer of one taken for another's)
    cw_sim, md_sim = line.slaves[1], line.slaves[2]
    assert isinstance(cw_sim, CheckweigherSim) and isinstance(md_sim, MetalDetectorSim)
    counts = [r.values["count"] for r in watch.readings["cw"]]
    regs = cw_sim.registers
    assert counts == sorted(counts) and 0 < counts[-1] <= (regs[0] << 16 | regs[1])
    weights = [r.values["weight_g"] for r in watch.readings["cw"]]
    assert all(350 < w < 450 for w, c in zip(weights, counts, strict=True) if c), weights  # type: ignore[operator]
    products = [r.values["products"] for r in watch.readings["md"]]
    assert products == sorted(products) and products[-1] <= md_sim.products

    # not starved: between two tries of the dead slave both live ones were served, and each
    # wait for the dead slave lasted its own time-out (then the next request went out)
    order = [unit for unit, _ in line.requests]
    tries = [i for i, unit in enumerate(order) if unit == 3]
    for a, b in itertools.pairwise(tries):
        between = set(order[a + 1 : b])
        assert {1, 2} <= between, f"requests {a}..{b}: only units {between} between dead tries"
    waits = [s for unit, s in line.silences if unit == 3]
    assert waits and min(waits) >= 0.8 * DEAD_TIMEOUT_MS / 1000, waits
    assert line.overlaps == 0
    assert line.garbage == 0

    # revived: it answers again and comes online; the others go on
    before = {d: watch.count(d) for d in ("cw", "md")}
    line.set_dead(3, False)
    await _until("3 readings of the revived doser", lambda: watch.count("doser") >= 3)
    assert watch.states["doser"][-1] == State.ONLINE
    flow = float(watch.readings["doser"][-1].values["salt_flow"])  # type: ignore[arg-type]
    assert 9000 < flow < 11000
    assert watch.readings["doser"][-1].values["status"] == 1
    await _until(
        "5 more readings of each live device",
        lambda: all(watch.count(d) >= before[d] + 5 for d in before),
    )
    assert watch.states["cw"] == [State.ONLINE] and watch.states["md"] == [State.ONLINE]
    assert line.overlaps == 0
    assert line.answered[3] >= 3
