"""Read back what saltgw's documents say (EPCIS 2.0 or platform XML): codes commissioned,
packing/unpacking/removal, CCP records, outbound orders, feedings, rejects and decommissioned
codes, inbound and recall scans, and table 6's public facts — to compare with what was
published, and the two profiles with each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from gateway.bridge.uris import code_of
from gateway.bridge.xmlcheck import decode_body

EPCIS = "urn:epcglobal:epcis:xsd:2"
PLAT = "{urn:saltgw:platform:1}"
SG = "{urn:saltgw:epcis:1}"
GS1_XSD = Path(__file__).parents[2] / "../shared/reference/epcis-2.0/xsd/EPCglobal-epcis-2_0.xsd"


@dataclass
class Facts:
    numbers: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    code_batch: dict[str, str | None] = field(default_factory=dict)
    relations: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)  # action
    ccp: list[tuple[str, str]] = field(default_factory=list)  # (type, verdict)
    orders: dict[str, list[str]] = field(default_factory=dict)
    feedings: list[dict[str, str]] = field(default_factory=list)
    rejects: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    decommissioned: list[str] = field(default_factory=list)
    inbound: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    recalls: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    # records from MES and LIMS (record.*): record id → its fields as name → text
    lab: dict[str, dict[str, str]] = field(default_factory=dict)
    # table 6 / table 2 row 2: enterprise fields, products and batches by id, as name → text
    enterprise: dict[str, str] = field(default_factory=dict)
    products: dict[str, dict[str, str]] = field(default_factory=dict)
    batches: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, xml: bytes) -> None:
        root = etree.fromstring(decode_body(xml))
        if etree.QName(root).namespace == EPCIS:
            self._epcis(root)
        else:
            self._platform(root)

    def _epcis(self, root: etree._Element) -> None:
        self.numbers.append(root.get(SG + "documentNumber"))
        self._master_data(root)
        for ev in root.iter("ObjectEvent", "AggregationEvent", "TransformationEvent"):
            step = ev.findtext("bizStep", "").rsplit(":", 1)[-1]
            sg = {e.tag[len(SG) :]: e.text for e in ev if e.tag.startswith(SG)}
            epcs = [code_of(e.text) for e in ev.iterfind("epcList/epc")]
            if "record" in sg:  # a record from MES or LIMS
                rid = sg.pop("record")
                self.lab[rid] = {k: v for k, v in sg.items() if k != "item"}
            elif ev.tag == "TransformationEvent":
                self.feedings.append(sg)
            elif ev.tag == "AggregationEvent":
                kids = tuple(code_of(e.text) for e in ev.iterfind("childEPCs/epc"))
                action = "pack" if ev.findtext("action") == "ADD" else "unpack"
                if step == "removing":
                    action = "remove"
                self.relations.append((action, code_of(ev.findtext("parentID")), kids))
            elif "reason" in sg:  # a reject: decommissioning (a code) or removing (none)
                code = epcs[0] if epcs else None
                self.rejects.append((sg["reason"], code, sg.get("case")))
                if step == "decommissioning" and ev.findtext("action") == "DELETE":
                    self.decommissioned.extend(epcs)
            elif step == "receiving":
                if ev.findtext("disposition", "").endswith(":recalled"):
                    self.recalls.append((epcs[0], sg.get("recall"), sg.get("party")))
                else:
                    self.inbound.append((epcs[0], sg.get("order"), sg.get("supplier")))
            elif step == "commissioning":
                batch = ev.findtext(f"ilmd/{SG}batch")
                for e in ev.iterfind("epcList/epc"):
                    self.codes.append(code_of(e.text))
                    self.code_batch[code_of(e.text)] = batch
            elif step == "inspecting":
                rep = ev.find("sensorElementList/sensorElement/sensorReport")
                kind = rep.get("type")
                self.ccp.append((kind, rep.get(SG + "verdict")))
            elif step == "shipping":
                order = ev.findtext(f"{SG}order")
                self.orders[order] = [code_of(e.text) for e in ev.iterfind("epcList/epc")]

    def _master_data(self, root: etree._Element) -> None:
        for voc in root.iterfind("EPCISHeader/extension/EPCISMasterData/VocabularyList/Vocabulary"):
            for el in voc.iterfind("VocabularyElementList/VocabularyElement"):
                attrs = {a.get("id").rsplit(":", 1)[-1]: a.text for a in el.iterfind("attribute")}
                if voc.get("type").endswith(":BusinessLocation"):
                    attrs.pop("site")
                    self.enterprise = attrs
                elif el.get("id").startswith("urn:saltgw:product:"):
                    self.products[attrs["id"]] = attrs
                else:
                    self.batches[attrs["id"]] = attrs

    def _platform(self, root: etree._Element) -> None:
        self.numbers.append(root.get("number"))
        for e in root.iterfind(PLAT + "Enterprise"):
            self.enterprise = dict(e.attrib)
        for p in root.iterfind(f"{PLAT}Products/{PLAT}Product"):
            self.products[p.get("id")] = dict(p.attrib)
        for b in root.iterfind(f"{PLAT}Batches/{PLAT}Batch"):
            self.batches[b.get("id")] = dict(b.attrib)
        for f in root.iterfind(f"{PLAT}Feedings/{PLAT}Feed"):
            self.feedings.append({k: v for k, v in f.attrib.items() if k not in ("event", "t")})
        for r in root.iterfind(f"{PLAT}Rejects/{PLAT}Reject"):
            self.rejects.append((r.get("reason"), r.get("code"), r.get("case")))
            if r.get("code") is not None:
                self.decommissioned.append(r.get("code"))
        for sc in root.iterfind(f"{PLAT}Inbound/{PLAT}Scan"):
            self.inbound.append((sc.get("code"), sc.get("order"), sc.get("supplier")))
        for sc in root.iterfind(f"{PLAT}Recalls/{PLAT}Scan"):
            self.recalls.append((sc.get("code"), sc.get("recall"), sc.get("party")))
        for group in root.iterfind(PLAT + "Codes"):
            for c in group.iterfind(PLAT + "C"):
                self.codes.append(c.text)
                self.code_batch[c.text] = group.get("batch")
        for rel in root.iterfind(f"{PLAT}Relations/*"):
            action = etree.QName(rel).localname.lower()  # pack | unpack | remove
            kids = tuple(c.text for c in rel.iterfind(PLAT + "C"))
            self.relations.append((action, rel.get("parent"), kids))
        for c in root.iterfind(f"{PLAT}CcpRecords/{PLAT}Ccp"):
            self.ccp.append((c.get("type"), c.get("verdict")))
        for o in root.iterfind(f"{PLAT}Outbound/{PLAT}Order"):
            self.orders[o.get("number")] = [c.text for c in o.iterfind(PLAT + "C")]
        for section in ("MaterialReceipts", "Inspections", "Releases", "NonconformingHandling"):
            for r in root.iterfind(f"{PLAT}{section}/*"):
                skip = ("record", "event", "t", "line")
                self.lab[r.get("record")] = {k: v for k, v in r.attrib.items() if k not in skip}


def facts_of(bodies: list[bytes]) -> Facts:
    f = Facts()
    for b in bodies:
        f.add(b)
    return f
