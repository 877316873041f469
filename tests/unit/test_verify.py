"""Tamper evidence: the journal and the trace store are hash-chained and `saltgw verify` names
the first broken link, whatever the edit (change, removal, insertion, replacement, documents)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from gateway.bridge.config import BridgeSection
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.retention import purge
from gateway.bridge.store import TraceStore
from gateway.chain import existing_chain_key, journal_body, link
from gateway.cli import main
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.verify import verify_journal, verify_store
from tests.support.trace_events import TZ, LineEvents, batch_events, payload

ORIGIN = Origin("gw-test", "8035", "daiyue", "L1")
T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _journal(path: Path, n: int, acked: int = 0) -> None:
    with Journal(path, ORIGIN) as j:
        drafts = [EventDraft("ccp.net_content", T, {"value": 400 + i}) for i in range(n)]
        for i in range(0, n, 7):  # several commits: links cross transactions
            j.append(drafts[i : i + 7]).result(timeout=10)
        if acked:
            j.ack(list(range(1, acked + 1)))


def _sql(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    for s in statements:
        db.execute(s)
    db.close()


def test_an_intact_journal_verifies_also_after_delivery_and_reopen(tmp_path: Path) -> None:
    p = tmp_path / "j.db"
    _journal(p, 30, acked=12)
    _journal(p, 5)  # a restart continues the chain from the stored head
    rep = verify_journal(p)
    assert rep.ok, rep.line()
    assert rep.checked == 23


def _rewrite_newest(p: Path) -> None:
    """Replace the newest row by one whose own link is consistent: only the head catches it."""
    db = sqlite3.connect(p, isolation_level=None)
    seq, type_, prev = db.execute(
        "SELECT seq, type, prev FROM events ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    forged = b'{"forged":true}'
    # even with the key (read from the generated file beside the journal) the head catches it
    chain = link(bytes(prev), journal_body(seq, type_, forged), existing_chain_key(p))
    db.execute("UPDATE events SET payload=?, chain=? WHERE seq=?", (forged, chain, seq))
    db.close()


JOURNAL_TAMPERING: list[tuple[str, Callable[[Path], None], int, str]] = [
    (
        "payload changed",
        lambda p: _sql(p, "UPDATE events SET payload=CAST('{}' AS BLOB) WHERE seq=17"),
        17,
        "changed after it was written",
    ),
    ("type changed", lambda p: _sql(p, "UPDATE events SET type='x.y' WHERE seq=20"), 20, "changed"),
    ("middle row removed", lambda p: _sql(p, "DELETE FROM events WHERE seq=15"), 15, "removed"),
    ("newest rows removed", lambda p: _sql(p, "DELETE FROM events WHERE seq>=28"), 28, "removed"),
    ("newest row rewritten", _rewrite_newest, 30, "does not match the chain's head"),
    (
        "row inserted after the head",
        lambda p: _sql(
            p,
            "INSERT INTO events(seq, type, payload, accepted, prev, chain) "
            "SELECT 31, type, payload, accepted, chain, chain FROM events WHERE seq=30",
        ),
        31,
        "changed",
    ),
]


@pytest.mark.parametrize(
    ("name", "tamper", "at", "reason"), JOURNAL_TAMPERING, ids=[t[0] for t in JOURNAL_TAMPERING]
)
def test_journal_tampering_is_reported_at_the_first_broken_link(
    tmp_path: Path, name: str, tamper: Callable[[Path], None], at: int, reason: str
) -> None:
    p = tmp_path / "j.db"
    _journal(p, 30, acked=10)
    assert verify_journal(p).ok
    tamper(p)
    rep = verify_journal(p)
    assert rep.broken is not None, name
    assert rep.broken.at == at, rep.line()
    assert reason in rep.broken.reason


def test_a_journal_from_before_the_chain_is_upgraded_and_chained_from_then_on(
    tmp_path: Path,
) -> None:
    p = tmp_path / "old.db"
    db = sqlite3.connect(p, isolation_level=None)
    db.executescript(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, "
        "payload BLOB NOT NULL, accepted REAL NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO events VALUES (1, 'a.b', x'7b7d', 0), (2, 'a.b', x'7b7d', 0);"
        "INSERT INTO meta VALUES ('last_seq', 2);"
    )
    db.close()
    _journal(p, 4)
    rep = verify_journal(p)
    assert rep.ok, rep.line()
    assert (rep.unchained, rep.checked) == (2, 4)
    _sql(p, "UPDATE events SET payload=x'00' WHERE seq=5")
    broken = verify_journal(p).broken
    assert broken is not None and broken.at == 5


# -- trace store ---------------------------------------------------------------------------------
def _store(tmp: Path) -> tuple[Path, BridgeSection]:
    path = tmp / "bridge.db"
    f = LineEvents()
    store = TraceStore(path)
    for batch in ("B1", "B2"):
        plan = batch_events(f, batch, 48)
        for i in range(0, len(plan.events), 9):
            store.ingest([("t", payload(e)) for e in plan.events[i : i + 9]])
    cfg = BridgeSection(store=path, codes_per_document=10)
    DocumentBuilder(store.db, cfg, enterprise="8035", node="n1", tz=TZ).build_ready(force=True)
    store.close()
    return path, cfg


def _rid(path: Path, sql: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


STORE_TAMPERING: list[tuple[str, str, str, str]] = [
    (
        "a code moved to another batch",
        "SELECT rid FROM codes ORDER BY rid LIMIT 1 OFFSET 5",
        "UPDATE codes SET batch='B9' WHERE rid={rid}",
        "changed after it was written",
    ),
    (
        "a CCP verdict flipped",
        "SELECT rid FROM ccp WHERE verdict='fail' LIMIT 1",
        "UPDATE ccp SET verdict='pass' WHERE rid={rid}",
        "changed",
    ),
    (
        "a bag taken out of its case record",
        "SELECT rid FROM relations WHERE level='case' LIMIT 1",
        "DELETE FROM relations WHERE rid={rid} AND pos=3",
        "changed",
    ),
    (
        "an event's time changed",
        "SELECT rid FROM events WHERE type='ship.outbound'",
        "UPDATE events SET ts='2020-01-01T00:00:00+08:00' WHERE rid={rid}",
        "changed",
    ),
    (
        "a record removed",
        "SELECT rid FROM events WHERE type='pack.bag' LIMIT 1 OFFSET 7",
        "DELETE FROM events WHERE rid={rid}",
        "removed, inserted or moved",
    ),
    (
        "the newest record removed",
        "SELECT MAX(rid) FROM events",
        "DELETE FROM events WHERE rid={rid}",
        "were removed",
    ),
]


@pytest.mark.parametrize(
    ("name", "find", "tamper", "reason"), STORE_TAMPERING, ids=[t[0] for t in STORE_TAMPERING]
)
def test_trace_store_tampering_is_reported_at_the_first_broken_link(
    tmp_path: Path, name: str, find: str, tamper: str, reason: str
) -> None:
    path, _ = _store(tmp_path)
    assert verify_store(path).ok
    rid = _rid(path, find)
    _sql(path, tamper.format(rid=rid))
    rep = verify_store(path)
    assert rep.broken is not None, name
    expected = rid + 1 if name == "a record removed" else rid
    assert rep.broken.at == expected, rep.line()
    assert reason in rep.broken.reason


def test_purged_records_keep_their_links_so_the_store_still_verifies(tmp_path: Path) -> None:
    path, cfg = _store(tmp_path)
    store = TraceStore(path)
    store.db.execute("UPDATE documents SET state='acked'")  # as if the platform took them
    rep = purge(store.db, cfg, date(2026, 11, 22) + timedelta(days=3000), key=store.chain_key)
    assert rep.batches == 2 and rep.events > 0
    plan = batch_events(LineEvents(seq=1000), "B3", 12)  # the line goes on after the purge
    store.ingest([("t", payload(e)) for e in plan.events])
    left = store.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    pruned = store.db.execute("SELECT COUNT(*) FROM pruned").fetchone()[0]
    store.close()
    assert pruned > 0 and left == len(plan.events)
    rep_v = verify_store(path)
    assert rep_v.ok, rep_v.line()
    assert rep_v.checked == left
    _sql(path, "DELETE FROM pruned WHERE rid=(SELECT MIN(rid) FROM pruned) + 3")
    assert not verify_store(path).ok


def test_an_outbox_document_changed_is_reported(tmp_path: Path) -> None:
    path, _ = _store(tmp_path)
    forged = "CAST(replace(CAST(body AS TEXT), '8035', '8036') AS BLOB)"
    _sql(path, f"UPDATE documents SET body={forged}")
    rep = verify_store(path)
    assert rep.broken is not None
    assert "outbox document" in rep.broken.reason


# -- command line --------------------------------------------------------------------------------
def test_verify_command_exit_status_and_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    j = tmp_path / "j.db"
    _journal(j, 12)
    s, _ = _store(tmp_path)
    assert main(["verify", "--journal", str(j), "--store", str(s)]) == 0
    out = capsys.readouterr().out
    assert "journal" in out and "intact (12 records checked)" in out
    _sql(j, "UPDATE events SET payload=x'00' WHERE seq=4")
    assert main(["verify", "--journal", str(j), "--store", str(s), "--json"]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["ok"] is False and lines[0]["broken_at"] == 4
    assert lines[1]["ok"] is True
    assert main(["verify", "--journal", str(tmp_path / "missing.db")]) == 2
    assert "no journal at" in capsys.readouterr().err
    assert main(["verify"]) == 2
