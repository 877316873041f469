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
  customer as ``destination`` (type ``owning_party``) and in ``sg:customer``; the codes scanned
  and then the bags of the cases and pallets among them (``bag_codes``, docs/wholesale.md).
- feeding (``feed.material``; table 2 row 1): ``TransformationEvent``, the material (and lot) as
  ``inputQuantityList`` (quantity, UN/CEFACT uom), the batch as ``outputQuantityList`` with
  bizStep ``creating_class_instance``; material, lot, quantity, operator, point as ``sg:``.
- rejects (``pack.reject``; table 3 row 3): a bag with a code is decommissioned — ``ObjectEvent``
  DELETE, bizStep ``decommissioning``, disposition ``inactive`` — and, when it was in a case,
  first taken out of it: ``AggregationEvent`` DELETE, bizStep ``removing`` (parent the case,
  child the bag; its eventID is derived from the reject's: UUID v5). A reject without a code:
  ``ObjectEvent`` OBSERVE, bizStep ``removing``, disposition ``non_conformant``, one unit of the
  batch in ``quantityList``. Reason and readings as ``sg:``.
- inbound (``ship.inbound``; 5.2): ``ObjectEvent`` OBSERVE, bizStep ``receiving``, disposition
  ``in_progress``, the order as ``bizTransaction`` type ``recadv``, the supplier as ``source``;
  the code scanned and then the bags of a case or pallet in ``epcList``.
- recall scans (``recall.scan``; 10.6): ``ObjectEvent`` OBSERVE, bizStep ``receiving``,
  disposition ``recalled``, the recall as ``bizTransaction`` type ``rma``, the party as ``source``.
- records from MES and LIMS (``record.*``; docs/records.md), each an ``ObjectEvent`` OBSERVE
  with the record's fields as ``sg:`` leaves (names as the platform profile's attributes,
  ``sg:record`` the record id) and the subject in ``quantityList``:
  material receipts (table 1, 10.1): bizStep ``receiving``, disposition ``conformant`` /
  ``non_conformant`` (the verdict), the lot as ``urn:saltgw:material:…:{material}:{lot}`` with
  quantity and unit, the supplier as ``source`` (type ``owning_party``); inspections (table 2
  row 3): bizStep ``inspecting``, disposition by the verdict, the batch (or the lot: a material
  URI when ``product`` names it, else ``urn:saltgw:lot:…``), each item as ``sg:item`` with
  ``item`` / ``result`` / ``verdict`` attributes; releases (table 3 row 3): bizStep
  ``urn:saltgw:bizstep:releasing`` and disposition ``sellable_not_accessible`` when released,
  bizStep ``holding`` and ``non_sellable_other`` when held, the batch as the class;
  non-conforming handling (table 3 row 3): bizStep ``removing``, disposition ``destroyed`` for
  ``destroy`` else ``non_conformant``, the codes in ``epcList`` or, with none, the batch (with the
  quantity) in ``quantityList``.
- table 6's public fields and table 2 row 2 (shift, person in charge) as master data in
  ``EPCISHeader/extension/EPCISMasterData``: vocabulary ``EPCClass`` (each product
  ``urn:saltgw:product:…`` and batch ``urn:saltgw:batch:…`` with its fields) and
  ``BusinessLocation`` (each site ``urn:saltgw:loc:{enterprise}:{site}`` with the producer's
  fields and its lines as ``children``); attribute ids ``urn:saltgw:mda:{name}``, names as the
  platform profile's attributes (gateway/bridge/content.py), so both profiles carry the same facts.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import IO, Any

from lxml import etree

from gateway.bridge.content import (
    BATCH_FIELDS,
    ENTERPRISE_FIELDS,
    PRODUCT_FIELDS,
    BatchInfo,
    CcpRecord,
    CodeGroup,
    DocumentContent,
    DocumentHeader,
    EventMeta,
    FeedRecord,
    LabRecord,
    OutboundRecord,
    RejectRecord,
    Relation,
    ScanRecord,
    camel,
    fields_of,
)
from gateway.bridge.uris import (
    batch_uri,
    ccp_uri,
    code_uri,
    device_uri,
    location_uri,
    lot_uri,
    material_uri,
    mda_uri,
    order_uri,
    party_uri,
    product_uri,
    recall_uri,
    site_uri,
)
from gateway.bridge.xmlout import write_leaves, write_run
from gateway.records.models import KINDS, names_codes

