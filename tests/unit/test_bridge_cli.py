"""``saltgw trace`` and ``saltgw xml validate`` as a user runs them (in-process ``main``)."""

from __future__ import annotations

import json
import os
import pwd
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import etree

from gateway.bridge.config import BridgeSection, UploadRetrySection
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.ingest import subscriptions
from gateway.bridge.platform import platform_xsd_path
from gateway.bridge.store import TraceStore
from gateway.bridge.upload import Uploader
from gateway.cli import main
from tests.support.bridge_docs import GS1_XSD
from tests.support.stores import StoreAt
from tests.support.trace_events import BatchPlan, LineEvents, batch_events, payload
from tests.unit.test_bridge_delivery import Scripted

TZ = timezone(timedelta(hours=8))


@pytest.fixture
def line(tmp_path: Path, store_at: StoreAt) -> tuple[Path, BatchPlan]:
    """A config with a bridge section, and a store holding one uploaded batch (a SQLite file
    with its generated key beside it, or a PostgreSQL store with a key file)."""
    store_path = store_at.location if store_at.pg else tmp_path / "var" / "bridge.db"
    cfg: dict[str, Any] = {
        "gateway": {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "bridge": {
            "store": str(store_path),
            "products": [{"id": "P400", "name": "精制盐", "net_content": "400g"}],
        },
    }
    if store_at.pg:
        cfg["bridge"]["chain_key_file"] = str(store_at.key_file)
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    plan = batch_events(LineEvents(), "20261122-L1-01", 20, per_case=5, per_pallet=2)
    store = store_at() if store_at.pg else TraceStore(store_path)
    store.ingest([("t", payload(e)) for e in plan.events])
    bcfg = BridgeSection(
        store=store_path, codes_per_document=12, products=cfg["bridge"]["products"]
    )
    built_at = datetime(2026, 11, 22, 18, 0, tzinfo=TZ).timestamp()  # the batch's day
    DocumentBuilder(
        store.db, bcfg, enterprise="8035", node="gwtest1", tz=TZ, clock=lambda: built_at
    ).build_ready(force=True)
    retry = UploadRetrySection(backoff_min_secs=0.001)
    Uploader(store.db, Scripted([]), retry, threading.Event()).run_once()
    store.close()
    return path, plan


def test_trace_a_bag(line: tuple[Path, BatchPlan], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, plan = line
    bag = plan.cases[next(iter(plan.cases))][1]  # in the first case, on the first (shipped) pallet
    case, pallet = next(iter(plan.cases)), next(iter(plan.pallets))
    assert main(["trace", bag, "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"code {bag} (bag)\n")
    assert "batch 20261122-L1-01  product P400 精制盐 400g  line L1  produced 2026-11-22" in out
    assert f"case          {case} (packed " in out
    assert f"pallet        {pallet} (packed " in out
    assert ": acked, receipt R-8035-20261122-gwtest1-00000" in out
    n_ccp = sum(e["type"].startswith("ccp.") for e in plan.events)
    assert f"CCP records of batch 20261122-L1-01: {n_ccp} (3 fail)" in out
    assert "ccp.net_content  cw1  380.5 g  limits [388, -]  fail" in out
    order = next(iter(plan.orders))
    assert f"{order}  " in out and f"某某盐业批发公司 (wholesaler)  via {pallet}" in out


def test_trace_json_and_a_case(
    line: tuple[Path, BatchPlan], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, plan = line
    last_case = list(plan.cases)[-1]
    assert main(["trace", last_case, "--config", str(cfg), "--json", "--ccp", "0"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["kind"] == "case" and got["batch"] == "20261122-L1-01"
    assert got["children"] == plan.cases[last_case][2:]  # two were taken out (rework)
    assert got["ccp"]["records"] == [] and got["ccp"]["total"] > 0


def test_trace_a_batch_for_recall(
    line: tuple[Path, BatchPlan], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, plan = line
    assert main(["trace", "--batch", plan.batch, "--config", str(cfg), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    head, codes = lines[0], lines[1:]
    assert head["reconciliation"]["state"] == "complete"
    assert head["reconciliation"]["acknowledged"] == 20
    assert [c["code"] for c in codes] == plan.bags
    shipped = set(plan.pallets[plan.orders[next(iter(plan.orders))][0]])
    for c in codes:
        assert (c["case"] in shipped) == bool(c["outbound"]), c
    assert main(["trace", "--batch", plan.batch, "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "reconciliation: 20 commissioned, 20 uploaded, 20 acknowledged" in text
    assert text.count("\n  8035B") == 20


def test_trace_mistakes(
    line: tuple[Path, BatchPlan],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    store_at: StoreAt,
) -> None:
    cfg, _ = line
    assert main(["trace", "8035NOPE", "--config", str(cfg)]) == 1
    assert "code '8035NOPE' is not in the trace store" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path_factory.mktemp("empty"))
    assert main(["trace", "8035X"]) == 2  # no var/bridge.db in the working directory
    assert "no trace store at var/bridge.db: give --config" in capsys.readouterr().err
    assert main(["trace", "--config", str(cfg)]) == 2
    assert "give one of CODE, --batch" in capsys.readouterr().err
    assert main(["trace", "X", "--store", str(cfg.parent / "missing.db")]) == 2
    assert "no trace store at" in capsys.readouterr().err
    if store_at.pg:
        return
    monkeypatch.chdir(cfg.parent)  # holds var/bridge.db: the default store
    assert main(["trace", "--documents"]) == 0
    assert "acked" in capsys.readouterr().out


def test_trace_documents_and_purge(
    line: tuple[Path, BatchPlan], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, _ = line
    assert main(["trace", "--documents", "--config", str(cfg), "--json"]) == 0
    docs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert docs and {d["state"] for d in docs} == {"acked"}
    assert main(["trace", "--purge", "--config", str(cfg)]) == 0
    assert "purged 0 batches" in capsys.readouterr().out


def test_every_trace_query_is_in_the_access_log(
    line: tuple[Path, BatchPlan],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg, plan = line
    monkeypatch.setenv("SUDO_USER", "qa-wang")
    assert main(["trace", plan.bags[3], "--config", str(cfg)]) == 0
    assert main(["trace", "8035NOPE", "--config", str(cfg)]) == 1
    assert main(["trace", "--batch", plan.batch, "--config", str(cfg)]) == 0
    assert main(["trace", "--documents", "--config", str(cfg)]) == 0
    err = capsys.readouterr().err  # the saltgw.access log lines
    assert f"saltgw.access: trace query code '{plan.bags[3]}'" in err and "not found" in err
    assert main(["trace", "--access-log", "--config", str(cfg), "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    asked = [(r["query"], r["subject"], r["outcome"]) for r in rows]
    assert asked == [
        ("code", plan.bags[3], "found"),
        ("code", "8035NOPE", "not found"),
        ("batch", plan.batch, "found"),
        ("documents", None, "done"),
    ]
    me = pwd.getpwuid(os.getuid()).pw_name  # from the OS, never from $SUDO_USER
    assert all(r["user"].startswith(me) and r["host"] and r["pid"] > 0 for r in rows)
    assert not any("qa-wang" in r["user"] for r in rows)
    assert main(["trace", "--access-log", "2", "--config", str(cfg)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert len(text) == 2 and "documents" in text[1] and "8035NOPE" not in "".join(text)
    assert main(["trace", "--access-log", "--batch", "B", "--config", str(cfg)]) == 2


def _export(tmp: Path, profile: str) -> list[Path]:
    plan = batch_events(LineEvents(), "B-X", 6)
    store = TraceStore(tmp / f"{profile}.db")
    store.ingest([("t", payload(e)) for e in plan.events])
    bcfg = BridgeSection(store=store.path, profile=profile, gzip_base64=profile == "platform")
    DocumentBuilder(store.db, bcfg, enterprise="8035", node="n", tz=TZ).build_ready(force=True)
    out = []
    for number, body in store.db.execute("SELECT number, body FROM documents"):
        p = tmp / f"{number}.{profile}"
        p.write_bytes(bytes(body))
        out.append(p)
    return out


def test_xml_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not GS1_XSD.is_file():
        if os.environ.get("CI"):  # CI has shared/ beside the clone: a skip there hides a defect
            pytest.fail(f"GS1 EPCIS 2.0 XSD not at {GS1_XSD}")
        pytest.skip("GS1 XSD not available")
    epcis = _export(tmp_path, "epcis")
    plat = _export(tmp_path, "platform")  # gzip+base64 bodies
    assert main(["xml", "validate", *map(str, epcis + plat)]) == 0
    out = capsys.readouterr().out
    assert out.count(f"valid (EPCIS 2.0; schema {GS1_XSD.resolve()})") == len(epcis)
    assert out.count(f"valid (saltgw platform XML v1; schema {platform_xsd_path()})") == len(plat)

    doc = etree.parse(str(epcis[0]))
    action = doc.find(".//action")
    assert action is not None
    action.text = "COMMISSION"
    bad = tmp_path / "bad.xml"
    doc.write(str(bad))
    assert main(["xml", "validate", str(bad), str(epcis[0])]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:" in out and ": error: " in out and "COMMISSION" in out
    assert f"{epcis[0]}: valid" in out

    foreign = tmp_path / "foreign.xml"
    foreign.write_text('<a xmlns="urn:other"/>')
    assert main(["xml", "validate", str(foreign)]) == 1
    assert "not a document saltgw produced" in capsys.readouterr().out
    junk = tmp_path / "junk.xml"
    junk.write_text("<unclosed")
    assert main(["xml", "validate", str(junk)]) == 1
    assert f"{junk}:1:" in capsys.readouterr().out

    assert main(["xml", "validate", str(epcis[0]), "--xsd", str(tmp_path / "none.xsd")]) == 2
    assert "--xsd" in capsys.readouterr().err
    assert main(["xml", "validate", str(tmp_path / "missing.xml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_xml_validate_without_the_gs1_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    epcis = _export(tmp_path, "epcis")
    nowhere = tmp_path / "nowhere" / "epcis.xsd"
    monkeypatch.setenv("SALTGW_EPCIS_XSD", str(nowhere))
    assert main(["xml", "validate", str(epcis[0])]) == 2
    err = capsys.readouterr().err
    assert f"EPCIS 2.0 schema not found at {nowhere}" in err and "--xsd" in err


def test_xml_validate_names_the_schema_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    epcis = _export(tmp_path, "epcis")
    assert main(["xml", "validate", str(epcis[0]), "--xsd", str(GS1_XSD)]) == 0
    assert f"schema {GS1_XSD.resolve()})" in capsys.readouterr().out


@pytest.mark.parametrize("verb", [["trace"], ["xml", "validate"]])
def test_help(verb: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*verb, "--help"])
    assert exc.value.code == 0
    assert "usage: saltgw" in capsys.readouterr().out


def test_subscriptions_default_shared_and_batch_topics() -> None:
    root = "salt/v1/8035/daiyue/L1"
    assert subscriptions(root, [], None) == [
        f"{root}/event/#",
        f"{root}/alarm/#",
        "salt/v1/8035/daiyue/gateway/+/seq",  # the gateways' seq marks (gaps at the tail)
    ]
    assert subscriptions(root, [], "up") == [
        f"$share/up/{root}/event/#",
        f"$share/up/{root}/alarm/#",
        f"{root}/event/batch/#",
    ]


def test_resend_a_document_the_platform_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.bridge.transport import Rejected

    plan = batch_events(LineEvents(), "B-R", 6)
    store = TraceStore(tmp_path / "r.db")
    store.ingest([("t", payload(e)) for e in plan.events])
    bcfg = BridgeSection(store=store.path, codes_per_document=100)
    DocumentBuilder(store.db, bcfg, enterprise="8035", node="n", tz=TZ).build_ready(force=True)
    retry = UploadRetrySection(backoff_min_secs=0.001)
    up = Uploader(
        store.db, Scripted([Rejected("batch B-R not registered")]), retry, threading.Event()
    )
    up.run_once()
    number, state = store.db.execute("SELECT number, state FROM documents").fetchone()
    assert state == "quarantined"
    db = ["--store", str(store.path)]
    assert main(["trace", "--resend", number, *db]) == 0
    assert "queued again" in capsys.readouterr().out
    assert main(["trace", "--resend", number, *db]) == 1  # pending now, not quarantined
    assert "is pending, not quarantined" in capsys.readouterr().err
    assert main(["trace", "--resend", "8035-NOPE", *db]) == 1
    assert up.run_once() == 1  # the platform takes it now
    row = store.db.execute("SELECT state, receipt FROM documents").fetchone()
    assert row == ("acked", f"R-{number}")
    outcomes = [r[0] for r in store.db.execute("SELECT outcome FROM attempts ORDER BY rowid")]
    assert outcomes == ["rejected", "requeued", "ok"]
    # a document that failed its own schema check is not sent again
    store.db.execute("UPDATE documents SET state='quarantined', last_error='XSD: bad'")
    store.db.execute("DELETE FROM attempts")
    assert main(["trace", "--resend", number, *db]) == 1
    assert "failed its schema check" in capsys.readouterr().err
    assert main(["trace", "--access-log", *db, "--json"]) == 0
    log = [json.loads(x)["outcome"] for x in capsys.readouterr().out.splitlines()]
    assert log == ["queued", "refused", "refused", "refused"]
