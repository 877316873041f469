"""The trace store's canonical record bodies read by range (integrity.row_bodies), on both
engines: sealing a group and ``saltgw verify`` read a range in one query per table instead of
five queries per record (a PostgreSQL store ingested ~11 statements per event,
docs/scaling.md). The bodies must stay byte for byte what the one-record reads gave, or every
store sealed before would stop verifying; verify's pages must give the whole walk's verdict."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import gateway.verify
from gateway.bridge.db import Db
from gateway.bridge.integrity import row_bodies
from gateway.verify import verify_store
from tests.support.stores import KEY, StoreAt
from tests.support.trace_events import LineEvents, batch_events, payload

# the record body as saltgw 2026-12 read it, one record at a time (five queries a record)
_EVENT_COLUMNS = (
    "rid, id, type, ts, gateway, seq, enterprise, site, line, device, batch, received, up, "
    "weight, note, payload"
)
_TYPED = {
    "codes": "code, enterprise, batch, ts",
    "relations": "pos, parent, child, level, action, ts",
    "ccp": "type, ts, device, batch, value, flag, unit, lo, hi, verdict",
    "outbound": "pos, order_no, ts, customer, customer_type, code",
}


def _plain(v: object) -> object:
    return v.hex() if isinstance(v, bytes) else v


def _one_by_one(db: Db, rid: int) -> bytes:
    row = db.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE rid=?", (rid,)).fetchone()
    parts: list[object] = [[_plain(v) for v in row]]
    for table, cols in _TYPED.items():
        order = " ORDER BY pos" if "pos" in cols else ""
        rows = db.execute(f"SELECT {cols} FROM {table} WHERE rid=?{order}", (rid,)).fetchall()
        parts.append([[_plain(v) for v in r] for r in rows])
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()


def _filled(store_at: StoreAt) -> None:
    store = store_at()
    f = LineEvents()
    for batch in ("B1", "B2"):
        plan = batch_events(f, batch, 80)  # two pallets: one shipped (outbound rows)
        for i in range(0, len(plan.events), 9):
            store.ingest([(f.topic(e), payload(e)) for e in plan.events[i : i + 9]])
    store.close()


def test_bodies_read_by_range_are_the_ones_read_one_by_one(store_at: StoreAt) -> None:
    _filled(store_at)
    store = store_at()
    try:
        rids = [int(r[0]) for r in store.db.execute("SELECT rid FROM events ORDER BY rid")]
        types = {r[0] for r in store.db.execute("SELECT type FROM events")}
        assert {"pack.bag", "pack.case", "ccp.net_content", "ship.outbound"} <= types
        whole = row_bodies(store.db, rids[0], rids[-1])
        assert sorted(whole) == rids
        for rid in rids:
            assert whole[rid] == _one_by_one(store.db, rid), rid
        middle = row_bodies(store.db, rids[10], rids[20])  # a range inside: only its records
        assert sorted(middle) == rids[10:21]
    finally:
        store.close()
    rep = verify_store(store_at.location, store_at.key)
    assert rep.ok, rep.line()


def _verdicts(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    got = []
    for page in (1000, 7, 2):
        monkeypatch.setattr(gateway.verify, "VERIFY_PAGE", page)
        got.append(verify_store(path, KEY).line())
    return got


def test_verify_in_pages_gives_the_whole_walks_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.db"
    store_at = StoreAt("sqlite", path, tmp_path / "store.chain-key")
    _filled(store_at)
    whole, by7, by2 = _verdicts(path, monkeypatch)
    assert whole == by7 == by2 and "intact" in whole, (whole, by7, by2)

    db = sqlite3.connect(path, isolation_level=None)
    rids = [r[0] for r in db.execute("SELECT rid FROM events ORDER BY rid")]
    # a record kept in events and also copied into pruned: the same rid twice, on a page edge
    db.execute(f"INSERT INTO pruned(rid, prev, chain) SELECT rid, prev, chain FROM events "
               f"WHERE rid={rids[13]}")  # fmt: skip
    whole, by7, by2 = _verdicts(path, monkeypatch)
    assert whole == by7 == by2 and "BROKEN" in whole, (whole, by7, by2)
    db.execute(f"DELETE FROM pruned WHERE rid={rids[13]}")
    # a payload changed deep in the store, past several pages
    db.execute(f"UPDATE events SET weight=weight+1 WHERE rid={rids[-5]}")
    whole, by7, by2 = _verdicts(path, monkeypatch)
    assert whole == by7 == by2 and str(rids[-5]) in whole, (whole, by7, by2)
    db.close()
