"""The spine, in process: checkweigher simulator (Modbus TCP) → gateway → real mosquitto →
a subscriber, over real sockets."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.checkweigher import CheckweigherSim
from firmware_sim.runner import start_simulators, stop_simulators
from gateway.config.loader import load_config
from gateway.runtime import Gateway
from tests.support.broker import Mosquitto
from tests.support.configs import line_config
from tests.support.loop import BackgroundLoop
from tests.support.subscriber import Collector, Received

pytestmark = pytest.mark.integration


class Running:
    def __init__(self, bg: BackgroundLoop, gw: Gateway, sim: CheckweigherSim) -> None:
        self.bg, self.gw, self.sim = bg, gw, sim


@pytest.fixture
def line(tmp_path: Path, mosquitto: Mosquitto, request: pytest.FixtureRequest) -> Iterator[Running]:
    opts: dict[str, Any] = getattr(request, "param", {})
    cfg = load_config(line_config(tmp_path, mosquitto.port, **opts))
    with BackgroundLoop() as bg:
        sims = bg.run(start_simulators(cfg.simulators))
        gw = Gateway(cfg)
        stop = bg.run(_make_event())
        done: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(
            gw.run(stop), bg.loop
        )
        try:
            yield Running(bg, gw, sims["cw1-sim"])  # type: ignore[arg-type]
        finally:
            bg.loop.call_soon_threadsafe(stop.set)
            done.result(30)
            bg.run(stop_simulators(sims))


async def _make_event() -> asyncio.Event:
    return asyncio.Event()


def _of_type(msgs: list[Received], t: str) -> list[dict[str, Any]]:
    out = []
    for m in msgs:
        if "/event/" in m.topic or "/alarm/" in m.topic:
            ev = m.json()
            if ev["type"] == t:
                out.append(ev)
    return out


def test_each_weighing_becomes_a_ccp_event_matching_the_device(
    mosquitto: Mosquitto, line: Running
) -> None:
    sub = Collector(mosquitto.port).start()
    try:
        msgs = sub.wait_for(lambda m: len(_of_type(m, "ccp.net_content")) >= 20, 30, "20 weighings")
    finally:
        sub.stop()
    evs = _of_type(msgs, "ccp.net_content")
    for ev in evs:
        assert ev["gateway"] == "gw-test-1" and ev["enterprise"] == "8035"
        assert ev["device"] == "cw1" and ev["line"] == "L1" and ev["site"] == "daiyue"
        assert ev["ts"][-6:] == "+08:00"
        d = ev["data"]
        assert d["unit"] == "g" and d["limits"] == {"lo": 388.0, "hi": None}
        truth = line.sim.weighing(d["count"])
        assert truth is not None, f"weighing {d['count']} unknown to the simulator"
        assert d["value"] == pytest.approx(truth.weight_g, abs=0.01)
        assert d["verdict"] == ("fail" if truth.weight_g < 388.0 else "pass")
        # the topic is the contract's
    topics = {m.topic for m in msgs if "net_content" in m.topic}
    assert topics == {"salt/v1/8035/daiyue/L1/event/ccp/net_content"}
    seqs = [ev["seq"] for ev in evs]
    assert seqs == sorted(seqs)
    fails = [e for e in evs if e["data"]["verdict"] == "fail"]
    alarms = _of_type(msgs, "alarm.ccp")
    assert {a["data"]["value"] for a in alarms} >= {f["data"]["value"] for f in fails[:-1]}


def test_device_state_is_retained_and_gateway_status_online(
    mosquitto: Mosquitto, line: Running
) -> None:
    # a subscriber that arrives late still gets the retained state and status
    line.bg.run(asyncio.sleep(1.0))
    sub = Collector(mosquitto.port, topic="salt/v1/8035/daiyue/#").start()
    try:
        msgs = sub.wait_for(
            lambda m: (
                any(x.topic.endswith("/state/cw1") and x.retain for x in m)
                and any(x.topic.endswith("/status") and x.retain for x in m)
            ),
            10,
            "retained state and status",
        )
    finally:
        sub.stop()
    state = next(m for m in msgs if m.topic == "salt/v1/8035/daiyue/L1/state/cw1")
    assert state.json()["state"] == "online"
    status = next(m for m in msgs if m.topic == "salt/v1/8035/daiyue/gateway/gw-test-1/status")
    assert status.payload == b"online"


def test_device_dropping_off_is_offline_then_online_and_polling_resumes(
    mosquitto: Mosquitto, line: Running
) -> None:
    sub = Collector(mosquitto.port).start()
    try:
        sub.wait_for(lambda m: len(_of_type(m, "ccp.net_content")) >= 3, 20, "weighings")
        line.bg.run(line.sim.drop(3.0))
        msgs = sub.wait_for(
            lambda m: (
                [json.loads(x.payload)["state"] for x in m if x.topic.endswith("/state/cw1")][-1:]
                == ["online"]
                and "offline"
                in [json.loads(x.payload)["state"] for x in m if x.topic.endswith("/state/cw1")]
            ),
            30,
            "offline then online",
        )
        n = len(_of_type(msgs, "ccp.net_content"))
        sub.wait_for(
            lambda m: len(_of_type(m, "ccp.net_content")) >= n + 5, 20, "weighings after recovery"
        )
        msgs = sub.snapshot()
    finally:
        sub.stop()
    device_alarms = [e["data"]["state"] for e in _of_type(msgs, "alarm.device")]
    assert "offline" in device_alarms and "online" in device_alarms


def test_modbus_exception_is_a_fault_state_and_recovers(
    mosquitto: Mosquitto, line: Running
) -> None:
    sub = Collector(mosquitto.port).start()
    try:
        sub.wait_for(lambda m: len(_of_type(m, "ccp.net_content")) >= 2, 20, "weighings")
        line.sim.set_exception_mode(True)
        msgs = sub.wait_for(
            lambda m: any(e["data"]["state"] == "fault" for e in _of_type(m, "alarm.device")),
            20,
            "fault alarm",
        )
        fault = next(e for e in _of_type(msgs, "alarm.device") if e["data"]["state"] == "fault")
        assert "illegal data address" in fault["data"]["detail"]
        line.sim.set_exception_mode(False)
        n = len(_of_type(msgs, "ccp.net_content"))
        sub.wait_for(lambda m: len(_of_type(m, "ccp.net_content")) >= n + 3, 30, "recovery")
    finally:
        sub.stop()


def test_garbage_register_value_is_a_device_alarm_never_a_verdict(
    mosquitto: Mosquitto, line: Running
) -> None:
    sub = Collector(mosquitto.port).start()
    try:
        sub.wait_for(lambda m: len(_of_type(m, "ccp.net_content")) >= 2, 20, "weighings")
        line.sim.inject_garbage()
        msgs = sub.wait_for(
            lambda m: any(e["data"]["state"] == "bad_value" for e in _of_type(m, "alarm.device")),
            20,
            "bad value alarm",
        )
        n = len(_of_type(msgs, "ccp.net_content"))
        msgs = sub.wait_for(lambda m: len(_of_type(m, "ccp.net_content")) >= n + 3, 20, "more")
    finally:
        sub.stop()
    bad = next(e for e in _of_type(msgs, "alarm.device") if e["data"]["state"] == "bad_value")
    assert "weight_g" in bad["data"]["detail"]
    counts = {e["data"]["count"] for e in _of_type(msgs, "ccp.net_content")}
    garbage = [w.count for w in line.sim.history if w.weight_g != w.weight_g]  # NaN
    assert garbage and not counts & set(garbage)


@pytest.mark.parametrize("line", [{"protocol": "3.1.1"}], indirect=True)
def test_mqtt_3_1_1_works_too(mosquitto: Mosquitto, line: Running) -> None:
    sub = Collector(mosquitto.port).start()
    try:
        sub.wait_for(lambda m: len(_of_type(m, "ccp.net_content")) >= 3, 20, "weighings")
    finally:
        sub.stop()
