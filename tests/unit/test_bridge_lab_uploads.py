"""Issue 18: records from MES and LIMS (material receipts, inspections with their items,
releases, non-conforming handling) reach the upload documents of both profiles, each document
valid against its schema (platform-1.xsd, GS1's EPCIS 2.0 XSD), with the record's fields; a
record that breaks its model is quarantined, one stored twice is uploaded once."""

from __future__ import annotations

import os
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.bridge.config import BridgeSection
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.store import TraceStore
from gateway.bridge.uris import batch_uri, code_of, material_uri
from gateway.bridge.xmlcheck import check_document, decode_body
from tests.support.bridge_docs import GS1_XSD
from tests.support.trace_events import LineEvents, batch_events, payload

TZ = timezone(timedelta(hours=8))
BATCH = "20261122-L1-01"
PLAT = "{urn:saltgw:platform:1}"
SG = "{urn:saltgw:epcis:1}"
CBV = "urn:epcglobal:cbv:"

RECEIPT = {
    "record_id": "RCV-1",
    "material": "碘酸钾",
    "category": "auxiliary",
    "supplier": "某化工厂",
    "supplier_licence": "XK-13-1",
    "lot": "KIO3-77",
    "quantity": 25.5,
    "unit": "kg",
    "received": "2026-11-21",
    "production_date": "2026-11-01",
    "standard": "GB 1886.1",
    "factory_report": "CC-1",
    "verdict": "pass",
    "inspector": "王检",
    "disposition": None,
}
INSPECTION = {
    "record_id": "LIMS-9",
    "sample": "S-9",
    "batch": BATCH,
    "lot": None,
    "product": "加碘精制盐",
    "sampled": "2026-11-22",
    "sampler": "李取",
    "sample_received": "2026-11-22",
    "receiver": "张收",
    "method": "GB 2721-2015",
    "equipment": "滴定仪",
    "items": [
        {"item": "碘含量", "result": "25.3 mg/kg", "verdict": "pass"},
        {"item": "氯化钠", "result": "99.1 g/100g"},
    ],
    "verdict": "pass",
    "grade": "一级",
    "inspector": "赵检",
    "reviewer": "钱审",
    "approver": "孙批",
}
LOT_INSPECTION = {
    **INSPECTION,
    "record_id": "LIMS-10",
    "sample": "S-10",
    "batch": None,
    "lot": "KIO3-77",
    "product": "碘酸钾",
    "items": [{"item": "纯度", "result": "99.5%", "verdict": "fail"}],
    "verdict": "fail",
    "grade": None,
}
RELEASE = {
    "record_id": "REL-9",
    "batch": BATCH,
    "decision": "released",
    "by": "周放",
    "at": "2026-11-22T16:00:00+08:00",
    "sample": "S-9",
    "retained_sample": "LY-9",
    "reason": None,
}
NONCONF = {
    "record_id": "NC-9", "batch": BATCH, "codes": ["8035NC000000000001", "8035NC000000000002"],
    "quantity": 2.0, "unit": "bag", "reason": "封口不良", "disposition": "destroy",
    "detail": "现场销毁", "by": "吴管", "at": "2026-11-22T17:00:00+08:00",
}  # fmt: skip
RETURN = {
    "record_id": "TH-1", "codes": ["8035RT000000000001"], "batch": None, "party": "泰安市盐业公司",
    "order": "TH20261205-01", "quantity": 1.0, "unit": "case", "reason": "外箱受潮",
    "disposition": "restock", "detail": "复检合格重新入库", "by": "吴管",
    "at": "2026-12-05T10:00:00+08:00",
}  # fmt: skip


@pytest.fixture(scope="module")
def gs1_xsd() -> Path:
    if not GS1_XSD.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"GS1 EPCIS 2.0 XSD not at {GS1_XSD}")
        pytest.skip(f"GS1 EPCIS 2.0 XSD not at {GS1_XSD}")
    return GS1_XSD.resolve()


def _events(f: LineEvents) -> list[dict[str, Any]]:
    plan = batch_events(f, BATCH, 3, with_end=False)
    return [
        *plan.events,
        f.make("record.material_receipt", RECEIPT, None),
        f.make("record.inspection", INSPECTION, BATCH),
        f.make("record.inspection", LOT_INSPECTION, None),
        f.make("record.release", RELEASE, BATCH),
        f.make("record.nonconforming", NONCONF, BATCH),
        f.make("record.return", RETURN, None),
    ]


def _build(
    tmp: Path, profile: str, xsd: Path, events: list[dict[str, Any]], quarantined: int = 0
) -> tuple[TraceStore, list[bytes]]:
    store = TraceStore(tmp / f"{profile}.db")
    got = store.ingest([("t", payload(e)) for e in events])
    assert (got.accepted, got.quarantined) == (len(events) - quarantined, quarantined)
    cfg = BridgeSection(store=store.path, profile=profile)  # type: ignore[arg-type]
    b = DocumentBuilder(store.db, cfg, enterprise="8035", node="gw1", tz=TZ)
    built = b.build_ready(force=True)
    assert built and all(d.state == "pending" for d in built), built
    bodies = [
        decode_body(bytes(r[0])) for r in store.db.execute("SELECT body FROM documents ORDER BY id")
    ]
    for body in bodies:
        result = check_document(body, xsd)
        assert result.valid, result.errors
    return store, bodies


