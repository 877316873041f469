"""The simulated line PLC (OPC UA) and a whole gateway on a real mosquitto, running in a
background event loop for a test module: :func:`running_plc_line` starts the broker, the
simulator (``simulators[0]`` of the map) and :class:`gateway.runtime.Gateway`, yields a
:class:`PlcLine`, and stops them in the reverse order."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_sim.line_plc import LinePlcSim
from gateway.config.loader import load_config
from gateway.runtime import Gateway
from tests.support.broker import Mosquitto, mosquitto_available
from tests.support.loop import BackgroundLoop
from tests.support.net import free_port

__all__ = ["PlcLine", "running_plc_line"]


@dataclass
class PlcLine:
    bg: BackgroundLoop
    gw: Gateway
    sim: LinePlcSim
    broker: Mosquitto


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


@contextmanager
def running_plc_line(tmp: Path, write_map: Callable[[Path, int, int], Path]) -> Iterator[PlcLine]:
    """``write_map(tmp, broker_port, plc_port)`` writes the plant map and returns its path."""
    if not mosquitto_available():
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed (CI must install it: see .ci/run)")
        pytest.skip("mosquitto is not installed")
    broker = Mosquitto(tmp / "mosquitto")
    broker.start()
    cfg = load_config(write_map(tmp, broker.port, free_port()))
    try:
        with BackgroundLoop() as bg:
            sim = LinePlcSim(cfg.simulators[0])
            bg.run(sim.start(), 30)
            gw = Gateway(cfg)
            stop = bg.run(_new_event())
            done: concurrent.futures.Future[int] = asyncio.run_coroutine_threadsafe(
                gw.run(stop), bg.loop
            )
            try:
                yield PlcLine(bg, gw, sim, broker)
            finally:
                bg.loop.call_soon_threadsafe(stop.set)
                done.result(30)
                bg.run(sim.stop(), 30)
    finally:
        broker.kill()
