"""Start the simulators of a config and keep them running until told to stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from firmware_sim.base import Simulator, SimulatorConfigBase
from firmware_sim.registry import simulator_spec

__all__ = ["SimulatorStartError", "run_simulators", "start_simulators"]

log = logging.getLogger(__name__)


class SimulatorStartError(Exception):
    """A simulator could not start (typically: its port is taken); the message says which."""


async def start_simulators(configs: Sequence[SimulatorConfigBase]) -> dict[str, Simulator]:
    started: dict[str, Simulator] = {}
    try:
        for cfg in configs:
            spec = simulator_spec(cfg.kind)
            if spec is None:  # a validated config names only shipped kinds
                raise KeyError(f"no simulator of kind {cfg.kind!r}")
            sim = spec.create(cfg)
            try:
                await sim.start()
            except (OSError, RuntimeError) as exc:
                port = getattr(cfg, "port", "?")
                raise SimulatorStartError(
                    f"simulator {cfg.id} ({cfg.kind}) cannot listen on {cfg.host}:{port}: {exc} "
                    "(is another saltgw sim or demo running? change the port in the config)"
                ) from None
            started[cfg.id] = sim
            where = getattr(sim, "tty", "") or f"{cfg.host}:{sim.port}"  # a serial line: its tty
            log.info("simulator %s (%s) listening on %s", cfg.id, cfg.kind, where)
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
