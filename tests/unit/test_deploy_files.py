"""What can be checked of the deployment files without a Docker engine or systemd: the compose
file and the Dockerfile refer to files that exist and agree with each other, the entrypoint
script maps its environment and arguments to the right ``saltgw`` command (run against a fake
``saltgw``), the systemd unit restarts and is hardened (``systemd-analyze`` when present).
tests/e2e/test_entrypoint.py runs the entrypoint with the real gateway."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
DOCKER = ROOT / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"


# -- Dockerfile --------------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    start = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[start:]


def test_dockerfile_is_slim_and_runs_as_non_root() -> None:
    stage = final_stage()
    assert stage[0][1].startswith("python:3.11-slim")
    users = [arg for word, arg in stage if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    runs = " ".join(arg for word, arg in dockerfile() if word == "RUN")
    assert "--no-cache-dir" in runs and "rm -rf /var/lib/apt/lists/*" in runs
    assert "build-essential" not in runs and "gcc" not in runs


def test_dockerfile_copies_files_that_exist() -> None:
    copied = set()
    for word, arg in dockerfile():
        if word == "COPY" and "--from=" not in arg:
            *sources, _dest = [a for a in arg.split() if not a.startswith("--")]
            for src in sources:
                assert (ROOT / src).exists(), src
                copied.add(src)
    assert {"gateway", "drivers", "firmware-sim", "mappings", "docker/entrypoint.sh"} <= copied


def test_dockerfile_healthcheck_asks_healthz_on_the_http_port() -> None:
    stage = dict(final_stage())
    env = dict(re.findall(r"(\w+)=(\S+)", stage["ENV"]))
    assert env["SALTGW_HTTP_PORT"] == "9108"
    # in a container every interface must be asked for (saltgw alone means 127.0.0.1)
    assert env["SALTGW_HTTP_HOST"] == "0.0.0.0"
    check = stage["HEALTHCHECK"]
    assert "CMD saltgw health" in check
    assert "http://127.0.0.1:${SALTGW_HTTP_PORT}/healthz" in check
    assert check.endswith("|| exit 1")  # docker knows 0 and 1 only
    assert stage["ENTRYPOINT"] == '["saltgw-entrypoint"]'
    copies = [arg for word, arg in final_stage() if word == "COPY"]
    assert any("docker/entrypoint.sh /usr/local/bin/saltgw-entrypoint" in c for c in copies)
    assert stage["CMD"] == '["run"]' and stage["STOPSIGNAL"] == "SIGTERM"


# -- compose -----------------------------------------------------------------------------------
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def in_image(path: str) -> Path:
    """The repository file an image path comes from (the Dockerfile copies mappings/)."""
    prefix = "/opt/saltgw/"
    assert path.startswith(prefix), path
    return ROOT / path.removeprefix(prefix)


def test_compose_file_parses_and_refers_to_existing_files() -> None:
    doc = compose()
    services = doc["services"]
    assert set(services) == {"mosquitto", "sim", "gateway"}
    for name in ("sim", "gateway"):
        build = services[name]["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).is_file()
    assert in_image(services["sim"]["command"][1]).is_file()
    gw = services["gateway"]
    assert gw["command"][0] == "run"  # the entrypoint's `run [OPTION...]`
    assert in_image(gw["environment"]["SALTGW_CONFIG"]).is_file()
    declared = set(doc["volumes"])
    for name in ("sim", "gateway"):
        for volume in services[name].get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared, volume


def test_compose_services_have_healthchecks_and_start_in_order() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        assert svc["healthcheck"]["test"][0] == "CMD", name
    gw = services["gateway"]
    assert gw["healthcheck"]["test"][1:] == ["saltgw", "health", "http://127.0.0.1:9108/healthz"]
    assert gw["depends_on"] == {
        "mosquitto": {"condition": "service_healthy"},
        "sim": {"condition": "service_healthy"},
    }
    assert gw["network_mode"] == "service:sim"
    # the gateway's /healthz, /metrics: published on the host's loopback only (issue 15)
    assert services["sim"]["ports"] == ["127.0.0.1:9108:9108"]
    assert gw["restart"] == "unless-stopped"
    # the simulator's check connects to the checkweigher simulator's port of the demo line
    line = yaml.safe_load(in_image(services["sim"]["command"][1]).read_text())
    port = next(s["port"] for s in line["simulators"] if s["id"] == "cw1-sim")
    assert f"('127.0.0.1', {port})" in services["sim"]["healthcheck"]["test"][-1]


# -- entrypoint --------------------------------------------------------------------------------
FAKE_SALTGW = """#!/bin/sh
# a stand-in for saltgw: says what it was asked, and which variables it got
if [ "$1" = validate ]; then
    echo "validate $*" >&2
    exit "${FAKE_VALIDATE_STATUS:-0}"
