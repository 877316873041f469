"""A producer's EPCIS 2.0 documents, as its bridge builds them, imported into a wholesaler's
trace store (gateway/wholesale): cases and pallets expand to their bags, a re-import changes
nothing, a scan made before the documents is expanded when they come, and a bad document
imports nothing with errors naming the file, line and element."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.bridge.config import BridgeSection
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.store import TraceStore
from gateway.codes import TraceCodeRules
from gateway.traceline import TraceLine, close_trace_lines, open_trace_line
from gateway.wholesale.aggregation_import import import_documents
from gateway.wholesale.epcis_read import ProducerDocument, read_document
from tests.support.bridge_docs import GS1_XSD
from tests.support.trace_events import BatchPlan, LineEvents, batch_events, payload

TZ = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)
RULES = TraceCodeRules(own_enterprise_only=False)


@pytest.fixture(scope="module")
def gs1_xsd() -> Path:
    if not GS1_XSD.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"GS1 EPCIS 2.0 XSD not at {GS1_XSD}")
        pytest.skip(f"GS1 EPCIS 2.0 XSD not at {GS1_XSD}")
    return GS1_XSD.resolve()


def producer_documents(tmp: Path, gs1_xsd: Path) -> tuple[BatchPlan, list[Path]]:
    """A producer's batch (cases of 10, pallets of 4 cases, one case reworked), through its
    bridge's trace store into EPCIS documents of at most 25 codes each, written as files."""
    f = LineEvents()
    plan = batch_events(f, "20261122-L1-01", 90)
    store = TraceStore(tmp / "producer-bridge.db")
    store.ingest([("t", payload(ev)) for ev in plan.events])
    cfg = BridgeSection(
        store=store.path, profile="epcis", epcis_xsd=gs1_xsd, codes_per_document=25
    )
    built = DocumentBuilder(store.db, cfg, enterprise="8035", node="p1", tz=TZ).build_ready(
        force=True
    )
    assert len(built) > 2  # the pallet's story spans documents
    files = []
    for i, (body,) in enumerate(store.db.execute("SELECT body FROM documents ORDER BY id")):
        path = tmp / f"producer-{i:02d}.xml"
        path.write_bytes(bytes(body))
        files.append(path)
    store.close()
    return plan, files


def wholesaler_line(tmp: Path) -> TraceLine:
    return open_trace_line(tmp / "ws-trace.db", "W1")


def read_all(files: list[Path], gs1_xsd: Path) -> list[ProducerDocument]:
    docs = []
    for path in files:
        doc, errors = read_document(path, RULES, epcis_xsd=gs1_xsd)
        assert errors == [] and doc is not None and doc.schema_checked
        docs.append(doc)
    return docs


def test_pallets_and_cases_expand_to_their_bags(tmp_path: Path, gs1_xsd: Path) -> None:
    plan, files = producer_documents(tmp_path, gs1_xsd)
    line = wholesaler_line(tmp_path)
    try:
        docs = read_all(list(reversed(files)), gs1_xsd)  # any order: applied oldest first
        summary, errors = import_documents(line, docs, NOW)
        assert errors == [] and len(summary.imported) == len(files)
        reworked = next(iter(plan.unpacked))
        for pallet, cases in plan.pallets.items():
            item = line.agg.item(pallet)
            assert item is not None and item.level == "pallet"
            want = [b for c in cases for b in plan.cases[c] if b not in plan.unpacked.get(c, [])]
            assert sorted(line.agg.bags_under(pallet)) == sorted(want)
        left = [b for b in plan.cases[reworked] if b not in plan.unpacked[reworked]]
        assert sorted(line.agg.bags_under(reworked)) == sorted(left)
        taken_out = plan.unpacked[reworked][0]
        bag = line.agg.item(taken_out)
        assert bag is not None and bag.parent is None and bag.batch == plan.batch

        again, errors = import_documents(line, read_all(files, gs1_xsd), NOW)
        assert errors == [] and again.imported == [] and len(again.already) == len(files)
    finally:
        close_trace_lines(tmp_path / "ws-trace.db")


