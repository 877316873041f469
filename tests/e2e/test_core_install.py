"""The core install (``pip install saltgw``, no extras) as a user meets it: ``validate`` and
``schema`` work, a line whose extras are installed runs, and a line that needs a missing extra
is refused at start with one line per device naming it (docs/deployment.md, "Extras").

The extras stay installed in the test environment: each command runs in a subprocess that
cannot see them (tests/support/extras.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.broker import Mosquitto
from tests.support.configs import line_config
from tests.support.extras import OPTIONAL_MODULES, blocked_env, run_blocked, start_blocked
from tests.support.net import wait_port
from tests.support.procs import ROOT, stop
from tests.support.subscriber import Collector

pytestmark = pytest.mark.e2e

DEMO = str(ROOT / "mappings" / "demo-line.yaml")
GATEWAY = {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"}
WARNING = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): warning: (?P<what>.*)$")


def _map(tmp: Path, example: str, **more: Any) -> Path:
    """A line with the device entries of a driver's example.yaml."""
    devices = yaml.safe_load((ROOT / "drivers" / example / "example.yaml").read_text())
    path = tmp / f"{example}-line.yaml"
    path.write_text(yaml.safe_dump({"gateway": GATEWAY, "devices": devices, **more}))
    return path


def _where(path: Path, driver: str) -> str:
    """``FILE:LINE:COL`` of the first ``driver: NAME`` value in the file (1-based)."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if f"driver: {driver}" in line:
            return f"{path}:{n}:{line.index(f'driver: {driver}') + len('driver: ') + 1}"
    raise AssertionError(f"no driver {driver!r} in {path}")


def test_validate_the_demo_line_without_extras_warns_per_device(tmp_path: Path) -> None:
    proc = run_blocked(tmp_path, "validate", DEMO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"{DEMO}: ok"
    warnings = [m for m in map(WARNING.match, lines[:-1]) if m]
    assert len(warnings) == len(lines) - 1, proc.stdout
    text = {m["what"] for m in warnings}
    assert (
        "devices[0] (cw1): driver 'modbus' needs pymodbus, serial, not installed: "
        "pip install 'saltgw[modbus]'"
    ) in text
    for extra in ("modbus", "opcua", "scanner", "camera"):
        assert any(f"pip install 'saltgw[{extra}]'" in w for w in text), extra
    # the position is the device's driver: key (what the user changes or installs for)
    first = warnings[0]
    source = Path(DEMO).read_text().splitlines()[int(first["line"]) - 1]
    assert source[int(first["col"]) - 1 :].startswith("modbus"), source
    # 11 devices and 6 simulators in the demo line, each needing something
    assert sum(w.startswith("devices[") for w in text) == 11
    assert sum(w.startswith("simulators[") for w in text) == 6


def test_schema_without_extras(tmp_path: Path) -> None:
    proc = run_blocked(tmp_path, "schema")
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    drivers = json.dumps(schema["properties"]["devices"])
    defs = schema["$defs"]
    assert {"ModbusDeviceConfig", "OpcUaDeviceConfig", "ScannerDeviceConfig"} <= set(defs)
    assert "discriminator" in drivers or "oneOf" in drivers
    events = run_blocked(tmp_path, "schema", "--events")
    assert events.returncode == 0, events.stderr
    assert json.loads(events.stdout)["$schema"].startswith("https://json-schema.org/")
    markdown = run_blocked(tmp_path, "schema", "--markdown")
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout.startswith("# Config and tag-map reference")


def test_an_opcua_map_validates_with_only_asyncua_missing(tmp_path: Path) -> None:
    cfg = _map(tmp_path, "opcua")
    proc = run_blocked(tmp_path, "validate", str(cfg), blocked=["asyncua"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [line for line in proc.stdout.splitlines() if ": warning: " in line]
    assert warnings == [
        f"{_where(cfg, 'opcua')}: warning: devices[0] (plc_l3): driver 'opcua' needs asyncua, not "
        "installed: pip install 'saltgw[opcua]'"
    ], proc.stdout
    # NodeIds are still checked (by their syntax) without asyncua
    bad = cfg.read_text().replace("node: s=Line1.State", "node: x=Line1.State")
    assert bad != cfg.read_text()
    cfg.write_text(bad)
    proc = run_blocked(tmp_path, "validate", str(cfg), blocked=["asyncua"])
    assert proc.returncode == 1
    assert "devices[0].tags.state.node: not a NodeId: 'x=Line1.State'" in proc.stdout


def test_run_of_a_modbus_map_without_the_extra_is_one_clear_error(tmp_path: Path) -> None:
    cfg = _map(tmp_path, "modbus")
    proc = run_blocked(tmp_path, "run", str(cfg), "--broker", "mqtt://127.0.0.1:9")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    first, second = proc.stderr.splitlines()  # one line per device of the example
    assert first == (
        f"{_where(cfg, 'modbus')}: error: devices[0] (checkweigher_l3): driver 'modbus' "
        "needs pymodbus, serial, not installed: pip install 'saltgw[modbus]'"
    )
    assert second.endswith(
        ": error: devices[1] (filler_l3): driver 'modbus' needs pymodbus, serial, not "
        "installed: pip install 'saltgw[modbus]'"
    )


def test_sim_and_demo_list_every_missing_extra_at_once(tmp_path: Path) -> None:
    sim = run_blocked(tmp_path, "sim", DEMO)
    assert sim.returncode == 2
    assert "Traceback" not in sim.stderr
    lines = sim.stderr.splitlines()
    assert len(lines) == 6 and all(": error: simulators[" in x for x in lines), sim.stderr
    demo = run_blocked(tmp_path, "demo", "--duration", "1")
    assert demo.returncode == 2
    assert "Traceback" not in demo.stderr
    lines = demo.stderr.splitlines()
    assert lines[0] == (
        "saltgw: error: saltgw demo needs rich, amqtt, not installed: pip install 'saltgw[demo]'"
    )
    assert len(lines) == 1 + 11 + 6, demo.stderr


def test_a_modbus_line_runs_with_only_the_modbus_extra(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Simulator and gateway, with everything but pymodbus and pyserial out of sight."""
    blocked = [m for m in OPTIONAL_MODULES if m not in ("pymodbus", "serial")]
    cfg = line_config(tmp_path, mosquitto.port)
    log = tmp_path / "saltgw.log"
    state = "salt/v1/8035/daiyue/L1/state/cw1"
    sub = Collector(mosquitto.port, topic=state).start()
    sim = start_blocked(tmp_path, "sim", str(cfg), log=log, blocked=blocked)
    gw = None
    try:
        wait_port(yaml.safe_load(cfg.read_text())["simulators"][0]["port"])
        gw = start_blocked(tmp_path, "run", str(cfg), log=log, blocked=blocked)
        sub.wait_for(lambda m: any(x.json().get("state") == "online" for x in m), 30, "cw1 online")
        assert stop(gw) == 0
    finally:
        if gw is not None:
            stop(gw)
        stop(sim)
        sub.stop()
    text = log.read_text()
    assert "Traceback" not in text and "not installed" not in text, text[-3000:]


