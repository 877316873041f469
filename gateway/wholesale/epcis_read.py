"""Read a producer's EPCIS 2.0 document (what a saltgw bridge with ``profile: epcis`` uploads,
gateway/bridge/epcis.py) into what a wholesaler needs to expand a case or pallet to its bags:
the codes commissioned (with their batch), the packing and unpacking of cases and pallets, the
codes decommissioned, and the shipments (QB/T 5279-2018 8.3, 8.4: the wholesaler keeps the
relation of the outer codes to the codes inside).

Every problem is a :class:`DocError` naming the file, the line and the element
(``FILE:LINE: error: EventList[12]/AggregationEvent/childEPCs/epc: …``: a bridge writes a
document on one line, so the event's position says where); a document with any is not used.
The document is checked against GS1's EPCIS 2.0 XSD when it is at hand (``bridge.epcis_xsd``,
``$SALTGW_EPCIS_XSD`` or the reference next to the source tree), and in any case for what the
import reads: each code a valid traceability code of an Annex A producer (6.2), each packing
event with a parent and children, a known action.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from gateway.bridge.epcis import EPCIS_NS, SG_NS
from gateway.bridge.uris import code_of
from gateway.bridge.xmlcheck import SchemaMissing, check_document
from gateway.codes import TraceCodeRules, check_code

__all__ = ["DocError", "Packing", "ProducerDocument", "Shipment", "read_document"]

MAX_BYTES = 256 * 1024 * 1024  # a document of a million codes is ~60 MB
CBV = "urn:epcglobal:cbv:"
LEVELS = ("case", "pallet")


@dataclass(frozen=True, slots=True)
class DocError:
    file: str
    line: int
    where: str  # the element, e.g. EventList[12]/AggregationEvent/childEPCs/epc
    message: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.file}:{self.line}: error: {where}{self.message}"


@dataclass(frozen=True, slots=True)
class Packing:
    """An AggregationEvent: ``action`` pack (ADD), unpack (DELETE, unpacking) or remove
    (DELETE, removing: a rejected bag taken out of its case)."""

    line: int
    action: str
    parent: str
    level: str | None  # case | pallet when the document says (sg:level)
    children: list[str]
    ts: str


@dataclass(frozen=True, slots=True)
class Shipment:
    """A shipping ObjectEvent: the producer's outbound (table 4) of these codes."""

    line: int
    order: str | None
    customer: str | None
    codes: list[str]
    ts: str


@dataclass
class ProducerDocument:
    file: str
    sha256: str
    number: str | None  # sg:documentNumber
    enterprise: str | None  # sg:enterprise: the producer
    created: str | None
    bags: dict[str, str | None] = field(default_factory=dict)  # code → batch (commissioned)
    decommissioned: list[str] = field(default_factory=list)
    packings: list[Packing] = field(default_factory=list)
    shipments: list[Shipment] = field(default_factory=list)
    schema_checked: bool = False


def _local(el: etree._Element) -> str:
    return str(etree.QName(el).localname)


def _text(el: etree._Element, tag: str) -> str | None:
    found = el.find(tag)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


class _Reader:
    def __init__(self, name: str, rules: TraceCodeRules) -> None:
        self.name = name
        self.rules = rules
        self.errors: list[DocError] = []
        self.event = ""  # the event being read: EventList[n]/{type}

    def fail(self, el: etree._Element, where: str, message: str) -> None:
        head, _, tail = where.partition("/")
        if self.event and head in ("ObjectEvent", "AggregationEvent"):
            where = f"{self.event}/{tail}" if tail else self.event
        self.errors.append(DocError(self.name, el.sourceline or 0, where, message))

    def code(self, el: etree._Element, where: str) -> str | None:
        uri = (el.text or "").strip()
        try:
            code = code_of(uri)
        except ValueError:
            self.fail(el, where, f"{uri!r} is not a saltgw code URI (urn:saltgw:code:CODE)")
            return None
        check = check_code(code, self.rules, "")
        if not check.valid:
            self.fail(el, where, f"{code!r} is not a traceability code: {check.reason}")
            return None
        return code

    def codes(self, parent: etree._Element | None, where: str) -> list[str]:
        if parent is None:
            return []
        out = []
        for epc in parent.findall("epc"):
            code = self.code(epc, where + "/epc")
            if code is not None:
                out.append(code)
        return out


