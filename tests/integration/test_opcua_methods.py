"""MES commands bound to the line PLC's OPC UA methods, through the whole gateway: a MES client
publishes on a real mosquitto → the gateway → ``StartBatch`` / ``EndBatch`` on the simulated
PLC (firmware-sim/line_plc.py) → the response carries the method's status and outputs, and the
batch the gateway reads changes (batch.start / batch.end follow). Also: a PLC restart is one
state-change line in the log, not asyncua's traceback (issue 17)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.opcua import device_entry
from tests.support.plc_line import PlcLine, running_plc_line
from tests.support.subscriber import Collector, Received

pytestmark = pytest.mark.integration

ROOT = "salt/v1/8035/daiyue/L1"
CMD = f"{ROOT}/cmd/plc1"
LINE = {"node": "s=Line1"}
COMMANDS = {
    "start_batch": {
        "method": {
            "object": LINE,
            "method": {"browse_path": "0:Objects/Line1/StartBatch"},
            "inputs": [
                {"field": "batch", "type": "String"},
                {"field": "product", "type": "String", "default": ""},
            ],
            "timeout_ms": 3000,
        }
    },
    "end_batch": {"method": {"object": LINE, "method": {"node": "s=Line1.EndBatch"}}},
}


def line_config(tmp: Path, broker_port: int, plc_port: int) -> Path:
    cfg: dict[str, Any] = {
        "gateway": {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "mqtt": {
            "url": f"mqtt://127.0.0.1:{broker_port}",
            "reconnect_min_secs": 0.5,
            "reconnect_max_secs": 2,
        },
        "journal": {"path": str(tmp / "journal.db")},
        "commands": {"mode": "open"},
        "devices": [device_entry(f"opc.tcp://127.0.0.1:{plc_port}", publishing_interval_ms=100)],
        "profiles": [{"profile": "line_plc", "device": "plc1", "line": "L1", "commands": COMMANDS}],
        "simulators": [
            {
                "id": "plc1-sim",
                "kind": "line_plc",
                "port": plc_port,
                "seed": 5,
                "auto_batches": False,  # MES runs this line: no batch until a command
                "transition_secs": 0.2,
            }
        ],
    }
    path = tmp / "line.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlcLine]:
    with running_plc_line(tmp_path_factory.mktemp("opcua-methods"), line_config) as running:
        yield running


def events(msgs: list[Received], kind: str) -> list[dict[str, Any]]:
    return [m.json() for m in msgs if "/event/" in m.topic and m.json()["type"] == kind]


def responses(msgs: list[Received]) -> dict[str, dict[str, Any]]:
    return {m.json()["id"]: m.json() for m in msgs if m.topic == f"{CMD}/response"}


def states(msgs: list[Received]) -> list[str]:
    return [m.json()["state"] for m in msgs if m.topic == f"{ROOT}/state/plc1"]


def send(sub: Collector, payload: dict[str, Any]) -> None:
    sub.client.publish(CMD, json.dumps(payload).encode(), qos=1).wait_for_publish(5)


def wait_online(line: PlcLine) -> None:
    for _ in range(150):  # bounded: 15 s
        sups = line.gw.supervisors  # filled once the gateway runs
        if sups and sups[0].state is not None and sups[0].state.state == "online":
            return
        time.sleep(0.1)
    raise AssertionError("plc1 not online within 15 s")


def test_start_and_end_batch_call_the_plc_methods_and_answer_their_status(line: PlcLine) -> None:
    sub = Collector(line.broker.port, topic=f"{ROOT}/#").start()
    try:
        wait_online(line)
        calls = line.sim.method_calls
        send(sub, {"id": "m1", "command": "start_batch", "batch": "MES-M1", "product": "低钠盐"})
        msgs = sub.wait_for(
            lambda m: (
                "m1" in responses(m)
                and any(e["batch"] == "MES-M1" for e in events(m, "batch.start"))
            ),
            10,
            "the response and the batch to start",
        )
        started = responses(msgs)["m1"]
        send(sub, {"id": "m2", "command": "end_batch", "batch": "MES-M1"})
        msgs = sub.wait_for(
            lambda m: (
                "m2" in responses(m) and any(e["batch"] == "MES-M1" for e in events(m, "batch.end"))
            ),
            10,
            "the response and the batch to end",
        )
        ended = responses(msgs)["m2"]
        # no batch runs now: the PLC answers EndBatch with Bad, and MES hears it
        send(sub, {"id": "m3", "command": "end_batch"})
        msgs = sub.wait_for(lambda m: "m3" in responses(m), 10, "the Bad answer")
    finally:
        sub.stop()
    assert started["status"] == "accepted" and started["reason"] is None
    assert started["method"] == {"status": "Good", "code": 0, "outputs": [True, "MES-M1"]}
    batch_start = next(e for e in events(msgs, "batch.start") if e["batch"] == "MES-M1")
    assert batch_start["data"]["product"] == "低钠盐"
    assert ended["status"] == "accepted" and ended["method"]["outputs"] == ["MES-M1"]
    refused = responses(msgs)["m3"]
    assert refused["status"] == "failed"
    assert refused["reason"] == "the method answered BadInvalidState"
    assert refused["method"]["status"] == "BadInvalidState"
    assert refused["method"]["code"] == 0x80AF0000
    assert line.sim.method_calls == calls + 3  # every command reached the PLC once
    assert line.sim.model.remote


def test_a_restart_of_the_plc_is_one_state_change_line_not_a_traceback(
    line: PlcLine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sub = Collector(line.broker.port, topic=f"{ROOT}/#").start()
    try:
        wait_online(line)
        caplog.clear()
        fut = asyncio.run_coroutine_threadsafe(line.sim.restart(down_secs=1.0), line.bg.loop)
        sub.wait_for(lambda m: "offline" in states(m), 10, "plc1 offline")
        fut.result(20)
        sub.wait_for(lambda m: states(m)[-1:] == ["online"], 15, "plc1 online again")
    finally:
        sub.stop()
    simulator = ("firmware_sim", "asyncua.server")  # the PLC's own logging, not the gateway's
    gateway_side = [r for r in caplog.records if not r.name.startswith(simulator)]
    noisy = [
        r
        for r in gateway_side
        if r.exc_info is not None or (r.name.startswith("asyncua") and r.levelno >= logging.WARNING)
    ]
    assert noisy == [], [f"{r.levelname} {r.name}: {r.getMessage()}" for r in noisy]
    offline = [
        r.getMessage() for r in gateway_side if r.getMessage().startswith("device plc1: offline")
    ]
    assert len(offline) == 1 and "BadShutdown" in offline[0], offline
    assert any(r.getMessage() == "device plc1: online" for r in gateway_side)
