"""Simulated PLCs and devices for saltgw, speaking the real protocols over real sockets.

Each simulator has a pydantic config model (``kind`` is its discriminator) and runs as an async
context: ``await sim.start()`` … ``await sim.stop()``. ``saltgw sim CONFIG`` starts those named in
a config's ``simulators:`` section.
"""

from firmware_sim.base import Simulator, SimulatorConfigBase, SimulatorSpec

__all__ = ["Simulator", "SimulatorConfigBase", "SimulatorSpec"]
