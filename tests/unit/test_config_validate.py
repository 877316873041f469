"""Golden folders: config_cases/<case>/{config.yaml, expected.txt}; a new mistake that is
reported badly becomes a new folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config.loader import ConfigError, load_config, read_config

CASES = Path(__file__).parent / "config_cases"
ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir()))
def test_golden_case(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASES / case)
    expected = (CASES / case / "expected.txt").read_text().splitlines()
    with pytest.raises(ConfigError) as err:
        load_config("config.yaml")
    assert [str(i) for i in err.value.issues] == expected


def test_shipped_maps_and_examples_are_valid() -> None:
    cfg = load_config(ROOT / "mappings" / "demo-line.yaml")
    assert cfg.gateway.enterprise == "8035"
    assert {d.id for d in cfg.devices} == {p.device for p in cfg.profiles}


def test_cli_prints_every_error_and_exits_non_zero_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "line3.yaml"
    bad.write_text((CASES / "many-mistakes" / "config.yaml").read_text())
    good = ROOT / "mappings" / "demo-line.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "validate", str(good), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{good}: ok"
    assert len(lines) == 1 + len(
        (CASES / "many-mistakes" / "expected.txt").read_text().splitlines()
    )
    assert all(line.startswith(f"{bad}:") for line in lines[1:])
    assert "Traceback" not in proc.stderr + proc.stdout


def test_password_comes_from_the_environment_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(
        'gateway: {id: g, enterprise: "8035", site: s, line: L1}\n'
        "mqtt: {username: line1, password_env: LINE1_MQTT_PW}\n"
    )
    monkeypatch.setenv("LINE1_MQTT_PW", "s3cret")
    assert load_config(f).mqtt.password() == "s3cret"
    monkeypatch.delenv("LINE1_MQTT_PW")
    assert load_config(f).mqtt.password() is None


def test_missing_file_is_a_positioned_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml:1:1: error: cannot read"):
        load_config(tmp_path / "nope.yaml")


SIEVE_ON_OPCUA = """\
gateway: {{id: gw-1, enterprise: "8035", site: daiyue, line: L1}}
devices:
  - id: panel1
    driver: opcua
    endpoint: opc.tcp://127.0.0.1:4840
    mode: {mode}
{report}    tags:
      sieve_inspections: {{node: s=Sieve.Inspections, type: UInt32}}
      sieve_intact: {{node: s=Sieve.Intact, type: Boolean}}
profiles:
  - profile: sieve
    device: panel1
"""


@pytest.mark.parametrize(
    ("mode", "report", "warned"),
    [("subscribe", "", True), ("subscribe", "    report: all\n", False), ("poll", "", False)],
)
def test_a_ccp_profile_on_an_opcua_device_reporting_changes_is_a_warning(
    tmp_path: Path, mode: str, report: str, warned: bool
) -> None:
    """A CCP record is one image of the device: subscribe mode must report every tag."""
    path = tmp_path / "line.yaml"
    path.write_text(SIEVE_ON_OPCUA.format(mode=mode, report=report))
    _cfg, warnings = read_config(path)
    said = [str(w) for w in warnings if "report: all" in w.message]
    if warned:
        assert said == [
            f"{path}:12:13: warning: profiles[0].device: profile 'sieve' reads every tag of "
            "each reading, and OPC UA device 'panel1' reports only the tags that changed: set "
            "report: all on it (docs/profiles.md), or its records will miss values"
        ]
    else:
        assert said == []