__all__ = ["EPCIS_NS", "SG_NS", "EpcisWriter"]

EPCIS_NS = "urn:epcglobal:epcis:xsd:2"
SG_NS = "urn:saltgw:epcis:1"  # saltgw's extension elements and attributes
GS1_NS = "https://gs1.org/voc/"
CBV = "urn:epcglobal:cbv:"
# UN/CEFACT Recommendation 20 codes for the units CCP readings use
UOM = {
    "g": "GRM", "kg": "KGM", "mg": "MGM", "mg/kg": "NA", "mm": "MMT", "ppm": "59", "t": "TNE",
}  # fmt: skip
SENSOR_TYPE = {"ccp.net_content": "gs1:Mass"}
VTYPE = "urn:epcglobal:epcis:vtype:"
STEP_OF = {"pack": "packing", "unpack": "unpacking", "remove": "removing"}


def tz_offset(ts: str) -> str:
    return "+00:00" if ts.endswith("Z") else ts[-6:]


def event_id(ev_id: str) -> str:
    try:
        return uuid.UUID(ev_id).urn
    except ValueError:
        return "urn:saltgw:event:" + ev_id.replace(" ", "%20")


def _num(v: float) -> str:
    return repr(float(v))


def _decimal(v: float) -> str:
    """An ``xsd:decimal`` (no exponent)."""
    return format(Decimal(repr(float(v))), "f")


def removal_id(ev_id: str) -> str:
    """The eventID of the AggregationEvent that takes a rejected bag out of its case: derived
    from the reject's id (which its ObjectEvent carries), so both are unique and stable."""
    try:
        return str(uuid.uuid5(uuid.UUID(ev_id), "remove"))
    except ValueError:
        return ev_id + ":remove"


