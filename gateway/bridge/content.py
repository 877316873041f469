"""What one upload document holds, read from the trace store lazily (cursors, never all rows at
once): the uploadable events with ``rid`` in ``[first, last]`` (see gateway/bridge/schema.py).

Writers (:mod:`gateway.bridge.epcis`, :mod:`gateway.bridge.platform`) iterate these; the rows of
one kind are read in ``rid`` order, codes grouped by batch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

from gateway.bridge.config import BridgeSection, ProductInfoSection

__all__ = [
    "BatchInfo",
    "CcpRecord",
    "CodeGroup",
    "DocumentContent",
    "DocumentHeader",
    "OutboundRecord",
    "Relation",
]


@dataclass(frozen=True, slots=True)
class DocumentHeader:
    number: str
    enterprise: str
    created: str  # RFC 3339


@dataclass(frozen=True, slots=True)
class BatchInfo:
    batch: str
    enterprise: str
    site: str
    line: str
    product: str | None
    production_date: str | None
    shelf_life_days: int | None
    inspection: str | None
    started: str | None
    ended: str | None


@dataclass(frozen=True, slots=True)
class CodeGroup:
    """Codes of one batch and enterprise commissioned in this document."""

    batch: str | None
    enterprise: str
    first_ts: str
    last_ts: str
    count: int
    codes: list[tuple[str, str, str | None, str]]  # (code, ts, batch, enterprise), rid order


@dataclass(frozen=True, slots=True)
class EventMeta:
    id: str
    enterprise: str
    site: str
    line: str
    batch: str | None


@dataclass(frozen=True, slots=True)
class Relation:
    event: EventMeta
    parent: str
    level: str  # case | pallet
    action: str  # pack | unpack
    ts: str
    children: list[str]


@dataclass(frozen=True, slots=True)
class CcpRecord:
    event: EventMeta
    type: str
    ts: str
    device: str | None
    value: float | None
    flag: bool | None
    unit: str | None
    lo: float | None
    hi: float | None
    verdict: str


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    event: EventMeta
    order: str
    ts: str
    customer: str
    customer_type: str | None
    codes: list[tuple[str, str | None]]  # (code, its batch when known)


class DocumentContent:
    def __init__(self, db: sqlite3.Connection, first: int, last: int, cfg: BridgeSection) -> None:
        self.db = db
        self.first = first
        self.last = last
        self.cfg = cfg
        self._meta_cache: dict[int, EventMeta] | None = None
        self._outbound_cache: (
            list[tuple[int, str, str, str, str | None, str, str | None]] | None
        ) = None

    def _q(self, sql: str, *args: object) -> sqlite3.Cursor:
        return self.db.execute(sql, (self.first, self.last, *args))

    def batches(self) -> list[BatchInfo]:
        """The batches of the document's events, and of the codes its outbound records name
        (shipped codes were mostly commissioned in earlier documents)."""
        names = {
            r[0]
            for r in self._q(
                "SELECT DISTINCT batch FROM events WHERE rid BETWEEN ? AND ? AND up=1 "
                "AND batch IS NOT NULL"
            )
        }
        names.update(b for _, _, _, _, _, _, b in self._outbound_rows() if b is not None)
        out = []
        for name in sorted(names):
            row = self.db.execute(
                "SELECT batch, enterprise, site, line, product, production_date, "
                "shelf_life_days, inspection, started, ended FROM batches WHERE batch=?",
                (name,),
            ).fetchone()
            if row is not None:
                out.append(BatchInfo(*row))
        return out

    def _outbound_rows(self) -> list[tuple[int, str, str, str, str | None, str, str | None]]:
        """(rid, order, ts, customer, customer_type, code, batch of the code): few rows."""
        if self._outbound_cache is None:
            rows = self._q(
                "SELECT rid, order_no, ts, customer, customer_type, code FROM outbound "
                "WHERE rid BETWEEN ? AND ? ORDER BY rid, pos"
            ).fetchall()
            self._outbound_cache = [(*r, batch_of(self.db, r[5])) for r in rows]
        return self._outbound_cache

    def products(self, batches: list[BatchInfo]) -> list[ProductInfoSection]:
        ids = sorted({b.product for b in batches if b.product})
        return [p for p in (self.cfg.product(i) for i in ids) if p is not None]

    def code_groups(self) -> Iterator[CodeGroup]:
        """Codes grouped by (batch, enterprise), groups in order of first appearance. One pass
        over the document's codes; a document holds at most ``codes_per_document`` of them."""
        groups: dict[tuple[str | None, str], list[tuple[str, str, str | None, str]]] = {}
        rows = self._q(
            "SELECT code, ts, batch, enterprise FROM codes WHERE rid BETWEEN ? AND ? ORDER BY rid"
        ).fetchall()
        for key, run in groupby(rows, key=itemgetter(2, 3)):  # consecutive runs: usually one
            groups.setdefault(key, []).extend(run)
        for (batch, enterprise), group in groups.items():
            stamps = list(map(itemgetter(1), group))
            yield CodeGroup(batch, enterprise, min(stamps), max(stamps), len(group), group)

    def _meta(self) -> dict[int, EventMeta]:
        """Who and where of the document's events other than bags (one read, cached)."""
        if self._meta_cache is None:
            rows = self._q(
                "SELECT rid, id, enterprise, site, line, batch FROM events "
                "WHERE rid BETWEEN ? AND ? AND up=1 AND type != 'pack.bag'"
            )
            self._meta_cache = {r[0]: EventMeta(*r[1:]) for r in rows}
        return self._meta_cache

    def relations(self) -> Iterator[Relation]:
        meta = self._meta()
        cur = self._q(
            "SELECT rid, parent, level, action, ts, child FROM relations "
            "WHERE rid BETWEEN ? AND ? ORDER BY rid, pos"
        )
        for rid, run in groupby(cur, key=itemgetter(0)):
            rows = list(run)
            _, parent, level, action, ts, _ = rows[0]
            yield Relation(meta[rid], parent, level, action, ts, list(map(itemgetter(5), rows)))
        # an unpack of an empty parent has no relation rows: nothing to say about it

    def ccp_records(self) -> Iterator[CcpRecord]:
        meta = self._meta()
        cur = self._q(
            "SELECT rid, type, ts, device, value, flag, unit, lo, hi, verdict FROM ccp "
            "WHERE rid BETWEEN ? AND ? ORDER BY rid"
        )
        for rid, typ, ts, device, value, flag, unit, lo, hi, verdict in cur:
            yield CcpRecord(
                meta[rid], typ, ts, device, value,
                None if flag is None else bool(flag), unit, lo, hi, verdict,
            )  # fmt: skip

    def outbound(self) -> Iterator[OutboundRecord]:
        meta = self._meta()
        for rid, rows in groupby(self._outbound_rows(), key=lambda r: r[0]):
            items = list(rows)
            _, order, ts, customer, ctype, _, _ = items[0]
            codes = [(r[5], r[6]) for r in items]
            yield OutboundRecord(meta[rid], order, ts, customer, ctype, codes)


def batch_of(db: sqlite3.Connection, code: str) -> str | None:
    """The batch of a bag code, or of the first bag found inside a case or pallet code."""
    for _ in range(4):  # bag, case, pallet, and one more level at most
        row = db.execute("SELECT batch FROM codes WHERE code=?", (code,)).fetchone()
        if row is not None:
            return str(row[0]) if row[0] is not None else None
        child = db.execute(
            "SELECT child FROM relations WHERE parent=? AND action='pack' LIMIT 1", (code,)
        ).fetchone()
        if child is None:
            return None
        code = child[0]
    return None
