"""Every record reaches the platform (issue 13): feedings, rejects (a rejected bag decommissioned
and taken out of its case), inbound and recall scans, shift and person in charge, in both
profiles, every document valid against its XSD; both profiles carry the same table 6 facts; a
batch is complete only when every record kind is acknowledged."""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gateway.bridge.config import BridgeSection, DirectoryUploadSection, UploadRetrySection
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.kinds import KINDS
from gateway.bridge.reconcile import batch_report
from gateway.bridge.store import TraceStore
from gateway.bridge.trace import container_of
from gateway.bridge.transport import DirectoryTransport
from gateway.bridge.upload import Uploader
from gateway.bridge.xmlcheck import check_document, decode_body
from gateway.cli import main
from tests.support.bridge_docs import GS1_XSD, Facts, facts_of
from tests.support.trace_events import (
    BatchPlan,
    LineEvents,
    LineRecords,
    batch_events,
    line_records,
    payload,
)

TZ = timezone(timedelta(hours=8))
BATCH = "20261122-L1-01"
PROFILES = ["epcis", "platform"]
PRODUCTS = [
    {"id": "P400", "name": "加碘精制盐", "net_content": "400g", "spec": "400g×40",
     "standard": "GB/T 5461", "category": "加碘食盐", "process": "真空蒸发制盐工艺",
     "shelf_life_days": 1095, "origin": "山东省泰安市", "tips": "本品偶有结块时可放心食用",
     "ingredients": "精制盐、碘酸钾", "storage": "密封、避光、防潮"},
]  # fmt: skip
ENTERPRISE = {
    "name": "山东岱岳制盐有限公司", "address": "山东省泰安市岱岳区某路1号",
    "phone": "0538-1234567", "website": "http://www.example.cn", "licence_no": "SD-035",
    "licence_valid": "自2024年4月1日至2027年3月31日", "credit_rating": "AAA",
}  # fmt: skip


@pytest.fixture(scope="module")
def gs1_xsd() -> Path:
    if not GS1_XSD.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"GS1 EPCIS 2.0 XSD not at {GS1_XSD}")
        pytest.skip(f"GS1 EPCIS 2.0 XSD not at {GS1_XSD}")
    return GS1_XSD.resolve()


def _line() -> tuple[BatchPlan, LineRecords]:
    f = LineEvents()
    plan = batch_events(f, BATCH, 45, with_end=False)
    start = plan.events[0]
    assert start["type"] == "batch.start"
    start["data"].update(shift="A", person_in_charge="王强")  # table 2 row 2 (the MES adds)
    extra = line_records(f, plan)
    extra.events.append(f.make("batch.end", {"batch": BATCH, "inspection": "合格，一级"}, BATCH))
    # #23 is uploaded only for a released batch (issue 18): the lab's result, then the release
    lab = {"record_id": "R-1", "batch": BATCH, "lot": None, "verdict": "pass", "grade": "一级"}
    extra.events.append(f.make("record.inspection", lab, BATCH))
    release = {"record_id": "REL-1", "batch": BATCH, "decision": "released", "reason": None}
    extra.events.append(f.make("record.release", release, BATCH))
    return plan, extra


def _config(store: Path, profile: str, **kw: Any) -> BridgeSection:
    return BridgeSection(
        store=store,
        profile=profile,  # type: ignore[arg-type]
        products=PRODUCTS,  # type: ignore[arg-type]
        enterprise_info=ENTERPRISE,  # type: ignore[arg-type]
        **kw,
    )


