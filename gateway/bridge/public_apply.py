"""How the trace store's records become the public snapshot's rows (QB/T 5279-2018 table 6,
9.1's legality verdict, 10.6): one range of events (``events.rid`` in ``(lo, hi]``) at a time.

A range is applied in two steps: first every code commissioned in it (``pack.bag``), then the
records that change a code's state, in ``rid`` order:

    record                          codes it concerns               state
    pack.bag (stored in ``codes``)  the bag                         commissioned
    pack.reject with a code         the bag                         withdrawn
    ship.outbound (``outbound``)    the bag, or every bag inside    shipped (+ a sales entry)
                                    the case / pallet then
    recall.scan (``scans``)         the bag, or every bag inside    recalled
                                    the case / pallet then
    record.nonconforming or         its codes, and every bag        withdrawn
    record.return that destroys     inside them then
    (``lab_records``)

``withdrawn`` and ``recalled`` are final: a later outbound adds its sales entry but does not
change them (:data:`gateway.public_snapshot.CODE_STATES`). "Inside then" follows ``relations``
written before the record (``rid`` lower than its own): packing, unpacking and the removal of
rejected bags, as :func:`gateway.bridge.trace.container_of` does for the present.

Sales entries (#25, #26; :data:`gateway.public_snapshot.SALES_KEYS`): an outbound record by the
enterprise that commissioned the bag is the producer's sale (#25), one by another enterprise a
wholesaler's (#26). The customer's name is published only when its type is a wholesaler
(批发企业, table 4's 单位类型); terminal customers (retailers, unit users) and customers of
unknown type stay anonymous.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gateway.bridge.db import Db

__all__ = [
    "WHOLESALER",
    "apply_range",
    "bags_inside",
    "batches_of_range",
    "chunked",
    "party_type",
    "sales_entry",
]

WHOLESALER = "批发企业"
# table 4's 单位类型, and the English words outbound records use for them
_PARTY_TYPES = {
    "批发企业": WHOLESALER,
    "wholesaler": WHOLESALER,
    "wholesale": WHOLESALER,
    "生产企业": "生产企业",
    "producer": "生产企业",
    "manufacturer": "生产企业",
    "终端客户": "终端客户",
    "terminal": "终端客户",
    "terminal_customer": "终端客户",
    "end_customer": "终端客户",
    "retailer": "终端客户",
    "零售商": "终端客户",
    "unit_user": "终端客户",
    "单位用户": "终端客户",
}
MAX_DEPTH = 4  # pallet → case → bag is 2; deeper nesting is followed this far at most
_IN_CHUNK = 500  # codes per ``IN (…)`` lookup


def party_type(raw: str | None) -> str | None:
    """Table 4's 单位类型 for an outbound record's ``customer_type`` (its own wording when it
    is none of the known words; None when the record has none)."""
    if raw is None or not raw.strip():
        return None
    return _PARTY_TYPES.get(raw.strip().lower(), raw.strip())


def sales_entry(ts: str, customer: str, customer_type: str | None) -> str:
    """One sales entry as JSON: date, party type, and the party only for a wholesaler."""
    kind = party_type(customer_type)
    entry = {"date": ts[:10], "party_type": kind, "party": customer if kind == WHOLESALER else None}
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


def bags_inside(store: Db, code: str, before_rid: int, depth: int = 0) -> list[str]:
    """The leaves of ``code`` as they were before record ``before_rid``: the code itself when it
    held nothing (a bag, or a code the store never saw packed), else the bags in it, through
    cases inside a pallet."""
    rows = store.execute(
        "SELECT child, action, level FROM relations WHERE parent=? AND rid < ? ORDER BY rid, pos",
        (code, before_rid),
    ).fetchall()
    if not rows:
        return [code]
    inside: dict[str, None] = {}
    for child, action, _level in rows:
        if action == "pack":
            inside[child] = None
        else:  # unpack, or a rejected bag removed
            inside.pop(child, None)
    if rows[-1][2] == "case" or depth >= MAX_DEPTH:  # a case holds bags
        return list(inside)
    out: list[str] = []
    for child in inside:
        out.extend(bags_inside(store, child, before_rid, depth + 1))
    return out


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield items[i : i + _IN_CHUNK]


def _enterprises(store: Db, bags: list[str]) -> dict[str, str]:
    """code → the enterprise that commissioned it, for the codes the store knows as bags."""
    out: dict[str, str] = {}
    for part in _chunks(bags):
        marks = ",".join("?" * len(part))
        for code, ent in store.execute(
            f"SELECT code, enterprise FROM codes WHERE code IN ({marks})", part
        ):
            out[code] = ent
    return out


@dataclass(slots=True)
class RangeResult:
    commissioned: int = 0
    changed: int = 0  # state changes and sales entries applied to codes


_SHIP_SQL = (
    "UPDATE codes SET {col} = json_insert(COALESCE({col}, '[]'), '$[#]', json(?)), "
    "state = CASE WHEN state = 'commissioned' THEN 'shipped' ELSE state END, "
    "state_date = CASE WHEN state = 'commissioned' THEN ? ELSE state_date END WHERE code = ?"
)
_FINAL_SQL = (
    "UPDATE codes SET state = ?, state_date = ? WHERE code = ? "
    "AND state IN ('commissioned', 'shipped')"
)


def _state_records(
    store: Db, lo: int, hi: int
) -> list[tuple[int, int, str, str, tuple[str, ...]]]:
    """(rid, pos, kind, code, details) of the records in the range that change a code's state,
    in record order."""
    out: list[tuple[int, int, str, str, tuple[str, ...]]] = []
    for rid, ts, code in store.execute(
        "SELECT rid, ts, code FROM rejects WHERE rid > ? AND rid <= ? AND code IS NOT NULL",
        (lo, hi),
    ):
        out.append((rid, 0, "reject", code, (ts,)))
    for rid, pos, ts, customer, ctype, code, ent in store.execute(
        "SELECT o.rid, o.pos, o.ts, o.customer, o.customer_type, o.code, e.enterprise "
        "FROM outbound o JOIN events e ON e.rid = o.rid WHERE o.rid > ? AND o.rid <= ?",
        (lo, hi),
    ):
        out.append((rid, pos, "outbound", code, (ts, sales_entry(ts, customer, ctype), ent)))
    for rid, ts, code in store.execute(
        "SELECT rid, ts, code FROM scans WHERE kind = 'recall' AND rid > ? AND rid <= ?",
        (lo, hi),
    ):
        out.append((rid, 0, "recall", code, (ts,)))
    for rid, text in store.execute(
        "SELECT rid, body FROM lab_records "
        "WHERE kind IN ('nonconforming', 'return') AND rid > ? AND rid <= ?",
        (lo, hi),
    ):
        body = json.loads(text)  # the record as stored (JSON in either engine's TEXT)
        if body.get("disposition") != "destroy":
            continue
        for pos, code in enumerate(body.get("codes") or []):
            out.append((rid, pos, "destroy", str(code), (str(body.get("at")),)))
    out.sort(key=lambda r: (r[0], r[1]))
    return out


def apply_range(
    work: sqlite3.Connection, store: Db, lo: int, hi: int
) -> RangeResult:
    """Apply the records of events ``(lo, hi]`` to the snapshot's ``codes`` (inside the
    caller's transaction on ``work``)."""
    res = RangeResult()
    rows = store.execute(
        "SELECT code, batch, substr(ts, 1, 10) FROM codes WHERE rid > ? AND rid <= ?", (lo, hi)
    ).fetchall()
    if rows:
        before = work.total_changes
        work.executemany(
            "INSERT OR IGNORE INTO codes(code, batch, produced, state, state_date) "
            "VALUES (?1, ?2, ?3, 'commissioned', ?3)",
            rows,
        )
        res.commissioned = work.total_changes - before
    before = work.total_changes
    for rid, _pos, kind, code, details in _state_records(store, lo, hi):
        date = details[0][:10]
        if kind == "reject":
            work.execute(_FINAL_SQL, ("withdrawn", date, code))
            continue
        bags = bags_inside(store, code, rid)
        if kind in ("recall", "destroy"):
            state = "recalled" if kind == "recall" else "withdrawn"
            work.executemany(_FINAL_SQL, ((state, date, b) for b in bags))
            continue
        entry, seller = details[1], details[2]
        made_by = _enterprises(store, bags)
        own = [b for b in bags if made_by.get(b) == seller]
        other = [b for b in bags if b in made_by and made_by[b] != seller]
        for col, which in (("producer_sales", own), ("wholesale_sales", other)):
            if which:
                work.executemany(_SHIP_SQL.format(col=col), ((entry, date, b) for b in which))
    res.changed = work.total_changes - before
    return res


def batches_of_range(store: Db, lo: int, hi: int) -> set[str]:
    """The batches events ``(lo, hi]`` touched (their batch rows may have changed)."""
    rows = store.execute(
        "SELECT DISTINCT batch FROM events WHERE rid > ? AND rid <= ? AND batch IS NOT NULL",
        (lo, hi),
    )
    return {r[0] for r in rows}


def chunked(items: Iterable[str]) -> Iterator[list[str]]:
    """``items`` in lists short enough for one ``IN (…)``."""
    return _chunks(list(items))