fi
echo "argv: $*"
env | grep -E '^(SALTGW_MQTT_PASSWORD|SALT_PLATFORM_TOKEN|PRESET|BAD)' | sort
"""


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "saltgw"
    fake.write_text(FAKE_SALTGW)
    fake.chmod(0o755)
    (tmp_path / "line.yaml").write_text("gateway: {}\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "saltgw_mqtt_password").write_text("s3cret word\n")
    (secrets / "SALT_PLATFORM_TOKEN").write_text("tok")
    (secrets / "preset").write_text("from the file")
    (secrets / "bad-name").write_text("x")
    (secrets / "9lives").write_text("x")
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SALTGW_CONFIG": str(tmp_path / "line.yaml"),
        "SALTGW_SECRETS_DIR": str(secrets),
        "PRESET": "from the environment",
    }


def entry(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=30
    )


def test_entrypoint_is_an_executable_posix_script() -> None:
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True, timeout=30)
    if shutil.which("dash"):
        subprocess.run(["dash", "-n", str(ENTRYPOINT)], check=True, timeout=30)


def test_entrypoint_runs_the_gateway_with_http_and_secrets(fake_env: dict[str, str]) -> None:
    proc = entry(fake_env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    config = fake_env["SALTGW_CONFIG"]
    assert lines[0] == (
        f"argv: --log-level info --log-format text run --http 0.0.0.0:9108 {config}"
    )
    assert lines[1:] == [
        "PRESET=from the environment",  # a variable already set wins over its file
        "SALTGW_MQTT_PASSWORD=s3cret word",  # the file's name, upper-cased; no newline
        "SALT_PLATFORM_TOKEN=tok",
    ]
    assert f"validate --quiet {config}" in proc.stderr


def test_entrypoint_passes_run_options_and_other_commands(fake_env: dict[str, str]) -> None:
    env = {
        **fake_env,
        "SALTGW_HTTP_HOST": "127.0.0.1",
        "SALTGW_HTTP_PORT": "9200",
        "SALTGW_LOG_FORMAT": "json",
    }
    proc = entry(env, "run", "--broker", "mqtt://mosquitto:1883")
    assert proc.stdout.splitlines()[0] == (
        "argv: --log-level info --log-format json run --http 127.0.0.1:9200 "
        f"--broker mqtt://mosquitto:1883 {env['SALTGW_CONFIG']}"
    )
    proc = entry(env, "sim", "/opt/saltgw/mappings/demo-line.yaml")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0] == "argv: sim /opt/saltgw/mappings/demo-line.yaml"
    assert "validate" not in proc.stderr  # only `run` checks the config first


def test_entrypoint_refuses_a_missing_or_invalid_config(fake_env: dict[str, str]) -> None:
    proc = entry({**fake_env, "SALTGW_CONFIG": "/nonexistent/line.yaml"})
    assert proc.returncode == 2
    assert "no config at /nonexistent/line.yaml" in proc.stderr
    assert "argv:" not in proc.stdout
    proc = entry({**fake_env, "FAKE_VALIDATE_STATUS": "1"})
    assert proc.returncode == 2 and "argv:" not in proc.stdout


def test_entrypoint_without_a_secrets_directory(fake_env: dict[str, str], tmp_path: Path) -> None:
    env = {**fake_env, "SALTGW_SECRETS_DIR": str(tmp_path / "none")}
    proc = entry(env)
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[1:] == ["PRESET=from the environment"]


# -- systemd -----------------------------------------------------------------------------------
def unit() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DOCKER / "saltgw.service")
    return parser["Service"]


def test_systemd_unit_restarts_keeps_state_and_serves_health() -> None:
    svc = unit()
    assert svc["Restart"] == "always"
    assert svc["StateDirectory"] == "saltgw"
    assert svc["WorkingDirectory"] == "/var/lib/saltgw"
    assert svc["ExecStart"].endswith("saltgw run --http 127.0.0.1:9108 /etc/saltgw/line.yaml")
    assert svc["ExecStartPre"].endswith("saltgw validate --quiet /etc/saltgw/line.yaml")
    assert svc["KillSignal"] == "SIGTERM"
    assert int(svc["TimeoutStopSec"]) >= 15  # the shutdown drain takes up to 10 s


def test_systemd_unit_is_hardened() -> None:
    svc = unit()
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictNamespaces": "yes",
        "SystemCallFilter": "@system-service",
        "DevicePolicy": "closed",
    }.items():
        assert svc[key] == value, key
    assert "dialout" in svc["SupplementaryGroups"]  # serial devices still reachable


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    text = (DOCKER / "saltgw.service").read_text().replace("/usr/local/bin/saltgw", "/bin/true")
    copy = tmp_path / "saltgw.service"
    copy.write_text(text)
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "warning"}
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    found = re.search(r"Overall exposure level for saltgw\.service: (\d+\.\d+)", proc.stdout)
    if proc.returncode != 0 and found is None:
        pytest.skip(f"systemd-analyze security --offline not supported: {proc.stderr[:200]}")
    assert found is not None, proc.stdout[-500:]
    assert float(found.group(1)) <= 2.5, proc.stdout[-2000:]
