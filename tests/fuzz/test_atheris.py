"""A short run of each atheris target (tests/fuzz/atheris_targets.py) when atheris is installed.

atheris is optional and not a CI dependency: without it these tests skip. A target's run is a
fixed number of inputs from a fixed seed, in a subprocess (libFuzzer owns the process and exits
on the first failure, leaving the input in the test's temporary folder).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.hypothesis_settings import SCALE

pytest.importorskip("atheris", reason="atheris is optional (pip install atheris)")

HARNESS = Path(__file__).with_name("atheris_targets.py")
ROOT = Path(__file__).resolve().parents[2]
RUNS = 1500 * SCALE


@pytest.mark.parametrize("target", ["framing", "codes", "modbus", "commands"])
def test_atheris_target_runs_clean(target: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            target,
            f"-runs={RUNS}",
            "-seed=1",
            "-max_len=4096",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60 * SCALE,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
