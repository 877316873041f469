"""Secrets only from the environment or owner-only files (drivers/secrets.py), and a loose
file stops `saltgw run` with the fix, before anything connects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from drivers.secrets import SecretError, read_secret_file, secret
from gateway.cli import main


def _file(tmp: Path, text: str, mode: int) -> Path:
    p = tmp / "s.txt"
    p.write_text(text)
    os.chmod(p, mode)
    return p


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_owner_only_files_are_read_with_one_newline_stripped(tmp_path: Path, mode: int) -> None:
    assert read_secret_file(_file(tmp_path, "pa ss\n", mode), "x") == "pa ss"
    assert read_secret_file(_file(tmp_path, "crlf\r\n", mode), "x") == "crlf"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666, 0o620])
def test_files_others_can_touch_are_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    p = _file(tmp_path, "s3cret", mode)
    with pytest.raises(SecretError) as exc:
        read_secret_file(p, "MQTT password")
    msg = str(exc.value)
    assert msg.startswith("MQTT password: ") and f"mode {mode:04o}" in msg
    assert f"chmod 600 {p}" in msg and "s3cret" not in msg


def test_missing_empty_and_not_regular(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="cannot read"):
        read_secret_file(tmp_path / "nope", "k")
    with pytest.raises(SecretError, match="is empty"):
        read_secret_file(_file(tmp_path, "\n", 0o600), "k")
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(SecretError, match="not a regular file"):
        read_secret_file(d, "k")


def test_environment_first_then_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = _file(tmp_path, "from-file", 0o600)
    monkeypatch.setenv("SALTGW_T_SECRET", "from-env")
    assert secret("SALTGW_T_SECRET", f, "k") == "from-env"
    monkeypatch.setenv("SALTGW_T_SECRET", "")
    assert secret("SALTGW_T_SECRET", f, "k") == "from-file"
    assert secret(None, None, "k") is None


def test_run_refuses_a_world_readable_password_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SALTGW_MQTT_PASSWORD", raising=False)
    pw = _file(tmp_path, "hunter2", 0o644)
    cfg = tmp_path / "line.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "gateway": {"id": "gw-1", "enterprise": "8035", "site": "s", "line": "L1"},
                "mqtt": {
                    "url": "mqtt://127.0.0.1:1",
                    "username": "gw",
                    "password_file": str(pw),
                },
                "journal": {"path": str(tmp_path / "j.db")},
            }
        )
    )
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "saltgw: error: MQTT password:" in err and "chmod 600" in err
    assert "hunter2" not in err
