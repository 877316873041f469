"""A simulated CCP inspection panel: the operator terminal at the magnet grate and the safety
sieve where inspections are entered, speaking Modbus TCP.

Why one device for two CCPs: magnet rods and the check sieve sit together in the salt stream
before the packer, and neither measures itself — an operator pulls the rods (cleans them, weighs
the iron caught, measures each rod with a gaussmeter) and opens the sieve to look at the screen,
then types the results into the panel. The panel counts inspections, so the gateway can tell a
new entry from an old one. Plants with separate panels bind each profile to its own device.

Register map — holding registers (FC 3), zero-based, big-endian bytes and words ("ABCD"),
read-only, unit ``unit_id``:

    ====  =================  =======  =====================================================
    addr  name               type     meaning
    ====  =================  =======  =====================================================
    0-1   rod_inspections    uint32   magnet rod inspections entered
    2-3   rod_iron_g         float32  iron caught on the rods since the previous cleaning, g
    4     rod_strength_gs    uint16   weakest rod's surface flux density, gauss
    5-6   sieve_inspections  uint32   safety sieve screen checks entered
    7     sieve_status       uint16   bit0 screen intact at the last check;
                                      bit1 mesh-break detector tripped (now)
    ====  =================  =======  =====================================================

Rods: every ``rod_every_s``; strength ~ N(11000, 300) Gs, every ``weak_rod_every``-th inspection
finds a rod at ~7200 Gs (and the operator replaces it). Sieve: the screen tears every
``tear_every_s``; the mesh-break detector trips at once, the next check finds it broken, after
which the screen is replaced (intact again, detector clear).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Literal

from pydantic import Field

from firmware_sim.base import SimulatorSpec
from firmware_sim.modbus_device import ModbusSimBase, ModbusSimConfig, every, f32, u32

__all__ = ["INSPECTION_PANEL", "InspectionPanelSim", "InspectionPanelSimConfig"]


class InspectionPanelSimConfig(ModbusSimConfig):
    """An inspection panel for magnet rods and a safety sieve."""

    kind: Literal["inspection_panel"] = Field(description="Selects the inspection panel.")
    rod_every_s: float | None = Field(
        default=15.0, gt=0, description="A magnet rod inspection this often; none = never."
    )
    weak_rod_every: int | None = Field(
        default=3, ge=1, description="Every n-th rod inspection finds a weak rod; none = never."
    )
    sieve_every_s: float | None = Field(
        default=20.0, gt=0, description="A sieve screen check this often; none = never."
    )
    tear_every_s: float | None = Field(
        default=25.0, gt=0, description="The sieve screen tears this often; none = never."
    )


class InspectionPanelSim(ModbusSimBase):
    register_count = 8
    kind = "inspection_panel"

    def __init__(self, config: InspectionPanelSimConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.rod_inspections = 0
        self.rod_iron_g = 0.0
        self.rod_strength_gs = 11000
        self.sieve_inspections = 0
        self.sieve_intact = True
        self.torn = False  # the screen's real state; the detector follows it

    def snapshot(self) -> list[int]:
        status = (1 if self.sieve_intact else 0) | (2 if self.torn else 0)
        return [
            *u32(self.rod_inspections),
            *f32(self.rod_iron_g),
            max(0, min(self.rod_strength_gs, 0xFFFF)),
            *u32(self.sieve_inspections),
            status,
        ]

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        out = []
        if self.cfg.rod_every_s is not None:
            out.append(every(self.cfg.rod_every_s, self._scheduled_rods))
        if self.cfg.sieve_every_s is not None:
            out.append(every(self.cfg.sieve_every_s, self.inspect_sieve))
        if self.cfg.tear_every_s is not None:
            out.append(every(self.cfg.tear_every_s, self.tear))
        return out

    def _scheduled_rods(self) -> None:
        n = self.cfg.weak_rod_every
        weak = n is not None and (self.rod_inspections + 1) % n == 0
        strength = self.rng.gauss(7200, 150) if weak else self.rng.gauss(11000, 300)
        self.inspect_rods(strength_gs=strength, iron_g=abs(self.rng.gauss(0.6, 0.3)))

    def inspect_rods(self, *, strength_gs: float, iron_g: float) -> int:
        """Enter a magnet rod inspection now; returns its number."""
        self.rod_strength_gs = round(strength_gs)
        self.rod_iron_g = iron_g
        self.rod_inspections += 1
        self.publish()
        return self.rod_inspections

    def tear(self) -> None:
        """The screen tears now (the detector trips)."""
        self.torn = True
        self.publish()

    def inspect_sieve(self) -> int:
        """Enter a screen check now (a torn screen is found broken, then replaced)."""
        self.sieve_intact = not self.torn
        self.sieve_inspections += 1
        self.torn = False  # found broken → replaced at once
        self.publish()
        return self.sieve_inspections


INSPECTION_PANEL = SimulatorSpec(
    name="inspection_panel",
    config_model=InspectionPanelSimConfig,
    create=InspectionPanelSim,
    description="CCP inspection panel on Modbus TCP: magnet rod inspections (iron caught, "
    "weakest rod's gauss) and safety sieve checks with a mesh-break detector (holding "
    "registers 0-7, ABCD); weak rods and torn screens on a schedule.",
    extra="modbus",
    requires=("pymodbus",),
)
