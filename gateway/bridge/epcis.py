"""The canonical export: EPCIS 2.0 XML (``urn:epcglobal:epcis:xsd:2``), written with lxml's
incremental writer (``etree.xmlfile``): one event subtree at a time, never the whole document.

Mapping (contract "Platform XML"; URIs: gateway/bridge/uris.py):

- codes commissioned (``pack.bag``; QB/T 5279 6.3, table 3): one ``ObjectEvent`` per batch in the
  document, action ADD, bizStep ``commissioning``, disposition ``active``, the codes in
  ``epcList``, and batch, production date, product and shelf life in ``ilmd``. Its eventTime is
  the last commissioning time in the group (by then every listed code was commissioned).
- packing (``pack.case`` / ``pack.pallet``; table 2 内外包装追溯码关联): ``AggregationEvent``
  ADD, bizStep ``packing``; rework (``pack.unpack``): DELETE, bizStep ``unpacking``.
- CCP checks (``ccp.*``; table 2 关键控制点): ``ObjectEvent`` OBSERVE, bizStep ``inspecting``,
  disposition ``conformant`` / ``non_conformant``, the batch as ``quantityList/epcClass``, the
  reading in ``sensorElementList`` (limits and verdict as ``sg:`` attributes).
- outbound (``ship.outbound``; table 4): ``ObjectEvent`` OBSERVE, bizStep ``shipping``,
  disposition ``in_transit``, the order as ``bizTransaction`` (type ``desadv``: 出库单), the
  customer as ``destination`` (type ``owning_party``) and in ``sg:customer``.
"""

from __future__ import annotations

import uuid
from typing import IO, Any

from lxml import etree

from gateway.bridge.content import (
    BatchInfo,
    CcpRecord,
    CodeGroup,
    DocumentContent,
    DocumentHeader,
    EventMeta,
    OutboundRecord,
    Relation,
)
from gateway.bridge.uris import (
    batch_uri,
    ccp_uri,
    code_uri,
    device_uri,
    location_uri,
    order_uri,
    party_uri,
)
from gateway.bridge.xmlout import write_leaves, write_run

__all__ = ["EPCIS_NS", "SG_NS", "EpcisWriter"]

EPCIS_NS = "urn:epcglobal:epcis:xsd:2"
SG_NS = "urn:saltgw:epcis:1"  # saltgw's extension elements and attributes
GS1_NS = "https://gs1.org/voc/"
CBV = "urn:epcglobal:cbv:"
# UN/CEFACT Recommendation 20 codes for the units CCP readings use
UOM = {"g": "GRM", "kg": "KGM", "mg": "MGM", "mg/kg": "NA", "mm": "MMT", "ppm": "59"}
SENSOR_TYPE = {"ccp.net_content": "gs1:Mass"}


def tz_offset(ts: str) -> str:
    return "+00:00" if ts.endswith("Z") else ts[-6:]


def event_id(ev_id: str) -> str:
    try:
        return uuid.UUID(ev_id).urn
    except ValueError:
        return "urn:saltgw:event:" + ev_id.replace(" ", "%20")


def _num(v: float) -> str:
    return repr(float(v))


