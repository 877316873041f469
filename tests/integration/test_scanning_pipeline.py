"""Scanners end to end, over real sockets: scanner simulator (bag, case, pallet over a serial
socket:// link, outbound) + checkweigher simulator → gateway → real mosquitto → a subscriber."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from firmware_sim.runner import start_simulators, stop_simulators
from firmware_sim.scan_line import ScanLineSim
from gateway.config.loader import load_config
from gateway.runtime import Gateway
from gateway.traceline import close_trace_lines
from tests.support.broker import Mosquitto
from tests.support.loop import BackgroundLoop
from tests.support.net import free_port
from tests.support.subscriber import Collector, Received

pytestmark = pytest.mark.integration

ROOT = "salt/v1/8035/daiyue/L1"


def _config(tmp: Path, broker_port: int) -> Path:
    ports = {name: free_port() for name in ("cw", "bag", "case", "pallet", "out", "in", "rc")}
    store = str(tmp / "trace.db")

    def scanner(dev: str, conn: dict[str, Any], framing: str) -> dict[str, Any]:
        return {"id": dev, "driver": "scanner", "connection": conn, "framing": framing}

    def tcp(port: int) -> dict[str, Any]:
        return {"type": "tcp_client", "host": "127.0.0.1", "port": port}

    cfg: dict[str, Any] = {
        "gateway": {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "mqtt": {"url": f"mqtt://127.0.0.1:{broker_port}", "reconnect_min_secs": 0.5},
        "journal": {"path": str(tmp / "journal.db")},
        "devices": [
            {
                "id": "cw1",
                "driver": "modbus",
                "connection": {"type": "tcp", "host": "127.0.0.1", "port": ports["cw"]},
                "poll_interval_ms": 50,
                "byte_order": "big",
                "word_order": "big",
                "tags": {"count": {"table": "holding_register", "address": 0, "type": "uint32"}},
            },
            scanner("scan1", tcp(ports["bag"]), "crlf"),
            scanner("case1", tcp(ports["case"]), "stx_etx"),
            scanner(
                "pal1", {"type": "serial", "port": f"socket://127.0.0.1:{ports['pallet']}"}, "cr"
            ),
            scanner("out1", tcp(ports["out"]), "crlf"),
            scanner("in1", tcp(ports["in"]), "crlf"),
            scanner("rc1", tcp(ports["rc"]), "crlf"),
        ],
        "profiles": [
            {"profile": "bag_scanner", "device": "scan1", "store": store, "sku": "s400g"},
            {"profile": "case_packer", "device": "case1", "store": store, "bags_per_case": 3},
            {"profile": "pallet_builder", "device": "pal1", "store": store, "cases_per_pallet": 2},
            {"profile": "outbound_scanner", "device": "out1", "store": store},
            {"profile": "inbound_scanner", "device": "in1", "store": store, "party": "批发商"},
            {"profile": "recall_scanner", "device": "rc1", "store": store},
            {
                "profile": "scan_kpi",
                "device": "cw1",
                "store": store,
                "publish_secs": 1,
                "window_secs": 10,
                "min_bags": 10,
                "scan_rate_threshold": 0.99,
            },
        ],
        "simulators": [
            {
                "id": "cw-sim",
                "kind": "checkweigher",
                "port": ports["cw"],
                "rate_per_min": 600,
                "seed": 1,
            },
            {
                "id": "scan-sim",
                "kind": "scan_line",
                "port": ports["bag"],
                "case": {"port": ports["case"], "framing": "stx_etx"},
                "pallet": {"port": ports["pallet"], "framing": "cr"},
                "outbound": {"port": ports["out"]},
                "inbound": {"port": ports["in"]},
                "recall": {"port": ports["rc"]},
                "recall_every_pallets": 1,
                "outbound_delay_s": 0.3,
                "rate_per_min": 600,
                "bags_per_case": 3,
                "cases_per_pallet": 2,
                "noread_ratio": 0.05,
                "duplicate_ratio": 0.04,
                "invalid_ratio": 0.04,
                "misread_ratio": 0.02,
                "start_delay_s": 1.5,
                "seed": 11,
            },
        ],
    }
    path = tmp / "line.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


class Running:
    def __init__(self, bg: BackgroundLoop, sim: ScanLineSim) -> None:
        self.bg, self.sim = bg, sim


@pytest.fixture
def line(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Running]:
    cfg = load_config(_config(tmp_path, mosquitto.port))
    with BackgroundLoop() as bg:
        sims = bg.run(start_simulators(cfg.simulators))
        gw = Gateway(cfg)
        stop = bg.run(_make_event())
        done: concurrent.futures.Future[int] = asyncio.run_coroutine_threadsafe(
            gw.run(stop), bg.loop
        )
        try:
            yield Running(bg, sims["scan-sim"])  # type: ignore[arg-type]
        finally:
            bg.loop.call_soon_threadsafe(stop.set)
            done.result(30)
            bg.run(stop_simulators(sims))
            close_trace_lines(tmp_path / "trace.db")


async def _make_event() -> asyncio.Event:
    return asyncio.Event()


def _events(msgs: list[Received], t: str) -> list[dict[str, Any]]:
    out = []
    for m in msgs:
        if "/event/" in m.topic or "/alarm/" in m.topic:
            ev = m.json()
            if ev["type"] == t:
                out.append(ev)
    return out


def test_bags_cases_pallets_alarms_and_kpi(mosquitto: Mosquitto, line: Running) -> None:
    sub = Collector(mosquitto.port).start()
    try:
        msgs = sub.wait_for(
            lambda m: (
                len(_events(m, "pack.pallet")) >= 2
                and len(_events(m, "ship.outbound")) >= 2
                and _events(m, "ship.inbound")
                and _events(m, "recall.scan")
                and _events(m, "alarm.duplicate_code")
                and _events(m, "alarm.invalid_code")
                and _events(m, "pack.noread")
                and any(x.topic == f"{ROOT}/kpi" for x in m)
            ),
            45,
            "pallets, outbound scans, code alarms and a KPI message",
        )
    finally:
        sub.stop()
    sim = line.sim
    truth = {b.code: b for b in reversed(sim.bags)}  # a duplicate keeps the first bag's code
    bags = _events(msgs, "pack.bag")
    assert bags and all(e["device"] == "scan1" for e in bags)
    assert all(e["data"]["code"] in truth and truth[e["data"]["code"]].fault == "ok" for e in bags)
    for dup in _events(msgs, "alarm.duplicate_code"):
        assert truth[dup["data"]["code"]].fault in ("ok", "duplicate")
    for bad in _events(msgs, "alarm.invalid_code"):
        assert any(
            b.sent.endswith(bad["data"]["raw"]) or b.sent == bad["data"]["raw"]
            for b in sim.bags
            if b.fault in ("invalid", "misread")
        )
    cases = {c.code: c for c in sim.cases}
    for case in _events(msgs, "pack.case"):
        assert case["data"]["children"] == cases[case["data"]["code"]].children
    pallets = {p.code: p for p in sim.pallets}
    for pallet in _events(msgs, "pack.pallet"):
        assert pallet["data"]["children"] == pallets[pallet["data"]["code"]].children
    for out in _events(msgs, "ship.outbound"):
        assert out["data"]["order"].startswith("SO") and out["data"]["customer"] == "泰安市盐业公司"
    for inbound in _events(msgs, "ship.inbound"):
        assert inbound["data"]["supplier"] == "批发商" and inbound["data"]["code"] in pallets
    for recall in _events(msgs, "recall.scan"):
        assert recall["data"]["recall"].startswith("RC") and recall["data"]["code"] in cases
    kpi = [m for m in msgs if m.topic == f"{ROOT}/kpi"][-1]
    body = kpi.json()
    counts = body["scopes"]["shift"]["counts"]
    assert body["line"] == "L1" and 0 < counts["valid"] <= len(bags)
    assert counts["read"] + counts["noread"] == counts["frames"] <= len(sim.bags)
    assert 0 < body["scopes"]["line"]["scan_rate"] <= 1.5


def test_kpi_message_is_retained(mosquitto: Mosquitto, line: Running) -> None:
    line.bg.run(asyncio.sleep(2.5))
    sub = Collector(mosquitto.port, topic=f"{ROOT}/kpi").start()
    try:
        msgs = sub.wait_for(lambda m: any(x.retain for x in m), 10, "retained KPI message")
    finally:
        sub.stop()
    body = next(x for x in msgs if x.retain).json()
    assert set(body["scopes"]) >= {"line", "shift"} and "window" in body


def test_garbage_on_the_scanner_line_is_a_counted_rejection_and_the_next_code_reads(
    mosquitto: Mosquitto, line: Running
) -> None:
    sub = Collector(mosquitto.port).start()
    try:
        sub.wait_for(lambda m: len(_events(m, "pack.bag")) >= 2, 20, "bags")
        for kind in ("binary", "overlong", "framing"):
            line.sim.inject_garbage(kind)  # type: ignore[arg-type]
            line.bg.run(asyncio.sleep(0.35))
        msgs = sub.wait_for(
            lambda m: (
                sum(
                    1
                    for e in _events(m, "alarm.device")
                    if e["device"] == "scan1" and e["data"]["state"] == "bad_value"
                )
                >= 3
            ),
            20,
            "three rejected frames",
        )
        n = len(_events(msgs, "pack.bag"))
        msgs = sub.wait_for(lambda m: len(_events(m, "pack.bag")) >= n + 3, 20, "more bags")
    finally:
        sub.stop()
    bad = [
        e
        for e in _events(msgs, "alarm.device")
        if e["device"] == "scan1" and e["data"]["state"] == "bad_value"
    ]
    details = " | ".join(e["data"]["detail"] for e in bad)
    assert "binary data" in details and "overlong frame" in details and "STX/ETX" in details
    # the code sent right after each garbage frame still reads
    after = [b for b in line.sim.bags if b.garbage is not None]
    assert {b.garbage for b in after} == {"binary", "overlong", "framing"}
    codes = {e["data"]["code"] for e in _events(msgs, "pack.bag")}
    assert any(b.fault == "ok" for b in after)
    assert all(b.code in codes for b in after if b.fault == "ok")