def _platform_records(bodies: list[bytes]) -> dict[str, list[etree._Element]]:
    out: dict[str, list[etree._Element]] = {}
    for body in bodies:
        root = etree.fromstring(body)
        for tag in ("Receipt", "Inspection", "Release", "Handling", "Return"):
            out.setdefault(tag, []).extend(root.iter(PLAT + tag))
    return out


def test_platform_documents_carry_every_record_kind(tmp_path: Path, gs1_xsd: Path) -> None:
    f = LineEvents()
    events = _events(f)
    store, bodies = _build(tmp_path, "platform", gs1_xsd, events)
    recs = _platform_records(bodies)
    (receipt,) = recs["Receipt"]
    assert receipt.getparent().tag == PLAT + "MaterialReceipts"
    assert receipt.attrib["record"] == "RCV-1"
    assert (receipt.get("material"), receipt.get("lot"), receipt.get("supplier")) == (
        "碘酸钾", "KIO3-77", "某化工厂",
    )  # fmt: skip
    assert (receipt.get("supplierLicence"), receipt.get("quantity"), receipt.get("unit")) == (
        "XK-13-1", "25.5", "kg",
    )  # fmt: skip
    assert receipt.get("received") == "2026-11-21" and receipt.get("verdict") == "pass"
    assert receipt.get("event") == events[-6]["id"] and receipt.get("line") == "L1"
    batch_insp, lot_insp = recs["Inspection"]
    assert {k: batch_insp.get(k) for k in ("sample", "batch", "method", "grade", "inspector",
                                            "reviewer", "approver", "sampleReceived")} == {
        "sample": "S-9", "batch": BATCH, "method": "GB 2721-2015", "grade": "一级",
        "inspector": "赵检", "reviewer": "钱审", "approver": "孙批", "sampleReceived": "2026-11-22",
    }  # fmt: skip
    items = [(i.get("item"), i.get("result"), i.get("verdict")) for i in batch_insp]
    assert items == [("碘含量", "25.3 mg/kg", "pass"), ("氯化钠", "99.1 g/100g", None)]
    assert (lot_insp.get("lot"), lot_insp.get("batch"), lot_insp.get("verdict")) == (
        "KIO3-77", None, "fail",
    )  # fmt: skip
    (release,) = recs["Release"]
    assert (release.get("decision"), release.get("by"), release.get("retainedSample")) == (
        "released", "周放", "LY-9",
    )  # fmt: skip
    assert release.get("at") == "2026-11-22T16:00:00+08:00"
    (nc,) = recs["Handling"]
    assert [c.text for c in nc] == NONCONF["codes"]
    assert (nc.get("disposition"), nc.get("reason"), nc.get("detail")) == (
        "destroy", "封口不良", "现场销毁",
    )  # fmt: skip
    (ret,) = recs["Return"]  # table 3 row 3 退货处置记录
    assert (
        ret.getparent().tag == PLAT + "ReturnHandling" and [c.text for c in ret] == RETURN["codes"]
    )
    names = ("party", "order", "quantity", "unit", "disposition", "batch")
    assert {k: ret.get(k) for k in names} == {
        "party": "泰安市盐业公司", "order": "TH20261205-01", "quantity": "1.0", "unit": "case",
        "disposition": "restock", "batch": None,
    }  # fmt: skip
    # every record's event is in a document: nothing waits
    assert (
        store.db.execute(
            "SELECT COUNT(*) FROM events WHERE type LIKE 'record.%' AND up = 1"
        ).fetchone()[0]
        == 6
    )