def _build(
    tmp: Path, profile: str, xsd: Path, events: list[dict[str, Any]], **kw: Any
) -> tuple[TraceStore, list[bytes]]:
    """Store the events, build every document, check each against its schema."""
    store = TraceStore(tmp / f"{profile}.db")
    got = store.ingest([("t", payload(e)) for e in events])
    assert (got.accepted, got.quarantined) == (len(events), 0), store.quarantined()
    b = DocumentBuilder(
        store.db, _config(store.path, profile, **kw), enterprise="8035", node="gw1", tz=TZ
    )
    b.epcis_xsd = xsd
    built = b.build_ready(force=True)
    assert built and all(d.state == "pending" for d in built), built
    bodies = [bytes(r[0]) for r in store.db.execute("SELECT body FROM documents ORDER BY id")]
    for body in bodies:
        result = check_document(decode_body(body), xsd)
        assert result.valid, result.errors
    return store, bodies


def _facts(tmp: Path, profile: str, xsd: Path, **kw: Any) -> tuple[TraceStore, Facts, LineRecords]:
    plan, extra = _line()
    store, bodies = _build(tmp, profile, xsd, plan.events + extra.events, **kw)
    return store, facts_of(bodies), extra


@pytest.mark.parametrize("profile", PROFILES)
def test_feedings_are_uploaded(tmp_path: Path, gs1_xsd: Path, profile: str) -> None:
    _, facts, extra = _facts(tmp_path, profile, gs1_xsd)
    keys = ("material", "lot", "unit", "point", "operator", "count", "batch")
    got = [{k: f.get(k) for k in keys} | {"quantity": float(f["quantity"])} for f in facts.feedings]
    want = [
        {k: (None if d.get(k) is None else str(d[k])) for k in keys if k != "batch"}
        | {"batch": BATCH, "quantity": d["quantity"]}
        for d in extra.feedings
    ]
    assert got == want


@pytest.mark.parametrize("profile", PROFILES)
def test_inbound_scans_are_uploaded(tmp_path: Path, gs1_xsd: Path, profile: str) -> None:
    _, facts, extra = _facts(tmp_path, profile, gs1_xsd)
    assert facts.inbound == extra.inbound


@pytest.mark.parametrize("profile", PROFILES)
def test_recall_scans_are_uploaded(tmp_path: Path, gs1_xsd: Path, profile: str) -> None:
    _, facts, extra = _facts(tmp_path, profile, gs1_xsd)
    assert facts.recalls == extra.recalls


@pytest.mark.parametrize("profile", PROFILES)
def test_shift_and_person_in_charge_are_uploaded(
    tmp_path: Path, gs1_xsd: Path, profile: str
) -> None:
    _, facts, _ = _facts(tmp_path, profile, gs1_xsd)
    assert facts.batches[BATCH]["shift"] == "A"
    assert facts.batches[BATCH]["personInCharge"] == "王强"


@pytest.mark.parametrize("profile", PROFILES)
def test_rejected_bags_are_decommissioned_and_taken_out_of_their_case(
    tmp_path: Path, gs1_xsd: Path, profile: str
) -> None:
    store, facts, extra = _facts(tmp_path, profile, gs1_xsd)
    # the reject records (table 3 row 3), with the case each bag left: the one the event named,
    # or the one the store had the bag in when the event named none
    assert facts.rejects == extra.rejects
    assert facts.decommissioned == extra.decommissioned
    removed = [r for r in facts.relations if r[0] == "remove"]
    assert removed == [("remove", case, (code,)) for _, code, case in extra.rejects if case]
    # the trace store agrees: out of the case, decommissioned, never in a case again
    for _, code, case in extra.rejects:
        if code is None:
            continue
        assert container_of(store.db, code) is None, code
        if case is not None:
            assert code not in store.children_of(case)
        row = store.db.execute("SELECT rejected FROM codes WHERE code=?", (code,)).fetchone()
        assert row[0] is not None, code
    # a bag never in a case is decommissioned without a removal
    loose = extra.rejects[2][1]
    assert loose in facts.decommissioned and all(loose not in r[2] for r in removed)