def test_a_plugin_that_fails_to_load_is_named_not_unknown(tmp_path: Path) -> None:
    """A third-party driver whose import fails: the gateway still starts for other lines, and
    a config naming it is told which entry point failed and why."""
    plugins = tmp_path / "plugins"
    info = plugins / "saltgw_broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: saltgw-broken-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text("[saltgw.drivers]\nbroken = saltgw_broken_plugin:SPEC\n")
    (plugins / "saltgw_broken_plugin").mkdir()
    (plugins / "saltgw_broken_plugin" / "__init__.py").write_text("import saltgw_missing_sdk\n")
    cfg = tmp_path / "line.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"gateway": GATEWAY, "devices": [{"id": "d1", "driver": "broken", "port": 1}]}
        )
    )
    env = blocked_env(tmp_path, blocked=())
    env["PYTHONPATH"] = f"{plugins}:{env['PYTHONPATH']}"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=60,
        )

    assert cli("validate", "-q", DEMO).returncode == 0  # other lines are not stopped
    why = (
        "devices[0].driver: driver 'broken' is installed but cannot be used: entry point "
        "broken = 'saltgw_broken_plugin:SPEC' failed to load: ModuleNotFoundError: No module "
        "named 'saltgw_missing_sdk'"
    )
    proc = cli("validate", str(cfg))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"{_where(cfg, 'broken')}: error: {why}"]
    assert "expected one of" not in proc.stdout
    run = cli("run", str(cfg))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"{_where(cfg, 'broken')}: error: {why}" in run.stderr.splitlines()
