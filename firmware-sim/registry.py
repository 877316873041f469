"""The simulators firmware-sim ships, by ``kind``."""

from __future__ import annotations

from firmware_sim.base import SimulatorSpec
from firmware_sim.checkweigher import CHECKWEIGHER

__all__ = ["simulator_specs"]


def simulator_specs() -> dict[str, SimulatorSpec]:
    specs = [CHECKWEIGHER]
    return {s.name: s for s in specs}