def test_the_epcis_reject_is_a_delete_aggregation_then_a_decommissioning(
    tmp_path: Path, gs1_xsd: Path
) -> None:
    from lxml import etree

    plan, extra = _line()
    _, bodies = _build(tmp_path, "epcis", gs1_xsd, plan.events + extra.events)
    events = [ev for b in bodies for ev in etree.fromstring(decode_body(b)).iter()]
    cbv, uri = "urn:epcglobal:cbv:", "urn:saltgw:code:"

    def step(ev: Any, tag: str, name: str) -> bool:
        return bool(ev.tag == tag and ev.findtext("bizStep") == f"{cbv}bizstep:{name}")

    removals = [
        (a.findtext("parentID"), [e.text for e in a.iterfind("childEPCs/epc")],
         a.findtext("action"), a.findtext("disposition"))
        for a in events if step(a, "AggregationEvent", "removing")
    ]  # fmt: skip
    assert removals == [
        (uri + case, [uri + code], "DELETE", None) for _, code, case in extra.rejects if case
    ]
    decommissioned = [
        ([e.text for e in o.iterfind("epcList/epc")], o.findtext("action"),
         o.findtext("disposition"))
        for o in events if step(o, "ObjectEvent", "decommissioning")
    ]  # fmt: skip
    assert decommissioned == [([uri + c], "DELETE", cbv + "disp:inactive")
                              for c in extra.decommissioned]  # fmt: skip
    (unread,) = [o for o in events if step(o, "ObjectEvent", "removing")]
    assert unread.findtext("disposition") == cbv + "disp:non_conformant"
    assert (
        unread.findtext("quantityList/quantityElement/epcClass") == f"urn:saltgw:batch:8035:{BATCH}"
    )
    ids = [ev.findtext("eventID") for ev in events if ev.findtext("eventID")]
    assert len(ids) == len(set(ids))  # the removal's eventID is its own


def test_both_profiles_carry_the_same_table6_facts(tmp_path: Path, gs1_xsd: Path) -> None:
    plan, extra = _line()
    events = plan.events + extra.events
    facts = {}
    for profile in PROFILES:
        _, bodies = _build(tmp_path, profile, gs1_xsd, events, codes_per_document=40)
        assert len(bodies) > 1  # facts repeated in every document that needs them
        facts[profile] = facts_of(bodies)
    epcis, plat = facts["epcis"], facts["platform"]
    assert epcis.enterprise == plat.enterprise
    assert plat.enterprise["name"] == ENTERPRISE["name"]
    assert plat.enterprise["creditRating"] == "AAA" and plat.enterprise["code"] == "8035"
    assert epcis.products == plat.products
    assert plat.products["P400"]["standard"] == "GB/T 5461"
    assert plat.products["P400"]["category"] == "加碘食盐"
    assert epcis.batches == plat.batches
    assert plat.batches[BATCH]["inspection"] == "合格，一级"
    assert plat.batches[BATCH]["productionDate"] == "2026-11-22"
    # and the same records
    for name in ("codes", "relations", "orders", "rejects", "decommissioned", "inbound",
                 "recalls", "lab"):  # fmt: skip
        assert getattr(epcis, name) == getattr(plat, name), name
    assert [v for _, v in epcis.ccp] == [v for _, v in plat.ccp]  # types are named differently
    assert set(plat.lab) == {"R-1", "REL-1"}  # the lab's records (issue 18)
    assert plat.lab["REL-1"]["decision"] == "released" and plat.lab["R-1"]["grade"] == "一级"


def _upload(store: TraceStore, outbox: Path) -> int:
    transport = DirectoryTransport(DirectoryUploadSection(type="directory", path=outbox,
                                                          ack="on_write"))  # fmt: skip
    retry = UploadRetrySection(backoff_min_secs=0.001)
    return Uploader(store.db, transport, retry, threading.Event()).run_once()


