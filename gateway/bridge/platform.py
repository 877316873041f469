"""The platform profile: saltgw's generic platform XML (QB/T 5279-2018 11.3), namespace
``urn:saltgw:platform:1``, schema ``gateway/bridge/platform-1.xsd`` (shipped as package data),
documented in docs/platform-xml.md. Written with lxml's incremental writer, record by record.

The national platform's interface is not public: this profile is the adapter seam. Another
platform's format is another class with the same ``name`` / ``namespace`` / ``schema_path`` /
``write`` surface, picked by ``bridge.profile``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.resources import files
from itertools import chain
from pathlib import Path
from typing import IO, Any, TypeVar

from lxml import etree

from gateway.bridge.config import BridgeSection
from gateway.bridge.content import (
    BATCH_FIELDS,
    ENTERPRISE_FIELDS,
    PRODUCT_FIELDS,
    BatchInfo,
    CcpRecord,
    DocumentContent,
    DocumentHeader,
    FeedRecord,
    LabRecord,
    OutboundRecord,
    RejectRecord,
    Relation,
    ScanRecord,
    camel,
    fields_of,
)
from gateway.bridge.xmlout import write_run

__all__ = ["PLATFORM_NS", "PlatformWriter", "platform_xsd_path"]

PLATFORM_NS = "urn:saltgw:platform:1"
T = TypeVar("T")


def platform_xsd_path() -> Path:
    return Path(str(files("gateway.bridge") / "platform-1.xsd"))


def _clean(d: dict[str, object | None]) -> dict[str, str]:
    return {k: str(v) for k, v in d.items() if v is not None and v != ""}


class PlatformWriter:
    name = "platform"
    namespace = PLATFORM_NS

    def __init__(self, cfg: BridgeSection) -> None:
        self.cfg = cfg

    def write(self, out: IO[bytes], header: DocumentHeader, content: DocumentContent) -> None:
        batches = content.batches()
        products = content.products(batches)
        product_of = {b.batch: b.product for b in batches}
        root = {
            "version": "1",
            "number": header.number,
            "enterprise": header.enterprise,
            "created": header.created,
        }
        with etree.xmlfile(out, encoding="UTF-8") as xf:
            xf.write_declaration(standalone=True)
            with xf.element("TraceDocument", root, nsmap={None: PLATFORM_NS}):
                info = self.cfg.enterprise_info
                if info is not None:
                    attrs = {"code": header.enterprise, **fields_of(info, ENTERPRISE_FIELDS)}
                    _empty(xf, "Enterprise", attrs)
                if products:
                    with xf.element("Products"):
                        for p in products:
                            _empty(xf, "Product", fields_of(p, PRODUCT_FIELDS))
                if batches:
                    with xf.element("Batches"):
                        for b in batches:
                            _empty(xf, "Batch", _batch_attrs(b))
                for g in content.code_groups():
                    attrs = _clean({"enterprise": g.enterprise, "batch": g.batch, "count": g.count})
                    with xf.element("Codes", attrs):
                        codes = [c for c, _ts, _b, _e in g.codes]
                        stamps = [{"t": ts} for _c, ts, _b, _e in g.codes]
                        write_run(xf, out, "C", codes, stamps)
                self._relations(xf, out, content)
                self._ccp(xf, content)
                self._outbound(xf, out, content, product_of)
                _section(xf, "Feedings", content.feedings(), _feed)
                _section(xf, "Rejects", content.rejects(), _reject)
                _section(xf, "Inbound", content.scans("inbound"), _scan)
                _section(xf, "Recalls", content.scans("recall"), _scan)
                for kind, (section, _tag) in LAB_SECTIONS.items():
                    recs = _peek(content.lab_records(kind))
                    if recs is not None:
                        with xf.element(section):
                            for rec in recs:
                                _lab_record(xf, out, rec)
                if header.chain is not None:  # the store's chain head: the platform's anchor
                    rid, hexed, alg = header.chain
                    _empty(xf, "ChainHead", {"record": str(rid), "hash": hexed, "alg": alg})

    @staticmethod
    def _relations(xf: Any, out: IO[bytes], content: DocumentContent) -> None:
        rels = _peek(content.relations())
        if rels is None:
            return
        with xf.element("Relations"):
            for rel in rels:
                PlatformWriter._relation(xf, out, rel)

    @staticmethod
    def _relation(xf: Any, out: IO[bytes], rel: Relation) -> None:
        ev = rel.event
        attrs = _clean(
            {
                "event": ev.id,
                "parent": rel.parent,
                "level": rel.level,
                "t": rel.ts,
                "batch": ev.batch,
                "line": ev.line,
            }
        )
        tag = {"pack": "Pack", "unpack": "Unpack", "remove": "Remove"}[rel.action]
        with xf.element(tag, attrs):
            write_run(xf, out, "C", rel.children)

    @staticmethod
    def _ccp(xf: Any, content: DocumentContent) -> None:
        recs = _peek(content.ccp_records())
        if recs is None:
            return
        with xf.element("CcpRecords"):
            for rec in recs:
                PlatformWriter._one_ccp(xf, rec)

    @staticmethod
    def _one_ccp(xf: Any, rec: CcpRecord) -> None:
        ev = rec.event
        attrs = _clean(
            {
                "event": ev.id,
                "type": rec.type,
                "t": rec.ts,
                "batch": ev.batch,
                "line": ev.line,
                "device": rec.device,
                "value": None if rec.value is None else repr(rec.value),
                "flag": None if rec.flag is None else ("true" if rec.flag else "false"),
                "unit": rec.unit,
                "lo": None if rec.lo is None else repr(float(rec.lo)),
                "hi": None if rec.hi is None else repr(float(rec.hi)),
                "verdict": rec.verdict,
            }
        )
        _empty(xf, "Ccp", attrs)

    @staticmethod
    def _outbound(
        xf: Any, out: IO[bytes], content: DocumentContent, product_of: dict[str, str | None]
    ) -> None:
        orders = _peek(content.outbound())
        if orders is None:
            return
        with xf.element("Outbound"):
            for ob in orders:
                PlatformWriter._order(xf, out, ob, product_of)

    @staticmethod
    def _order(
        xf: Any, out: IO[bytes], ob: OutboundRecord, product_of: dict[str, str | None]
    ) -> None:
        attrs = _clean(
            {
                "event": ob.event.id,
                "number": ob.order,
                "t": ob.ts,
                "customer": ob.customer,
                "customerType": ob.customer_type,
                "quantity": len(ob.codes),
            }
        )
        with xf.element("Order", attrs):
            extra = [
                _clean({"batch": b, "product": product_of.get(b) if b else None})
                for _c, b in ob.codes
            ]
            write_run(xf, out, "C", [c for c, _b in ob.codes], extra)
            if ob.bags:  # the bags of the cases and pallets shipped (docs/wholesale.md)
                of = [_clean({"of": scanned, "batch": b}) for scanned, _c, b in ob.bags]
                write_run(xf, out, "Bag", [c for _s, c, _b in ob.bags], of)


def _num(v: float | None) -> str | None:
    return None if v is None else repr(float(v))


def _feed(xf: Any, rec: FeedRecord) -> None:
    ev = rec.event
    attrs = _clean(
        {
            "event": ev.id, "t": rec.ts, "batch": ev.batch, "line": ev.line,
            "device": rec.device, "material": rec.material, "lot": rec.lot,
            "quantity": _num(rec.quantity), "unit": rec.unit, "point": rec.point,
            "operator": rec.operator, "count": rec.count,
        }
    )  # fmt: skip
    _empty(xf, "Feed", attrs)


def _reject(xf: Any, rec: RejectRecord) -> None:
    ev = rec.event
    commissioned = None if rec.commissioned is None else str(rec.commissioned).lower()
    attrs = _clean(
        {
            "event": ev.id, "t": rec.ts, "batch": rec.batch, "line": ev.line,
            "device": rec.device, "reason": rec.reason, "code": rec.code, "case": rec.parent,
            "commissioned": commissioned, "value": _num(rec.value), "unit": rec.unit,
            "count": rec.count, "detection": rec.detection,
        }
    )  # fmt: skip
    _empty(xf, "Reject", attrs)


def _scan(xf: Any, rec: ScanRecord) -> None:
    ev = rec.event
    ref, party = ("order", "supplier") if rec.kind == "inbound" else ("recall", "party")
    attrs = _clean(
        {
            "event": ev.id, "t": rec.ts, "code": rec.code, "level": rec.level,
            ref: rec.ref, party: rec.party, "bags": rec.bags, "batch": rec.batch,
            "line": ev.line, "device": rec.device,
        }
    )  # fmt: skip
    with xf.element("Scan", attrs):  # the bags of a case or pallet (docs/wholesale.md)
        for code, batch in rec.bag_codes:
            with xf.element("Bag", _clean({"batch": batch})):
                xf.write(code)


# record kind → (section, element): QB/T 5279 table 1 (原辅料信息), table 2 row 3 (检验信息),
# table 3 row 3 (产品放行记录, 不合格产品处置记录, 退货处置记录);
# fields: docs/records.md, platform-1.xsd
LAB_SECTIONS = {
    "material_receipt": ("MaterialReceipts", "Receipt"),
    "inspection": ("Inspections", "Inspection"),
    "release": ("Releases", "Release"),
    "nonconforming": ("NonconformingHandling", "Handling"),
    "return": ("ReturnHandling", "Return"),
}


def _lab_record(xf: Any, out: IO[bytes], rec: LabRecord) -> None:
    """A record's fields as attributes (``snake_case`` → ``camelCase``); an inspection's items
    as ``Item`` elements, a non-conforming record's codes as ``C``."""
    ev, f = rec.event, rec.fields
    attrs = {"event": ev.id, "record": rec.record_id, "t": rec.ts, "line": ev.line}
    for name, v in f.items():
        if name in ("record_id", "items", "codes") or v is None or v == "":
            continue
        if isinstance(v, float | int) and not isinstance(v, bool):
            v = _num(v)
        attrs[camel(name)] = str(v)
    with xf.element(LAB_SECTIONS[rec.kind][1], attrs):
        for item in rec.items():
            _empty(xf, "Item", _clean(item))
        codes = f.get("codes")
        if isinstance(codes, list) and codes:
            write_run(xf, out, "C", [str(c) for c in codes])


def _section(xf: Any, tag: str, records: Iterator[T], write: Callable[[Any, T], None]) -> None:
    """``<tag>`` with one element per record, or nothing when there is none."""
    recs = _peek(records)
    if recs is None:
        return
    with xf.element(tag):
        for rec in recs:
            write(xf, rec)


def _batch_attrs(b: BatchInfo) -> dict[str, str]:
    return fields_of(b, BATCH_FIELDS)


def _peek(it: Iterator[T]) -> Iterator[T] | None:
    """``it`` unchanged, or None when it is empty (a section is written only when not empty)."""
    first = next(it, None)
    return None if first is None else chain([first], it)


def _empty(xf: Any, tag: str, attrs: dict[str, str]) -> None:
    with xf.element(tag, attrs):
        pass
