"""Run ``saltgw`` commands as a user does, as subprocesses with bounded waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[2]


def saltgw(*args: str, log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with log.open("ab") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=cwd or ROOT,
            env=env,
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM and wait; SIGKILL if it does not stop in time (and fail loudly)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"process {proc.args} did not stop within {timeout}s") from None


def kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def announced_url(
    log: Path, proc: subprocess.Popen[bytes], prefix: str, timeout: float = 30
) -> str:
    """The URL a server command prints once listening (``resolver: http://…``, ``console:
    http://…``), read from its ``log``; fails when the process ends or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(f"{prefix}: http://"):
                return line.removeprefix(f"{prefix}: ")
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(f"no '{prefix}: URL' line in:\n{log.read_text()}")
