"""The trace store's ingest: bad payloads are quarantined with a clear reason, repeats are
dropped by id, relations and unpacking are kept as the events say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.bridge.store import TraceStore
from gateway.bridge.trace import container_of
from tests.support.trace_events import LineEvents, batch_events, payload


def _ev(**over: Any) -> dict[str, Any]:
    base = LineEvents().make("pack.bag", {"code": "8035AAAA0001"}, "B1")
    base.update(over)
    return base


BAD: list[tuple[bytes, str]] = [
    (b"", "not JSON"),
    (b"{", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[]", "JSON object; got list"),
    (b"null", "JSON object; got NoneType"),
    (json.dumps(_ev(id="")).encode(), "id must be a non-empty string"),
    (json.dumps(_ev(type="packbag")).encode(), "is not 'group.kind'"),
    (json.dumps(_ev(ts="2026-11-22 08:00:00")).encode(), "not an RFC 3339 time"),
    (json.dumps(_ev(ts="2026-11-22T08:00:00")).encode(), "with a UTC offset"),
    (json.dumps(_ev(ts="2026-13-45T08:00:00+08:00")).encode(), "not a valid time"),
    (json.dumps(_ev(seq=-1)).encode(), "seq must be a non-negative integer"),
    (json.dumps(_ev(seq=True)).encode(), "seq must be a non-negative integer"),
    (json.dumps(_ev(data=[1])).encode(), "data must be an object"),
    (json.dumps(_ev(enterprise=None)).encode(), "enterprise must be a non-empty string"),
    (json.dumps(_ev(data={"code": ""})).encode(), "pack.bag: data.code must be a code"),
    (json.dumps(_ev(data={"code": "8035 AB"})).encode(), "control or space characters"),
    (json.dumps(_ev(data={"code": "8035\u0007AB"})).encode(), "XML cannot carry"),
    (json.dumps(_ev(data={"code": "A" * 200})).encode(), "must be a code (1-128"),
    (
        json.dumps(_ev(type="pack.case", data={"code": "C1", "children": []})).encode(),
        "data.children must be a non-empty list",
    ),
    (
        json.dumps(_ev(type="pack.case", data={"code": "C1", "children": ["A", "A"]})).encode(),
        "lists a code twice",
    ),
    (
        json.dumps(_ev(type="pack.pallet", data={"code": "P1", "children": ["P1"]})).encode(),
        "holds the parent code",
    ),
    (
        json.dumps(_ev(type="ship.outbound", data={"order": "SO", "codes": ["A"]})).encode(),
        "data.customer must be a non-empty string",
    ),
    (
        json.dumps(
            _ev(type="ccp.net_content", data={"value": "400", "limits": {}, "verdict": "pass"})
        ).encode(),
        "value must be a number or a boolean",
    ),
    (
        json.dumps(
            _ev(
                type="ccp.iodine",
                data={"value": 25.0, "unit": "mg/kg", "limits": {"lo": "x"}, "verdict": "pass"},
            )
        ).encode(),
        "limits.lo must be a number or null",
    ),
    (
        json.dumps(
            _ev(type="ccp.sieve", data={"value": True, "limits": {}, "verdict": "ok"})
        ).encode(),
        "verdict must be 'pass' or 'fail'",
    ),
    (
        json.dumps(_ev(type="feed.material", data={"quantity": 1, "unit": "kg"})).encode(),
        "feed.material: data.material must be a non-empty string",
    ),
    (
        json.dumps(
            _ev(type="feed.material", data={"material": "盐", "quantity": 0, "unit": "kg"})
        ).encode(),
        "data.quantity must be a number > 0",
    ),
    (
        json.dumps(
            _ev(
                type="feed.material",
                data={"material": "盐", "quantity": 2, "unit": "kg", "operator": ["li"]},
            )
        ).encode(),
        "data.operator must be text, a number or null",
    ),
    (json.dumps(_ev(type="pack.reject", data={})).encode(), "data.reason must be a non-empty"),
    (
        json.dumps(_ev(type="pack.reject", data={"reason": "x", "case": "8035C1"})).encode(),
        "case names a case but no code",
    ),
    (
        json.dumps(_ev(type="pack.reject", data={"reason": "x", "code": "8035 B"})).encode(),
        "pack.reject: data.code holds control or space characters",
    ),
    (
        json.dumps(_ev(type="pack.reject", data={"reason": "x", "count": -1})).encode(),
        "data.count must be an integer >= 0 or null",
    ),
    (
        json.dumps(_ev(type="ship.inbound", data={"order": "IN-1"})).encode(),
        "ship.inbound: data.code must be a code",
    ),
    (
        json.dumps(_ev(type="recall.scan", data={"code": "8035B1", "level": "box"})).encode(),
        "data.level must be bag | case | pallet | unknown",
    ),
    (
        json.dumps(_ev(type="recall.scan", data={"code": "8035B1", "recall": ""})).encode(),
        "data.recall must be a non-empty string or null",
    ),
    (
        json.dumps(_ev(type="batch.start", data={"person_in_charge": 7})).encode(),
        "data.person_in_charge must be a non-empty string or null",
    ),
    (json.dumps(_ev(type="batch.start", batch=None, data={})).encode(), "names no batch"),
    (
        json.dumps(_ev(type="batch.start", data={"production_date": "22/11/2026"})).encode(),
        "is not YYYY-MM-DD",
    ),
]


@pytest.mark.parametrize(("raw", "reason"), BAD, ids=[r for _, r in BAD])
def test_bad_payloads_are_quarantined_with_their_reason(
    tmp_path: Path, raw: bytes, reason: str
) -> None:
    store = TraceStore(tmp_path / "t.db")
    got = store.ingest([("salt/v1/x/event/pack/bag", raw)])
    assert (got.accepted, got.quarantined) == (0, 1)
    [(topic, why, kept)] = store.quarantined()
    assert reason in why, why
    assert kept == raw and topic == "salt/v1/x/event/pack/bag"


def test_repeats_are_dropped_by_id_and_good_events_around_garbage_kept(tmp_path: Path) -> None:
    f = LineEvents()
    plan = batch_events(f, "B1", 12)
    msgs = [("t", payload(e)) for e in plan.events]
    store = TraceStore(tmp_path / "t.db")
    first = store.ingest([*msgs[:10], ("t", b"garbage"), *msgs[10:]])
    again = store.ingest(msgs)
    assert first.accepted == len(msgs) and first.quarantined == 1
    assert again.accepted == 0 and again.duplicates == len(msgs)
    counts = store.counts()
    assert counts["events"] == len(msgs) and counts["codes"] == 12


def test_a_code_commissioned_twice_is_kept_once(tmp_path: Path) -> None:
    f = LineEvents()
    a = f.make("pack.bag", {"code": "8035DUP001"}, "B1")
    b = f.make("pack.bag", {"code": "8035DUP001"}, "B1")
    store = TraceStore(tmp_path / "t.db")
    got = store.ingest([("t", payload(a)), ("t", payload(b))])
    assert got.accepted == 2 and got.conflicts == 1
    rows = store.db.execute("SELECT up, note FROM events ORDER BY rid").fetchall()
    assert rows[0] == (1, None) and rows[1][0] == 0 and "already commissioned" in rows[1][1]


def test_unpack_without_children_takes_out_what_the_parent_holds(tmp_path: Path) -> None:
    f = LineEvents()
    evs = [f.make("pack.bag", {"code": f"8035U{i}"}, "B1") for i in range(3)]
    evs.append(f.make("pack.case", {"code": "8035CASE", "children": ["8035U0", "8035U1"]}, "B1"))
    evs.append(f.make("pack.unpack", {"code": "8035CASE", "children": ["8035U0"]}, "B1"))
    evs.append(f.make("pack.case", {"code": "8035CASE", "children": ["8035U2"]}, "B1"))
    evs.append(f.make("pack.unpack", {"code": "8035CASE"}, "B1"))
    store = TraceStore(tmp_path / "t.db")
    store.ingest([("t", payload(e)) for e in evs])
    last = store.db.execute(
        "SELECT child FROM relations WHERE action='unpack' ORDER BY rid DESC, pos"
    ).fetchall()
    assert [r[0] for r in last][:2] == ["8035U1", "8035U2"]
    assert store.children_of("8035CASE") == []
    assert all(container_of(store.db, f"8035U{i}") is None for i in range(3))
    weight = store.db.execute("SELECT weight FROM events ORDER BY rid DESC LIMIT 1").fetchone()[0]
    assert weight == 3  # the parent and the two codes taken out
