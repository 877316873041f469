"""Issue 18: a LIMS message over a real mosquitto and `saltgw import` of CSV and XLSX files
reach a running gateway's journal, the bridge's trace store, table 6 #23 of the upload once the
batch is released, and a recall by material lot (`saltgw trace --material`) lists the right
codes and customers; bad messages and rows are refused naming the field / file:row:column."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from gateway.bridge.service import Bridge
from gateway.bridge.xmlcheck import check_document
from gateway.cli import main
from gateway.command_auth import signing_bytes
from gateway.config.loader import load_config
from gateway.runtime import Gateway
from tests.support.bridge_docs import facts_of
from tests.support.bridge_env import Publisher, bridge_config, known_gateway, outbox, q, wait
from tests.support.broker import Mosquitto, mosquitto_available
from tests.support.loop import BackgroundLoop
from tests.support.trace_events import LineEvents, batch_events, line_records, payload

pytestmark = pytest.mark.skipif(not mosquitto_available(), reason="mosquitto not installed")

BATCH = "20261122-L1-LAB"
LOT = "RS-2026-11-07"  # the salt lot line_records feeds into the batch
LIMS_KEY = "lims-test-key-0123456789abcdef"
GW_KEY = b"lab-gateway-event-key-0123456789abcdef"
ROOT = "salt/v1/8035/daiyue/L1"
RECEIVER = {"enterprise": "8035", "site": "daiyue", "line": "L1", "gateway": "gw-lab"}


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    m = Mosquitto(tmp_path / "broker")
    m.start()
    yield m
    m.stop()


def _config(tmp: Path, port: int) -> Path:
    key = tmp / "gw-lab.event-key"
    key.write_bytes(GW_KEY)
    key.chmod(0o600)
    cfg = {
        "gateway": {"id": "gw-lab", "enterprise": "8035", "site": "daiyue", "line": "L1",
                    "event_key_file": str(key)},
        "mqtt": {"url": f"mqtt://127.0.0.1:{port}", "reconnect_min_secs": 0.2,
                 "reconnect_max_secs": 1},
        "journal": {"path": str(tmp / "gw" / "journal.db")},
        "commands": {"issuers": [{"name": "lims-01", "key_env": "SALTGW_TEST_LIMS_KEY",
                                  "allow": [{"records": ["inspection", "release",
                                                         "material_receipt"]}]}]},
    }  # fmt: skip
    path = tmp / "gw.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


class Answers:
    """The gateway's responses on …/record/+/response, by message id."""

    def __init__(self, port: int) -> None:
        self.got: dict[str, dict[str, Any]] = {}
        self.ready = threading.Event()
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-lims")
        self.c.on_connect = lambda c, *_: c.subscribe(f"{ROOT}/record/+/response", qos=1)
        self.c.on_subscribe = lambda *_: self.ready.set()
        self.c.on_message = lambda _c, _u, m: self.got.update({json.loads(m.payload)["id"]:
                                                               json.loads(m.payload)})  # fmt: skip
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.ready.wait(10)

    def send(self, kind: str, body: dict[str, Any], sign: bool = True) -> dict[str, Any]:
        if sign:
            # signed now: the gateway checks ts against its clock (within max_age_secs)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            body = {**body, "issuer": "lims-01", "ts": now}
            to = {**RECEIVER, "device": f"record/{kind}"}
            body["sig"] = hmac.new(LIMS_KEY.encode(), signing_bytes(body, to),
                                   hashlib.sha256).hexdigest()  # fmt: skip
        self.c.publish(f"{ROOT}/record/{kind}", json.dumps(body, ensure_ascii=False), qos=1)
        wait(lambda: body["id"] in self.got, 10, f"the answer to {body['id']}")
        return self.got[body["id"]]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


INSPECTION = {
    "id": "lims-msg-1", "record_id": "LIMS-R-1122-01", "sample": "S-1122-01", "batch": BATCH,
    "product": "加碘精制盐 400g", "sampled": "2026-11-22", "sampler": "李取",
    "method": "GB 2721-2015", "items": [{"item": "碘含量", "result": "25.3 mg/kg"}],
    "verdict": "合格", "grade": "一级", "inspector": "赵检", "reviewer": "钱审", "approver": "孙批",
}  # fmt: skip