def test_epcis_documents_carry_every_record_kind(tmp_path: Path, gs1_xsd: Path) -> None:
    f = LineEvents()
    _build(tmp_path, "epcis", gs1_xsd, _events(f))
    store = TraceStore(tmp_path / "epcis.db")
    bodies = [
        decode_body(bytes(r[0])) for r in store.db.execute("SELECT body FROM documents ORDER BY id")
    ]
    events = {}
    for body in bodies:
        for ev in etree.fromstring(body).iter("ObjectEvent"):
            rid = ev.findtext(SG + "record")
            if rid is not None:
                events[rid] = ev
    assert set(events) == {"RCV-1", "LIMS-9", "LIMS-10", "REL-9", "NC-9", "TH-1"}

    def step(ev: etree._Element) -> tuple[str, str]:
        return ev.findtext("bizStep", ""), ev.findtext("disposition", "")

    def sg(ev: etree._Element, name: str) -> str | None:
        return ev.findtext(SG + name)

    rcv = events["RCV-1"]
    assert step(rcv) == (CBV + "bizstep:receiving", CBV + "disp:conformant")
    q = rcv.find("quantityList/quantityElement")
    assert q is not None
    assert q.findtext("epcClass") == material_uri("8035", "碘酸钾", "KIO3-77")
    assert (q.findtext("quantity"), q.findtext("uom")) == ("25.5", "KGM")
    assert rcv.find("sourceList/source") is not None
    assert (sg(rcv, "supplier"), sg(rcv, "supplierLicence"), sg(rcv, "received")) == (
        "某化工厂", "XK-13-1", "2026-11-21",
    )  # fmt: skip
    insp = events["LIMS-9"]
    assert step(insp) == (CBV + "bizstep:inspecting", CBV + "disp:conformant")
    assert insp.findtext("quantityList/quantityElement/epcClass") == batch_uri("8035", BATCH)
    items = [(i.get("item"), i.get("result"), i.get("verdict")) for i in insp.iter(SG + "item")]
    assert items == [("碘含量", "25.3 mg/kg", "pass"), ("氯化钠", "99.1 g/100g", None)]
    assert [sg(insp, n) for n in ("sample", "method", "inspector", "reviewer", "approver")] == [
        "S-9", "GB 2721-2015", "赵检", "钱审", "孙批",
    ]  # fmt: skip
    lot = events["LIMS-10"]
    assert step(lot) == (CBV + "bizstep:inspecting", CBV + "disp:non_conformant")
    assert lot.findtext("quantityList/quantityElement/epcClass") == material_uri(
        "8035", "碘酸钾", "KIO3-77"
    )
    rel = events["REL-9"]
    assert step(rel) == ("urn:saltgw:bizstep:releasing", CBV + "disp:sellable_not_accessible")
    assert (sg(rel, "decision"), sg(rel, "retainedSample"), sg(rel, "by")) == (
        "released", "LY-9", "周放",
    )  # fmt: skip
    nc = events["NC-9"]
    assert step(nc) == (CBV + "bizstep:removing", CBV + "disp:destroyed")
    assert [code_of(e.text) for e in nc.iterfind("epcList/epc")] == NONCONF["codes"]
    assert sg(nc, "reason") == "封口不良"
    ret = events["TH-1"]
    assert step(ret) == (CBV + "bizstep:receiving", CBV + "disp:returned")
    assert [code_of(e.text) for e in ret.iterfind("epcList/epc")] == RETURN["codes"]
    assert (sg(ret, "party"), sg(ret, "order"), sg(ret, "disposition")) == (
        "泰安市盐业公司", "TH20261205-01", "restock",
    )  # fmt: skip


def test_a_held_release_is_uploaded_as_holding(tmp_path: Path, gs1_xsd: Path) -> None:
    f = LineEvents()
    held = {**RELEASE, "decision": "held", "reason": "复检中"}
    events = [*batch_events(f, BATCH, 2, with_end=False).events,
              f.make("record.release", held, BATCH)]  # fmt: skip
    _, (body,) = _build(tmp_path, "epcis", gs1_xsd, events)
    (ev,) = [e for e in etree.fromstring(body).iter("ObjectEvent") if e.find(SG + "record")
             is not None]  # fmt: skip
    assert ev.findtext("bizStep") == CBV + "bizstep:holding"
    assert ev.findtext("disposition") == CBV + "disp:non_sellable_other"
    assert ev.findtext(SG + "reason") == "复检中"


@pytest.mark.parametrize("profile", ["platform", "epcis"])
def test_a_record_stored_twice_is_uploaded_once(
    tmp_path: Path, gs1_xsd: Path, profile: str
) -> None:
    f = LineEvents()
    events = [
        *batch_events(f, BATCH, 2, with_end=False).events,
        f.make("record.release", RELEASE, BATCH),
        f.make("record.release", RELEASE, BATCH),
    ]
    store, bodies = _build(tmp_path, profile, gs1_xsd, events)
    rows = store.db.execute(
        "SELECT up, note FROM events WHERE type = 'record.release' ORDER BY rid"
    ).fetchall()
    assert rows[0] == (1, None)
    assert rows[1][0] == 0 and "already stored" in rows[1][1]
    text = b"".join(bodies)
    assert text.count(b"REL-9") == 1


def test_a_record_that_breaks_its_model_is_quarantined(tmp_path: Path, gs1_xsd: Path) -> None:
    f = LineEvents()
    bad = f.make("record.release", {**RELEASE, "decision": "held", "reason": None}, BATCH)
    events = [*batch_events(f, BATCH, 2, with_end=False).events, bad]
    store, _ = _build(tmp_path, "platform", gs1_xsd, events, quarantined=1)
    (reason,) = [r[0] for r in store.db.execute("SELECT reason FROM quarantine")]
    assert reason.startswith("record.release: data") and "held batch needs a reason" in reason