class EpcisWriter:
    """A document profile: writes one EPCIS 2.0 document for one :class:`DocumentContent`."""

    name = "epcis"
    namespace = EPCIS_NS

    def write(self, out: IO[bytes], header: DocumentHeader, content: DocumentContent) -> None:
        batch_list = content.batches()
        batches = {b.batch: b for b in batch_list}
        nsmap = {"epcis": EPCIS_NS, "sg": SG_NS, "gs1": GS1_NS}
        root_attrs = {
            "schemaVersion": "2.0",
            "creationDate": header.created,
            f"{{{SG_NS}}}documentNumber": header.number,
            f"{{{SG_NS}}}enterprise": header.enterprise,
        }
        with etree.xmlfile(out, encoding="UTF-8") as xf:
            xf.write_declaration(standalone=True)
            with xf.element(f"{{{EPCIS_NS}}}EPCISDocument", root_attrs, nsmap=nsmap):
                self._master_data(xf, header, content, batch_list)
                with xf.element("EPCISBody"), xf.element("EventList"):
                    for group in content.code_groups():
                        self._commissioning(xf, out, group, batches.get(group.batch or ""))
                    for rel in content.relations():
                        self._aggregation(xf, out, rel)
                    for rec in content.ccp_records():
                        self._inspecting(xf, rec)
                    for ob in content.outbound():
                        self._shipping(xf, out, ob)
                    for feed in content.feedings():
                        self._feeding(xf, feed)
                    for rej in content.rejects():
                        self._reject(xf, rej)
                    for scan in (*content.scans("inbound"), *content.scans("recall")):
                        self._scan(xf, scan)
                    for kind in KINDS:  # in the order of gateway/records/models.py
                        for lab in content.lab_records(kind):
                            self._lab_record(xf, out, lab)
                if header.chain is not None:  # the store's chain head: the platform's anchor
                    rid, hexed, alg = header.chain  # (xsd:any ##other after EPCISBody)
                    attrs = {"record": str(rid), "hash": hexed, "alg": alg}
                    with xf.element(f"{{{SG_NS}}}chainHead", attrs):
                        pass

    # -- master data (table 6, table 2 row 2) ---------------------------------------------------
    @staticmethod
    def _master_data(
        xf: Any, header: DocumentHeader, content: DocumentContent, batches: list[BatchInfo]
    ) -> None:
        products = content.products(batches)
        sites = content.sites()
        info = content.cfg.enterprise_info
        if not (products or batches or sites):
            return
        with (
            xf.element("EPCISHeader"),
            xf.element("extension"),
            xf.element("EPCISMasterData"),
            xf.element("VocabularyList"),
        ):
            if products or batches:
                with (
                    xf.element("Vocabulary", {"type": VTYPE + "EPCClass"}),
                    xf.element("VocabularyElementList"),
                ):
                    for p in products:
                        uri = product_uri(header.enterprise, p.id)
                        _vocabulary_element(xf, uri, fields_of(p, PRODUCT_FIELDS))
                    for b in batches:
                        uri = batch_uri(b.enterprise, b.batch)
                        _vocabulary_element(xf, uri, fields_of(b, BATCH_FIELDS))
            if sites:
                with (
                    xf.element("Vocabulary", {"type": VTYPE + "BusinessLocation"}),
                    xf.element("VocabularyElementList"),
                ):
                    for site in sites:
                        attrs = {"code": site.enterprise, "site": site.site}
                        if info is not None:
                            attrs.update(fields_of(info, ENTERPRISE_FIELDS))
                        lines = [location_uri(site.enterprise, site.site, ln) for ln in site.lines]
                        uri = site_uri(site.enterprise, site.site)
                        _vocabulary_element(xf, uri, attrs, lines)

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
                with xf.element("bizLocation"):
                    _leaf(xf, "id", site_uri(batch.enterprise, batch.site))
            with xf.element("ilmd"):
                _leaf(xf, f"{{{SG_NS}}}enterprise", g.enterprise)
                if g.batch is not None:
                    _leaf(xf, f"{{{SG_NS}}}batch", g.batch)
                if batch is not None:
                    for tag, value in (
                        ("productionDate", batch.production_date),
                        ("product", batch.product),
                        ("shelfLifeDays", batch.shelf_life_days),
                        ("shift", batch.shift),
                        ("personInCharge", batch.person_in_charge),
                    ):
                        if value is not None:
                            _leaf(xf, f"{{{SG_NS}}}{tag}", str(value))

    def _aggregation(self, xf: Any, out: IO[bytes], rel: Relation) -> None:
        pack = rel.action == "pack"
        removal = rel.action == "remove"  # a rejected bag out of its case (pack.reject)
        with xf.element("AggregationEvent"):  # the busiest event type: leaves as text runs
            eid = removal_id(rel.event.id) if removal else rel.event.id
            head = [
                ("eventTime", rel.ts),
                ("eventTimeZoneOffset", tz_offset(rel.ts)),
                ("eventID", event_id(eid)),
                ("parentID", code_uri(rel.parent)),
            ]
            write_leaves(xf, out, head)
            with xf.element("childEPCs"):
                write_run(xf, out, "epc", [code_uri(c) for c in rel.children], uris=True)
            tail = [
                ("action", "ADD" if pack else "DELETE"),
                ("bizStep", CBV + "bizstep:" + STEP_OF[rel.action]),
            ]
            if not removal:  # the removed bag's own disposition is in its decommissioning
                tail.append(("disposition", CBV + "disp:in_progress"))
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
                codes = [c for c, _batch in ob.codes]
                codes += [bag for _scanned, bag, _batch in ob.bags]  # docs/wholesale.md
                write_run(xf, out, "epc", [code_uri(c) for c in codes], uris=True)
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

    def _feeding(self, xf: Any, rec: FeedRecord) -> None:
        ev = rec.event
        with xf.element("TransformationEvent"):
            self._head(xf, rec.ts, ev.id)
            with xf.element("inputQuantityList"), xf.element("quantityElement"):
                _leaf(xf, "epcClass", material_uri(ev.enterprise, rec.material, rec.lot))
                _leaf(xf, "quantity", _decimal(rec.quantity))
                if rec.unit in UOM:
                    _leaf(xf, "uom", UOM[rec.unit])
            if ev.batch is not None:
                with xf.element("outputQuantityList"), xf.element("quantityElement"):
                    _leaf(xf, "epcClass", batch_uri(ev.enterprise, ev.batch))
                _leaf(xf, "bizStep", CBV + "bizstep:creating_class_instance")
            self._where(xf, ev)
            _extras(
                xf,
                material=rec.material, lot=rec.lot, quantity=_num(rec.quantity), unit=rec.unit,
                point=rec.point, operator=rec.operator, count=rec.count, device=rec.device,
                batch=ev.batch,
            )  # fmt: skip

    def _reject(self, xf: Any, rec: RejectRecord) -> None:
        ev = rec.event
        with xf.element("ObjectEvent"):
            self._head(xf, rec.ts, ev.id)
            if rec.code is not None:  # the code is decommissioned: never valid again
                with xf.element("epcList"):
                    _leaf(xf, "epc", code_uri(rec.code))
                _leaf(xf, "action", "DELETE")
                _leaf(xf, "bizStep", CBV + "bizstep:decommissioning")
                _leaf(xf, "disposition", CBV + "disp:inactive")
                self._where(xf, ev)
            else:  # a bag whose code was not read: one unit of the batch off the line
                _leaf(xf, "epcList", "")
                _leaf(xf, "action", "OBSERVE")
                _leaf(xf, "bizStep", CBV + "bizstep:removing")
                _leaf(xf, "disposition", CBV + "disp:non_conformant")
                self._where(xf, ev)
                if rec.batch is not None:
                    with xf.element("quantityList"), xf.element("quantityElement"):
                        _leaf(xf, "epcClass", batch_uri(ev.enterprise, rec.batch))
                        _leaf(xf, "quantity", "1")
            commissioned = None if rec.commissioned is None else str(rec.commissioned).lower()
            _extras(
                xf,
                reason=rec.reason, case=rec.parent, commissioned=commissioned,
                value=None if rec.value is None else _num(rec.value), unit=rec.unit,
                count=rec.count, detection=rec.detection, device=rec.device, batch=rec.batch,
            )  # fmt: skip

    def _scan(self, xf: Any, rec: ScanRecord) -> None:
        ev = rec.event
        inbound = rec.kind == "inbound"
        with xf.element("ObjectEvent"):
            self._head(xf, rec.ts, ev.id)
            with xf.element("epcList"):
                _leaf(xf, "epc", code_uri(rec.code))
                for bag, _batch in rec.bag_codes:  # a case's or pallet's bags (wholesale.md)
                    _leaf(xf, "epc", code_uri(bag))
            _leaf(xf, "action", "OBSERVE")
            _leaf(xf, "bizStep", CBV + "bizstep:receiving")
            _leaf(xf, "disposition", CBV + ("disp:in_progress" if inbound else "disp:recalled"))
            self._where(xf, ev)
            if rec.ref is not None:
                with xf.element("bizTransactionList"):
                    if inbound:
                        ref, bt = order_uri(ev.enterprise, rec.ref), {"type": CBV + "btt:recadv"}
                    else:
                        ref, bt = recall_uri(ev.enterprise, rec.ref), {"type": CBV + "btt:rma"}
                    _leaf(xf, "bizTransaction", ref, bt)
            if rec.party is not None:
                with xf.element("sourceList"):
                    src = {"type": CBV + "sdt:owning_party"}
                    _leaf(xf, "source", party_uri(rec.party), src)
            names = ("order", "supplier") if inbound else ("recall", "party")
            _extras(
                xf,
                **{names[0]: rec.ref, names[1]: rec.party},
                level=rec.level, bags=rec.bags, batch=rec.batch, device=rec.device,
            )  # fmt: skip

    def _lab_record(self, xf: Any, out: IO[bytes], rec: LabRecord) -> None:
        ev, f = rec.event, rec.fields
        step, disp = _lab_step(rec)
        codes = f.get("codes") if names_codes(rec.kind) else None
        with xf.element("ObjectEvent"):
            self._head(xf, rec.ts, ev.id)
            if isinstance(codes, list) and codes:
                with xf.element("epcList"):
                    write_run(xf, out, "epc", [code_uri(str(c)) for c in codes], uris=True)
                codes_named = True
            else:
                _leaf(xf, "epcList", "")
                codes_named = False
            _leaf(xf, "action", "OBSERVE")
            _leaf(xf, "bizStep", step)
            _leaf(xf, "disposition", CBV + "disp:" + disp)
            self._where(xf, ev)
            subject = None if codes_named else _lab_subject(ev.enterprise, rec)
            if subject is not None:
                with xf.element("quantityList"), xf.element("quantityElement"):
                    _leaf(xf, "epcClass", subject)
                    q, unit = f.get("quantity"), f.get("unit")
                    if isinstance(q, int | float) and not isinstance(q, bool):
                        _leaf(xf, "quantity", _decimal(q))
                        if isinstance(unit, str) and unit in UOM:
                            _leaf(xf, "uom", UOM[unit])
            supplier = f.get("supplier")
            if rec.kind == "material_receipt" and isinstance(supplier, str):
                with xf.element("sourceList"):
                    src = {"type": CBV + "sdt:owning_party"}
                    _leaf(xf, "source", party_uri(supplier), src)
            _leaf(xf, f"{{{SG_NS}}}record", rec.record_id)
            _extras(
                xf,
                **{
                    camel(k): _num(v) if isinstance(v, float) else v
                    for k, v in f.items()
                    if k not in ("record_id", "items", "codes")
                },
            )
            for item in rec.items():
                attrs = {k: str(v) for k, v in item.items() if v is not None and v != ""}
                _leaf(xf, f"{{{SG_NS}}}item", "", attrs)




