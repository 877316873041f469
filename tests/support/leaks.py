"""Processes a test session started and left running, found and stopped at the session's end.

The suite starts many processes (brokers, simulators, ``saltgw`` commands, PostgreSQL and
RabbitMQ nodes, browsers); a test or fixture that is interrupted at the wrong moment can leave
one behind. A process left running keeps its ports and its CPU: CI runs the whole suite twice on
one machine (.ci/run), and a survivor of the first run can take a port the second run picked a
moment before. Every process the session starts inherits ``SALTGW_TEST_SESSION`` (a token of
this session) in its environment; at the end those still running are listed on the terminal
and added to test-artifacts/leaked-processes.txt, then killed. Processes started with an environment
of their own (``env={...}`` without it, ``su``) are not seen.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

MARK = "SALTGW_TEST_SESSION"
REPORT = Path(__file__).resolve().parents[2] / "test-artifacts" / "leaked-processes.txt"
# multiprocessing's helpers of the session's own process: they end when it does
OWN_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def pytest_configure(config: pytest.Config) -> None:
    os.environ[MARK] = uuid.uuid4().hex


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def marked_processes(token: str) -> dict[int, str]:
    """pid → command line of every other process whose environment holds ``MARK=token``."""
    needle = f"{MARK}={token}".encode()
    found: dict[int, str] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in env:
            cmd = _cmdline(int(entry.name))
            if not any(h in cmd for h in OWN_HELPERS):
                found[int(entry.name)] = cmd
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    token = os.environ.get(MARK)
    if not token:
        return
    left = marked_processes(token)
    if not left:
        return
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    lines = [f"{pid} {cmd}" for pid, cmd in sorted(left.items())]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a") as f:  # one block per session (CI runs the suite twice)
        f.write(f"# session {token} (pytest pid {os.getpid()})\n" + "\n".join(lines) + "\n")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"leaked processes ({len(left)}, killed; {REPORT.name}): " + "; ".join(lines)[:2000]
        )
