"""`saltgw resolver` where uvicorn is not installed: ``server: auto`` falls back to waitress,
which answers the same pages, and stops on SIGTERM with exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_resolver_cli import _get, _resolver_url
from tests.support.extras import start_blocked
from tests.support.procs import stop
from tests.support.snapshot import code_row, write_snapshot

pytestmark = pytest.mark.e2e


def test_without_uvicorn_waitress_serves(tmp_path: Path) -> None:
    write_snapshot(tmp_path / "snap.db", codes=[code_row("8035K7Q2M9X4TZ")])
    cfg = tmp_path / "resolver.yaml"
    cfg.write_text(
        f"resolver:\n  snapshot: {tmp_path / 'snap.db'}\n  query_log: {tmp_path / 'q.db'}\n"
    )
    log = tmp_path / "resolver.log"
    proc = start_blocked(
        tmp_path,
        "--log-level",
        "debug",
        "resolver",
        str(cfg),
        "--listen",
        "127.0.0.1:0",
        log=log,
        blocked=("uvicorn", "httptools", "uvloop"),
    )
    try:
        url = _resolver_url(log, proc)
        status, body = _get(url + "q/8035K7Q2M9X4TZ")
        assert status == 200 and b'data-verdict="genuine"' in body
    finally:
        assert stop(proc) == 0
    text = log.read_text()
    assert "Traceback" not in text and "gateway.resolver.uvserver" not in text
    assert "waitress" in text  # its own log lines: waitress served
