"""What can be checked of the deployment files without a Docker engine or systemd."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]


def test_compose_file_parses_and_names_the_services() -> None:
    doc = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    assert set(doc["services"]) == {"mosquitto", "sim", "gateway"}
    gw = doc["services"]["gateway"]
    assert gw["command"][:2] == ["run", "/opt/saltgw/mappings/demo-line.yaml"]
    assert gw["build"]["dockerfile"] == "docker/Dockerfile"


def test_dockerfile_runs_as_non_root_and_copies_every_package() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert "\nUSER saltgw\n" in text
    for folder in ("gateway", "drivers", "firmware-sim", "mappings"):
        assert f"COPY {folder} " in text


def test_systemd_unit_restarts_and_has_a_state_directory() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "docker" / "saltgw.service")
    svc = unit["Service"]
    assert svc["Restart"] == "always"
    assert svc["StateDirectory"] == "saltgw"
    assert svc["ExecStart"].endswith("saltgw run /etc/saltgw/line.yaml")
    assert svc["KillSignal"] == "SIGTERM"
