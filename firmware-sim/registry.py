"""The simulators firmware-sim ships, by ``kind``.

A simulator's module is imported when it is first asked for by kind (:func:`simulator_spec`);
a gateway whose map has no ``simulators:`` section imports none of them (docs/performance.md,
"Gateway memory"). :func:`simulator_specs` loads every one.
"""

from __future__ import annotations

from importlib import import_module

from firmware_sim.base import SimulatorSpec

__all__ = ["simulator_kinds", "simulator_spec", "simulator_specs"]

#: kind -> (module, attribute) of its SimulatorSpec, in the order of the config's union
_BUILT_IN: dict[str, tuple[str, str]] = {
    "checkweigher": ("firmware_sim.checkweigher", "CHECKWEIGHER"),
    "metal_detector": ("firmware_sim.metal_detector", "METAL_DETECTOR"),
    "inspection_panel": ("firmware_sim.inspection_panel", "INSPECTION_PANEL"),
    "iodine_doser": ("firmware_sim.iodine_doser", "IODINE_DOSER"),
    "line_plc": ("firmware_sim.line_plc_config", "LINE_PLC"),
    "scan_line": ("firmware_sim.scan_line", "SCAN_LINE"),
    "modbus_farm": ("firmware_sim.modbus_farm", "MODBUS_FARM"),
    "modbus_rtu_line": ("firmware_sim.modbus_rtu_line", "MODBUS_RTU_LINE"),
    "handheld_scanner": ("firmware_sim.handheld", "HANDHELD_SCANNER"),
}


def simulator_kinds() -> tuple[str, ...]:
    """Every shipped simulator's kind (nothing is imported)."""
    return tuple(_BUILT_IN)


def simulator_spec(kind: str) -> SimulatorSpec | None:
    """The simulator ``kind``, its module imported now if it was not; None when there is none."""
    where = _BUILT_IN.get(kind)
    if where is None:
        return None
    spec = getattr(import_module(where[0]), where[1])
    assert isinstance(spec, SimulatorSpec) and spec.name == kind, (kind, where)
    return spec


def simulator_specs() -> dict[str, SimulatorSpec]:
    """Every shipped simulator by kind (all their modules imported)."""
    out = {}
    for kind in _BUILT_IN:
        spec = simulator_spec(kind)
        assert spec is not None
        out[kind] = spec
    return out
