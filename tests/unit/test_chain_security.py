"""Issue 15, tamper evidence that holds: each way the unkeyed chain of main was defeated without
the key is now reported by ``saltgw verify`` (each test failed on main: verify said intact).

The attacker here can write the journal and the trace store but does not hold the chain key
(kept in an environment variable or an owner-only file, docs/security.md)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from drivers.secrets import SecretError
from gateway.bridge.config import BridgeSection
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.integrity import pruned_mac, row_body
from gateway.bridge.retention import purge
from gateway.bridge.store import TraceStore
from gateway.chain import GENESIS, chain_key, default_key_file, journal_body
from gateway.cli import main
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.verify import verify_journal, verify_store
from tests.support.trace_events import TZ, LineEvents, batch_events, payload

ORIGIN = Origin("gw-test", "8035", "daiyue", "L1")
T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
PURGE_DAY = date(2026, 11, 22) + timedelta(days=3000)  # past every retention span


def _journal(path: Path, n: int) -> None:
    with Journal(path, ORIGIN) as j:
        drafts = [EventDraft("ccp.net_content", T, {"value": 400 + i}) for i in range(n)]
        for i in range(0, n, 7):
            j.append(drafts[i : i + 7]).result(timeout=10)


def _sql(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for s in statements:
            db.execute(s)
    finally:
        db.close()


def _store(tmp: Path) -> tuple[Path, BridgeSection]:
    path = tmp / "bridge.db"
    store = TraceStore(path)
    f = LineEvents()
    for batch in ("B1", "B2"):
        plan = batch_events(f, batch, 24)
        for i in range(0, len(plan.events), 9):
            store.ingest([("t", payload(e)) for e in plan.events[i : i + 9]])
    store.close()
    return path, BridgeSection(store=path, codes_per_document=10)


def _sha256_rewrite_journal(path: Path) -> None:
    """Recompute every link and the head with plain SHA-256 after changing a payload: what
    defeated main's unkeyed chain."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE events SET payload=CAST('{\"forged\":1}' AS BLOB) WHERE seq=9")
    tip = GENESIS
    for seq, type_, body in db.execute("SELECT seq, type, payload FROM events ORDER BY seq"):
        prev, tip = tip, hashlib.sha256(tip + journal_body(seq, type_, bytes(body))).digest()
        db.execute("UPDATE events SET prev=?, chain=? WHERE seq=?", (prev, tip, seq))
    db.execute("UPDATE chain_head SET hash=?", (tip,))
    db.close()


# -- the findings ----------------------------------------------------------------------------------
def test_a_record_removed_with_its_links_copied_into_pruned_is_broken(tmp_path: Path) -> None:
    path, _ = _store(tmp_path)
    assert verify_store(path).ok
    db = sqlite3.connect(path, isolation_level=None)
    rid = db.execute("SELECT rid FROM events WHERE type='pack.bag' LIMIT 1 OFFSET 5").fetchone()[0]
    db.execute("INSERT INTO pruned(rid, prev, chain) SELECT rid, prev, chain FROM events "
               f"WHERE rid={rid}")  # fmt: skip
    for table in ("codes", "relations", "ccp", "outbound", "events"):
        db.execute(f"DELETE FROM {table} WHERE rid={rid}")
    db.close()
    rep = verify_store(path)
    assert rep.broken is not None and rep.broken.at == rid, rep.line()
    assert "without a retention seal" in rep.broken.reason


def test_links_set_to_null_and_the_head_deleted_are_broken(tmp_path: Path) -> None:
    j = tmp_path / "j.db"
    _journal(j, 20)
    _sql(j, "UPDATE events SET prev=NULL, chain=NULL", "DELETE FROM chain_head")
    rep = verify_journal(j)
    assert rep.broken is not None and rep.broken.at == 1, rep.line()
    assert "links were removed" in rep.broken.reason

    s, _ = _store(tmp_path)
    _sql(s, "UPDATE events SET prev=NULL, chain=NULL", "DELETE FROM meta WHERE key='chain_head'")
    rep = verify_store(s)
    assert rep.broken is not None and "links were removed" in rep.broken.reason, rep.line()


