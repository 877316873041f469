"""Issue 15, the access log of trace queries (docs/security.md, "Findings of issue 15"): who
comes from the OS, not the environment; the row is committed before the answer is printed; rows
are hash-chained and ``saltgw verify`` finds an edited one. ``saltgw`` runs in a subprocess, as
a user runs it."""

from __future__ import annotations

import os
import pwd
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.bridge.store import TraceStore
from gateway.chain import default_key_file
from gateway.verify import verify_access_log
from tests.support.trace_events import LineEvents, batch_events, payload

ROOT = Path(__file__).parents[2]
BATCH = "20261122-L1-01"
BAGS = 600  # the batch's answer is far larger than a pipe's buffer


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("access")
    path = tmp / "bridge.db"
    plan = batch_events(LineEvents(), BATCH, BAGS, per_case=20, per_pallet=5)
    s = TraceStore(path)
    s.ingest([("t", payload(e)) for e in plan.events])
    s.close()
    return path


def _copy(store: Path, tmp: Path) -> Path:
    out = tmp / "bridge.db"
    src = sqlite3.connect(store)
    dst = sqlite3.connect(out)
    src.backup(dst)
    src.close()
    dst.close()
    key = default_key_file(store)  # the store's chain key travels with it
    default_key_file(out).write_bytes(key.read_bytes())
    default_key_file(out).chmod(0o600)
    return out


def _env(**more: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **more}


def _saltgw(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(**more),
    )


def _rows(db: Path) -> list[tuple[int, str, str, str | None, str]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT id, user, query, subject, outcome FROM access_log").fetchall()


def test_the_user_comes_from_the_os_not_from_user_or_sudo_user(store: Path, tmp_path: Path) -> None:
    """Finding: a row said ``alice (sudo by nobody-really)`` because $USER/$SUDO_USER said so."""
    db = _copy(store, tmp_path)
    proc = _saltgw(
        "trace", "--batch", BATCH, "--store", str(db),
        USER="alice", LOGNAME="alice", SUDO_USER="nobody-really",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (row,) = _rows(db)
    me = pwd.getpwuid(os.getuid()).pw_name
    assert row[1].startswith(f"{me} (uid {os.getuid()})"), row
    if me != "alice":
        assert "alice" not in row[1]
    assert "nobody-really" not in row[1]


def test_a_row_is_written_even_when_the_reader_closes_the_pipe_early(
    store: Path, tmp_path: Path
) -> None:
    """Finding: ``saltgw trace --batch … | head`` left no row (written after the answer)."""
    db = _copy(store, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "trace", "--batch", BATCH, "--store", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)  # `head -c 10`: read a little, then go away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err, err
    assert [(q, s, o) for _, _, q, s, o in _rows(db)] == [("batch", BATCH, "found")]


def test_a_tampered_access_log_row_is_found_by_verify(store: Path, tmp_path: Path) -> None:
    """Finding: the access log was not chained; an edited row went unnoticed."""
    db = _copy(store, tmp_path)
    for code in ("8035NOPE-1", "8035NOPE-2", "8035NOPE-3"):
        _saltgw("trace", code, "--store", str(db))
    ok = _saltgw("verify", "--store", str(db))
    assert ok.returncode == 0 and "access log" in ok.stdout and "intact (3 records" in ok.stdout
    with sqlite3.connect(db) as c:
        c.execute("UPDATE access_log SET user='someone-else' WHERE id=2")
    bad = _saltgw("verify", "--store", str(db))
    assert bad.returncode == 1, bad.stdout
    assert "access log" in bad.stdout and "BROKEN at row id 2" in bad.stdout, bad.stdout
    assert "changed after it was written" in bad.stdout


def test_removing_the_newest_access_row_is_found(store: Path, tmp_path: Path) -> None:
    db = _copy(store, tmp_path)
    for code in ("8035NOPE-1", "8035NOPE-2"):
        _saltgw("trace", code, "--store", str(db))
    with sqlite3.connect(db) as c:
        c.execute("DELETE FROM access_log WHERE id=2")
    rep = verify_access_log(db)
    assert not rep.ok and rep.broken is not None and "removed" in rep.broken.reason


def test_a_store_written_before_the_chain_verifies_as_unchecked(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    TraceStore(db).close()
    with sqlite3.connect(db) as c:
        c.execute(
            "INSERT INTO access_log(at, user, host, pid, query, subject, outcome) "
            "VALUES (1, 'old', 'h', 1, 'code', 'X', 'found')"
        )
    rep = verify_access_log(db)
    assert rep.ok and rep.unchained == 1


def test_the_config_of_a_store_path_is_not_needed(tmp_path: Path) -> None:
    """``--config`` works as well as ``--store`` (the access row is written either way)."""
    db = tmp_path / "var" / "bridge.db"
    db.parent.mkdir()
    TraceStore(db).close()
    cfg = tmp_path / "line.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "gateway": {"id": "gw-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
                "bridge": {"store": str(db)},
            }
        )
    )
    assert _saltgw("trace", "8035NOPE", "--config", str(cfg)).returncode == 1
    assert [(q, o) for _, _, q, _, o in _rows(db)] == [("code", "not found")]
