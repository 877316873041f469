"""What one upload document holds, read from the trace store lazily (cursors, never all rows at
once): the uploadable events with ``rid`` in ``[first, last]`` (see gateway/bridge/schema.py).

Writers (:mod:`gateway.bridge.epcis`, :mod:`gateway.bridge.platform`) iterate these; the rows of
one kind are read in ``rid`` order, codes grouped by batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

from gateway.bridge.config import BridgeSection, ProductInfoSection
from gateway.bridge.db import Db
from gateway.bridge.schema import PUBLIC_INSPECTION_SQL

__all__ = [
    "BATCH_FIELDS",
    "ENTERPRISE_FIELDS",
    "PRODUCT_FIELDS",
    "BatchInfo",
    "CcpRecord",
    "CodeGroup",
    "DocumentContent",
    "DocumentHeader",
    "FeedRecord",
    "LabRecord",
    "OutboundRecord",
    "RejectRecord",
    "Relation",
    "ScanRecord",
    "Site",
    "camel",
    "fields_of",
]


# Table 6 (public information) and table 2 row 2 as both profiles carry them: (attribute of the
# config / BatchInfo, name in the documents). The platform profile writes them as attributes of
# Enterprise / Product / Batch, EPCIS as master data attributes ``urn:saltgw:mda:{name}``.
PRODUCT_FIELDS = (
    ("id", "id"),
    ("name", "name"),  # 1
    ("net_content", "netContent"),  # 2
    ("spec", "spec"),  # table 4 规格
    ("standard", "standard"),  # 3
    ("category", "category"),  # 4
    ("process", "process"),  # 5
    ("shelf_life_days", "shelfLifeDays"),  # 7
    ("origin", "origin"),  # 12
    ("raw_salt_source", "rawSaltSource"),  # 13
    ("usage", "usage"),  # 18
    ("tips", "tips"),  # 19
    ("ingredients", "ingredients"),  # 20
    ("storage", "storage"),  # 21
    ("nutrition", "nutrition"),  # 22
    ("special_groups", "specialGroups"),  # 24
)
ENTERPRISE_FIELDS = (
    ("name", "name"),  # 8
    ("address", "address"),  # 9
    ("phone", "phone"),  # 10
    ("website", "website"),  # 11
    ("licence_no", "licenceNo"),  # 14
    ("licence_valid", "licenceValid"),  # 15
    ("credit_rating", "creditRating"),  # 27
)
BATCH_FIELDS = (
    ("batch", "id"),  # 16
    ("product", "product"),
    ("site", "site"),
    ("line", "line"),  # table 2 生产线
    ("production_date", "productionDate"),  # 6
    ("shelf_life_days", "shelfLifeDays"),  # 7 when the batch says it
    ("inspection", "inspection"),  # 23
    ("shift", "shift"),  # table 2 班组
    ("person_in_charge", "personInCharge"),  # table 2 负责人
    ("started", "started"),
    ("ended", "ended"),
)


def fields_of(obj: object, names: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """``{document name: text}`` of the fields of ``obj`` that have a value."""
    out = {}
    for py, xml in names:
        v = getattr(obj, py)
        if v is not None and v != "":
            out[xml] = str(v)
    return out


def camel(name: str) -> str:
    """A record field's name in the documents (``retained_sample`` → ``retainedSample``)."""
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


@dataclass(frozen=True, slots=True)
class DocumentHeader:
    number: str
    enterprise: str
    created: str  # RFC 3339
    # the trace store's chain head when the document was built: (rid, hash hex, alg), the
    # platform's anchor for `saltgw verify --store-anchor` (docs/security.md); None: no chain
    chain: tuple[int, str, str] | None = None


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
    shift: str | None = None  # table 2 row 2 班组
    person_in_charge: str | None = None  # table 2 row 2 负责人


BATCH_COLUMNS = (  # #23 only for a released batch (docs/records.md)
    "batch, enterprise, site, line, product, production_date, shelf_life_days, "
    f"{PUBLIC_INSPECTION_SQL}, started, ended, shift, person_in_charge"
)