def read_document(
    path: Path, rules: TraceCodeRules, *, epcis_xsd: Path | None = None, name: str | None = None
) -> tuple[ProducerDocument | None, list[DocError]]:
    """The document at ``path``, or None and every error found in it."""
    shown = name or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return None, [DocError(shown, 0, "", f"{size} bytes: over {MAX_BYTES} for a document")]
        raw = path.read_bytes()
    except OSError as exc:
        return None, [DocError(shown, 0, "", f"cannot read it: {exc.strerror or exc}")]
    doc = ProducerDocument(shown, hashlib.sha256(raw).hexdigest(), None, None, None)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        return None, [DocError(shown, exc.lineno or 0, "", f"not well-formed XML: {exc.msg}")]
    if etree.QName(root).namespace != EPCIS_NS or _local(root) != "EPCISDocument":
        what = etree.QName(root).text
        return None, [
            DocError(
                shown, root.sourceline or 1, _local(root),
                f"root element {what} is not an EPCIS 2.0 document ({{{EPCIS_NS}}}EPCISDocument)",
            )
        ]  # fmt: skip
    try:
        checked = check_document(raw, epcis_xsd)
    except SchemaMissing:
        checked = None  # structure is still checked below; the caller says it was not
    if checked is not None:
        doc.schema_checked = True
        if checked.errors:
            return None, [_xsd_error(shown, e) for e in checked.errors[:50]]
    doc.number = root.get(f"{{{SG_NS}}}documentNumber")
    doc.enterprise = root.get(f"{{{SG_NS}}}enterprise")
    doc.created = root.get("creationDate")
    reader = _Reader(shown, rules)
    events = root.find("EPCISBody/EventList")
    if events is None:
        reader.fail(root, "EPCISBody", "no EPCISBody/EventList: the document holds no events")
        return None, reader.errors
    n = 0
    for ev in events:
        if not isinstance(ev.tag, str):
            continue  # comments, processing instructions
        n += 1
        tag = _local(ev)
        reader.event = f"EventList[{n}]/{tag}"  # lines say little: documents are one line
        if tag == "ObjectEvent":
            _object_event(reader, ev, doc)
        elif tag == "AggregationEvent":
            _aggregation_event(reader, ev, doc)
        # other event types (TransformationEvent: feeding) say nothing of the codes
    if reader.errors:
        return None, reader.errors
    return doc, []


def _xsd_error(name: str, error: str) -> DocError:
    line, _col, message = error.split(":", 2)
    return DocError(name, int(line) if line.isdigit() else 0, "", message.strip())


def _object_event(r: _Reader, ev: etree._Element, doc: ProducerDocument) -> None:
    step = _text(ev, "bizStep") or ""
    action = _text(ev, "action")
    ts = _text(ev, "eventTime") or ""
    if step == CBV + "bizstep:commissioning" and action == "ADD":
        batch = _text(ev, f"ilmd/{{{SG_NS}}}batch")
        for code in r.codes(ev.find("epcList"), "ObjectEvent/epcList"):
            doc.bags[code] = batch
    elif step == CBV + "bizstep:decommissioning" and action == "DELETE":
        doc.decommissioned.extend(r.codes(ev.find("epcList"), "ObjectEvent/epcList"))
    elif step == CBV + "bizstep:shipping":
        codes = r.codes(ev.find("epcList"), "ObjectEvent/epcList")
        order = _text(ev, f"{{{SG_NS}}}order")
        customer = _text(ev, f"{{{SG_NS}}}customer")
        doc.shipments.append(Shipment(ev.sourceline or 0, order, customer, codes, ts))


def _aggregation_event(r: _Reader, ev: etree._Element, doc: ProducerDocument) -> None:
    action = _text(ev, "action")
    step = (_text(ev, "bizStep") or "").removeprefix(CBV + "bizstep:")
    parent_el = ev.find("parentID")
    if parent_el is None:
        r.fail(ev, "AggregationEvent", "no parentID: a packing event names its case or pallet")
        return
    parent = r.code(parent_el, "AggregationEvent/parentID")
    children = r.codes(ev.find("childEPCs"), "AggregationEvent/childEPCs")
    level = _text(ev, f"{{{SG_NS}}}level")
    if level is not None and level not in LEVELS:
        el = ev.find(f"{{{SG_NS}}}level")
        assert el is not None
        r.fail(el, "AggregationEvent/sg:level", f"{level!r} is neither case nor pallet")
        return
    if action == "ADD":
        kind = "pack"
        if not children and ev.find("childEPCs") is not None:
            r.fail(ev, "AggregationEvent/childEPCs", "packing (ADD) without a child code")
    elif action == "DELETE":
        kind = "remove" if step == "removing" else "unpack"
    elif action == "OBSERVE":
        return  # an observation changes nothing
    else:
        r.fail(ev, "AggregationEvent/action", f"{action!r} is not ADD, OBSERVE or DELETE")
        return
    if parent is None:
        return
    if parent in children:
        r.fail(ev, "AggregationEvent/childEPCs", f"the parent {parent} is among its children")
        return
    ts = _text(ev, "eventTime") or ""
    doc.packings.append(Packing(ev.sourceline or 0, kind, parent, level, children, ts))