def test_everything_and_the_head_deleted_is_broken(tmp_path: Path) -> None:
    j = tmp_path / "j.db"
    _journal(j, 10)
    _sql(j, "DELETE FROM events", "DELETE FROM chain_head")
    rep = verify_journal(j)
    assert rep.broken is not None and "head is missing" in rep.broken.reason, rep.line()


def test_dropped_chain_columns_are_broken(tmp_path: Path) -> None:
    j = tmp_path / "j.db"
    _journal(j, 20)
    _sql(j, "ALTER TABLE events DROP COLUMN prev", "ALTER TABLE events DROP COLUMN chain")
    rep = verify_journal(j)
    assert rep.broken is not None and "chain columns were dropped" in rep.broken.reason

    s, _ = _store(tmp_path)
    _sql(s, "ALTER TABLE events DROP COLUMN prev", "ALTER TABLE events DROP COLUMN chain")
    rep = verify_store(s)
    assert rep.broken is not None and "chain columns were dropped" in rep.broken.reason


def test_a_full_rewrite_with_unkeyed_sha256_links_is_broken(tmp_path: Path) -> None:
    j = tmp_path / "j.db"
    _journal(j, 20)
    _sha256_rewrite_journal(j)
    rep = verify_journal(j)
    assert rep.broken is not None and rep.broken.at == 1, rep.line()
    assert "without the key" in rep.broken.reason

    s, _ = _store(tmp_path)
    db = sqlite3.connect(s, isolation_level=None)
    db.execute("UPDATE codes SET batch='B9' WHERE rid=(SELECT MIN(rid) FROM codes)")
    tip = GENESIS
    rid = 0
    for (rid,) in db.execute("SELECT rid FROM events ORDER BY rid").fetchall():
        body = row_body(db, rid)
        assert body is not None
        prev, tip = tip, hashlib.sha256(tip + body).digest()
        db.execute("UPDATE events SET prev=?, chain=? WHERE rid=?", (prev, tip, rid))
    db.execute("UPDATE meta SET value=? WHERE key='chain_head'", (f"{rid}:{tip.hex()}",))
    # and the marker moved past the end, as if every record were from before keyed chains
    db.execute("UPDATE meta SET value='hmac-sha256:999999:' || substr(value, -64) "
               "WHERE key='chain_alg'")  # fmt: skip
    db.close()
    rep = verify_store(s)
    assert rep.broken is not None and "marker does not verify" in rep.broken.reason, rep.line()


# -- retention: what verify holds a purge to ---------------------------------------------------
def test_a_retention_purge_verifies_and_a_forged_early_purge_does_not(tmp_path: Path) -> None:
    path, cfg = _store(tmp_path)
    store = TraceStore(path)
    DocumentBuilder(store.db, cfg, enterprise="8035", node="n1", tz=TZ).build_ready(force=True)
    store.db.execute("UPDATE documents SET state='acked'")  # as if the platform took them
    assert purge(store.db, cfg, PURGE_DAY, key=store.chain_key).batches == 2
    key = store.chain_key
    store.close()
    rep = verify_store(path)
    assert rep.ok, rep.line()
    # someone holding the key seals a purge on a day before the record's retention ended
    db = sqlite3.connect(path, isolation_level=None)
    rid, chain = db.execute("SELECT rid, chain FROM pruned ORDER BY rid LIMIT 1").fetchone()
    since, until, on = "2026-11-22", "2029-11-21", "2027-01-01"
    mac = pruned_mac(key, rid, bytes(chain), since, until, on)
    db.execute(
        "UPDATE pruned SET since=?, kept_until=?, pruned_on=?, mac=? WHERE rid=?",
        (since, until, on, mac, rid),
    )
    db.close()
    rep = verify_store(path)
    assert rep.broken is not None and rep.broken.at == rid
    assert "retention" in rep.broken.reason and "2029-11-21" in rep.broken.reason
    # without the key, the dates cannot be changed at all
    _sql(path, f"UPDATE pruned SET pruned_on='2031-01-01' WHERE rid={rid}")
    rep = verify_store(path)
    assert rep.broken is not None and "seal does not match" in rep.broken.reason


