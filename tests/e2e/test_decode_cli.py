"""``saltgw decode IMAGE... [--json]`` as a user runs it (contract: one line per code)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera.decoder import zbar_available
from firmware_sim.qrframes import Distortion, make_frame
from tests.support.procs import ROOT
from tests.support.zbar_shim import env_without_zbar

pytestmark = pytest.mark.e2e

OURS = "https://trace.example.cn/q?c=8035K7Q2M9X4TZ"
FOREIGN = "https://trace.example.cn/q?c=8063K7Q2M9X4TZ"


def _decode(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = env or {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "decode", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    rng = random.Random(2)
    out = {}
    for name, text in (("ours", OURS), ("foreign", FOREIGN)):
        frame, _ = make_frame(text, rng, Distortion(angle_deg=20, module_px=6, noise=4))
        out[name] = tmp_path / f"{name}.png"
        cv2.imwrite(str(out[name]), frame)
    out["blank"] = tmp_path / "blank.jpg"
    cv2.imwrite(str(out["blank"]), np.full((720, 1280), 160, np.uint8))
    return out


def test_lines_per_contract(images: dict[str, Path]) -> None:
    proc = _decode(
        "--enterprise", "8035", str(images["ours"]), str(images["foreign"]), str(images["blank"])
    )
    assert proc.stdout.splitlines() == [
        f"{images['ours']}: 8035K7Q2M9X4TZ (valid)",
        f"{images['foreign']}: 8063K7Q2M9X4TZ (invalid: enterprise code 8063 is not this "
        "enterprise's (8035))",
        f"{images['blank']}: no code",
    ]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_json_and_the_demo_lines_rules(images: dict[str, Path]) -> None:
    demo = ROOT / "mappings" / "demo-line.yaml"
    proc = _decode("--json", "--config", str(demo), str(images["ours"]))
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert row == {
        "file": str(images["ours"]),
        "raw": OURS,
        "code": "8035K7Q2M9X4TZ",
        "valid": True,
        "reason": None,
        "decoder": "zbar" if zbar_available() else "opencv",
    }


def test_without_an_enterprise_any_producer_of_annex_a_is_valid(images: dict[str, Path]) -> None:
    proc = _decode(str(images["foreign"]))
    assert proc.stdout.strip() == f"{images['foreign']}: 8063K7Q2M9X4TZ (valid)"
    assert proc.returncode == 0


def test_unreadable_file_is_an_error_on_stderr(tmp_path: Path, images: dict[str, Path]) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("no image")
    proc = _decode(str(bad), str(tmp_path / "missing.png"), str(images["ours"]))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        # refused before decoding: its size cannot be checked (issue 15)
        f"{bad}: error: cannot read image (not a PNG, JPEG or BMP file (its dimensions cannot "
        "be checked before decoding))",
        f"{tmp_path / 'missing.png'}: error: cannot read image (no such file)",
    ]
    assert proc.stdout.splitlines() == [f"{images['ours']}: 8035K7Q2M9X4TZ (valid)"]


def test_without_zbar_opencv_reads_and_says_so_once(
    images: dict[str, Path], tmp_path: Path
) -> None:
    """A fresh Debian machine: pyzbar installed, libzbar0 not. No traceback; OpenCV reads."""
    env = env_without_zbar(tmp_path)
    proc = _decode(
        "--json", "--enterprise", "8035", str(images["ours"]), str(images["blank"]), env=env
    )
    assert "Traceback" not in proc.stderr and proc.returncode == 1, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows == [
        {
            "file": str(images["ours"]),
            "raw": OURS,
            "code": "8035K7Q2M9X4TZ",
            "valid": True,
            "reason": None,
            "decoder": "opencv",
        },
        {
            "file": str(images["blank"]),
            "raw": None,
            "code": None,
            "valid": False,
            "reason": "no code",
            "decoder": "opencv",
        },
    ]
    (warning,) = [line for line in proc.stderr.splitlines() if "ZBar" in line]
    assert "Unable to find zbar shared library" in warning and "apt install libzbar0" in warning
    plain = _decode("--enterprise", "8035", str(images["ours"]), env=env)
    assert plain.stdout.splitlines() == [f"{images['ours']}: 8035K7Q2M9X4TZ (valid)"]
    assert plain.returncode == 0 and "Traceback" not in plain.stderr
