"""The whole demo line in process — checkweigher, metal detector, inspection panel and iodine
doser simulators (Modbus TCP) → gateway → real mosquitto → a subscriber — with the demo map's
devices and profiles, on free ports and at a faster pace: a MES receives all five CCP kinds,
failing verdicts with alarm.ccp, rejects, and the missed-check alarm that only time causes."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from firmware_sim.runner import start_simulators, stop_simulators
from gateway.config.loader import load_config
from gateway.runtime import Gateway
from tests.support.broker import Mosquitto
from tests.support.loop import BackgroundLoop
from tests.support.net import free_port
from tests.support.subscriber import Collector, Received

pytestmark = pytest.mark.integration

DEMO = Path(__file__).parents[2] / "mappings" / "demo-line.yaml"
CCP_KINDS = {"metal_detector", "magnet_rod", "net_content", "sieve", "iodine"}
FAST_SIMS: dict[str, dict[str, Any]] = {
    "cw1-sim": {"dropout_every_s": None, "dropout_for_s": None, "underweight_ratio": 0.3},
    "md1-sim": {"detection_every_s": 0.9, "verification_every_s": 1.3, "seed": 5},
    "panel1-sim": {"rod_every_s": 0.8, "sieve_every_s": None, "tear_every_s": 1.5, "seed": 5},
    "io1-sim": {"sample_every_s": 1.0, "drift_every_s": 2.5, "drift_for_s": 2.0, "seed": 5},
}


def fast_demo(tmp: Path, broker_port: int) -> Path:
    cfg = yaml.safe_load(DEMO.read_text())
    cfg["mqtt"]["url"] = f"mqtt://127.0.0.1:{broker_port}"
    cfg["journal"]["path"] = str(tmp / "journal.db")
    # the Modbus CCP devices only (other devices of the demo line have their own tests)
    cfg["devices"] = [d for d in cfg["devices"] if d["driver"] == "modbus"]
    ports = {d["connection"]["port"]: free_port() for d in cfg["devices"]}
    for dev in cfg["devices"]:
        dev["connection"]["port"] = ports[dev["connection"]["port"]]
    cfg["profiles"] = [
        p for p in cfg["profiles"] if p["device"] in {d["id"] for d in cfg["devices"]}
    ]
    cfg["simulators"] = [s for s in cfg["simulators"] if s["port"] in ports]
    for sim in cfg["simulators"]:
        sim["port"] = ports[sim["port"]]
        sim.update(FAST_SIMS.get(sim["id"], {}))
    for prof in cfg["profiles"]:
        if prof["profile"] == "iodine" and prof.get("source", "dosing") == "dosing":
            prof["record_interval_s"] = 1
        if prof["profile"] == "metal_detector":
            prof["reject_confirm_s"] = 1
        if prof["profile"] == "sieve":  # no screen checks at all: missed after 3 s
            prof["inspection_interval_min"] = 0.05
    path = tmp / "line.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


@pytest.fixture
def line(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Gateway]:
    cfg = load_config(fast_demo(tmp_path, mosquitto.port))
    with BackgroundLoop() as bg:
        sims = bg.run(start_simulators(cfg.simulators))
        gw = Gateway(cfg)
        stop = bg.run(_event())
        done: concurrent.futures.Future[int] = asyncio.run_coroutine_threadsafe(
            gw.run(stop), bg.loop
        )
        try:
            yield gw
        finally:
            bg.loop.call_soon_threadsafe(stop.set)
            done.result(30)
            bg.run(stop_simulators(sims))


async def _event() -> asyncio.Event:
    return asyncio.Event()


def _events(msgs: list[Received]) -> list[dict[str, Any]]:
    return [m.json() for m in msgs if "/event/" in m.topic or "/alarm/" in m.topic]


def _complete(msgs: list[Received]) -> bool:
    evs = _events(msgs)
    kinds = {e["type"].removeprefix("ccp.") for e in evs if e["type"].startswith("ccp.")}
    alarms = {(e["data"]["ccp"], e["data"].get("check")) for e in evs if e["type"] == "alarm.ccp"}
    rejects = {e["data"]["reason"] for e in evs if e["type"] == "pack.reject"}
    wanted_alarms = {
        ("metal_detector", "detection"),
        ("metal_detector", "verification"),
        ("magnet_rod", "inspection"),
        ("sieve", "sensor"),
        ("sieve", "inspection"),  # the missed check, from the runtime's tick
        ("iodine", "dosing"),
        ("net_content", "weighing"),
    }
    return kinds == CCP_KINDS and wanted_alarms <= alarms and {"metal", "net_content"} <= rejects


def test_a_mes_receives_every_ccp_kind_with_failures_alarms_and_rejects(
    mosquitto: Mosquitto, line: Gateway
) -> None:
    sub = Collector(mosquitto.port, topic="salt/v1/#").start()
    try:
        msgs = sub.wait_for(_complete, 40, "all five CCP kinds, their alarms and rejects")
    finally:
        sub.stop()
    evs = _events(msgs)
    root = "salt/v1/8035/daiyue/L1"
    topics = {m.topic for m in msgs}
    for kind in CCP_KINDS:
        assert f"{root}/event/ccp/{kind}" in topics
    assert f"{root}/alarm/ccp" in topics
    for ev in evs:
        if ev["type"].startswith("ccp."):
            d = ev["data"]
            assert {"value", "unit", "limits", "verdict"} <= set(d) and d["verdict"] in (
                "pass",
                "fail",
            )
    fails = {
        e["type"] for e in evs if e["type"].startswith("ccp.") and e["data"]["verdict"] == "fail"
    }
    assert fails == {f"ccp.{k}" for k in CCP_KINDS}
    missed = [e for e in evs if e["type"] == "alarm.ccp" and e["data"].get("missed")]
    assert missed and missed[0]["device"] == "panel1" and missed[0]["data"]["unit"] == "min"
    assert len([m for m in missed if m["data"]["ccp"] == "sieve" and m["data"]["missed"] == 1]) == 1
    devices = {e["device"] for e in evs if e["type"].startswith("ccp.")}
    assert devices == {"cw1", "md1", "panel1", "io1"}
