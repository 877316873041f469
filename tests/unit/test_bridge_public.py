"""The public snapshot the bridge publishes for the resolver (QB/T 5279-2018 9, 11.4): a real
trace store, fed with contract events, → the writer → ``open_snapshot`` as the resolver reads it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

import gateway.bridge.public_publish as publish_mod
from gateway.bridge import service
from gateway.bridge.config import (
    BridgeSection,
    EnterpriseInfoSection,
    ProductInfoSection,
    PublicSnapshotSection,
)
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.public import SnapshotWriter, open_store
from gateway.bridge.public_apply import party_type
from gateway.bridge.retention import purge
from gateway.bridge.service import Bridge
from gateway.bridge.store import TraceStore
from gateway.cli import main
from gateway.metrics import _snapshot as _snapshot_metrics
from gateway.public_snapshot import SALES_KEYS, SCHEMA_VERSION, open_snapshot
from tests.support.bridge_env import bridge_config, wait
from tests.support.stores import StoreAt
from tests.support.trace_events import TZ, BatchPlan, LineEvents, batch_events, payload

BUILT = datetime(2026, 11, 22, 20, 0, 0, tzinfo=TZ)
WHOLESALER = (
    "某某盐业批发公司"  # batch_events ships the first pallet to it (customer_type wholesaler)
)
SHOP = "泰山路便民超市"  # a terminal customer: never published


class Clock:
    def __init__(self) -> None:
        self.now = BUILT

    def __call__(self) -> datetime:
        return self.now


def _cfg(tmp_path: Path, **public: Any) -> BridgeSection:
    return BridgeSection(
        store=tmp_path / "t.db",
        products=[
            ProductInfoSection(
                id="P400",
                name="加碘精制盐",
                net_content="400g",
                standard="GB/T 5461",
                category="加碘食盐",
                shelf_life_days=1095,
                tips="本品偶有结块时可放心食用",
            ),
        ],
        enterprise_info=EnterpriseInfoSection(
            name="某某盐业有限公司",
            address="某省某市某路某号",
            phone="0538-1234567",
            licence_no="SY-0001",
            credit_rating="AAA",
        ),
        public=PublicSnapshotSection(path=tmp_path / "pub" / "snapshot.db", **public),
    )


def _writer(cfg: BridgeSection, clock: Clock | None = None) -> SnapshotWriter:
    assert cfg.public is not None
    return SnapshotWriter(cfg.public, cfg, enterprise="8035", source="bridgeA",
                          clock=clock or Clock())  # fmt: skip


def _ingest(store: TraceStore, f: LineEvents, events: list[dict[str, Any]]) -> None:
    got = store.ingest([(f.topic(ev), payload(ev)) for ev in events])
    assert got.quarantined == 0, store.quarantined()


def _ship(f: LineEvents, code: str, level: str, customer: str, ctype: str | None) -> dict[str, Any]:
    data = {"order": f"SO-{code[-4:]}", "customer": customer, "customer_type": ctype,
            "code": code, "level": level, "children": [], "bags": 1}  # fmt: skip
    return f.make("ship.outbound", data, None, device="out1")


def _recall(f: LineEvents, code: str, level: str) -> dict[str, Any]:
    data = {"code": code, "level": level, "recall": "RC-2026-003", "party": "某超市", "bags": 1,
            "children": []}  # fmt: skip
    return f.make("recall.scan", data, None, device="rc1")


def _reject(f: LineEvents, code: str, batch: str) -> dict[str, Any]:
    return f.make("pack.reject", {"reason": "reject_chute", "code": code, "commissioned": True},
                  batch, "rej1")  # fmt: skip


def _codes(path: Path) -> dict[str, dict[str, Any]]:
    db = open_snapshot(path)
    try:
        db.row_factory = sqlite3.Row
        return {r["code"]: dict(r) for r in db.execute("SELECT * FROM codes")}
    finally:
        db.close()


def _line(tmp_path: Path, at: StoreAt | None = None) -> tuple[TraceStore, LineEvents, BatchPlan]:
    """Batch B1: 85 bags (8 full cases, 5 loose), 2 pallets of 4 cases; the last case gave back
    its first two bags (rework); the first pallet shipped to a wholesaler; batch.end with an
    inspection result. ``at``: the store on either engine (else a SQLite file)."""
    store = at() if at is not None else TraceStore(tmp_path / "t.db")
    f = LineEvents()
    plan = batch_events(f, "B1", 85)
    _ingest(store, f, plan.events)
    return store, f, plan


# -- states ------------------------------------------------------------------------------------
def test_code_states_follow_commissioning_rejects_outbound_and_recalls(
    tmp_path: Path, store_at: StoreAt
) -> None:
    store, f, plan = _line(tmp_path, store_at)
    cases = list(plan.cases)
    _first, second = list(plan.pallets)
    later = [
        _reject(f, plan.bags[84], "B1"),  # a loose bag rejected
        _recall(f, cases[1], "case"),  # a case of the shipped pallet recalled
        _ship(f, cases[1], "case", SHOP, "retailer"),  # the recalled case shipped again
        _ship(f, second, "pallet", SHOP, "retailer"),  # the second pallet, after the rework
        # bags taken out of a case after it shipped: they left in it all the same
        f.make(
            "pack.unpack",
            {"code": plan.pallets[second][0], "children": plan.cases[plan.pallets[second][0]][:3]},
            "B1",
        ),
    ]
    _ingest(store, f, later)
    cfg = _cfg(tmp_path)
    w = _writer(cfg)
    w.update(store.db)
    assert w.publish() == 85
    codes = _codes(tmp_path / "pub" / "snapshot.db")
    assert len(codes) == 85

    def state(code: str) -> str:
        return str(codes[code]["state"])

    loose = plan.bags[80:84]
    assert {state(c) for c in loose} == {"commissioned"}
    assert state(plan.bags[84]) == "withdrawn"
    for case in cases[:4]:  # the first pallet: shipped, but case 1 was recalled afterwards
        want = "recalled" if case == cases[1] else "shipped"
        assert {state(b) for b in plan.cases[case]} == {want}, case
    reworked = plan.unpacked[cases[-1]]  # out of the last case before its pallet shipped
    assert {state(b) for b in reworked} == {"commissioned"}
    in_second = [b for c in plan.pallets[second] for b in plan.cases[c] if b not in reworked]
    assert len(in_second) == 38 and {state(b) for b in in_second} == {"shipped"}
    bag = codes[plan.cases[cases[0]][0]]
    assert bag["batch"] == "B1" and bag["produced"] == "2026-11-22"
    assert bag["state_date"] == "2026-11-22"
    # the recalled case's bags: both outbound records kept, the recall not undone
    sales = json.loads(codes[plan.cases[cases[1]][0]]["producer_sales"])
    assert [s["party"] for s in sales] == [WHOLESALER, None]
    assert codes[loose[0]]["producer_sales"] is None
    assert all(c["wholesale_sales"] is None for c in codes.values())


def test_a_rejected_bag_leaves_its_case_before_the_case_ships(tmp_path: Path) -> None:
    store, f, plan = _line(tmp_path)
    second = list(plan.pallets)[1]
    case = plan.pallets[second][0]
    gone = plan.cases[case][3]
    _ingest(store, f, [_reject(f, gone, "B1"), _ship(f, second, "pallet", SHOP, None)])
    w = _writer(_cfg(tmp_path))
    w.update(store.db)
    w.publish()
    codes = _codes(tmp_path / "pub" / "snapshot.db")
    assert codes[gone]["state"] == "withdrawn" and codes[gone]["producer_sales"] is None
    assert codes[plan.cases[case][4]]["state"] == "shipped"


def test_a_recalled_bag_stays_recalled_and_a_withdrawn_one_withdrawn(tmp_path: Path) -> None:
    store, f, plan = _line(tmp_path)
    bag, other = plan.bags[80], plan.bags[81]  # loose bags
    _ingest(store, f, [_recall(f, bag, "bag"), _reject(f, other, "B1")])
    w = _writer(_cfg(tmp_path))
    w.update(store.db)
    _ingest(store, f, [_ship(f, bag, "bag", WHOLESALER, "批发企业"), _recall(f, other, "bag"),
                       _ship(f, other, "bag", SHOP, "终端客户")])  # fmt: skip
    w.update(store.db)
    w.publish()
    codes = _codes(tmp_path / "pub" / "snapshot.db")
    assert codes[bag]["state"] == "recalled"
    assert codes[other]["state"] == "withdrawn"
    assert json.loads(codes[bag]["producer_sales"]) == [
        {"date": "2026-11-22", "party_type": "批发企业", "party": WHOLESALER}
    ]


def test_a_destroyed_return_or_nonconforming_record_withdraws_its_codes(
    tmp_path: Path, store_at: StoreAt
) -> None:
    """9.1's "destroyed" codes: a return (退货处置) or a non-conforming record (不合格产品处置)
    whose disposition is destroy withdraws the codes it names and the bags inside them; one
    that keeps the product (restock) changes nothing."""
    store, f, plan = _line(tmp_path, store_at)
    case, kept_case = [c for c in plan.cases if c not in plan.unpacked][-2:]
    loose = plan.bags[82]

    def record(kind: str, rid: str, codes: list[str], disposition: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "record_id": rid, "codes": codes, "reason": "破损", "disposition": disposition,
            "by": "吴管", "at": "2026-12-05T10:00:00+08:00", "issuer": None, "source": "mqtt",
        }  # fmt: skip
        if kind == "return":
            data |= {"party": WHOLESALER, "batch": None}
        else:
            data |= {"batch": "B1"}
        return f.make(f"record.{kind}", data, data["batch"])

    _ingest(store, f, [
        record("return", "TH-1", [case], "destroy"),
        record("return", "TH-2", [kept_case], "restock"),
        record("nonconforming", "NC-1", [loose], "destroy"),
    ])  # fmt: skip
    w = _writer(_cfg(tmp_path))
    w.update(store.db)
    w.publish()
    codes = _codes(tmp_path / "pub" / "snapshot.db")
    assert {codes[b]["state"] for b in plan.cases[case]} == {"withdrawn"}
    assert {codes[b]["state"] for b in plan.cases[kept_case]} != {"withdrawn"}
    assert codes[loose]["state"] == "withdrawn"
    assert {codes[b]["state_date"] for b in [*plan.cases[case], loose]} == {"2026-12-05"}


# -- batches, products, enterprise ---------------------------------------------------------------
def test_batch_fields_and_the_inspection_result_only_once_released(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db")
    f = LineEvents()
    running = [
        f.make(
            "batch.start",
            {
                "batch": "B2",
                "product": "P400",
                "inspection": "合格，一级",
                "production_date": "2026-11-21",
            },
            "B2",
        ),
        f.make("pack.bag", {"code": "8035B200001"}, "B2", device="scan1"),
        f.make(
            "batch.start", {"batch": "B3", "product": "P-unknown", "shelf_life_days": 730}, "B3"
        ),
        f.make("pack.bag", {"code": "8035B300001"}, "B3", device="scan1"),
    ]
    _ingest(store, f, running)
    cfg = _cfg(tmp_path)
    w = _writer(cfg)
    w.update(store.db)
    w.publish()
    snap = open_snapshot(cfg.public.path)  # type: ignore[union-attr]
    rows = {r[0]: r[1:] for r in snap.execute(
        "SELECT batch, enterprise, product, production_date, shelf_life, inspection FROM batches"
    )}  # fmt: skip
    snap.close()
    assert rows["B2"] == ("8035", "P400", "2026-11-21", "1095 天", None)  # not ended: no result
    assert rows["B3"] == ("8035", "P-unknown", "2026-11-22", "730 天", None)

    def inspection_of(batch: str) -> str | None:
        w.update(store.db)
        w.publish()
        db = open_snapshot(cfg.public.path)  # type: ignore[union-attr]
        try:
            [(got,)] = db.execute("SELECT inspection FROM batches WHERE batch=?", (batch,))
        finally:
            db.close()
        return got  # type: ignore[no-any-return]

    # ended, and the batch event says 合格: without a release record (table 3 row 3) #23 stays
    # empty (issue 18: a batch not released is never shown as 合格)
    _ingest(store, f, [f.make("batch.end", {"batch": "B2"}, "B2")])
    assert inspection_of("B2") is None
    lab = {"record_id": "R-B2", "batch": "B2", "lot": None, "verdict": "pass", "grade": "优级"}
    _ingest(store, f, [f.make("record.inspection", lab, "B2")])
    assert inspection_of("B2") is None  # inspected, not yet released
    held = {"record_id": "REL-B2-1", "batch": "B2", "decision": "held", "reason": "复检"}
    _ingest(store, f, [f.make("record.release", held, "B2")])
    assert inspection_of("B2") is None
    ok = {"record_id": "REL-B2-2", "batch": "B2", "decision": "released", "reason": None}
    _ingest(store, f, [f.make("record.release", ok, "B2")])
    assert inspection_of("B2") == "合格，优级"  # the lab's result and grade, not the event's
    again = {"record_id": "REL-B2-3", "batch": "B2", "decision": "held", "reason": "投诉复查"}
    _ingest(store, f, [f.make("record.release", again, "B2")])
    assert inspection_of("B2") is None  # held again: taken back
    _ingest(store, f, [f.make("record.release", {**ok, "record_id": "REL-B2-4"}, "B2")])
    assert inspection_of("B2") == "合格，优级"
    # B3 released with no lab record and no inspection in its events: nothing to show
    _ingest(store, f, [f.make("record.release", {**ok, "record_id": "REL-B3", "batch": "B3"},
                              "B3")])  # fmt: skip
    assert inspection_of("B3") is None
    snap = open_snapshot(cfg.public.path)  # type: ignore[union-attr]
    product = snap.execute("SELECT name, net_content, standard, category, tips, origin "
                           "FROM products WHERE product='P400'").fetchone()  # fmt: skip
    assert product == (
        "加碘精制盐",
        "400g",
        "GB/T 5461",
        "加碘食盐",
        "本品偶有结块时可放心食用",
        None,
    )
    ent = snap.execute("SELECT name, address, phone, website, licence_no, credit_rating "
                       "FROM enterprises WHERE enterprise='8035'").fetchone()  # fmt: skip
    assert ent == ("某某盐业有限公司", "某省某市某路某号", "0538-1234567", None, "SY-0001", "AAA")
    meta = dict(snap.execute("SELECT key, value FROM meta").fetchall())
    snap.close()
    assert meta == {"schema_version": str(SCHEMA_VERSION), "built_at": "2026-11-22T20:00:00+08:00",
                    "source": "bridgeA", "codes": "2"}  # fmt: skip


# -- sales ---------------------------------------------------------------------------------------
def test_sales_name_only_wholesalers_and_other_enterprises_sales_are_wholesale(
    tmp_path: Path,
) -> None:
    store, f, plan = _line(tmp_path)
    a, b, c, d = plan.bags[80:84]
    _ingest(store, f, [_ship(f, a, "bag", SHOP, "retailer"), _ship(f, b, "bag", SHOP, None),
                       _ship(f, c, "bag", "某单位食堂", "单位用户")])  # fmt: skip
    w = LineEvents(enterprise="8036", gateway="gw-test-1", seq=f.seq, clock=f.clock)
    resold = [_ship(w, d, "bag", WHOLESALER, "wholesaler")]  # d: 8035's bag, sold by 8036
    _ingest(store, f, [_ship(f, d, "bag", "某某盐业批发公司", "批发企业"), *resold])
    writer = _writer(_cfg(tmp_path))
    writer.update(store.db)
    writer.publish()
    codes = _codes(tmp_path / "pub" / "snapshot.db")
    entries = {k: json.loads(codes[k]["producer_sales"]) for k in (a, b, c, d)}
    for sales in entries.values():
        assert all(tuple(s) == SALES_KEYS for s in sales)
    assert entries[a] == [{"date": "2026-11-22", "party_type": "终端客户", "party": None}]
    assert entries[b] == [{"date": "2026-11-22", "party_type": None, "party": None}]
    assert entries[c] == [{"date": "2026-11-22", "party_type": "终端客户", "party": None}]
    assert entries[d] == [{"date": "2026-11-22", "party_type": "批发企业", "party": WHOLESALER}]
    assert json.loads(codes[d]["wholesale_sales"]) == entries[d]
    assert codes[a]["wholesale_sales"] is None


def test_party_types_are_table_4s_words() -> None:
    assert party_type("Wholesaler") == "批发企业"
    assert party_type("生产企业") == "生产企业"
    assert party_type("零售商") == "终端客户"
    assert party_type(" 经销商 ") == "经销商"  # the record's own wording
    assert party_type(None) is None and party_type("  ") is None


# -- nothing internal ----------------------------------------------------------------------------
def test_no_internal_ids_customers_or_ccp_values_anywhere_in_the_snapshot(tmp_path: Path) -> None:
    store, f, plan = _line(tmp_path)
    cases = list(plan.cases)
    _ingest(store, f, [_reject(f, plan.bags[84], "B1"), _recall(f, cases[1], "case"),
                       _ship(f, list(plan.pallets)[1], "pallet", SHOP, "retailer")])  # fmt: skip
    w = _writer(_cfg(tmp_path))
    w.update(store.db)
    w.publish()
    path = tmp_path / "pub" / "snapshot.db"
    events = f.published
    secret = {ev["id"] for ev in events} | {ev["gateway"] for ev in events}
    secret |= {ev["site"] for ev in events} | {ev["line"] for ev in events}
    secret |= {ev["device"] for ev in events if ev["device"]}
    secret |= {ev["data"]["order"] for ev in events if ev["type"] == "ship.outbound"}
    secret |= {ev["data"]["recall"] for ev in events if ev["type"] == "recall.scan"}
    secret |= {SHOP, "某超市"}
    ccp = {ev["data"]["value"] for ev in events if ev["type"].startswith("ccp.")}
    ccp_values = {v for v in ccp if not isinstance(v, bool)}
    assert "gw-test-1" in secret and "scan1" in secret and 380.5 in ccp_values
    db = open_snapshot(path)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert sorted(tables) == ["batches", "codes", "enterprises", "meta", "products"]
    cells = 0
    for table in tables:
        for row in db.execute(f"SELECT * FROM {table}"):
            for v in row:
                cells += 1
                assert v not in secret, (table, v)
                assert not (isinstance(v, float) and v in ccp_values), (table, v)
                if isinstance(v, str):
                    for s in secret:
                        if len(s) > 4:  # long ids: not inside a text either (sales JSON)
                            assert s not in v, (table, v, s)
                    assert "380.5" not in v and '"order"' not in v
    db.close()
    assert cells > 85 * 7
    raw = path.read_bytes()
    assert raw[18:20] == b"\x01\x01"  # a rollback-journal file: no -wal for readers to find
    assert b"trace_store_rid" not in raw and b"CREATE TABLE writer" not in raw
    for s in secret:
        if len(s) > 4:
            assert s.encode() not in raw, s
    assert os.stat(path).st_mode & 0o777 == 0o644  # public information (table 6)


# -- publishing ----------------------------------------------------------------------------------
def test_a_reader_of_the_old_snapshot_keeps_it_and_a_failed_publish_leaves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, f, _plan = _line(tmp_path)
    clock = Clock()
    w = _writer(_cfg(tmp_path), clock)
    w.update(store.db)
    w.publish()
    path = tmp_path / "pub" / "snapshot.db"
    old = open_snapshot(path)
    _ingest(store, f, [f.make("pack.bag", {"code": "8035NEW00001"}, "B1", device="scan1")])
    w.update(store.db)
    clock.now = BUILT + timedelta(minutes=1)
    assert w.publish() == 86
    assert old.execute("SELECT COUNT(*) FROM codes").fetchone()[0] == 85
    assert (
        old.execute("SELECT value FROM meta WHERE key='built_at'")
        .fetchone()[0]
        .endswith("20:00:00+08:00")
    )
    new = open_snapshot(path)
    assert new.execute("SELECT value FROM meta WHERE key='codes'").fetchone()[0] == "86"
    new.close()
    old.close()

    # a publish that fails before the rename (as a crash there would) leaves the snapshot as it was
    _ingest(store, f, [f.make("pack.bag", {"code": "8035NEW00002"}, "B1", device="scan1")])
    w.update(store.db)

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish_mod.os, "replace", crash)
    with pytest.raises(OSError, match="No space left"):
        w.publish()
    monkeypatch.undo()
    assert len(_codes(path)) == 86 and w.dirty
    assert not list(path.parent.glob("*.tmp"))
    # a copy a killed publish left behind is removed when the writer starts again
    (path.parent / f".snapshot.db.{os.getpid() + 1}.tmp").write_bytes(b"half")
    assert list(path.parent.glob("*.tmp"))
    w.close()
    w = _writer(_cfg(tmp_path), clock)
    assert not list(path.parent.glob("*.tmp"))
    w.update(store.db)
    assert w.publish() == 87
    w.close()


def test_publish_only_after_a_change_and_at_most_every_interval(tmp_path: Path) -> None:
    store, f, plan = _line(tmp_path)
    w = _writer(_cfg(tmp_path, interval_secs=30))
    assert w.run_once(store.db, 100.0)  # first round: published
    assert not w.run_once(store.db, 200.0)  # nothing changed
    _ingest(store, f, [_recall(f, plan.bags[80], "bag")])
    assert w.run_once(store.db, 201.0)  # changed, and 101 s since the last publish
    _ingest(store, f, [_recall(f, plan.bags[81], "bag")])
    assert not w.run_once(store.db, 210.0)  # changed, but only 9 s since
    assert _codes(tmp_path / "pub" / "snapshot.db")[plan.bags[81]]["state"] == "commissioned"
    assert not w.run_once(store.db, 230.0) and w.dirty
    assert w.run_once(store.db, 231.0) and not w.dirty
    assert _codes(tmp_path / "pub" / "snapshot.db")[plan.bags[81]]["state"] == "recalled"


def test_a_backlog_is_not_published_half_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _f, _plan = _line(tmp_path)
    monkeypatch.setattr("gateway.bridge.public.CHUNK_EVENTS", 50)
    w = _writer(_cfg(tmp_path, interval_secs=1))
    rounds = 0
    while not w.run_once(store.db, float(rounds * 10)):
        rounds += 1
        assert w.behind and not (tmp_path / "pub" / "snapshot.db").exists()
        assert rounds < 20
    assert rounds >= 3 and not w.behind
    assert len(_codes(tmp_path / "pub" / "snapshot.db")) == 85


# -- incremental -----------------------------------------------------------------------------------
def test_each_round_reads_only_the_events_after_the_last_one_applied(tmp_path: Path) -> None:
    store, f, plan = _line(tmp_path)
    cfg = _cfg(tmp_path)
    w = _writer(cfg)
    top = store.db.execute("SELECT MAX(rid) FROM events").fetchone()[0]
    assert w.update(store.db) == top and w.watermark() == top
    assert w.update(store.db) == 0
    # rewrite an old record behind the writer's back: an incremental writer never sees it
    store.db.execute("UPDATE codes SET batch='FORGED' WHERE code=?", (plan.bags[0],))
    new_bag = f.make("pack.bag", {"code": "8035NEW00001"}, "B1", device="scan1")
    _ingest(store, f, [_recall(f, plan.bags[80], "bag"), new_bag])
    assert w.update(store.db) == 2 and w.watermark() == top + 2
    w.publish()
    codes = _codes(cfg.public.path)  # type: ignore[union-attr]
    assert codes[plan.bags[0]]["batch"] == "B1"
    assert codes[plan.bags[80]]["state"] == "recalled" and "8035NEW00001" in codes
    # a restart goes on from the mark kept in the working copy
    w.close()
    w = _writer(cfg)
    assert w.watermark() == top + 2 and w.update(store.db) == 0
    w.close()


def test_a_reader_connection_on_the_store_is_read_only(tmp_path: Path) -> None:
    _store, _f, _plan = _line(tmp_path)
    ro = open_store(tmp_path / "t.db")
    with pytest.raises(sqlite3.OperationalError):
        ro.execute("DELETE FROM codes")
    w = _writer(_cfg(tmp_path))
    w.update(ro)
    assert w.publish() == 85
    ro.close()
    with pytest.raises(FileNotFoundError):
        open_store(tmp_path / "nothing.db")


# -- retention -------------------------------------------------------------------------------------
def test_a_batch_purged_from_the_store_leaves_the_snapshot(tmp_path: Path) -> None:
    store, f, _plan = _line(tmp_path)
    other = batch_events(f, "B9", 12, with_end=False)
    _ingest(store, f, other.events)
    cfg = _cfg(tmp_path)
    w = _writer(cfg)
    assert w.run_once(store.db, 0.0) and w.stats.codes == 97
    store.db.execute("UPDATE batches SET production_date='2020-01-01' WHERE batch='B1'")
    DocumentBuilder(store.db, cfg, enterprise="8035", node="n1", tz=TZ).build_ready(force=True)
    store.db.execute("UPDATE documents SET state='acked'")  # as if the platform took them
    rep = purge(store.db, cfg, date(2026, 11, 23), key=store.chain_key)
    assert rep.batches == 1
    assert not w.run_once(store.db, 40.0) and not w.dirty  # purges are looked for every 60 s
    assert w.run_once(store.db, 61.0) and w.stats.codes == 12
    snap = open_snapshot(cfg.public.path)  # type: ignore[union-attr]
    assert [r[0] for r in snap.execute("SELECT batch FROM batches")] == ["B9"]
    assert {r[0] for r in snap.execute("SELECT DISTINCT batch FROM codes")} == {"B9"}
    snap.close()
    # a code outside any batch goes when retention purges it by its event's date
    loose = f.make("pack.bag", {"code": "8035LOOSE0001"}, None, device="scan1")
    _ingest(store, f, [loose])
    w.update(store.db)
    w.publish()
    assert "8035LOOSE0001" in _codes(cfg.public.path)  # type: ignore[union-attr]
    DocumentBuilder(store.db, cfg, enterprise="8035", node="n1", tz=TZ).build_ready(force=True)
    store.db.execute("UPDATE documents SET state='acked'")
    rep = purge(store.db, cfg, date(2031, 1, 1), key=store.chain_key)  # past 4 years: all
    assert rep.batches == 1 and store.counts()["codes"] == 0
    w.update(store.db)
    assert w.publish() == 0


# -- the bridge service ----------------------------------------------------------------------------
def test_the_bridge_thread_survives_a_missing_store_then_publishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "PUBLIC_TICK_SECS", 0.05)
    monkeypatch.setattr(service, "PUBLIC_BACKOFF_MAX_SECS", 0.1)
    snap = tmp_path / "pub" / "snapshot.db"
    cfg = bridge_config(tmp_path, 1, "pub", public={"path": str(snap), "interval_secs": 0.2})
    b = Bridge(cfg, host="127.0.0.1", port=1)
    b._spawn("bridge-public", b._run_public)
    stats = b.public_stats
    assert stats is not None
    try:
        wait(lambda: stats.failures >= 2, 10, "the writer failing on the missing store")
        assert b.alive() and not b.restarts  # retried inside the thread, never restarted
        assert not snap.exists()
        store, _f, _plan = _line(tmp_path)  # built beside, then moved where the bridge looks
        store.close()
        assert cfg.bridge is not None
        (tmp_path / "t.db").rename(cfg.bridge.store)
        wait(lambda: stats.publishes >= 1, 10, "the first publish")
        failures = stats.failures
        db = open_snapshot(snap)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        db.close()
        assert meta["source"] == "pub" and meta["codes"] == "85" and stats.codes == 85
        names = {m.name for m in _snapshot_metrics(stats)}
        metrics = ("codes", "age_seconds", "publishes", "failures")
        assert names == {f"saltgw_bridge_snapshot_{m}" for m in metrics}
        assert stats.failures == failures
    finally:
        b._stop.set()
        for t in b._threads:
            t.join(5)
    assert not any(t.is_alive() for t in b._threads)


# -- saltgw snapshot -------------------------------------------------------------------------------
def test_saltgw_snapshot_publishes_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, _f, _plan = _line(tmp_path)
    store.close()
    cfg = {
        "gateway": {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "bridge": {"store": str(tmp_path / "t.db"), "node_id": "plantA"},
    }
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["snapshot", str(path)]) == 2
    assert "no bridge.public section: give --out PATH" in capsys.readouterr().err
    out = tmp_path / "copy" / "public.db"
    assert main(["snapshot", str(path), "--out", str(out)]) == 0
    assert f"published {out}: 85 codes" in capsys.readouterr().out
    db = open_snapshot(out)
    assert db.execute("SELECT value FROM meta WHERE key='source'").fetchone()[0] == "plantA"
    db.close()
    cfg["bridge"]["store"] = str(tmp_path / "none.db")  # type: ignore[index]
    path.write_text(yaml.safe_dump(cfg))
    assert main(["snapshot", str(path), "--out", str(out)]) == 2
    assert "no trace store at" in capsys.readouterr().err
