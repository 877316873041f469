"""The simulators firmware-sim ships, by ``kind``."""

from __future__ import annotations

from firmware_sim.base import SimulatorSpec
from firmware_sim.checkweigher import CHECKWEIGHER
from firmware_sim.handheld import HANDHELD_SCANNER
from firmware_sim.inspection_panel import INSPECTION_PANEL
from firmware_sim.iodine_doser import IODINE_DOSER
from firmware_sim.line_plc_config import LINE_PLC
from firmware_sim.metal_detector import METAL_DETECTOR
from firmware_sim.modbus_farm import MODBUS_FARM
from firmware_sim.modbus_rtu_line import MODBUS_RTU_LINE
from firmware_sim.scan_line import SCAN_LINE

__all__ = ["simulator_specs"]


def simulator_specs() -> dict[str, SimulatorSpec]:
    specs = [
        CHECKWEIGHER,
        METAL_DETECTOR,
        INSPECTION_PANEL,
        IODINE_DOSER,
        LINE_PLC,
        SCAN_LINE,
        MODBUS_FARM,
        MODBUS_RTU_LINE,
        HANDHELD_SCANNER,
    ]
    return {s.name: s for s in specs}
