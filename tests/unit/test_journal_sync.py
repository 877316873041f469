"""The trace stores commit with synchronous=NORMAL; the journal fsyncs their WAL before each
commit that accepts events, so an accepted event never rests on a scan a power loss could take
back (gateway/tracedb.py). A failing fsync accepts nothing, and says so, until it works."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway import journal as journal_mod
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.tracedb import TraceDb

T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ORIGIN = Origin("gw", "8035", "s", "L1")
KEY = b"a test chain key, not secret"


def test_the_trace_wal_is_fsynced_before_events_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TraceDb(tmp_path / "trace.db")
    with store.transaction() as c:
        c.execute("CREATE TABLE seen (code TEXT)")
        c.execute("INSERT INTO seen VALUES ('8035ABC')")
    wal = tmp_path / "trace.db-wal"
    assert wal.exists() and store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    order: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        order.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(journal_mod.os, "fsync", fsync)
    j = Journal(tmp_path / "j.db", ORIGIN, chain_key=KEY)  # (no key file written: fsync patched)
    j.sync_before_commit(wal)
    j.sync_before_commit(tmp_path / "never-written.db-wal")  # absent: skipped
    with j:
        (ev,) = j.append([EventDraft("pack.bag", T, {"code": "8035ABC"})]).result(timeout=10)
        assert ev.seq == 1
        assert order == [str(wal)]
        j.ack([1])  # a commit without events syncs nothing
        j.append([]).result(timeout=10)
        assert order == [str(wal)]
    store.close()


def test_a_failing_fsync_accepts_nothing_until_it_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = tmp_path / "trace.db-wal"
    wal.write_bytes(b"x")
    broken = {"on": True}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if broken["on"]:
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(journal_mod.os, "fsync", fsync)
    monkeypatch.setattr(journal_mod, "RETRY_SECS", 0.05)
    j = Journal(tmp_path / "j.db", ORIGIN, chain_key=KEY)  # (no key file written: fsync patched)
    j.sync_before_commit(wal)
    with j:
        fut = j.append([EventDraft("pack.bag", T, {"code": "8035ABC"})])
        with pytest.raises(TimeoutError):
            fut.result(timeout=0.5)
        assert j.stats.accepted == 0 and j.failing is not None
        assert "fsync of a trace store" in j.failing
        broken["on"] = False
        (ev,) = fut.result(timeout=10)
        assert ev.seq == 1 and j.failing is None and j.stats.accepted == 1
