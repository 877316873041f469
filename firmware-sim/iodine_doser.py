"""A simulated iodizing station: a doser spraying potassium iodate (KIO3) solution onto the
salt stream, with a belt scale and an online iodine analyser, speaking Modbus TCP.

Register map — holding registers (FC 3), zero-based, big-endian bytes and words ("ABCD"),
read-only, unit ``unit_id``:

    ====  ===============  =======  ========================================================
    addr  name             type     meaning
    ====  ===============  =======  ========================================================
    0-1   salt_flow_kg_h   float32  salt flow on the belt scale, kg/h
    2-3   kio3_flow_l_h    float32  KIO3 solution flow (magnetic flowmeter), L/h
    4-5   salt_total_kg    uint32   salt totaliser, kg
    6-7   iodine_mg_kg     float32  last analyser result, mg I per kg salt
    8-9   sample_count     uint32   analyser results so far
    10    status           uint16   bit0 running
    ====  ===============  =======  ========================================================

The doser aims at ``target_mg_kg`` with a ``kio3_g_per_l`` solution: solution flow = target ×
salt flow / (c × 1000 × 0.5930) (GB 26878-2011 iodine formula, see
``gateway/profiles/iodine_limits.py``), with 1 % noise; the salt flow is N(``salt_flow_kg_h``,
0.5 %). Every ``drift_every_s`` the dosing drifts to ``drift_factor`` of its aim for
``drift_for_s`` (a clogging nozzle). The analyser reports, every ``sample_every_s``, the mean
true iodine content since its previous result plus N(0, 0.3) mg/kg. For tests: :meth:`freeze`
freezes the salt-flow register (a hung transmitter) while the totaliser goes on.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any, Literal

from pydantic import Field

from firmware_sim.base import SimulatorSpec
from firmware_sim.modbus_device import ModbusSimBase, ModbusSimConfig, every, f32, u32

__all__ = ["IODINE_DOSER", "IodineDoserSim", "IodineDoserSimConfig"]

IODINE_PER_KIO3 = 0.5930  # M(I) / M(KIO3), as in gateway/profiles/iodine_limits.py
UPDATE_S = 0.2  # how often the doser refreshes its registers


class IodineDoserSimConfig(ModbusSimConfig):
    """An iodizing doser with a belt scale and an online analyser."""

    kind: Literal["iodine_doser"] = Field(description="Selects the iodine doser simulator.")
    salt_flow_kg_h: float = Field(
        default=10000.0, gt=0, le=100000, description="Mean salt flow, kg/h."
    )
    kio3_g_per_l: float = Field(
        default=50.0, gt=0, le=500, description="KIO3 in the dosing solution, g/L."
    )
    target_mg_kg: float = Field(default=25.0, gt=0, le=100, description="Iodine aimed at, mg/kg.")
    sample_every_s: float | None = Field(
        default=10.0, gt=0, description="An analyser result this often; none = no analyser."
    )
    drift_every_s: float | None = Field(
        default=30.0, gt=0, description="Dosing drifts off this often, seconds; none = never."
    )
    drift_for_s: float = Field(default=12.0, gt=0, description="How long a drift lasts, s.")
    drift_factor: float = Field(
        default=0.6, ge=0, le=3, description="Dosing during a drift, as a fraction of its aim."
    )


class IodineDoserSim(ModbusSimBase):
    register_count = 11
    kind = "iodine_doser"

    def __init__(self, config: IodineDoserSimConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.salt_flow = config.salt_flow_kg_h
        self.solution_flow = self._aim(self.salt_flow)
        self.salt_total = 0.0
        self.iodine = 0.0  # last analyser result
        self.samples = 0
        self.frozen_salt_flow: float | None = None
        self.drift_until = 0.0  # monotonic time
        self._iodine_mass_mg = 0.0  # true iodine dosed since the last sample
        self._salt_mass_kg = 0.0

    def _aim(self, salt_kg_h: float) -> float:
        return self.cfg.target_mg_kg * salt_kg_h / (self.cfg.kio3_g_per_l * 1000 * IODINE_PER_KIO3)

    @property
    def drifting(self) -> bool:
        return time.monotonic() < self.drift_until

    def true_iodine_mg_kg(self) -> float:
        """The iodine content the current flows give (what a perfect analyser would see)."""
        return self.solution_flow * self.cfg.kio3_g_per_l * 1000 * IODINE_PER_KIO3 / self.salt_flow

    def snapshot(self) -> list[int]:
        salt = self.salt_flow if self.frozen_salt_flow is None else self.frozen_salt_flow
        return [
            *f32(salt),
            *f32(self.solution_flow),
            *u32(int(self.salt_total)),
            *f32(self.iodine),
            *u32(self.samples),
            1 if self.running else 0,
        ]

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        out = [every(UPDATE_S, self.step)]
        if self.cfg.sample_every_s is not None:
            out.append(every(self.cfg.sample_every_s, self.sample))
        if self.cfg.drift_every_s is not None:
            out.append(every(self.cfg.drift_every_s, self.drift))
        return out

    def step(self, dt_s: float = UPDATE_S) -> None:
        """Advance the process by ``dt_s`` seconds."""
        self.salt_flow = self.rng.gauss(self.cfg.salt_flow_kg_h, self.cfg.salt_flow_kg_h * 0.005)
        factor = self.cfg.drift_factor if self.drifting else 1.0
        aim = self._aim(self.salt_flow) * factor
        self.solution_flow = max(0.0, self.rng.gauss(aim, aim * 0.01))
        salt_kg = self.salt_flow * dt_s / 3600
        self.salt_total += salt_kg
        self._salt_mass_kg += salt_kg
        self._iodine_mass_mg += salt_kg * self.true_iodine_mg_kg()
        self.publish()

    def sample(self) -> int:
        """The analyser reports now; returns the sample's number."""
        if self._salt_mass_kg > 0:
            mean = self._iodine_mass_mg / self._salt_mass_kg
        else:
            mean = self.true_iodine_mg_kg()
        self.iodine = max(0.0, mean + self.rng.gauss(0.0, 0.3))
        self._iodine_mass_mg = self._salt_mass_kg = 0.0
        self.samples += 1
        self.publish()
        return self.samples

    def drift(self, seconds: float | None = None) -> None:
        """Dosing drifts to ``drift_factor`` of its aim for ``seconds`` (default drift_for_s)."""
        self.drift_until = time.monotonic() + (seconds or self.cfg.drift_for_s)

    def freeze(self, on: bool = True) -> None:
        """Freeze the salt-flow register at its current value (the totaliser keeps counting)."""
        self.frozen_salt_flow = self.salt_flow if on else None
        self.publish()


IODINE_DOSER = SimulatorSpec(
    name="iodine_doser",
    config_model=IodineDoserSimConfig,
    create=IodineDoserSim,
    description="Iodizing doser on Modbus TCP: salt and KIO3 solution flows, salt totaliser, "
    "online analyser result and sample counter (holding registers 0-10, ABCD); dosing drift "
    "on a schedule, a freezable salt-flow transmitter.",
    extra="modbus",
    requires=("pymodbus",),
)