class EpcisWriter:
    """A document profile: writes one EPCIS 2.0 document for one :class:`DocumentContent`."""

    name = "epcis"
    namespace = EPCIS_NS

    def write(self, out: IO[bytes], header: DocumentHeader, content: DocumentContent) -> None:
        batches = {b.batch: b for b in content.batches()}
        nsmap = {"epcis": EPCIS_NS, "sg": SG_NS, "gs1": GS1_NS}
        root_attrs = {
            "schemaVersion": "2.0",
            "creationDate": header.created,
            f"{{{SG_NS}}}documentNumber": header.number,
            f"{{{SG_NS}}}enterprise": header.enterprise,
        }
        with etree.xmlfile(out, encoding="UTF-8") as xf:
            xf.write_declaration(standalone=True)
            with (
                xf.element(f"{{{EPCIS_NS}}}EPCISDocument", root_attrs, nsmap=nsmap),
                xf.element("EPCISBody"),
                xf.element("EventList"),
            ):
                for group in content.code_groups():
                    self._commissioning(xf, out, group, batches.get(group.batch or ""))
                for rel in content.relations():
                    self._aggregation(xf, out, rel)
                for rec in content.ccp_records():
                    self._inspecting(xf, rec)
                for ob in content.outbound():
                    self._shipping(xf, out, ob)

    # -- events ----------------------------------------------------------------------------------
    @staticmethod
    def _head(xf: Any, ts: str, eid: str | None) -> None:
        _leaf(xf, "eventTime", ts)
        _leaf(xf, "eventTimeZoneOffset", tz_offset(ts))
        if eid is not None:
            _leaf(xf, "eventID", event_id(eid))

    @staticmethod
    def _where(xf: Any, ev: EventMeta | BatchInfo) -> None:
        with xf.element("readPoint"):
            _leaf(xf, "id", location_uri(ev.enterprise, ev.site, ev.line))

    def _commissioning(
        self, xf: Any, out: IO[bytes], g: CodeGroup, batch: BatchInfo | None
    ) -> None:
        with xf.element("ObjectEvent"):
            self._head(xf, g.last_ts, None)
            with xf.element("epcList"):
                write_run(xf, out, "epc", [code_uri(c) for c, _ts, _b, _e in g.codes], uris=True)
            _leaf(xf, "action", "ADD")
            _leaf(xf, "bizStep", CBV + "bizstep:commissioning")
            _leaf(xf, "disposition", CBV + "disp:active")
            if batch is not None:
                self._where(xf, batch)
            with xf.element("ilmd"):
                _leaf(xf, f"{{{SG_NS}}}enterprise", g.enterprise)
                if g.batch is not None:
                    _leaf(xf, f"{{{SG_NS}}}batch", g.batch)
                if batch is not None:
                    for tag, value in (
                        ("productionDate", batch.production_date),
                        ("product", batch.product),
                        ("shelfLifeDays", batch.shelf_life_days),
                    ):
                        if value is not None:
                            _leaf(xf, f"{{{SG_NS}}}{tag}", str(value))

    def _aggregation(self, xf: Any, out: IO[bytes], rel: Relation) -> None:
        pack = rel.action == "pack"
        with xf.element("AggregationEvent"):  # the busiest event type: leaves as text runs
            head = [
                ("eventTime", rel.ts),
                ("eventTimeZoneOffset", tz_offset(rel.ts)),
                ("eventID", event_id(rel.event.id)),
                ("parentID", code_uri(rel.parent)),
            ]
            write_leaves(xf, out, head)
            with xf.element("childEPCs"):
                write_run(xf, out, "epc", [code_uri(c) for c in rel.children], uris=True)
            tail = [
                ("action", "ADD" if pack else "DELETE"),
                ("bizStep", CBV + ("bizstep:packing" if pack else "bizstep:unpacking")),
                ("disposition", CBV + "disp:in_progress"),
            ]
            write_leaves(xf, out, tail)
            self._where(xf, rel.event)
            _leaf(xf, f"{{{SG_NS}}}level", rel.level)

    def _inspecting(self, xf: Any, rec: CcpRecord) -> None:
        ev = rec.event
        with xf.element("ObjectEvent"):
            self._head(xf, rec.ts, ev.id)
            _leaf(xf, "epcList", "")
            _leaf(xf, "action", "OBSERVE")
            _leaf(xf, "bizStep", CBV + "bizstep:inspecting")
            ok = rec.verdict == "pass"
            _leaf(xf, "disposition", CBV + ("disp:conformant" if ok else "disp:non_conformant"))
            self._where(xf, ev)
            if ev.batch is not None:
                with xf.element("quantityList"), xf.element("quantityElement"):
                    _leaf(xf, "epcClass", batch_uri(ev.enterprise, ev.batch))
            with xf.element("sensorElementList"), xf.element("sensorElement"):
                meta = {"time": rec.ts}
                if rec.device is not None:
                    meta["deviceID"] = device_uri(ev.enterprise, ev.site, ev.line, rec.device)
                _leaf(xf, "sensorMetadata", "", meta)
                kind = rec.type.split(".", 1)[1]
                report = {"type": SENSOR_TYPE.get(rec.type, ccp_uri(kind))}
                if rec.flag is not None:
                    report["booleanValue"] = "true" if rec.flag else "false"
                elif rec.value is not None:
                    report["value"] = _num(rec.value)
                if rec.unit is not None:
                    report["uom" if rec.unit in UOM else f"{{{SG_NS}}}unit"] = UOM.get(
                        rec.unit, rec.unit
                    )
                if rec.lo is not None:
                    report[f"{{{SG_NS}}}lo"] = _num(rec.lo)
                if rec.hi is not None:
                    report[f"{{{SG_NS}}}hi"] = _num(rec.hi)
                report[f"{{{SG_NS}}}verdict"] = rec.verdict
                _leaf(xf, "sensorReport", "", report)

    def _shipping(self, xf: Any, out: IO[bytes], ob: OutboundRecord) -> None:
        ev = ob.event
        with xf.element("ObjectEvent"):
            self._head(xf, ob.ts, ev.id)
            with xf.element("epcList"):
                write_run(xf, out, "epc", [code_uri(c) for c, _batch in ob.codes], uris=True)
            _leaf(xf, "action", "OBSERVE")
            _leaf(xf, "bizStep", CBV + "bizstep:shipping")
            _leaf(xf, "disposition", CBV + "disp:in_transit")
            self._where(xf, ev)
            with xf.element("bizTransactionList"):
                bt = {"type": CBV + "btt:desadv"}
                _leaf(xf, "bizTransaction", order_uri(ev.enterprise, ob.order), bt)
            with xf.element("destinationList"):
                dest = {"type": CBV + "sdt:owning_party"}
                _leaf(xf, "destination", party_uri(ob.customer), dest)
            _leaf(xf, f"{{{SG_NS}}}order", ob.order)
            ctype = {} if ob.customer_type is None else {"type": ob.customer_type}
            _leaf(xf, f"{{{SG_NS}}}customer", ob.customer, ctype)


def _leaf(xf: Any, tag: str, text: str, attrib: dict[str, str] | None = None) -> None:
    with xf.element(tag, attrib or {}):
        if text:
            xf.write(text)