def test_a_pallet_scanned_before_its_documents_is_expanded_when_they_come(
    tmp_path: Path, gs1_xsd: Path
) -> None:
    plan, files = producer_documents(tmp_path, gs1_xsd)
    pallet, cases = next(iter(plan.pallets.items()))
    line = wholesaler_line(tmp_path)
    try:
        early = line.shipping.scan(pallet, "inbound", ref="DO-1", party="岱岳", device="in1",
                                   ts=NOW)  # fmt: skip
        assert early.level == "unknown" and early.bags == [pallet]  # recorded unexpanded
        summary, errors = import_documents(line, read_all(files, gs1_xsd), NOW)
        assert errors == []
        bags = [b for c in cases for b in plan.cases[c]]
        assert [(s.code, s.direction, s.bags) for s in summary.late] == [
            (pallet, "inbound", len(bags))
        ]
        assert line.shipping.shipped(pallet, "inbound") is None
        assert all(line.shipping.shipped(b, "inbound") == ("DO-1", "岱岳") for b in bags)
        # the same pallet scanned again now is a duplicate of every bag
        again = line.shipping.scan(pallet, "inbound", ref="DO-2", party="岱岳", device="in1",
                                   ts=NOW)  # fmt: skip
        assert again.level == "pallet" and len(again.already) == len(bags)
    finally:
        close_trace_lines(tmp_path / "ws-trace.db")


def test_bad_documents_name_file_line_and_element(tmp_path: Path, gs1_xsd: Path) -> None:
    _plan, files = producer_documents(tmp_path, gs1_xsd)
    text = files[-1].read_text()
    assert "urn:saltgw:code:8035" in text
    bad = tmp_path / "bad.xml"
    # a code of no Annex A producer (7035), still valid by GS1's schema (an anyURI)
    bad.write_text(text.replace("urn:saltgw:code:8035", "urn:saltgw:code:7035", 1))
    doc, errors = read_document(bad, RULES, epcis_xsd=gs1_xsd, name="bad.xml")
    assert doc is None and errors
    first = str(errors[0])
    line_no = next(
        i + 1 for i, ln in enumerate(bad.read_text().splitlines()) if "urn:saltgw:code:7035" in ln
    )
    assert first.startswith(f"bad.xml:{line_no}: error: "), first
    assert ": error: EventList[" in first and "Event/" in first, first
    assert "'7035" in first and "Annex A" in first, first

    broken = tmp_path / "broken.xml"
    broken.write_text(text[: len(text) // 2])
    doc, errors = read_document(broken, RULES, epcis_xsd=gs1_xsd, name="broken.xml")
    assert doc is None and "not well-formed XML" in str(errors[0])

    invalid = tmp_path / "invalid.xml"
    invalid.write_text(text.replace("<action>", "<actoin>", 1).replace("</action>", "</actoin>", 1))
    doc, errors = read_document(invalid, RULES, epcis_xsd=gs1_xsd, name="invalid.xml")
    assert doc is None and "actoin" in str(errors[0]) and str(errors[0]).startswith("invalid.xml:")

    other = tmp_path / "platform.xml"
    other.write_text('<?xml version="1.0"?><TraceDocument xmlns="urn:saltgw:platform:1"/>')
    doc, errors = read_document(other, RULES, epcis_xsd=gs1_xsd, name="platform.xml")
    assert doc is None and "not an EPCIS 2.0 document" in str(errors[0])


def test_a_conflicting_document_imports_nothing(tmp_path: Path, gs1_xsd: Path) -> None:
    plan, files = producer_documents(tmp_path, gs1_xsd)
    line = wholesaler_line(tmp_path)
    try:
        docs = read_all(files, gs1_xsd)
        case, bags = next(iter(plan.cases.items()))
        # a bag of that case packed into another case while the first still holds it
        twin = ProducerDocument("twin.xml", "0" * 64, "twin", "8035", "9999-12-31T00:00:00Z")
        from gateway.wholesale.epcis_read import Packing

        twin.packings.append(Packing(7, "pack", "8035CTWIN00001", "case", [bags[0]], ""))
        summary, errors = import_documents(line, [*docs, twin], NOW)
        assert [str(e) for e in errors] == [
            f"twin.xml:7: error: AggregationEvent/childEPCs/epc: {bags[0]} is packed into "
            f"8035CTWIN00001 but is still in case {case} (QB/T 5279-2018 8.4: one container "
            "at a time; is an unpacking document missing?)"
        ]
        assert line.agg.item(case) is None and summary.imported == []  # nothing imported
    finally:
        close_trace_lines(tmp_path / "ws-trace.db")