# -- the key ---------------------------------------------------------------------------------------
def test_the_generated_key_is_owner_only_and_a_loose_one_is_refused(tmp_path: Path) -> None:
    j = tmp_path / "j.db"
    _journal(j, 3)
    f = default_key_file(j)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert len(f.read_text().strip()) == 64
    f.chmod(0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        _journal(j, 1)


def test_a_journal_keyed_with_another_key_does_not_open(tmp_path: Path) -> None:
    j = tmp_path / "j.db"
    _journal(j, 3)
    with pytest.raises(SecretError, match="another key"):
        Journal(j, ORIGIN, chain_key=b"another key, 16+ chars").open()


def test_the_key_from_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALTGW_TEST_CHAIN_KEY", "k" * 32)
    key = chain_key(tmp_path / "j.db", "SALTGW_TEST_CHAIN_KEY")
    assert key == b"k" * 32 and not default_key_file(tmp_path / "j.db").exists()
    monkeypatch.setenv("SALTGW_TEST_CHAIN_KEY", "short")
    with pytest.raises(SecretError, match="at least 16"):
        chain_key(tmp_path / "j.db", "SALTGW_TEST_CHAIN_KEY")


def test_an_unkeyed_journal_is_keyed_from_the_next_row_and_verify_says_so(tmp_path: Path) -> None:
    """A journal chained by an older saltgw (plain SHA-256): its rows stay checkable, new rows
    are keyed, and verify reports how many links are unkeyed."""
    j = tmp_path / "j.db"
    db = sqlite3.connect(j, isolation_level=None)
    db.executescript(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, payload BLOB NOT "
        "NULL, accepted REAL NOT NULL, prev BLOB, chain BLOB);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "CREATE TABLE chain_head (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT "
        "NULL, hash BLOB NOT NULL);"
    )
    tip = GENESIS
    for seq in (1, 2, 3):
        prev, tip = tip, hashlib.sha256(tip + journal_body(seq, "a.b", b"{}")).digest()
        db.execute("INSERT INTO events VALUES (?, 'a.b', x'7b7d', 0, ?, ?)", (seq, prev, tip))
    db.execute("INSERT INTO meta VALUES ('last_seq', 3)")
    db.execute("INSERT INTO chain_head VALUES (1, 3, ?)", (tip,))
    db.close()
    _journal(j, 4)
    rep = verify_journal(j)
    assert rep.ok, rep.line()
    assert (rep.checked, rep.unkeyed, rep.keyed_from) == (7, 3, 4)
    assert "3 of them with unkeyed SHA-256 links" in rep.line()
    assert any("plain SHA-256" in n for n in rep.notes)


# -- the head and the anchor -------------------------------------------------------------------
def test_verify_prints_the_head_and_checks_an_anchor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    j = tmp_path / "j.db"
    _journal(j, 12)
    db = sqlite3.connect(j)
    seq, chain = db.execute("SELECT seq, hash FROM chain_head").fetchone()
    old = db.execute("SELECT chain FROM events WHERE seq=5").fetchone()[0]
    db.close()
    assert main(["verify", "--journal", str(j)]) == 0
    assert f"head: seq {seq} hash {bytes(chain).hex()}" in capsys.readouterr().out
    assert main(["verify", "--journal", str(j), "--anchor", f"5:{bytes(old).hex()}"]) == 0
    assert "matches the anchor" in capsys.readouterr().out
    assert main(["verify", "--journal", str(j), "--anchor", f"5:{'00' * 32}"]) == 1
    assert "does not match the anchor" in capsys.readouterr().out
    assert main(["verify", "--journal", str(j), "--anchor", f"{seq + 3}:{'00' * 32}"]) == 1
    assert "beyond the chain's head" in capsys.readouterr().out
    assert main(["verify", "--journal", str(j), "--anchor", "5:xyz"]) == 2
    assert main(["verify", "--journal", str(j), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["head"] == f"{seq}:{bytes(chain).hex()}" and out["alg"] == "hmac-sha256"


def test_verify_without_the_key_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    j = tmp_path / "j.db"
    _journal(j, 3)
    os.unlink(default_key_file(j))
    assert main(["verify", "--journal", str(j)]) == 2
    assert "none was found" in capsys.readouterr().err
