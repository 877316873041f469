"""The trace store's ingest: bad payloads are quarantined with a clear reason, repeats are
dropped by id, relations and unpacking are kept as the events say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.bridge.schema import QUARANTINE_PAYLOAD_BYTES
from gateway.bridge.store import TraceStore
from gateway.bridge.trace import container_of
from tests.support.stores import StoreAt
from tests.support.trace_events import LineEvents, batch_events, payload


def _ev(**over: Any) -> dict[str, Any]:
    base = LineEvents().make("pack.bag", {"code": "8035AAAA0001"}, "B1")
    base.update(over)
    return base


def _bad(etype: str, data: dict[str, Any], batch: str | None = "B1", **drop: bool) -> bytes:
    """A valid ``etype`` event (completed from its schema's example), then ``data`` put over
    its data and the keys named in ``drop`` taken out of it."""
    ev = LineEvents().make(etype, {}, batch)
    ev["data"].update(data)
    for key in drop:
        ev["data"].pop(key, None)
    return json.dumps(ev).encode()


CHILDREN = ["8035K7M2Q9XW4T", "8035P3D8L1VZ6N"]
REJECT = {"value": 380.0, "unit": "g", "count": 3}  # a checkweigher's reject

# (payload, kind, a part of the reason)
BAD: list[tuple[bytes, str, str]] = [
    (b"", "not_json", "not JSON"),
    (b"{", "not_json", "not JSON"),
    (b"\xff\xfe", "not_json", "not JSON"),
    (b"[" * 5000, "too_deep", "nested 5000 deep (at most 32)"),
    (b'{"a":' * 40 + b"1" + b"}" * 40, "too_deep", "nested 40 deep"),
    (b'"' + b"x" * (1024 * 1024) + b'"', "too_large", "over the limit of 1048576"),
    (b"[]", "schema", "(event): [] is not of type 'object'"),
    (b"null", "schema", "(event): None is not of type 'object'"),
    (json.dumps(_ev(id="")).encode(), "schema", "id: '' does not match"),
    (json.dumps(_ev(type="packbag")).encode(), "schema", "type: 'packbag' does not match"),
    (json.dumps(_ev(ts="2026-11-22 08:00:00")).encode(), "schema", "ts: '2026-11-22 08:00:00'"),
    (json.dumps(_ev(ts="2026-11-22T08:00:00")).encode(), "schema", "ts: '2026-11-22T08:00:00'"),
    (json.dumps(_ev(ts="2026-13-45T08:00:00+08:00")).encode(), "content", "not a valid time"),
    (json.dumps(_ev(seq=0)).encode(), "schema", "seq: 0 is out of range (minimum 1)"),
    (json.dumps(_ev(seq=True)).encode(), "schema", "seq: True is not of type 'integer'"),
    (json.dumps(_ev(data=[1])).encode(), "schema", "data: [1] is not of type 'object'"),
    (json.dumps(_ev(enterprise=None)).encode(), "schema", "enterprise: None is not of type"),
    (_bad("pack.bag", {"code": ""}), "schema", "pack.bag: data.code: '' does not match"),
    (_bad("pack.bag", {"code": "8035 AB"}), "schema", "data.code: '8035 AB' does not match"),
    (_bad("pack.bag", {}, sku=True), "schema", "data: 'sku' is a required property"),
    (_bad("pack.bag", {"sku": "s\u0007"}), "content", "XML cannot carry"),
    (_bad("pack.case", {"children": []}), "schema", "data.children: has 0 items"),
    (
        _bad("pack.case", {"children": [CHILDREN[0], CHILDREN[0]]}),
        "schema",
        "data.children: has non-unique elements",
    ),
    (
        _bad("pack.pallet", {"code": CHILDREN[0], "children": CHILDREN}),
        "content",
        "holds the parent code",
    ),
    (_bad("ship.outbound", {}, customer=True), "schema", "'customer' is a required property"),
    (_bad("ccp.net_content", {"value": "400"}), "schema", "data.value: '400' is not of type"),
    (_bad("ccp.iodine", {"limits": {"lo": "x", "hi": None}}), "schema", "data.limits.lo: 'x'"),
    (_bad("ccp.sieve", {"verdict": "ok"}), "schema", "data.verdict: 'ok' is not one of"),
    (_bad("batch.start", {}, batch=None), "schema", "batch: None is not of type 'string'"),
    # records uploaded since issue 13 (gateway/bridge/line_records.py)
    (_bad("feed.material", {}, material=True), "schema", "'material' is a required property"),
    (_bad("feed.material", {"quantity": 0}), "schema", "data.quantity: 0 is out of range"),
    (_bad("feed.material", {"operator": ["li"]}), "schema", "data.operator: ['li'] is not"),
    (_bad("pack.reject", {}, reason=True), "schema", "data: 'reason' is a required property"),
    (_bad("pack.reject", REJECT | {"case": "8035C1"}, code=True), "content", "case names a case"),
    (_bad("pack.reject", REJECT | {"code": "8035 B"}), "schema", "data.code: '8035 B' does not"),
    (_bad("pack.reject", REJECT | {"count": -1}), "schema", "data.count: -1 is out of range"),
    (_bad("ship.inbound", {}, code=True), "schema", "data: 'code' is a required property"),
    (_bad("recall.scan", {"level": "box"}), "schema", "data.level: 'box' is not one of"),
    (_bad("recall.scan", {"recall": ""}), "schema", "data.recall: '' is too short"),
    (
        _bad("batch.start", {"person_in_charge": 7}),
        "content",
        "person_in_charge must be a non-empty",
    ),
    (_bad("batch.start", {"production_date": "22/11/2026"}), "content", "is not YYYY-MM-DD"),
]


@pytest.mark.parametrize(("raw", "kind", "reason"), BAD, ids=[r for _, _, r in BAD])
def test_bad_payloads_are_quarantined_with_their_reason(
    tmp_path: Path, raw: bytes, kind: str, reason: str
) -> None:
    store = TraceStore(tmp_path / "t.db")
    got = store.ingest([("salt/v1/x/event/pack/bag", raw)])
    assert (got.accepted, got.quarantined) == (0, 1)
    assert got.by_kind[kind] == 1 and store.stats.by_kind[kind] == 1
    [(topic, why, kept)] = store.quarantined()
    assert reason in why, why
    assert kept == raw[:QUARANTINE_PAYLOAD_BYTES] and topic == "salt/v1/x/event/pack/bag"
    [(k, size)] = store.db.execute("SELECT kind, size FROM quarantine").fetchall()
    assert (k, size) == (kind, len(raw))


def test_a_type_without_a_schema_is_kept_with_a_note_not_uploaded(store_at: StoreAt) -> None:
    ev = LineEvents().make("line.future_kind", {"anything": 1}, None)
    store = store_at()
    got = store.ingest([("t", payload(ev))])
    assert (got.accepted, got.quarantined, got.conflicts) == (1, 0, 0)
    [(up, note)] = store.db.execute("SELECT up, note FROM events").fetchall()
    assert up == 0 and "no schema for event type 'line.future_kind'" in note


def test_a_message_the_bridge_fails_on_is_quarantined_and_the_others_kept(
    store_at: StoreAt,
) -> None:
    """A seq the store cannot hold passes the schema (no maximum) and makes the insert raise
    (SQLite: OverflowError; PostgreSQL: bigint out of range, a DataError): the group is stored
    again one by one, that message quarantined."""
    f = LineEvents()
    good = [f.make("pack.bag", {"code": f"8035OVF{i}"}, "B1") for i in range(3)]
    huge = f.make("pack.bag", {"code": "8035OVFX"}, "B1")
    huge["seq"] = 2**70
    store = store_at()
    msgs = [("t", payload(good[0])), ("t", payload(huge)), *[("t", payload(e)) for e in good[1:]]]
    got = store.ingest(msgs)
    assert (got.accepted, got.quarantined, got.by_kind["error"]) == (3, 1, 1)
    [(_, why, _)] = store.quarantined()
    if store_at.pg:
        assert "bridge error: DataError" in why and "out of range" in why, why
    else:
        assert "bridge error: OverflowError" in why
    assert store.counts()["codes"] == 3


def test_repeats_are_dropped_by_id_and_good_events_around_garbage_kept(store_at: StoreAt) -> None:
    f = LineEvents()
    plan = batch_events(f, "B1", 12)
    msgs = [("t", payload(e)) for e in plan.events]
    store = store_at()
    first = store.ingest([*msgs[:10], ("t", b"garbage"), *msgs[10:]])
    again = store.ingest(msgs)
    assert first.accepted == len(msgs) and first.quarantined == 1
    assert again.accepted == 0 and again.duplicates == len(msgs)
    counts = store.counts()
    assert counts["events"] == len(msgs) and counts["codes"] == 12


def test_a_repeat_within_one_group_is_a_duplicate_unless_its_first_was_rolled_back(
    store_at: StoreAt,
) -> None:
    """The group's stored ids are looked up once per group (TraceStore._stored_ids): a repeat
    later in the same group is still a duplicate, and an event whose first copy tripped the
    bridge (quarantined, rolled back in a careful ingest) is stored from its second copy."""
    f = LineEvents()
    a, b = (f.make("pack.bag", {"code": f"8035REP{i}"}, "B1") for i in range(2))
    store = store_at()
    got = store.ingest([("t", payload(a)), ("t", payload(b)), ("t", payload(a))])
    assert (got.accepted, got.duplicates) == (2, 1)
    c = f.make("pack.bag", {"code": "8035REP2"}, "B1")
    tripping = {**c, "seq": 2**70}  # the insert raises: quarantined in the careful ingest
    got = store.ingest([("t", payload(tripping)), ("t", payload(c)), ("t", payload(a))])
    assert (got.accepted, got.duplicates, got.quarantined) == (1, 1, 1)
    assert store.counts()["codes"] == 3


def test_a_code_commissioned_twice_is_kept_once(store_at: StoreAt) -> None:
    f = LineEvents()
    a = f.make("pack.bag", {"code": "8035DUP001"}, "B1")
    b = f.make("pack.bag", {"code": "8035DUP001"}, "B1")
    store = store_at()
    got = store.ingest([("t", payload(a)), ("t", payload(b))])
    assert got.accepted == 2 and got.conflicts == 1
    rows = store.db.execute("SELECT up, note FROM events ORDER BY rid").fetchall()
    assert rows[0] == (1, None) and rows[1][0] == 0 and "already commissioned" in rows[1][1]


def test_unpack_without_children_takes_out_what_the_parent_holds(store_at: StoreAt) -> None:
    f = LineEvents()
    evs = [f.make("pack.bag", {"code": f"8035U{i}"}, "B1") for i in range(3)]
    evs.append(f.make("pack.case", {"code": "8035CASE", "children": ["8035U0", "8035U1"]}, "B1"))
    evs.append(f.make("pack.unpack", {"code": "8035CASE", "children": ["8035U0"]}, "B1"))
    evs.append(f.make("pack.case", {"code": "8035CASE", "children": ["8035U2"]}, "B1"))
    evs.append(f.make("pack.unpack", {"code": "8035CASE", "children": []}, "B1"))
    store = store_at()
    store.ingest([("t", payload(e)) for e in evs])
    last = store.db.execute(
        "SELECT child FROM relations WHERE action='unpack' ORDER BY rid DESC, pos"
    ).fetchall()
    assert [r[0] for r in last][:2] == ["8035U1", "8035U2"]
    assert store.children_of("8035CASE") == []
    assert all(container_of(store.db, f"8035U{i}") is None for i in range(3))
    weight = store.db.execute("SELECT weight FROM events ORDER BY rid DESC LIMIT 1").fetchone()[0]
    assert weight == 3  # the parent and the two codes taken out


def test_bad_payloads_are_quarantined_with_their_reason_on_postgresql(pg_store: str) -> None:
    """The same cases in one group on PostgreSQL (one database, not one per case)."""
    store = TraceStore(pg_store, chain_key=bytes(32))
    got = store.ingest([("salt/v1/x/event/pack/bag", raw) for raw, _, _ in BAD])
    assert (got.accepted, got.quarantined) == (0, len(BAD))
    kept = store.quarantined()
    rows = store.db.execute("SELECT kind, size FROM quarantine ORDER BY qid").fetchall()
    for (raw, kind, reason), (_, why, payload_kept), row in zip(BAD, kept, rows, strict=True):
        assert reason in why and payload_kept == raw[:QUARANTINE_PAYLOAD_BYTES]
        assert row == (kind, len(raw))