@dataclass(frozen=True, slots=True)
class Site:
    """A site (plant) of the enterprise with the lines the document's records come from."""

    enterprise: str
    site: str
    lines: list[str]


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
    action: str  # pack | unpack | remove (a rejected bag taken out: pack.reject)
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
    # the bags the scanned cases and pallets hold: (scanned code, bag, its batch when known)
    bags: list[tuple[str, str, str | None]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """A material fed into the line (feed.material; table 2 row 1)."""

    event: EventMeta
    ts: str
    device: str | None
    material: str
    lot: str | None
    quantity: float
    unit: str
    point: str | None
    operator: str | None
    count: int | None


@dataclass(frozen=True, slots=True)
class RejectRecord:
    """A bag taken off the line (pack.reject; table 3 row 3)."""

    event: EventMeta
    ts: str
    device: str | None
    batch: str | None  # the bag's batch when its code is known, else the running batch
    reason: str
    code: str | None
    parent: str | None  # the case it was taken out of
    commissioned: bool | None
    value: float | None
    unit: str | None
    count: int | None
    detection: int | None


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """An inbound (ship.inbound, 5.2) or recall (recall.scan, 10.6) scan of one code."""

    event: EventMeta
    kind: str  # inbound | recall
    ts: str
    device: str | None
    batch: str | None  # of the code scanned
    code: str
    level: str | None
    ref: str | None  # the order (inbound) or the recall id
    party: str | None  # the supplier (inbound) or the recall's other party
    bags: int | None
    # the bags of a case or pallet scanned: (bag, its batch when known); empty for a bag or an
    # unknown code (level unknown: recorded unexpanded)
    bag_codes: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LabRecord:
    """A record from MES or LIMS (``record.*``, docs/records.md): a material receipt (table 1),
    an inspection (table 2 row 3), a release (table 3 row 3) or non-conforming handling."""

    event: EventMeta
    kind: str  # material_receipt | inspection | release | nonconforming
    record_id: str
    ts: str  # when the gateway journaled it
    fields: dict[str, object]  # the record's fields (the event's data), as stored

    def items(self) -> list[dict[str, object]]:
        """An inspection's items (item, result, verdict); none for other kinds."""
        items = self.fields.get("items")
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


class DocumentContent:
    def __init__(self, db: Db, first: int, last: int, cfg: BridgeSection) -> None:
        self.db = db
        self.first = first
        self.last = last
        self.cfg = cfg
        self._meta_cache: dict[int, EventMeta] | None = None
        self._keys_cache: list[tuple[str | None, str, str, str]] | None = None
        self._outbound_cache: (
            list[tuple[int, str, str, str, str | None, str, str | None]] | None
        ) = None

    def _q(self, sql: str, *args: object) -> Any:
        return self.db.execute(sql, (self.first, self.last, *args))

    def batches(self) -> list[BatchInfo]:
        """The batches of the document's events, and of the codes its outbound records name
        (shipped codes were mostly commissioned in earlier documents)."""
        names = {batch for batch, _, _, _ in self._event_keys() if batch is not None}
        names.update(b for _, _, _, _, _, _, b in self._outbound_rows() if b is not None)
        for table in ("scans", "rejects"):  # the batches of the codes scanned or rejected
            names.update(
                r[0]
                for r in self._q(
                    f"SELECT DISTINCT batch FROM {table} WHERE rid BETWEEN ? AND ? "
                    "AND batch IS NOT NULL"
                )
            )
        out = []
        for name in sorted(names):
            row = self.db.execute(
                f"SELECT {BATCH_COLUMNS} FROM batches WHERE batch=?", (name,)
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

    def _event_keys(self) -> list[tuple[str | None, str, str, str]]:
        """The distinct (batch, enterprise, site, line) of the document's events: one pass over
        them for both :meth:`batches` and :meth:`sites` (cached)."""
        if self._keys_cache is None:
            self._keys_cache = self._q(
                "SELECT DISTINCT batch, enterprise, site, line FROM events "
                "WHERE rid BETWEEN ? AND ? AND up=1"
            ).fetchall()
        return self._keys_cache

    def sites(self) -> list[Site]:
        """The sites (and their lines) the document's records come from."""
        lines: dict[tuple[str, str], set[str]] = {}
        for _, ent, site, line in self._event_keys():
            lines.setdefault((ent, site), set()).add(line)
        return [Site(e, s, sorted(ls)) for (e, s), ls in sorted(lines.items())]

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
            bags = self._moved(rid)
            yield OutboundRecord(meta[rid], order, ts, customer, ctype, codes, bags)

    def feedings(self) -> Iterator[FeedRecord]:
        meta = self._meta()
        cur = self._q(
            "SELECT rid, ts, device, material, lot, quantity, unit, point, operator, count "
            "FROM feedings WHERE rid BETWEEN ? AND ? ORDER BY rid"
        )
        for rid, *rest in cur:
            yield FeedRecord(meta[rid], *rest)

    def rejects(self) -> Iterator[RejectRecord]:
        meta = self._meta()
        cur = self._q(
            "SELECT rid, ts, device, batch, reason, code, parent, commissioned, value, unit, "
            "count, detection FROM rejects WHERE rid BETWEEN ? AND ? ORDER BY rid"
        )
        for rid, ts, device, batch, reason, code, parent, comm, *rest in cur:
            commissioned = None if comm is None else bool(comm)
            yield RejectRecord(
                meta[rid], ts, device, batch, reason, code, parent, commissioned, *rest
            )

    def scans(self, kind: str) -> Iterator[ScanRecord]:
        """Inbound (``kind`` = inbound) or recall scans, in ingest order."""
        meta = self._meta()
        cur = self._q(
            "SELECT rid, kind, ts, device, batch, code, level, ref, party, bags FROM scans "
            "WHERE rid BETWEEN ? AND ? AND kind = ? ORDER BY rid",
            kind,
        )
        for rid, kind_, ts, device, batch, code, level, ref, party, n in cur.fetchall():
            bags = [(bag, b) for _scanned, bag, b in self._moved(rid)]
            yield ScanRecord(
                meta[rid], kind_, ts, device, batch, code, level, ref, party, n, bag_codes=bags
            )

    def _moved(self, rid: int) -> list[tuple[str, str, str | None]]:
        """(scanned code, bag, batch) of the bags an outbound or inbound scan counts for."""
        rows = self.db.execute(
            "SELECT scanned, code, batch FROM moved_bags WHERE rid=? ORDER BY pos", (rid,)
        )
        return [(str(a), str(b), c) for a, b, c in rows]

    def lab_records(self, kind: str) -> Iterator[LabRecord]:
        """The records of ``kind`` (gateway/records/models.py) from MES and LIMS, in ingest
        order."""
        meta = self._meta()
        cur = self._q(
            "SELECT rid, record_id, ts, body FROM lab_records WHERE rid BETWEEN ? AND ? "
            "AND kind = ? ORDER BY rid",
            kind,
        )
        for rid, record_id, ts, body in cur:
            yield LabRecord(meta[rid], kind, record_id, ts, json.loads(body))


def batch_of(db: Db, code: str) -> str | None:
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
