"""Scenario 4 at the journal itself: writes fail (``EFBIG`` under a one-byte file size limit, in
a child process so that pytest's own files are not limited), then succeed again.

While writes fail: no append resolves (nothing is reported accepted), acks are kept, the stats
and ``last_seq`` stand still, :attr:`Journal.failing` says why and ``write_errors`` counts the
attempts. Once writes succeed: the waiting appends commit with the next seqs, the kept acks
delete their rows. Closed while writes fail: the waiting appends fail with ``JournalClosed`` and
nothing of them is on disk.
"""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.events import EventDraft, Origin
from gateway.journal import Journal, JournalClosed

ROOT = Path(__file__).parents[2]


def _draft(i: int) -> EventDraft:
    return EventDraft("ccp.net_content", datetime.now(UTC), {"i": i, "pad": "x" * 200})


def _limit(nbytes: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    soft = nbytes if hard == resource.RLIM_INFINITY else min(nbytes, hard)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def child(path: str) -> dict[str, Any]:
    """Runs in the child process; returns what it saw."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    seen: dict[str, Any] = {}
    j = Journal(Path(path), Origin("gw", "8035", "site", "L1")).open()
    for i in range(10):
        j.append([_draft(i)]).result(10)
    _limit(1)
    waiting = [j.append([_draft(100 + i)]) for i in range(5)]
    j.ack([1, 2, 3, 4, 5])
    time.sleep(1.5)
    seen["full"] = {
        "resolved": sum(f.done() for f in waiting),
        "failing": j.failing,
        "write_errors": j.stats.write_errors,
        "accepted": j.stats.accepted,
        "last_seq": j.stats.last_seq,
        "backlog": j.stats.backlog,
        "delivered": j.stats.delivered,
    }
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    seqs = [ev.seq for f in waiting for ev in f.result(10)]
    j.append([]).result(10)  # a barrier: the kept acks are committed too
    seen["back"] = {
        "seqs": seqs,
        "failing": j.failing,
        "backlog": j.stats.backlog,
        "delivered": j.stats.delivered,
    }
    _limit(1)
    lost = j.append([_draft(200)])
    time.sleep(0.8)
    j.close()
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    try:
        lost.result(5)
        seen["closed"] = "resolved"
    except JournalClosed:
        seen["closed"] = "JournalClosed"
    return seen


def test_journal_waits_out_a_full_disk(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    code = (
        "import json, tests.faults.test_journal_disk_full as t; "
        f"print(json.dumps(t.child({str(path)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    full = seen["full"]
    assert full["resolved"] == 0, seen  # nothing reported accepted
    assert full["failing"].startswith("cannot write: disk I/O error"), seen
    assert full["write_errors"] >= 2, seen  # retried
    assert (full["accepted"], full["last_seq"]) == (10, 10), seen
    assert (full["backlog"], full["delivered"]) == (10, 0), seen  # the acks did not count yet
    back = seen["back"]
    assert back["seqs"] == [11, 12, 13, 14, 15], seen
    assert back["failing"] is None, seen
    assert (back["backlog"], back["delivered"]) == (10, 5), seen
    assert seen["closed"] == "JournalClosed", seen
    db = sqlite3.connect(path)
    try:
        rows = [r[0] for r in db.execute("SELECT seq FROM events ORDER BY seq")]
        last = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    assert rows == list(range(6, 16)) and last == 15
    assert "disk I/O error" in done.stderr  # logged
