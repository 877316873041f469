"""Start the simulators of a config and keep them running until told to stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from firmware_sim.base import Simulator, SimulatorConfigBase
from firmware_sim.registry import simulator_specs

__all__ = ["run_simulators", "start_simulators"]

log = logging.getLogger(__name__)


async def start_simulators(configs: Sequence[SimulatorConfigBase]) -> dict[str, Simulator]:
    specs = simulator_specs()
    started: dict[str, Simulator] = {}
    try:
        for cfg in configs:
            sim = specs[cfg.kind].create(cfg)
            await sim.start()
            started[cfg.id] = sim
            log.info("simulator %s (%s) listening on %s:%d", cfg.id, cfg.kind, cfg.host, sim.port)
    except BaseException:
        await stop_simulators(started)
        raise
    return started


async def stop_simulators(sims: dict[str, Simulator]) -> None:
    for sim in sims.values():
        try:
            await asyncio.wait_for(sim.stop(), timeout=5)
        except Exception as exc:
            log.warning("simulator stop failed: %s", exc)


async def run_simulators(
    configs: Sequence[SimulatorConfigBase],
    stop: asyncio.Event,
    ready: Callable[[dict[str, int]], None] | None = None,
) -> None:
    sims = await start_simulators(configs)
    try:
        if ready is not None:
            ready({k: s.port for k, s in sims.items()})
        await stop.wait()
    finally:
        await stop_simulators(sims)