def test_a_batch_is_complete_only_when_every_kind_is_acknowledged(tmp_path: Path) -> None:
    plan, extra = _line()
    feeding, rest = extra.events[0], extra.events[1:]
    store = TraceStore(tmp_path / "t.db")
    store.ingest([("t", payload(e)) for e in plan.events + rest])
    cfg = _config(store.path, "platform")
    builder = DocumentBuilder(store.db, cfg, enterprise="8035", node="gw1", tz=TZ)
    builder.build_ready(force=True)
    assert _upload(store, tmp_path / "outbox") > 0
    rep = batch_report(store.db, BATCH)
    # everything that arrived is acknowledged, but the feeding's seq never came: incomplete
    assert rep is not None and not rep.complete and rep.missing_seq == 1, rep
    assert rep.acknowledged == rep.commissioned

    store.ingest([("t", payload(feeding))])  # the feeding arrives, not yet in a document
    rep = batch_report(store.db, BATCH)
    assert rep is not None and not rep.complete and rep.missing_seq == 0
    assert rep.acknowledged == rep.commissioned  # every code is: the feeding holds it back
    feed = rep.kinds["feedings"]
    assert (feed.produced, feed.documented, feed.acknowledged) == (2, 1, 1)

    builder.build_ready(force=True)
    feed = batch_report(store.db, BATCH).kinds["feedings"]  # type: ignore[union-attr]
    assert (feed.produced, feed.documented, feed.acknowledged) == (2, 2, 1)
    _upload(store, tmp_path / "outbox")
    rep = batch_report(store.db, BATCH)
    assert rep is not None and rep.complete
    assert set(rep.kinds) == set(KINDS)
    want = {
        "bags": 45, "cases": 4, "pallets": 1, "unpacks": 1, "ccp": 46, "feedings": 2,
        "rejects": 4, "outbound": 1, "inbound": 1, "recall": 2, "records": 2,
    }  # fmt: skip
    assert {k: c.produced for k, c in rep.kinds.items()} == want
    assert all(c.acknowledged == c.produced == c.documented for c in rep.kinds.values())


def test_trace_batch_prints_the_counts_per_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, extra = _line()
    store = TraceStore(tmp_path / "t.db")
    store.ingest([("t", payload(e)) for e in plan.events + extra.events])
    DocumentBuilder(
        store.db, _config(store.path, "platform", codes_per_document=60), enterprise="8035",
        node="gw1", tz=TZ,
    ).build_one(force=True)  # fmt: skip
    store.close()
    assert main(["trace", "--batch", BATCH, "--store", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "  records     produced  in documents  acknowledged" in out
    assert "  feedings           2             0             0  ← not all acknowledged" in out
    assert "  bags              45            20             0  ← not all acknowledged" in out
    assert main(["trace", "--batch", BATCH, "--store", str(store.path), "--json"]) == 0
    head = json.loads(capsys.readouterr().out.splitlines()[0])
    kinds = head["reconciliation"]["kinds"]
    assert kinds["rejects"] == {"produced": 4, "documented": 0, "acknowledged": 0,
                                "quarantined": 0}  # fmt: skip
    assert set(kinds) == set(KINDS)


def test_trace_a_rejected_bag_shows_it_decommissioned_out_of_its_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, extra = _line()
    store = TraceStore(tmp_path / "t.db")
    store.ingest([("t", payload(e)) for e in plan.events + extra.events])
    store.close()
    _, code, case = extra.rejects[0]
    assert main(["trace", code, "--store", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert f"(reject_chute, taken out of case {case}): decommissioned" in out
    assert "  case          -\n" in out
    recalled, recall, party = extra.recalls[0]
    assert main(["trace", recalled, "--store", str(store.path), "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    pallet, order, supplier = extra.inbound[0]  # the bag is on the pallet scanned inbound
    assert [(s["kind"], s["ref"], s["party"], s["via"]) for s in t["scans"]] == [
        ("inbound", order, supplier, pallet),
        ("recall", recall, party, recalled),
    ]
    assert t["rejected"] is None
