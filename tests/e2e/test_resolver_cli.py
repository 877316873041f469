"""`saltgw resolver` as a user runs it: the resolver line, answers, SIGTERM, CSV export."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.procs import ROOT, saltgw, stop
from tests.support.snapshot import code_row, write_snapshot

pytestmark = pytest.mark.e2e


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _resolver_url(log: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("resolver: http://"):
                return line.removeprefix("resolver: ")
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(f"no resolver line in:\n{log.read_text()}")


def test_serves_answers_stops_on_sigterm_and_exports(tmp_path: Path) -> None:
    write_snapshot(tmp_path / "snap.db", codes=[code_row("8035K7Q2M9X4TZ")])
    cfg = tmp_path / "resolver.yaml"
    cfg.write_text(
        f"resolver:\n  snapshot: {tmp_path / 'snap.db'}\n  query_log: {tmp_path / 'q.db'}\n"
    )
    log = tmp_path / "resolver.log"
    proc = saltgw("resolver", str(cfg), "--listen", "127.0.0.1:0", log=log)
    try:
        url = _resolver_url(log, proc)
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        status, body = _get(url + "q/8035K7Q2M9X4TZ")
        assert status == 200 and b'data-verdict="genuine"' in body
        status, body = _get(url + "api/v1/codes/8035ZZZZZZZZ")
        assert status == 404 and json.loads(body)["verdict"] == "unknown"
    finally:
        assert stop(proc) == 0
    assert "Traceback" not in log.read_text()
    out = tmp_path / "queries.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "resolver",
            str(cfg),
            "--export",
            "queries",
            "--output",
            str(out),
            "--since",
            "2000-01-01",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{out}: 2 queries"
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["code"], r["channel"], r["verdict"]) for r in rows] == [
        ("8035K7Q2M9X4TZ", "scan", "genuine"),
        ("8035ZZZZZZZZ", "api", "unknown"),
    ]


def test_bad_config_and_busy_port_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "r.yaml"
    cfg.write_text("resolver:\n  snapshot: s.db\n  reload_secs: soon\n")
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "resolver", str(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"{cfg}:3:16: error: resolver.reload_secs:")
    cfg.write_text(
        f"resolver:\n  snapshot: {tmp_path / 's.db'}\n  query_log: {tmp_path / 'q.db'}\n"
    )
    log = tmp_path / "first.log"
    first = saltgw("resolver", str(cfg), "--listen", "127.0.0.1:0", log=log)
    try:
        port = _resolver_url(log, first).rsplit(":", 1)[1].strip("/")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "resolver",
                str(cfg),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert done.returncode == 2 and "cannot listen" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        assert stop(first) == 0
