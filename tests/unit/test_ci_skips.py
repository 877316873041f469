"""In CI a skipped test fails the run unless it is on the optional list (ci_skips.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

CASES = """
import pytest

def test_runs():
    pass

def test_skips():
    pytest.skip("needs the foo library")
"""


def _pytest(tmp: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    (tmp / "test_cases.py").write_text(CASES)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
         "tests.support.ci_skips", "--rootdir", str(tmp), str(tmp)],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(("ci", "rc"), [(True, 1), (False, 0)])
def test_a_skip_fails_only_in_ci(tmp_path: Path, ci: bool, rc: int) -> None:
    proc = _pytest(tmp_path, ci)
    assert proc.returncode == rc, proc.stdout + proc.stderr
    named = "test_cases.py::test_skips: Skipped: needs the foo library" in proc.stdout
    assert named is ci, proc.stdout
