"""The line PLC through the whole gateway: simulated PLC (OPC UA) → gateway → real mosquitto →
a MES subscriber, and MES commands back. The PLC restarts and renumbers its namespace mid-run;
the gateway, never restarted, reports `offline` then `online` and events again within 15 s."""

from __future__ import annotations

import asyncio
import json
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
RECOVERY_LIMIT_SECS = 15.0
COMMANDS = {
    "start_batch": {
        "batch": "cmd_batch",
        "product": "cmd_product",
        "shift": "cmd_shift",
        "trigger": "cmd_start",
    },
    "end_batch": {"trigger": "cmd_end"},
    "set_batch": {"batch": "batch_number"},
}


def line_config(tmp: Path, broker_port: int, plc_port: int) -> Path:
    endpoint = f"opc.tcp://127.0.0.1:{plc_port}"
    plc1 = device_entry(endpoint, publishing_interval_ms=100)
    plc2 = device_entry(endpoint, id="plc2", mode="poll", poll_interval_ms=1000)
    cfg: dict[str, Any] = {
        "gateway": {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "mqtt": {
            "url": f"mqtt://127.0.0.1:{broker_port}",
            "reconnect_min_secs": 0.5,
            "reconnect_max_secs": 2,
        },
        "journal": {"path": str(tmp / "journal.db")},
        "commands": {"mode": "open"},  # what runs; who may send it: test_command_security.py
        "devices": [plc1, plc2],
        "profiles": [
            {
                "profile": "line_plc",
                "device": "plc1",
                "line": "L1",
                "counters_every_secs": 1,
                "commands": COMMANDS,
            }
        ],
        "simulators": [
            {
                "id": "plc1-sim",
                "kind": "line_plc",
                "port": plc_port,
                "seed": 5,
                "speed_min_bags_per_min": 600,
                "speed_max_bags_per_min": 600,
                "bags_per_case": 5,
                "first_batch_after_secs": 0.5,
                "batch_secs": 3,
                "idle_secs": 1,
                "transition_secs": 0.2,
            }
        ],
    }
    path = tmp / "line.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlcLine]:
    with running_plc_line(tmp_path_factory.mktemp("opcua-line"), line_config) as running:
        yield running


def events(msgs: list[Received], kind: str | None = None) -> list[dict[str, Any]]:
    out = []
    for m in msgs:
        if "/event/" in m.topic or "/alarm/" in m.topic:
            ev = m.json()
            if kind is None or ev["type"] == kind:
                out.append(ev)
    return out


def states(msgs: list[Received], device: str = "plc1") -> list[str]:
    return [m.json()["state"] for m in msgs if m.topic == f"{ROOT}/state/{device}"]


def responses(msgs: list[Received]) -> dict[str, dict[str, Any]]:
    return {m.json()["id"] or "<none>": m.json() for m in msgs if m.topic.endswith("/response")}


def send(sub: Collector, payload: Any, topic: str = CMD, retain: bool = False) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sub.client.publish(topic, raw, qos=1, retain=retain).wait_for_publish(5)


def test_batches_states_and_counters_reach_mes(line: PlcLine) -> None:
    sub = Collector(line.broker.port, topic=f"{ROOT}/#").start()
    try:
        msgs = sub.wait_for(
            lambda m: len(events(m, "batch.end")) >= 1 and len(events(m, "line.counters")) >= 2,
            20,
            "a batch end and counters",
        )
    finally:
        sub.stop()
    end = events(msgs, "batch.end")[0]
    start = next(e for e in events(msgs, "batch.start") if e["batch"] == end["batch"])
    assert start["device"] == "plc1" and start["data"]["line"] == "L1"
    assert start["data"]["product"] == "加碘精制盐 400g" and start["data"]["shift"] in "ABC"
    assert end["data"]["reason"] == "cleared"
    assert 2.5 <= end["data"]["duration_s"] <= 6  # Starting 0.2 s + Execute 3 s + Completing
    assert 20 <= end["data"]["bags"] <= 40  # 10 bags/s for 3 s
    assert end["data"]["cases"] in (end["data"]["bags"] // 5, end["data"]["bags"] // 5 + 1)
    # the batch ties the line's events together: those between start and end carry it
    during = [e for e in events(msgs) if start["seq"] < e["seq"] < end["seq"]]
    assert during and all(e["batch"] == end["batch"] for e in during if e["device"] == "plc1")
    names = [e["data"]["state_name"] for e in events(msgs, "line.state")]
    assert {"Starting", "Execute", "Completing", "Complete"} <= set(names)
    topics = {m.topic for m in msgs}
    assert f"{ROOT}/event/batch/start" in topics and f"{ROOT}/event/line/state" in topics
    counters = events(msgs, "line.counters")[0]["data"]
    assert {"bags", "cases", "batch_bags", "rate", "speed"} <= set(counters)


def test_mes_commands_are_validated_executed_and_answered(line: PlcLine) -> None:
    sub = Collector(line.broker.port, topic=f"{ROOT}/#").start()
    try:
        send(sub, {"id": "s1", "command": "start_batch", "batch": "MES-0001", "product": "低钠盐"})
        msgs = sub.wait_for(
            lambda m: any(e["batch"] == "MES-0001" for e in events(m, "batch.start")),
            10,
            "the commanded batch to start",
        )
        assert responses(msgs)["s1"]["status"] == "accepted"
        started = next(e for e in events(msgs, "batch.start") if e["batch"] == "MES-0001")
        assert started["data"]["product"] == "低钠盐"
        for payload, topic, retain in (
            (b"not json", CMD, False),
            ({"id": "b2", "command": "open_valve"}, CMD, False),
            ({"id": "b3", "command": "set_batch"}, CMD, False),
            ({"id": "b4", "command": "set_batch", "batch": "X"}, f"{ROOT}/cmd/ghost", False),
            ({"id": "b5", "command": "set_batch", "batch": "X"}, f"{ROOT}/cmd/plc2", False),
            ({"id": "b6", "command": "end_batch", "batch": "OTHER"}, CMD, False),
            (b"", CMD, False),  # deletes a retained command: no response
        ):
            send(sub, payload, topic, retain)
        msgs = sub.wait_for(lambda m: len(responses(m)) >= 7, 10, "seven responses")
        send(sub, {"id": "e1", "command": "end_batch", "batch": "MES-0001"})
        msgs = sub.wait_for(
            lambda m: any(e["batch"] == "MES-0001" for e in events(m, "batch.end")),
            10,
            "the commanded batch to end",
        )
    finally:
        sub.stop()
    got = responses(msgs)
    assert {k: v["status"] for k, v in got.items()} == {
        "s1": "accepted",
        "<none>": "rejected",
        "b2": "rejected",
        "b3": "rejected",
        "b4": "rejected",
        "b5": "rejected",
        "b6": "rejected",
        "e1": "accepted",
    }
    assert "not JSON" in got["<none>"]["reason"]
    assert "unknown command 'open_valve'" in got["b2"]["reason"]
    assert "missing field 'batch'" in got["b3"]["reason"]
    assert "no device 'ghost'" in got["b4"]["reason"]
    assert "device 'plc2' takes no commands" in got["b5"]["reason"]
    assert "'OTHER' is not the running batch (MES-0001)" in got["b6"]["reason"]
    response_topics = {m.topic for m in msgs if m.topic.endswith("/response")}
    assert f"{ROOT}/cmd/ghost/response" in response_topics
    assert all(not m.retain for m in msgs if m.topic.endswith("/response"))
    end = next(e for e in events(msgs, "batch.end") if e["batch"] == "MES-0001")
    assert end["data"]["reason"] == "cleared" and end["data"]["product"] == "低钠盐"
    assert line.sim.model.remote  # the schedule stopped: MES runs the line now


def _restart_and_recover(line: PlcLine, how: str) -> dict[str, float]:
    """Run a batch, break the PLC (``how``), and time the recovery as MES sees it."""
    sub = Collector(line.broker.port, topic=f"{ROOT}/#").start()
    try:
        batch = f"MES-{how}"
        send(sub, {"id": f"go-{how}", "command": "start_batch", "batch": batch})
        sub.wait_for(lambda m: len(events(m, "line.counters")) >= 1, 10, "counters moving")
        knob = line.sim.restart if how == "restart" else line.sim.change_namespace
        fut = asyncio.run_coroutine_threadsafe(knob(), line.bg.loop)
        msgs = sub.wait_for(lambda m: "offline" in states(m), 10, "plc1 offline")
        send(sub, {"id": f"off-{how}", "command": "set_batch", "batch": "X"})
        fut.result(20)
        back = time.monotonic()  # the PLC listens again
        n_before = len(sub.snapshot())
        msgs = sub.wait_for(
            lambda m: (
                states(m)[-1:] == ["online"] and len(events(m[n_before:], "line.counters")) >= 1
            ),
            RECOVERY_LIMIT_SECS,
            "online and counters again",
        )
        reporting = time.monotonic() - back
    finally:
        sub.stop()
    seq = states(msgs)
    assert seq.index("offline") < len(seq) - 1 - seq[::-1].index("online")  # offline, then online
    off = [e["data"]["state"] for e in events(msgs, "alarm.device") if e["device"] == "plc1"]
    assert "offline" in off and off[-1] == "online"
    refused = responses(msgs)[f"off-{how}"]
    assert refused["status"] == "rejected" and "plc1" in refused["reason"]
    after = events(msgs[n_before:], "line.counters")
    assert after[0]["batch"] == batch  # the batch survived the PLC's restart
    assert isinstance(after[0]["data"]["bags"], int)
    return {"reporting_secs": reporting}


def test_plc_restart_recovers_without_restarting_the_gateway(line: PlcLine) -> None:
    took = _restart_and_recover(line, "restart")
    print(f"\nOPC UA recovery after PLC restart: reporting again {took['reporting_secs']:.2f} s")
    assert took["reporting_secs"] <= RECOVERY_LIMIT_SECS
    assert line.gw.supervisors[0].stats.reconnects >= 1


def test_namespace_renumbering_is_followed(line: PlcLine) -> None:
    took = _restart_and_recover(line, "namespace")
    print(f"\nOPC UA recovery after namespace change: {took['reporting_secs']:.2f} s")
    assert line.sim.namespace_index == 3
    assert took["reporting_secs"] <= RECOVERY_LIMIT_SECS
