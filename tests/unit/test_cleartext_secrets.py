"""Issue 15, secrets in clear (docs/security.md, "Findings of issue 15"): a platform token over
http://, an MQTT password over mqtt://, an OPC UA identity over security policy None are config
errors (tests/unit/config_cases/secrets-in-clear), unless the connection opts out — then they
are warnings, at validate and at every start. Loopback hosts are exempt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config.cleartext import cleartext_warnings, is_loopback
from gateway.config.loader import ConfigError, read_config

ROOT = Path(__file__).parents[2]
CASE = Path(__file__).parent / "config_cases" / "secrets-in-clear" / "config.yaml"


def _opted_out(tmp: Path) -> Path:
    text = CASE.read_text()
    text = text.replace("  username: gw-1\n", "  username: gw-1\n  allow_cleartext_secrets: true\n")
    text = text.replace(
        "    security: {policy: None}\n",
        "    security: {policy: None}\n    allow_cleartext_secrets: true\n",
    )
    text = text.replace(
        "    token_env: PLATFORM_TOKEN\n",
        "    token_env: PLATFORM_TOKEN\n    allow_cleartext_secrets: true\n",
    )
    path = tmp / "isolated.yaml"
    path.write_text(text)
    return path


def test_secrets_in_clear_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        read_config(CASE)
    paths = [i.path for i in err.value.issues]
    assert paths == ["mqtt.url", "devices[0].security", "bridge.upload.url"]


def test_the_opt_out_turns_each_into_a_warning_at_validate_and_at_start(tmp_path: Path) -> None:
    path = _opted_out(tmp_path)
    cfg, warnings = read_config(path)
    assert [w.level for w in warnings] == ["warning"] * 3
    assert {w.path for w in warnings} == {"mqtt.url", "devices[0].security", "bridge.upload.url"}
    started = cleartext_warnings(cfg)  # what Gateway logs at every start
    assert len(started) == 3 and all(w.startswith("SECRET IN CLEAR") for w in started)
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert out.count(": warning: ") == 3 and f"{path}:3:8: warning: mqtt.url" in out


def test_loopback_and_encrypted_connections_are_exempt(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        'gateway: {id: gw-1, enterprise: "8035", site: daiyue, line: L1}\n'
        "mqtt: {url: 'mqtt://localhost:1883', username: gw}\n"
        "bridge:\n  upload: {type: http, url: 'http://[::1]:8080/up', token_env: T}\n"
    )
    cfg, warnings = read_config(path)
    assert warnings == [] and cleartext_warnings(cfg) == []
    path.write_text(
        'gateway: {id: gw-1, enterprise: "8035", site: daiyue, line: L1}\n'
        "mqtt: {url: 'mqtts://broker.plant:8883', username: gw}\n"
        "bridge:\n  upload: {type: http, url: 'https://platform.cn/up', token_env: T}\n"
    )
    assert read_config(path)[1] == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.8.7", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("10.0.0.5", False),
        ("128.0.0.1", False),
        ("localhost.evil.com", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback
