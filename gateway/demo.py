"""``saltgw demo``: the demo line (simulated devices + gateway) on an embedded broker, with a
live progress line, in one command."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import threading
import time
from collections import Counter
from importlib.resources import files
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from firmware_sim.runner import start_simulators, stop_simulators
from gateway.config.loader import load_config
from gateway.config.models import ConfigBase
from gateway.embedded_broker import EmbeddedBroker
from gateway.runtime import Gateway

__all__ = ["demo_config_path", "run_demo"]

log = logging.getLogger(__name__)


OPERATOR_UNPACK_AFTER_S = 20.0  # the demo operator reworks a case, so pack.unpack shows too


def demo_config_path() -> Path:
    return Path(str(files("mappings") / "demo-line.yaml"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Watch:
    """What a MES would see: counts events by type and remembers device states."""

    def __init__(self, cfg: ConfigBase, url_port: int) -> None:
        g = cfg.gateway
        self.root = f"{cfg.mqtt.topic_prefix}/{g.enterprise}/{g.site}/{g.line}"
        self.types: Counter[str] = Counter()
        self.verdicts: Counter[str] = Counter()
        self.states: dict[str, str] = {}
        self.last_seq = 0
        self.kpi: dict[str, Any] = {}
        self.first_case: tuple[str, str] | None = None  # (device, code) of a bound case
        self.responses: list[dict[str, Any]] = []  # answers to the demo operator's commands
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="saltgw-demo-watch", protocol=paho.MQTTv311
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{self.root}/#", qos=1)
        self.client.on_message = self._on_message
        self.port = url_port

    def _on_message(self, c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        try:
            obj = json.loads(msg.payload)
        except ValueError:
            return
        with self._lock:
            if "/state/" in msg.topic:
                self.states[obj.get("device", "?")] = obj.get("state", "?")
            elif msg.topic.endswith("/response") and isinstance(obj, dict):
                self.responses.append(obj)
            elif msg.topic.endswith("/kpi") and isinstance(obj, dict):
                self.kpi = obj  # retained line KPIs (docs/traceability.md)
            elif isinstance(obj, dict) and "type" in obj:
                self.types[obj["type"]] += 1
                data = obj.get("data") or {}
                if obj["type"] == "pack.case" and self.first_case is None and obj.get("device"):
                    self.first_case = (obj["device"], str(data.get("code")))
                self.last_seq = max(self.last_seq, int(obj.get("seq", 0)))
                verdict = obj.get("data", {}).get("verdict")
                if obj["type"].startswith("ccp.") and verdict:
                    self.verdicts[verdict] += 1

    def operator_unpack(self) -> bool:
        """Act as the line's operator once: send the first bound case back to rework
        (``unpack`` on its scanner's command topic, docs/commands.md)."""
        with self._lock:
            if self.first_case is None:
                return False
            device, code = self.first_case
        cmd = {
            "id": "demo-operator-1",
            "command": "unpack",
            "code": code,
            "reason": "demo: rework of a crushed case",
            "operator": "demo",
        }
        self.client.publish(f"{self.root}/cmd/{device}", json.dumps(cmd), qos=1)
        return True

    def start(self) -> None:
        self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def line(self, elapsed: float, backlog: int) -> str:
        with self._lock:
            alarms = sum(v for k, v in self.types.items() if k.startswith("alarm."))
            states = " ".join(f"{d}={s}" for d, s in sorted(self.states.items()))
            return (
                f"[{elapsed:5.0f}s] events={sum(self.types.values())} last_seq={self.last_seq} "
                f"ccp pass={self.verdicts['pass']} fail={self.verdicts['fail']} "
                f"rejects={self.types['pack.reject']} alarms={alarms} "
                f"bags={self.types['pack.bag']} cases={self.types['pack.case']} "
                f"pallets={self.types['pack.pallet']} scan_rate={self._scan_rate()} "
                f"backlog={backlog} devices: {states}"
            )

    def _scan_rate(self) -> str:
        rate = self.kpi.get("scopes", {}).get("shift", {}).get("scan_rate")
        return f"{rate:.1%}" if isinstance(rate, int | float) else "-"

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "events_by_type": dict(sorted(self.types.items())),
                "verdicts": dict(self.verdicts),
                "device_states": dict(self.states),
                "last_seq": self.last_seq,
                "kpi": self.kpi.get("scopes", {}).get("shift"),
                "operator_commands": list(self.responses),
            }


async def run_demo(
    *,
    duration: float | None,
    broker_url: str | None,
    stop: asyncio.Event,
    config: Path | None = None,
    out: TextIO = sys.stdout,
    outbox: Path | None = None,
) -> dict[str, Any]:
    from gateway.bridge.demo import with_demo_bridge

    cfg = with_demo_bridge(load_config(config or demo_config_path()), outbox)  # platform XML
    sims = await start_simulators(cfg.simulators)
    try:
        if broker_url is None:
            broker = EmbeddedBroker("127.0.0.1", _free_port())
            cfg.mqtt.protocol = "3.1.1"  # amqtt speaks MQTT 3.1.1 only
            async with broker:
                print(
                    f"embedded MQTT broker on {broker.url} (subscribe to "
                    f"{cfg.mqtt.topic_prefix}/#)",
                    file=out,
                    flush=True,
                )
                return await _run(cfg, broker.url, duration, stop, out)
        return await _run(cfg, broker_url, duration, stop, out)
    finally:
        await stop_simulators(sims)


async def _run(
    cfg: ConfigBase, url: str, duration: float | None, stop: asyncio.Event, out: TextIO
) -> dict[str, Any]:
    from urllib.parse import urlsplit

    from gateway.bridge.demo import bridge_progress, bridge_summary

    watch = Watch(cfg, urlsplit(url).port or 1883)
    watch.start()
    gw = Gateway(cfg, broker_url=url)
    task = asyncio.create_task(gw.run(stop), name="gateway")
    t0 = time.monotonic()
    unpack_sent = False
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=2.0)
            except TimeoutError:
                pass
            elapsed = time.monotonic() - t0
            if not unpack_sent and elapsed >= OPERATOR_UNPACK_AFTER_S:
                unpack_sent = watch.operator_unpack()
            line = watch.line(elapsed, gw.journal.stats.backlog) + bridge_progress(gw.bridge)
            print(line, file=out, flush=True)
            if duration is not None and elapsed >= duration:
                stop.set()
    finally:
        stop.set()
        await task
        await asyncio.sleep(0.3)
        watch.stop()
    summary = watch.summary()
    if gw.bridge is not None:
        summary["bridge"] = bridge_summary(gw.bridge)
    print("summary: " + json.dumps(summary, ensure_ascii=False), file=out, flush=True)
    return summary
