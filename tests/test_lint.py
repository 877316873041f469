"""ruff and mypy (strict) as part of the suite: a lint regression fails CI like a bug."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


def test_ruff() -> None:
    proc = subprocess.run(
        [_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict(tmp_path: Path) -> None:
    # firmware_sim lives in firmware-sim/: give mypy a path where the package has its name
    (tmp_path / "firmware_sim").symlink_to(ROOT / "firmware-sim")
    proc = subprocess.run(
        [_tool("mypy"), "-p", "gateway", "-p", "drivers", "-p", "firmware_sim"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"MYPYPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
