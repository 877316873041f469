"""The check for optional packages (gateway/config/extras.py): looked up, never imported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from drivers.registry import driver_specs
from firmware_sim.registry import simulator_specs
from firmware_sim.scan_line import ScanLineSimConfig
from gateway.config.extras import missing_modules, needs_message


def test_a_module_is_found_without_being_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "saltgw_probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('saltgw_probe_pkg was imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert missing_modules(["saltgw_probe_pkg", "json"]) == ()
    assert "saltgw_probe_pkg" not in sys.modules


def test_missing_modules_are_named_in_order() -> None:
    names = ["saltgw_no_such_a", "json", "saltgw_no_such_b", "saltgw_no_such_pkg.sub"]
    assert missing_modules(names) == ("saltgw_no_such_a", "saltgw_no_such_b", names[3])


def test_needs_message_names_the_modules_and_the_install_command() -> None:
    assert needs_message("driver 'x'", {"modbus": ("json",)}) is None
    assert needs_message("driver 'x'", {None: ()}) is None
    assert needs_message("driver 'modbus'", {"modbus": ("saltgw_no_pymodbus", "json")}) == (
        "driver 'modbus' needs saltgw_no_pymodbus, not installed: pip install 'saltgw[modbus]'"
    )
    # a module of no extra is installed by its own name; extras come first
    msg = needs_message("simulator 's'", {None: ("saltgw_no_q",), "camera": ("saltgw_no_cv",)})
    assert msg == (
        "simulator 's' needs saltgw_no_cv, saltgw_no_q, not installed: "
        "pip install 'saltgw[camera]' saltgw_no_q"
    )


def test_every_shipped_driver_and_simulator_names_its_extra() -> None:
    drivers = {n: (s.extra, s.requires) for n, s in driver_specs().items()}
    assert drivers == {
        "modbus": ("modbus", ("pymodbus", "serial")),
        "opcua": ("opcua", ("asyncua",)),
        "scanner": ("scanner", ("serial",)),
        "camera": ("camera", ("cv2", "numpy")),
    }
    sims = {n: (s.extra, s.requires) for n, s in simulator_specs().items()}
    modbus_sims = ("checkweigher", "metal_detector", "inspection_panel", "iodine_doser")
    assert {n: sims[n] for n in modbus_sims} == dict.fromkeys(
        modbus_sims, ("modbus", ("pymodbus",))
    )
    assert sims["line_plc"] == ("opcua", ("asyncua",))
    assert sims["scan_line"] == (None, ())


def test_a_scan_line_needs_opencv_only_for_camera_stations() -> None:
    tcp = ScanLineSimConfig(id="s", kind="scan_line", port=0, case={"port": 0})
    assert tcp.optional_needs() == {}
    cam = ScanLineSimConfig(id="s", kind="scan_line", port=0, pallet={"folder": "var/cam"})
    assert cam.optional_needs() == {"camera": ("cv2", "numpy")}
