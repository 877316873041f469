"""Delivery without a network: reply parsing, the outbox directory (atomic files, receipt files),
the retry/quarantine rules, reconciliation alarms and retention."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta, timezone
from pathlib import Path

import pytest

from gateway.bridge.config import BridgeSection, DirectoryUploadSection, UploadRetrySection
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.reconcile import Reconciler, batch_report
from gateway.bridge.retention import keep_until, purge
from gateway.bridge.store import TraceStore
from gateway.bridge.transport import (
    DirectoryTransport,
    Failed,
    HttpTransport,
    Outgoing,
    Receipt,
    Rejected,
    Unavailable,
    parse_reply,
)
from gateway.bridge.upload import Uploader
from tests.support.trace_events import LineEvents, batch_events, payload

TZ = timezone(timedelta(hours=8))
FAST = UploadRetrySection(max_attempts=3, backoff_min_secs=0.001, backoff_max_secs=0.002)


def _store_with_docs(tmp: Path, n_bags: int = 8, **cfg: object) -> tuple[TraceStore, BridgeSection]:
    f = LineEvents()
    plan = batch_events(f, "B1", n_bags)
    store = TraceStore(tmp / "t.db")
    store.ingest([("t", payload(e)) for e in plan.events])
    bcfg = BridgeSection(store=store.path, codes_per_document=10, **cfg)  # type: ignore[arg-type]
    DocumentBuilder(store.db, bcfg, enterprise="8035", node="n1", tz=TZ).build_ready(force=True)
    return store, bcfg


REPLIES: list[tuple[bytes, type[Exception] | Receipt]] = [
    (b'{"status":"ok","document":"D1","receipt":"R1"}', Receipt("ok", "R1")),
    (b'{"status":"duplicate","document":"D1","receipt":"R0"}', Receipt("duplicate", "R0")),
    (b'{"status":"rejected","document":"D1","reason":"bad batch"}', Rejected),
    (b'{"status":"ok","document":"D2","receipt":"R1"}', Failed),  # another document's reply
    (b'{"status":"ok","document":"D1"}', Failed),  # no receipt
    (b'{"status":"ok","document":"D1","receipt":""}', Failed),
    (b'{"status":"maybe","document":"D1","receipt":"R"}', Failed),
    (b"<html>502 Bad Gateway</html>", Failed),
    (b"[]", Failed),
    (b"", Failed),
]


@pytest.mark.parametrize(("raw", "expect"), REPLIES)
def test_platform_replies(raw: bytes, expect: type[Exception] | Receipt) -> None:
    if isinstance(expect, Receipt):
        assert parse_reply(raw, "D1") == expect
    else:
        with pytest.raises(expect):
            parse_reply(raw, "D1")


@pytest.mark.parametrize(
    ("status", "raw", "expect"),
    [
        (500, b"oops", Failed),
        (502, b"", Failed),
        (408, b"", Failed),
        (503, b"maintenance", Unavailable),
        (429, b"", Unavailable),
        (401, b"", Unavailable),  # credentials: every document would fail the same way
        (400, b"bad", Rejected),
        (422, b'{"status":"rejected","document":"D1","reason":"x"}', Rejected),
        (302, b"", Failed),
    ],
)
def test_http_status_classes(status: int, raw: bytes, expect: type[Exception]) -> None:
    with pytest.raises(expect):
        HttpTransport._judge(status, raw, "D1")


def test_outbox_directory_write_is_atomic_and_receipts_are_read(tmp_path: Path) -> None:
    t = DirectoryTransport(DirectoryUploadSection(type="directory", path=tmp_path / "out"))
    doc = Outgoing("8035-20261122-n1-000001", b"<x/>", "xml", "0" * 64)
    assert t.send(doc) is None  # waits for the receipt file
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [doc.number + ".xml"]
    assert t.poll(doc.number) is None
    receipt = tmp_path / "out" / f"{doc.number}.receipt.json"
    receipt.write_text("garbage")
    with pytest.raises(Failed):
        t.poll(doc.number)
    assert (tmp_path / "out" / f"{doc.number}.receipt.json.bad").exists()
    receipt.write_text(json.dumps({"status": "ok", "document": doc.number, "receipt": "R9"}))
    assert t.poll(doc.number) == Receipt("ok", "R9")
    on_write = DirectoryTransport(
        DirectoryUploadSection(type="directory", path=tmp_path / "w", ack="on_write")
    )
    got = on_write.send(Outgoing("D2", b"abc", "gzip+base64", "0" * 64))
    assert got is not None and got.receipt.startswith("file:D2.xml.gz.b64:sha256:")


class Scripted:
    """A transport answering from a script: an exception to raise or a receipt."""

    def __init__(self, script: list[Exception | Receipt | None]) -> None:
        self.script = script
        self.sent: list[str] = []

    def send(self, doc: Outgoing) -> Receipt | None:
        self.sent.append(doc.number)
        step = self.script.pop(0) if self.script else Receipt("ok", f"R-{doc.number}")
        if isinstance(step, Exception):
            raise step
        return step

    def poll(self, number: str) -> Receipt | None:
        return None


def _states(store: TraceStore) -> list[tuple[str, int, str | None]]:
    return store.db.execute(
        "SELECT state, attempts, last_error FROM documents ORDER BY id"
    ).fetchall()


def test_unavailable_is_not_counted_failures_are_and_rejection_quarantines(
    tmp_path: Path,
) -> None:
    store, _ = _store_with_docs(tmp_path, 25)
    n_docs = len(_states(store))
    assert n_docs >= 3
    script: list[Exception | Receipt | None] = [Unavailable("refused")] * 6  # not counted
    script += [Failed("HTTP 500"), Failed("garbage"), Receipt("ok", "R-first")]  # doc 1 acked
    script += [Rejected("platform rejected the document: bad")]  # doc 2 quarantined
    script += [Failed("a"), Failed("b"), Failed("c")]  # doc 3: 3 = max_attempts
    up = Uploader(store.db, Scripted(script), FAST, threading.Event())
    up.run_once()
    states = _states(store)
    assert states[0] == ("acked", 2, None)
    assert states[1][0] == "quarantined" and "bad" in states[1][2]
    assert (
        states[2][0] == "quarantined" and states[2][1] == 3 and "3 failed attempts" in states[2][2]
    )
    assert all(s[0] == "acked" for s in states[3:])
    outcomes = [r[0] for r in store.db.execute("SELECT outcome FROM attempts ORDER BY rowid")]
    assert outcomes[:9] == ["unavailable"] * 6 + ["failed", "failed", "ok"]
    receipt = store.db.execute("SELECT receipt FROM documents ORDER BY id LIMIT 1").fetchone()[0]
    assert receipt == "R-first"


def test_stop_leaves_the_document_pending(tmp_path: Path) -> None:
    store, _ = _store_with_docs(tmp_path)
    stop = threading.Event()
    stop.set()
    up = Uploader(store.db, Scripted([Unavailable("down")]), FAST, stop)
    up.run_once()
    assert {s[0] for s in _states(store)} == {"pending"}


def test_reconciliation_alarm_raised_once_then_cleared(tmp_path: Path) -> None:
    store, _ = _store_with_docs(tmp_path, 12)
    alarms: list[dict[str, object]] = []
    rec = Reconciler(store.db, 60.0, alarms.append)
    rep = batch_report(store.db, "B1")
    assert rep is not None and rep.commissioned == 12 and rep.acknowledged == 0
    assert rep.documented == 12 and rep.state == "incomplete"
    t0 = rep.last_activity
    rec.run_once(now=t0 + 10)
    assert alarms == []
    rec.run_once(now=t0 + 61)
    rec.run_once(now=t0 + 120)
    assert [a["state"] for a in alarms] == ["incomplete"]
    assert alarms[0]["commissioned"] == 12 and alarms[0]["acknowledged"] == 0
    Uploader(store.db, Scripted([]), FAST, threading.Event()).run_once()
    rec.run_once(now=t0 + 130)
    assert [a["state"] for a in alarms] == ["incomplete", "complete"]
    final = batch_report(store.db, "B1")
    assert final is not None and final.complete and final.acknowledged == 12


def test_retention_keeps_shelf_life_plus_a_year_and_two_years_at_least() -> None:
    cfg = BridgeSection()
    made = date(2026, 11, 22)
    assert keep_until(made, 1095, cfg) == made + timedelta(days=1460)  # 3 y + 1 y
    assert keep_until(made, 180, cfg) == made + timedelta(days=730)  # 2 years at least


def test_purge_never_removes_what_the_platform_has_not_acknowledged(tmp_path: Path) -> None:
    store, cfg = _store_with_docs(tmp_path, 12)
    far = date(2026, 11, 22) + timedelta(days=3000)
    rep = purge(store.db, cfg, far, key=store.chain_key)
    assert rep.batches == 0 and rep.kept_unacked == 1
    assert store.counts()["codes"] == 12
    Uploader(store.db, Scripted([]), FAST, threading.Event()).run_once()
    soon = date(2026, 11, 22) + timedelta(days=1000)
    assert purge(store.db, cfg, soon, key=store.chain_key).batches == 0
    rep = purge(store.db, cfg, far, key=store.chain_key)
    assert rep.batches == 1 and rep.events > 12
    left = store.db.execute(
        "SELECT (SELECT COUNT(*) FROM codes), (SELECT COUNT(*) FROM relations), "
        "(SELECT COUNT(*) FROM ccp), (SELECT COUNT(*) FROM events WHERE batch='B1')"
    ).fetchone()
    assert left == (0, 0, 0, 0)
