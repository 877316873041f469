"""No core module imports an optional extra: ``pip install saltgw`` (no extras) can validate
configs, print the schemas and run a line whose drivers' extras are installed.

Every module of ``gateway``, ``drivers`` and ``firmware_sim`` is core unless listed in
:data:`IMPLEMENTATIONS` (the code a driver's or simulator's ``create`` imports, and the demo's
tools). A new module is core by default: importing a protocol stack at its top fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.extras import OPTIONAL_MODULES, blocked_env
from tests.support.procs import ROOT

IMPLEMENTATIONS = frozenset(
    {
        "drivers.modbus.bus",  # the shared RTU link (pymodbus), created by the driver
        "drivers.modbus.driver",
        "drivers.opcua.driver",
        "drivers.opcua.errors",
        "drivers.opcua.logfilter",
        "drivers.opcua.methods",
        "drivers.opcua.resolve",
        "drivers.opcua.security",
        "drivers.opcua.values",
        "drivers.scanner.driver",
        "drivers.scanner.links",
        "drivers.camera.decoder",  # OpenCV, numpy, ZBar: in the camera's decode worker only
        "drivers.camera.worker",
        "firmware_sim.certs",
        "firmware_sim.line_plc",
        "firmware_sim.qrframes",
        "gateway.certs",  # saltgw certs: asyncua and cryptography (the opcua extra)
        "gateway.demo",  # saltgw demo: rich's live view (the demo extra)
        "gateway.live_view",
        "gateway.resolver.app",  # saltgw resolver: Jinja2, uvicorn or waitress (the resolver extra)
        "gateway.resolver.asgi",
        "gateway.resolver.pages",
        "gateway.resolver.server",
        "gateway.resolver.uvserver",
        "gateway.console.app",  # saltgw console: Jinja2 and waitress (the resolver extra)
        "gateway.console.pages",
        "gateway.console.server",
        "gateway.web.server",  # waitress (the resolver extra)
        "gateway.bridge.pg",  # a postgresql:// trace store: psycopg (the postgres extra)
        "gateway.bridge.migrations.env",  # alembic's environment (the postgres extra)
        "gateway.bridge.migrations.versions.v0001_initial",
        "gateway.bridge.amqp",  # pika (the amqp extra), imported by bridge.source: amqp only
        "gateway.telemetry.sparkplug.codec",  # protobuf (the sparkplug extra)
        "gateway.telemetry.sparkplug.sparkplug_b_pb2",
    }
)

_IMPORT_ALL = """
import importlib, json, sys
failed = {}
for name in sys.argv[1].split(","):
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
loaded = sorted({m.partition(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
print(json.dumps({"failed": failed, "loaded": loaded}))
"""


def core_modules() -> list[str]:
    names = []
    for package, folder in (
        ("gateway", "gateway"),
        ("drivers", "drivers"),
        ("firmware_sim", "firmware-sim"),
    ):
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            names.append(".".join((package, *parts)))
    return [n for n in names if n not in IMPLEMENTATIONS]


def _import_all(env: dict[str, str]) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, ",".join(core_modules()), ",".join(OPTIONAL_MODULES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_the_module_list_is_what_it_claims() -> None:
    names = core_modules()
    for core in (
        "gateway.cli",
        "gateway.config.models",
        "drivers.base",
        "drivers.registry",
        "drivers.modbus",
        "drivers.modbus.config",
        "firmware_sim.checkweigher",
        "firmware_sim.modbus_device",
        "firmware_sim.line_plc_config",
    ):
        assert core in names
    assert "drivers.modbus.driver" not in names
    assert "drivers.camera.driver" in names  # the gateway's side of a camera needs no OpenCV
    assert all(
        Path(ROOT, "drivers", *m.split(".")[1:]).with_suffix(".py").exists()
        or Path(ROOT, "drivers", *m.split(".")[1:], "__init__.py").exists()
        for m in IMPLEMENTATIONS
        if m.startswith("drivers.")
    )


def test_core_modules_import_no_optional_extra(tmp_path: Path) -> None:
    """With the extras installed (this environment), importing the core loads none of them."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = _import_all(env)
    assert result["failed"] == {}
    assert result["loaded"] == [], f"core modules imported optional packages: {result['loaded']}"


def test_core_modules_import_without_the_extras(tmp_path: Path) -> None:
    """With the extras out of sight (the core install), every core module still imports."""
    result = _import_all(blocked_env(tmp_path))
    assert result["failed"] == {}, result["failed"]
    assert result["loaded"] == []


_BUILD_LINE = """
import json, sys
from gateway.config.loader import load_config
from gateway.runtime import Gateway
gw = Gateway(load_config(sys.argv[1]))
gw._build_supervisors()  # every device's driver, as `saltgw run` creates them
drivers = sorted(type(s.driver).__name__ for s in gw.supervisors)
loaded = sorted({m.partition(".")[0] for m in sys.modules})
print(json.dumps({"drivers": drivers, "loaded": loaded}))
"""

#: Heavy packages no line's gateway process needs unless a device or section asks for them.
HEAVY = ("cv2", "numpy", "pyzbar", "asyncua", "pymodbus", "serial", "cryptography", "lxml",
         "jsonschema", "rich", "amqtt", "google", "waitress", "jinja2")  # fmt: skip


def _built(cfg: Path, cwd: Path) -> dict[str, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _BUILD_LINE, str(cfg)],
        capture_output=True, text=True, cwd=cwd, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, list[str]] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_a_modbus_and_scanner_line_loads_only_its_own_stacks(tmp_path: Path) -> None:
    """Small PCs (docs/deployment.md): the stacks a line's devices need, nothing else."""
    from tests.support.configs import modbus_scanner_line_on_free_ports

    built = _built(modbus_scanner_line_on_free_ports(tmp_path), tmp_path)
    assert set(built["drivers"]) == {"ModbusDriver", "ScannerDriver"}
    assert [m for m in HEAVY if m in built["loaded"]] == ["pymodbus", "serial"]


def test_the_demo_line_gateway_never_loads_opencv(tmp_path: Path) -> None:
    """The camera's decoding runs in its worker process (drivers/camera/worker.py)."""
    from tests.support.configs import demo_line_on_free_ports

    built = _built(demo_line_on_free_ports(tmp_path), tmp_path)
    assert "CameraDriver" in built["drivers"] and "OpcUaDriver" in built["drivers"]
    assert [m for m in HEAVY if m in built["loaded"]] == [
        "asyncua",
        "pymodbus",
        "serial",
        "cryptography",
    ]


_PLANT_LINE = """
import json, sys
from gateway.cli import build_parser, verb_of
argv = ["run", sys.argv[1]]
build_parser(verb_of(argv)).parse_args(argv)  # as `saltgw run MAP` parses its command line
from gateway.config import models
from gateway.config.loader import read_map
from gateway.reload import plan_reload
from gateway.runtime import Gateway
first = read_map(sys.argv[1])
gw = Gateway(first.cfg)
gw._build_supervisors()  # every device's driver and profile, as `saltgw run` creates them
import pydantic
def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)
built = sorted({f"{m.__module__}.{m.__qualname__}" for m in subclasses(pydantic.BaseModel)
                if m.__pydantic_complete__})  # before a reload: comparing maps dumps sections
from gateway import commands
if commands._COMMAND.pydantic_complete:  # built at the first command received, not before
    built.append("gateway.commands._COMMAND")
again = read_map(sys.argv[1])  # a reload reads and validates the map again
plan = plan_reload(first.cfg, again.cfg)
print(json.dumps({
    "built": built,
    "modules": sorted(sys.modules),
    "full_model_built": models.config_model.cache_info().currsize > 0,
    "unchanged": len(plan.unchanged), "devices": len(first.cfg.devices),
}))
"""

#: What a Modbus + scanner line's gateway must not import (docs/performance.md, "Gateway
#: memory"): the models of drivers, profiles and sections its map does not name
NOT_NAMED = (
    "drivers.opcua.config",
    "drivers.camera.config",
    "gateway.bridge.config",
    "gateway.resolver.config",
    "gateway.telemetry.sparkplug.config",
    "gateway.profiles.line_plc",
    "gateway.profiles.material_feed",
)


#: What ``saltgw run`` must not import: the modules of the other sub-commands (gateway/cli.py
#: OTHER_COMMANDS; docs/performance.md, fourth pass)
OTHER_COMMANDS = (
    "gateway.bridge.cli",
    "gateway.certs_cmd",
    "gateway.verify",
    "gateway.records.cli",
    "gateway.resolver.cli",
    "gateway.console.cli",
)


#: Models a plant map validates only as parts of its config: the top-level model's validator
#: covers them, they build none of their own (``defer_build``; docs/performance.md, fourth pass)
NESTED_ONLY = (
    "drivers.modbus.config.TagConfig",
    "drivers.modbus.config.TcpConnection",
    "drivers.modbus.config.ModbusDeviceConfig",
    "drivers.scanner.config.ScannerTcpClientLink",
    "drivers.telemetry.DeviceTelemetry",
    "gateway.config.models.GatewaySection",
    "gateway.config.models.JournalSection",
    "gateway.config.models.MqttSection",
    "gateway.telemetry.config.TelemetrySection",
    "gateway.commands._COMMAND",  # the commands' TypeAdapter
    "gateway.commands.StartBatch",
)


def _plant(cfg: Path, cwd: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _PLANT_LINE, str(cfg)], capture_output=True, text=True,
        cwd=cwd, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_a_plant_map_loads_only_the_models_it_names(tmp_path: Path) -> None:
    """A Modbus + scanner map without ``simulators:`` (a plant's): no simulator, no OPC UA or
    camera config model, no bridge, resolver or Sparkplug section model, no profile it does not
    bind, and never the full config model (every installed driver's, profile's and simulator's
    model again), neither at start nor when a reload reads the map again."""
    from tests.support.configs import modbus_scanner_line_on_free_ports, without_simulators

    result = _plant(without_simulators(modbus_scanner_line_on_free_ports(tmp_path)), tmp_path)
    modules = set(result["modules"])  # type: ignore[call-overload]
    assert {"drivers.modbus.config", "drivers.scanner.config", "gateway.profiles.bag_scanner"} <= (
        modules
    )  # it did load what the map names
    assert sorted(m for m in modules if m.partition(".")[0] == "firmware_sim") == []
    assert [m for m in NOT_NAMED if m in modules] == []
    assert [m for m in OTHER_COMMANDS if m in modules] == []
    built = set(result["built"])  # type: ignore[call-overload]
    assert "gateway.config.models.Config" in built  # the one validating the map
    assert [m for m in NESTED_ONLY if m in built] == []
    from gateway import cli

    assert sorted(m for m, _adder in cli.OTHER_COMMANDS) == sorted(OTHER_COMMANDS)
    assert result["full_model_built"] is False
    assert result["unchanged"] == result["devices"] == 10


def test_a_map_with_simulators_loads_those_it_names(tmp_path: Path) -> None:
    """The same map with its ``simulators:`` (what ``saltgw sim`` reads): their models are
    loaded, only those named (no OPC UA line PLC simulator on this line)."""
    from tests.support.configs import modbus_scanner_line_on_free_ports

    result = _plant(modbus_scanner_line_on_free_ports(tmp_path), tmp_path)
    modules = set(result["modules"])  # type: ignore[call-overload]
    assert {"firmware_sim.checkweigher", "firmware_sim.scan_line"} <= modules
    assert "firmware_sim.line_plc_config" not in modules
    assert [m for m in NOT_NAMED if m in modules] == []


_WORKER = """
import json, sys
import drivers.camera.worker  # what `python -m drivers.camera.worker` imports before main()
print(json.dumps(sorted({m.partition(".")[0] for m in sys.modules})))
"""


def test_the_camera_worker_never_loads_pydantic(tmp_path: Path) -> None:
    """The decode worker (drivers/camera/worker.py) needs OpenCV, numpy and ZBar, not the config
    models: ``drivers`` and ``drivers.camera`` load their names on first use (~17 MB less per
    camera; docs/performance.md, "Gateway memory")."""
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER], capture_output=True, text=True, cwd=tmp_path,
        timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = set(json.loads(proc.stdout.splitlines()[-1]))
    assert "cv2" in loaded  # the worker did import its decoder
    assert not loaded & {"pydantic", "pydantic_core", "yaml", "paho"}, sorted(loaded)


def test_the_lazy_driver_packages_still_export_their_names() -> None:
    import drivers
    import drivers.camera
    from drivers.base import DriverSpec, Reading
    from drivers.camera.config import CameraDeviceConfig
    from drivers.registry import driver_specs

    assert drivers.Reading is Reading and drivers.DriverSpec is DriverSpec
    assert drivers.camera.CameraDeviceConfig is CameraDeviceConfig
    spec = drivers.camera.CAMERA
    assert isinstance(spec, DriverSpec) and spec is drivers.camera.CAMERA  # built once
    assert driver_specs()["camera"] is spec  # the entry point finds the same spec
    with pytest.raises(AttributeError, match="NoSuchName"):
        drivers.camera.NoSuchName  # noqa: B018