def test_lims_message_and_csv_imports_reach_trace_upload_and_material_recall(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("SALTGW_TEST_LIMS_KEY", LIMS_KEY)
    cfg_path = _config(tmp_path, mosquitto.port)
    gw_entry = {"id": "gw-lab", "key_file": str(tmp_path / "gw-lab.event-key")}
    bcfg = bridge_config(
        tmp_path, mosquitto.port, "platform", profile="platform",
        gateways=[known_gateway(tmp_path), gw_entry],
        upload={"type": "directory", "path": str(tmp_path / "out"), "ack": "on_write"},
    )  # fmt: skip
    bridge = Bridge(bcfg, host="127.0.0.1", port=mosquitto.port).start()
    store = Path(bcfg.bridge.store)  # type: ignore[union-attr]
    with BackgroundLoop() as bg:
        gw = Gateway(load_config(cfg_path))
        stop = bg.run(_event())
        done: concurrent.futures.Future[int] = asyncio.run_coroutine_threadsafe(
            gw.run(stop), bg.loop
        )
        answers = Answers(mosquitto.port)
        try:
            wait(lambda: gw.link.connected.is_set(), 10, "gateway connected")
            wait(lambda: bool(bridge.consumer and bridge.consumer.subscribed.is_set()), 10,
                 "bridge subscribed")  # fmt: skip
            # a LIMS message: journaled; sent again: a duplicate, not journaled twice
            ok = answers.send("inspection", INSPECTION)
            assert ok["status"] == "accepted" and ok["seq"] == 1 and not ok["duplicate"], ok
            again = answers.send("inspection", {**INSPECTION, "id": "lims-msg-2"})
            assert again["status"] == "accepted" and again["duplicate"] and again["seq"] == 1
            # bad messages: the field named; unsigned: not authorised, nothing more
            bad = answers.send("inspection", {**INSPECTION, "id": "lims-bad", "sampler": None})
            assert bad["status"] == "rejected" and "'sampler'" in bad["reason"], bad
            bad = answers.send("inspection", {**INSPECTION, "id": "lims-bad2", "grde": "一级"})
            assert "unknown field 'grde'" in bad["reason"], bad
            bad = answers.send("inspection", {**INSPECTION, "id": "lims-bad3"}, sign=False)
            assert bad["reason"] == "not authorised", bad
            nc = {"id": "lims-bad4", "batch": BATCH, "reason": "封口不良", "disposition": "rework",
                  "by": "吴管", "at": "2026-11-22T17:00:00+08:00"}  # fmt: skip
            bad = answers.send("nonconforming", nc)
            assert bad["reason"] == "not authorised", bad  # no grant for that kind

            # CSV imports (a LIMS export with a BOM): a bad file imports nothing
            receipts = tmp_path / "receipts.csv"
            receipts.write_bytes(
                "\ufeffmaterial,supplier,lot,quantity,unit,received,verdict\n"
                f"原盐,某某盐矿有限公司,{LOT},30,t,2026-11-20,合格\n"
                "碘酸钾,某化工,KIO-7,25,kg,2026-11-2x,maybe\n".encode()
            )
            rc = main(["import", str(cfg_path), "material_receipt", str(receipts),
                       "--issuer", "lims-01"])  # fmt: skip
            err = capsys.readouterr().err
            assert rc == 1 and "nothing imported" in err
            assert f"{receipts}:3:6: error: column 'received'" in err
            assert f"{receipts}:3:7: error: column 'verdict'" in err
            rc = main(["import", str(cfg_path), "material_receipt", str(receipts), "--partial",
                       "--issuer", "lims-01"])  # fmt: skip
            out = capsys.readouterr().out
            assert rc == 1 and "1 material_receipt record(s) journaled" in out, out
            # the release from an Excel workbook (a title row, a date-and-time cell), then the
            # same row from CSV: one record, whichever file brings it
            book = openpyxl.Workbook()
            sheet = book.active
            sheet.title = "放行"
            sheet.append(["产品放行记录"])
            sheet.append(["batch", "decision", "by", "at", "retained_sample"])
            sheet.append([BATCH, "released", "周放", datetime(2026, 11, 22, 16, 0), "LY-1122-01"])
            book.save(tmp_path / "release.xlsx")
            release = tmp_path / "release.csv"
            release.write_text(
                "batch,decision,by,at,retained_sample\n"
                f"{BATCH},released,周放,2026-11-22 16:00,LY-1122-01\n"
            )
            for n, path in ((1, tmp_path / "release.xlsx"), (0, release)):
                rc = main(["import", str(cfg_path), "release", str(path),
                           "--issuer", "lims-01"])  # fmt: skip
                out = capsys.readouterr().out
                assert rc == 0 and f"{n} release record(s) journaled, {1 - n} already" in out

            # the line's own events (another gateway), feeding lot LOT into the batch
            f = LineEvents()
            plan = batch_events(f, BATCH, 45, with_end=True)
            extra = line_records(f, plan)
            events = plan.events + extra.events
            pub = Publisher(mosquitto.port)
            for ev in events:
                pub.publish(f.topic(ev), payload(ev))
            pub.close()
            want = len(events) + 3
            try:
                wait(lambda: q(store, "SELECT COUNT(*) FROM events")[0][0] == want, 20,
                     "line events and three records stored")  # fmt: skip
            except AssertionError:
                got = q(store, "SELECT type, gateway, note FROM events WHERE gateway='gw-lab'")
                raise AssertionError(
                    (
                        want,
                        got,
                        q(store, "SELECT reason FROM quarantine"),
                        q(store, "SELECT COUNT(*) FROM events"),
                    )
                ) from None
        finally:
            answers.close()
            bg.loop.call_soon_threadsafe(stop.set)
            done.result(30)
    try:
        kinds = q(store, "SELECT kind, record_id FROM lab_records ORDER BY kind")
        assert [k for k, _ in kinds] == ["inspection", "material_receipt", "release"]
        assert q(store, "SELECT release, lab_result FROM batches WHERE batch=?".replace(
            "?", f"'{BATCH}'")) == [("released", "合格，一级")]  # fmt: skip
        # the upload: #23 of the released batch, documents valid
        wait(lambda: bool(outbox(tmp_path / "out")), 20, "a document uploaded")
        bodies = outbox(tmp_path / "out")
        for body in bodies:
            assert check_document(body).valid
        assert facts_of(bodies).batches[BATCH]["inspection"] == "合格，一级"
        # the records themselves are uploaded too (platform XML: MaterialReceipts, ...)
        ids = {r for _, r in kinds}
        wait(lambda: ids <= set(facts_of(outbox(tmp_path / "out")).lab), 20, "records uploaded")
        lab = facts_of(outbox(tmp_path / "out")).lab
        assert {lab[r].get("decision") for r in ids} >= {"released"}
        assert {lab[r].get("supplier") for r in ids} >= {"某某盐矿有限公司"}
    finally:
        bridge.stop()
    # recall by the material lot: every code of the batch, its cases, pallets and customers
    rc = main(["trace", "--material", LOT, "--store", str(store), "--json"])
    recall = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert [r["supplier"] for r in recall["receipts"]] == ["某某盐矿有限公司"]
    (b,) = recall["batches"]
    assert b["batch"] == BATCH and {c["code"] for c in b["codes"]} == set(plan.bags)
    assert set(b["pallets"]) == set(plan.pallets)
    shipped = {c for p in plan.orders.values() for c in p}
    assert [c["customer"] for c in recall["customers"]] == ["某某盐业批发公司"]
    assert recall["customers"][0]["codes"] == sum(
        1 for c in b["codes"] if c["pallet"] in shipped or c["case"] in shipped
    )
    rc = main(["trace", "--batch", BATCH, "--store", str(store)])
    text = capsys.readouterr().out
    assert rc == 0 and f"lot {LOT}" in text and "某某盐矿有限公司" in text
    assert "table 6 #23 (public): 合格，一级" in text and "release released" in text
    access = q(store, "SELECT query, subject FROM access_log ORDER BY id")
    assert ("material", LOT) in access and ("batch", BATCH) in access


async def _event() -> asyncio.Event:
    return asyncio.Event()
