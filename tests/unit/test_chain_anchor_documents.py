"""Issue 15: the trace store's chain head travels in every upload document (platform
``ChainHead``, EPCIS ``sg:chainHead`` after the body), so the platform holds an anchor; the
documents still validate (EPCIS against GS1's XSD, the platform profile against
platform-1.xsd), and ``saltgw verify --store-anchor`` checks a document's head."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lxml import etree

from gateway.bridge.config import BridgeSection
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.epcis import SG_NS
from gateway.bridge.integrity import head
from gateway.bridge.platform import PLATFORM_NS
from gateway.bridge.store import TraceStore
from gateway.bridge.xmlcheck import check_document, decode_body
from gateway.verify import Anchor, verify_store
from tests.support.bridge_docs import GS1_XSD
from tests.support.trace_events import TZ, LineEvents, batch_events, payload


@pytest.fixture
def gs1_xsd() -> Path:
    if not GS1_XSD.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"GS1 EPCIS 2.0 XSD not at {GS1_XSD}")
        pytest.skip(f"GS1 EPCIS 2.0 XSD not at {GS1_XSD}")
    return GS1_XSD.resolve()


@pytest.mark.parametrize("profile", ["epcis", "platform"])
def test_every_document_carries_the_store_head_and_still_validates(
    tmp_path: Path, gs1_xsd: Path, profile: str
) -> None:
    store = TraceStore(tmp_path / "trace.db")
    f = LineEvents()
    cfg = BridgeSection(store=store.path, profile=profile, codes_per_document=20, epcis_xsd=gs1_xsd)
    builder = DocumentBuilder(store.db, cfg, enterprise="8035", node="gwtest1", tz=TZ)
    heads = []
    for batch in ("20261122-L1-01", "20261122-L1-02"):  # two ingests: two different heads
        store.ingest([("t", payload(e)) for e in batch_events(f, batch, 30).events])
        heads.append(head(store.db))
        built = builder.build_ready(force=True)
        assert built and all(d.state == "pending" for d in built), built  # schema-checked
    rows = store.db.execute("SELECT body, last_rid FROM documents ORDER BY id").fetchall()
    store.close()
    seen = set()
    for body, _last in rows:
        xml = decode_body(bytes(body))
        result = check_document(xml, gs1_xsd)
        assert result.valid, result.errors
        root = etree.fromstring(xml)
        if profile == "epcis":
            (el,) = root.findall(f"{{{SG_NS}}}chainHead")
            assert root[-1] is el  # after EPCISBody: the schema's xsd:any ##other
        else:
            (el,) = root.findall(f"{{{PLATFORM_NS}}}ChainHead")
        got = (int(el.get("record")), bytes.fromhex(el.get("hash")))
        assert got in heads and el.get("alg") == "hmac-sha256"
        seen.add(got)
        anchor = Anchor.parse(f"{got[0]}:{got[1].hex()}")
        rep = verify_store(store.path, anchor=anchor)
        assert rep.ok and any("matches the anchor" in n for n in rep.notes), rep.line()
    assert seen == set(heads)


def test_a_store_rewritten_with_the_key_still_fails_the_documents_anchor(tmp_path: Path) -> None:
    """Someone holding the key can recompute every link, but not the head the platform has."""
    import sqlite3

    from gateway.bridge.integrity import row_body
    from gateway.chain import GENESIS, link

    store = TraceStore(tmp_path / "trace.db")
    store.ingest([("t", payload(e)) for e in batch_events(LineEvents(), "B1", 20).events])
    rid, tip = head(store.db)
    key = store.chain_key
    store.close()
    anchor = Anchor(rid, tip)
    db = sqlite3.connect(tmp_path / "trace.db", isolation_level=None)
    db.execute("UPDATE codes SET batch='B9' WHERE rid=(SELECT MIN(rid) FROM codes)")
    new = GENESIS
    for (r,) in db.execute("SELECT rid FROM events ORDER BY rid").fetchall():
        body = row_body(db, r)
        assert body is not None
        prev, new = new, link(new, body, key)
        db.execute("UPDATE events SET prev=?, chain=? WHERE rid=?", (prev, new, r))
    db.execute("UPDATE meta SET value=? WHERE key='chain_head'", (f"{rid}:{new.hex()}",))
    db.close()
    assert verify_store(tmp_path / "trace.db").ok  # the key holder's rewrite is consistent…
    rep = verify_store(tmp_path / "trace.db", anchor=anchor)
    assert rep.broken is not None and "does not match the anchor" in rep.broken.reason
