"""The snapshot lookup: one ``codes`` row, the batch's shared fields cached per snapshot
generation, with the same values the full join gives (docs/resolver.md, "Replicas")."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.public_snapshot import TABLE6, open_snapshot
from gateway.resolver.lookup import SnapshotCache, find_code, find_enterprise
from gateway.resolver.pages import answer_body, answer_json
from gateway.resolver.snapshot import SnapshotHolder
from tests.support.snapshot import BATCH, ENTERPRISE, PRODUCT, code_row, write_snapshot

# the join the resolver used before the cache: the reference for every field
_ALIAS = {"codes": "c", "batches": "b", "products": "p", "enterprises": "e"}
_JOIN = (
    "SELECT "
    + ", ".join(f"{_ALIAS[f.column.split('.')[0]]}.{f.column.split('.')[1]}" for f in TABLE6)
    + " FROM codes c LEFT JOIN batches b ON b.batch = c.batch "
    "LEFT JOIN products p ON p.product = b.product "
    "LEFT JOIN enterprises e ON e.enterprise = COALESCE(b.enterprise, substr(c.code, 1, 4)) "
    "WHERE c.code = ?"
)


def _snapshot(path: Path) -> Path:
    other = {**BATCH, "batch": "B2", "inspection": None}
    return write_snapshot(
        path,
        batches=[BATCH, other],
        codes=[
            code_row("8035AAAAAA01", producer_sales=[{"date": "2024-05-02", "party": "x"}]),
            code_row("8035AAAAAA02"),
            code_row("8035AAAAAA03", batch="B2"),
            code_row("8035AAAAAA04", batch="NO-SUCH-BATCH"),  # no batch row: fields from prefix
        ],
    )


def test_fields_equal_the_full_join_and_groups_are_shared(tmp_path: Path) -> None:
    db = open_snapshot(_snapshot(tmp_path / "s.db"))
    cache = SnapshotCache()
    records = {c: find_code(db, c, cache) for c in
               ("8035AAAAAA01", "8035AAAAAA02", "8035AAAAAA03", "8035AAAAAA04")}  # fmt: skip
    for code, rec in records.items():
        assert rec is not None
        row = db.execute(_JOIN, (code,)).fetchone()
        for f, want in zip(TABLE6, row, strict=True):
            got = rec.fields[f.no]
            if f.no in (25, 26):
                assert got == (json.loads(want) if want else []), (code, f.no)
            else:
                assert got == want, (code, f.no)
    assert records["8035AAAAAA01"].group is records["8035AAAAAA02"].group  # type: ignore[union-attr]
    assert records["8035AAAAAA03"].group is not records["8035AAAAAA01"].group  # type: ignore[union-attr]
    orphan = records["8035AAAAAA04"]
    assert orphan is not None and orphan.enterprise == "8035"
    assert orphan.fields[8] == ENTERPRISE["name"] and orphan.fields[1] is None
    assert find_code(db, "8035NOTTHERE", cache) is None
    contact = find_enterprise(db, "8035", cache)
    assert contact is not None and contact.name == ENTERPRISE["name"]
    assert find_enterprise(db, "8036", cache) is None
    assert PRODUCT["name"] == records["8035AAAAAA01"].fields[1]  # type: ignore[union-attr]


def test_cache_is_bounded_and_per_snapshot_generation(tmp_path: Path) -> None:
    path = _snapshot(tmp_path / "s.db")
    db = open_snapshot(path)
    small = SnapshotCache(entries=1)
    a = find_code(db, "8035AAAAAA01", small)
    b = find_code(db, "8035AAAAAA03", small)  # evicts the first group
    again = find_code(db, "8035AAAAAA01", small)
    assert a is not None and b is not None and again is not None
    assert again.group is not a.group and again.fields == a.fields
    holder = SnapshotHolder(path)
    assert holder.check()
    first = holder.current
    write_snapshot(
        path, batches=[{**BATCH, "shelf_life": "730天"}], codes=[code_row("8035AAAAAA01")]
    )
    assert holder.check()
    second = holder.current
    assert first is not None and second is not None and first.cache is not second.cache
    held = holder.connection()
    assert held is not None
    rec = find_code(held[1], "8035AAAAAA01", second.cache)
    assert rec is not None and rec.fields[7] == "730天"  # the new file's batch, not a stale one


def test_api_body_is_the_answer_json(tmp_path: Path) -> None:
    from gateway.resolver.config import ResolverSection
    from gateway.resolver.querylog import QueryLog
    from gateway.resolver.verdict import Resolver

    path = _snapshot(tmp_path / "s.db")
    cfg = ResolverSection(snapshot=path, query_log=tmp_path / "q.db")
    holder = SnapshotHolder(path)
    holder.check()
    log = QueryLog(cfg.query_log)
    try:
        resolver = Resolver(cfg, holder, log)
        for code in ("8035AAAAAA01", "8035AAAAAA03", "8035AAAAAA04", "8035ZZZZZZ99", "12"):
            answer = resolver.resolve(code, "api", "203.0.113.0/24")
            body = answer_body(answer)
            assert json.loads(body) == answer_json(answer)
            assert list(json.loads(body)) == list(answer_json(answer))  # same key order
    finally:
        log.close()
