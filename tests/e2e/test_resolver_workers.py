"""`saltgw resolver` with ``workers: 2``: one printed port, two processes answering it, counts
shared between them through the query log, SIGTERM stopping both."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_resolver_cli import _get, _resolver_url
from tests.support.procs import saltgw, stop
from tests.support.snapshot import code_row, write_snapshot

pytestmark = pytest.mark.e2e

CODE = "8035K7Q2M9X4TZ"


def _children(pid: int, n: int, timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(kids) == n:
            return [int(k) for k in kids]
        time.sleep(0.05)
    raise AssertionError(f"process {pid} has not {n} workers")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _queries(url: str) -> int:
    status, body = _get(url + f"api/v1/codes/{CODE}")
    assert status == 200, body
    value: int = json.loads(body)["queries"]
    return value


def _stored(db: Path, n: int, timeout: float = 10) -> None:
    """Wait until ``n`` query records are committed (so no worker is mid-commit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            with sqlite3.connect(db) as con:
                try:
                    if con.execute("SELECT COUNT(*) FROM queries").fetchone()[0] >= n:
                        return
                except sqlite3.OperationalError:
                    pass
        time.sleep(0.05)
    raise AssertionError(f"{n} query records not written to {db}")


def test_two_workers_answer_share_counts_and_stop_on_sigterm(tmp_path: Path) -> None:
    write_snapshot(tmp_path / "snap.db", codes=[code_row(CODE)])
    cfg = tmp_path / "resolver.yaml"
    cfg.write_text(
        f"resolver:\n  snapshot: {tmp_path / 'snap.db'}\n  query_log: {tmp_path / 'q.db'}\n"
        "  workers: 2\n"
    )
    log = tmp_path / "resolver.log"
    proc = saltgw("resolver", str(cfg), "--listen", "127.0.0.1:0", log=log)
    workers: list[int] = []
    try:
        url = _resolver_url(log, proc)
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        assert log.read_text().count("resolver: http://") == 1
        workers = _children(proc.pid, 2)
        with urllib.request.urlopen(url + "healthz", timeout=5) as r:  # both have a snapshot
            assert r.status == 200
        a, b = workers
        # only worker a can accept: it answers, and counts
        os.kill(b, signal.SIGSTOP)
        try:
            assert [_queries(url) for _ in range(3)] == [1, 2, 3]
            _stored(tmp_path / "q.db", 3)
        finally:
            os.kill(b, signal.SIGCONT)
        # only worker b: it answers too, and sees a's three queries (shared query log)
        os.kill(a, signal.SIGSTOP)
        try:
            assert _queries(url) == 4
            _stored(tmp_path / "q.db", 4)
        finally:
            os.kill(a, signal.SIGCONT)
        assert _queries(url) == 5  # whichever answers now
    finally:
        assert stop(proc) == 0
    for pid in workers:
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), f"worker {pid} still running after SIGTERM"
    text = log.read_text()
    assert "Traceback" not in text and text.count("resolver: SIGTERM, stopping") >= 2
    with sqlite3.connect(tmp_path / "q.db") as con:
        assert con.execute("SELECT COUNT(*) FROM queries").fetchone()[0] == 5


def test_a_killed_worker_is_started_again(tmp_path: Path) -> None:
    write_snapshot(tmp_path / "snap.db", codes=[code_row(CODE)])
    cfg = tmp_path / "resolver.yaml"
    cfg.write_text(
        f"resolver:\n  snapshot: {tmp_path / 'snap.db'}\n  query_log: {tmp_path / 'q.db'}\n"
        "  workers: 2\n"
    )
    log = tmp_path / "resolver.log"
    proc = saltgw("resolver", str(cfg), "--listen", "127.0.0.1:0", log=log)
    try:
        url = _resolver_url(log, proc)
        first = _children(proc.pid, 2)
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        now = first
        while time.monotonic() < deadline:
            now = [
                int(k)
                for k in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            ]
            if len(now) == 2 and first[0] not in now:
                break
            time.sleep(0.05)
        assert len(now) == 2 and first[0] not in now and first[1] in now, now
        assert _queries(url) == 1
    finally:
        assert stop(proc) == 0
    assert "ended (signal SIGKILL); starting it again" in log.read_text()