def _lab_step(rec: LabRecord) -> tuple[str, str]:
    """(bizStep URI, CBV disposition) of a record from MES or LIMS."""
    f = rec.fields
    ok = "conformant" if f.get("verdict") == "pass" else "non_conformant"
    if rec.kind == "material_receipt":
        return CBV + "bizstep:receiving", ok
    if rec.kind == "inspection":
        return CBV + "bizstep:inspecting", ok
    if rec.kind == "release":
        if f.get("decision") == "released":
            return "urn:saltgw:bizstep:releasing", "sellable_not_accessible"
        return CBV + "bizstep:holding", "non_sellable_other"
    destroyed = f.get("disposition") == "destroy"
    if rec.kind == "return":  # 退货处置: received back, then destroyed or kept
        return (CBV + "bizstep:destroying", "destroyed") if destroyed else (
            CBV + "bizstep:receiving", "returned")
    return CBV + "bizstep:removing", "destroyed" if destroyed else "non_conformant"


def _lab_subject(enterprise: str, rec: LabRecord) -> str | None:
    """The class a record is about: the batch, or the material lot."""
    f = rec.fields
    batch, lot = f.get("batch"), f.get("lot")
    if isinstance(batch, str):
        return batch_uri(enterprise, batch)
    if not isinstance(lot, str):
        return None
    name = f.get("material") if rec.kind == "material_receipt" else f.get("product")
    return (
        material_uri(enterprise, name, lot) if isinstance(name, str) else lot_uri(enterprise, lot)
    )


def _extras(xf: Any, **values: object) -> None:
    """saltgw's extension leaves (``sg:{name}``) of an event, those with a value."""
    for name, v in values.items():
        if v is not None and v != "":
            _leaf(xf, f"{{{SG_NS}}}{name}", str(v))


def _vocabulary_element(
    xf: Any, uri: str, attrs: dict[str, str], children: list[str] | None = None
) -> None:
    with xf.element("VocabularyElement", {"id": uri}):
        for name, value in attrs.items():
            _leaf(xf, "attribute", value, {"id": mda_uri(name)})
        if children:
            with xf.element("children"):
                for child in children:
                    _leaf(xf, "id", child)


def _leaf(xf: Any, tag: str, text: str, attrib: dict[str, str] | None = None) -> None:
    with xf.element(tag, attrib or {}):
        if text:
            xf.write(text)
