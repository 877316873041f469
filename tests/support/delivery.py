"""What a fault test checks after the fact: the journal on disk and what a MES received.

The contract (README, "Topics"): ``seq`` is gapless per gateway across restarts and a re-sent
event keeps its ``id``. So, after any fault, a subscriber must hold every seq from 1 to the
journal's ``last_seq``, each with exactly one id, and no id on two seqs.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def _query(journal: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def journal_last_seq(journal: Path) -> int:
    """The persisted ``last_seq`` (0 when the journal does not exist yet)."""
    if not journal.exists():
        return 0
    try:
        rows = _query(journal, "SELECT value FROM meta WHERE key='last_seq'")
    except sqlite3.DatabaseError:  # created this instant: no tables (or no header) yet
        return 0
    return int(rows[0][0]) if rows else 0


def journal_backlog(journal: Path) -> int:
    """Undelivered rows (delivered ones are kept a while for replay: journal.keep_delivered_*)."""
    return int(_query(journal, "SELECT COUNT(*) FROM events WHERE delivered IS NULL")[0][0])


def journal_integrity(journal: Path) -> str:
    return str(_query(journal, "PRAGMA integrity_check")[0][0])


def wait_until(pred: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    """Poll ``pred`` until true; fail after ``timeout`` seconds saying what was awaited. A
    predicate that fails an assertion (e.g. a scrape that timed out on a loaded machine, so the
    metric is missing) counts as not yet; the last such failure is in the final message."""
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while True:
        try:
            if pred():
                return
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(step)
    why = f" (last: {last})" if last is not None else ""
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{why}")


def missing_seqs(events: Iterable[dict[str, Any]], last_seq: int) -> list[int]:
    seen = {int(e["seq"]) for e in events}
    return sorted(set(range(1, last_seq + 1)) - seen)


def assert_gapless_unique(events: list[dict[str, Any]], last_seq: int) -> None:
    """Every seq 1..last_seq received, each with one id, no id on two seqs, nothing beyond."""
    by_seq: dict[int, str] = {}
    for ev in events:
        seq, eid = int(ev["seq"]), ev["id"]
        first = by_seq.setdefault(seq, eid)
        assert first == eid, f"seq {seq} delivered with two ids: {first} and {eid}"
    missing = sorted(set(range(1, last_seq + 1)) - set(by_seq))
    assert not missing, f"{len(missing)} of {last_seq} seqs never delivered: {missing[:40]}"
    beyond = sorted(s for s in by_seq if s > last_seq or s < 1)
    assert not beyond, f"seqs outside 1..{last_seq} delivered (never committed?): {beyond[:20]}"
    ids = list(by_seq.values())
    assert len(set(ids)) == len(ids), "one id delivered under two seqs"


def wait_delivered(
    events: Callable[[], list[dict[str, Any]]], last_seq: int, timeout: float
) -> list[dict[str, Any]]:
    """Wait until every seq 1..last_seq arrived; fail listing what is missing."""
    deadline = time.monotonic() + timeout
    while True:
        got = events()
        missing = missing_seqs(got, last_seq)
        if not missing:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(missing)} of {last_seq} seqs never delivered within {timeout:g} s: "
                f"{missing[:40]}"
            )
        time.sleep(0.1)
