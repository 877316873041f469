"""Read back what saltgw's documents say (EPCIS 2.0 or platform XML): codes commissioned,
packing/unpacking, CCP records, outbound orders — to compare with what was published."""

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

    def add(self, xml: bytes) -> None:
        root = etree.fromstring(decode_body(xml))
        if etree.QName(root).namespace == EPCIS:
            self._epcis(root)
        else:
            self._platform(root)

    def _epcis(self, root: etree._Element) -> None:
        self.numbers.append(root.get(SG + "documentNumber"))
        for ev in root.iter("ObjectEvent", "AggregationEvent"):
            step = ev.findtext("bizStep", "").rsplit(":", 1)[-1]
            if ev.tag == "AggregationEvent":
                kids = tuple(code_of(e.text) for e in ev.iterfind("childEPCs/epc"))
                action = "pack" if ev.findtext("action") == "ADD" else "unpack"
                self.relations.append((action, code_of(ev.findtext("parentID")), kids))
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

    def _platform(self, root: etree._Element) -> None:
        self.numbers.append(root.get("number"))
        for group in root.iterfind(PLAT + "Codes"):
            for c in group.iterfind(PLAT + "C"):
                self.codes.append(c.text)
                self.code_batch[c.text] = group.get("batch")
        for rel in root.iterfind(f"{PLAT}Relations/*"):
            action = "pack" if rel.tag == PLAT + "Pack" else "unpack"
            kids = tuple(c.text for c in rel.iterfind(PLAT + "C"))
            self.relations.append((action, rel.get("parent"), kids))
        for c in root.iterfind(f"{PLAT}CcpRecords/{PLAT}Ccp"):
            self.ccp.append((c.get("type"), c.get("verdict")))
        for o in root.iterfind(f"{PLAT}Outbound/{PLAT}Order"):
            self.orders[o.get("number")] = [c.text for c in o.iterfind(PLAT + "C")]


def facts_of(bodies: list[bytes]) -> Facts:
    f = Facts()
    for b in bodies:
        f.add(b)
    return f
