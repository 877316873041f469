"""``saltgw demo``: the demo line (simulated devices + gateway + bridge) on an embedded broker,
with a live view (gateway/live_view.py), in one command."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from contextlib import ExitStack
from dataclasses import asdict
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from firmware_sim.runner import start_simulators, stop_simulators
from gateway.bridge.backlog import read_backlog
from gateway.command_auth import CommandAuthSection, Grant, Issuer, Receiver, signing_bytes
from gateway.config.loader import load_config
from gateway.config.models import ConfigBase
from gateway.demo_console import DEMO_USERS, demo_console
from gateway.demo_resolver import demo_resolver
from gateway.embedded_broker import EmbeddedBroker
from gateway.live_view import (
    AlarmLine,
    DemoSnapshot,
    LiveProgress,
    PlainProgress,
    UploadView,
    closing_line,
    open_progress,
)
from gateway.runtime import Gateway

__all__ = ["demo_config_path", "run_demo"]

log = logging.getLogger(__name__)


OPERATOR_UNPACK_AFTER_S = 20.0  # the demo operator reworks a case, so pack.unpack shows too
LATEST_ALARMS = 5  # alarms listed in the view
BAG_PUBLISHED_AFTER_SECS = 10.0  # bridge → public snapshot (publish every 2 s) → resolver
BAG_RATE_WINDOW_SECS = 60.0  # bags/min over the last minute
BAG_RATE_MIN_SECS = 5.0  # … once there is this much of it
DEMO_ISSUER = "demo-operator"  # signs the demo operator's commands (a fresh key each run)
DEMO_KEY_ENV = "SALTGW_DEMO_OPERATOR_KEY"


def demo_config_path() -> Path:
    return Path(str(files("mappings") / "demo-line.yaml"))


def with_demo_operator(cfg: ConfigBase) -> tuple[ConfigBase, bytes]:
    """The demo's commands: one signing issuer, ``demo-operator``, that may send the operator
    commands (close_partial, unpack, resync) to any device, with a fresh random key in this
    process's environment (docs/commands.md, "Authorisation"). Returns the config and the key."""
    key = secrets.token_hex(32)
    os.environ[DEMO_KEY_ENV] = key
    section = CommandAuthSection(
        issuers=[
            Issuer(
                name=DEMO_ISSUER,
                key_env=DEMO_KEY_ENV,
                allow=[Grant(commands=["close_partial", "unpack", "resync"])],
            )
        ]
    )
    return cfg.model_copy(update={"commands": section}), key.encode()


def with_sparkplug(cfg: ConfigBase) -> ConfigBase:
    """``saltgw demo --sparkplug``: the demo line's telemetry also as Sparkplug B, group
    ``saltgw``, edge node = the gateway id (contract, second-wave additions)."""
    from gateway.telemetry.sparkplug import SparkplugConfig

    if cfg.telemetry is None:
        raise ValueError("--sparkplug needs a line with a telemetry: section")
    spb = SparkplugConfig(group_id="saltgw", node_id=cfg.gateway.id)
    return cfg.model_copy(update={"sparkplug": spb})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Watch:
    """What a MES would see: counts events by type and verdict, remembers the latest alarms,
    device states and the retained KPIs."""

    def __init__(self, cfg: ConfigBase, url_port: int, key: bytes | None = None) -> None:
        g = cfg.gateway
        self.receiver = Receiver(g.enterprise, g.site, g.line, g.id)
        self.key = key  # the demo operator's signing key (None: the config's commands are open)
        self.tz = cfg.gateway.tz()
        self.root = f"{cfg.mqtt.topic_prefix}/{g.enterprise}/{g.site}/{g.line}"
        self.types: Counter[str] = Counter()
        self.ccp: dict[str, Counter[str]] = {}  # ccp type → verdict → n
        self.states: dict[str, tuple[str, str | None]] = {}
        self.alarms: deque[AlarmLine] = deque(maxlen=LATEST_ALARMS)
        self.last_seq = 0
        self.kpi: dict[str, Any] = {}
        self.first_case: tuple[str, str] | None = None  # (device, code) of a bound case
        self.responses: list[dict[str, Any]] = []  # answers to the demo operator's commands
        self.telemetry: Counter[str] = Counter()  # device -> tag telemetry records received
        self.telemetry_values = 0  # tag values in them
        self.sparkplug: Counter[str] = Counter()  # Sparkplug B message type -> n (--sparkplug)
        self._bags: deque[float] = deque()  # monotonic arrival times of pack.bag
        self._codes: deque[tuple[float, str]] = deque(maxlen=500)  # (arrival, bag code)
        self._since = time.monotonic()
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="saltgw-demo-watch", protocol=paho.MQTTv311
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(f"{self.root}/#", 1), ("spBv1.0/#", 0)]
        )
        self.client.on_message = self._on_message
        self.port = url_port

    def _on_message(self, c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic.startswith("spBv1.0/"):  # spBv1.0/{group}/{type}/{node}[/{device}]
            parts = msg.topic.split("/")
            with self._lock:
                self.sparkplug[parts[2] if len(parts) > 3 else "STATE"] += 1
            return
        try:
            obj = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        with self._lock:
            if "/state/" in msg.topic:
                self.states[str(obj.get("device", "?"))] = (
                    str(obj.get("state", "?")),
                    obj.get("detail"),
                )
            elif msg.topic.endswith("/response"):
                self.responses.append(obj)
            elif msg.topic.endswith("/kpi"):
                self.kpi = obj  # retained line KPIs (docs/traceability.md)
            elif msg.topic.startswith(f"{self.root}/tags/"):  # tag telemetry (docs/events.md)
                self.telemetry[msg.topic.rsplit("/", 1)[1]] += 1
                values = obj.get("values")
                self.telemetry_values += len(values) if isinstance(values, dict) else 0
            elif isinstance(obj.get("type"), str):
                self._event(obj)

    def _event(self, obj: dict[str, Any]) -> None:
        kind: str = obj["type"]
        data: dict[str, Any] = obj["data"] if isinstance(obj.get("data"), dict) else {}
        self.types[kind] += 1
        self.last_seq = max(self.last_seq, int(obj.get("seq", 0)))
        if kind == "pack.bag":
            self._bags.append(time.monotonic())
            if isinstance(data.get("code"), str):
                self._codes.append((time.monotonic(), data["code"]))
        elif kind == "pack.case" and self.first_case is None and obj.get("device"):
            self.first_case = (obj["device"], str(data.get("code")))
        elif kind.startswith("ccp.") and data.get("verdict"):
            self.ccp.setdefault(kind, Counter())[str(data["verdict"])] += 1
        elif kind.startswith("alarm."):
            ts = str(obj.get("ts") or "")
            self.alarms.append(AlarmLine(ts[11:19], kind, obj.get("device"), _detail(data)))

    def operator_unpack(self) -> bool:
        """Act as the line's operator once: send the first bound case back to rework
        (``unpack`` on its scanner's command topic, docs/commands.md)."""
        with self._lock:
            if self.first_case is None:
                return False
            device, code = self.first_case
        cmd: dict[str, Any] = {
            "id": f"demo-operator-{secrets.token_hex(4)}",
            "command": "unpack",
            "code": code,
            "reason": "demo: rework of a crushed case",
            "operator": "demo",
        }
        if self.key is not None:  # signed for this gateway and device only
            cmd["issuer"] = DEMO_ISSUER
            cmd["ts"] = datetime.now(self.tz).isoformat(timespec="seconds")
            body = signing_bytes(cmd, self.receiver.fields(device))
            cmd["sig"] = hmac.new(self.key, body, hashlib.sha256).hexdigest()
        self.client.publish(f"{self.root}/cmd/{device}", json.dumps(cmd), qos=1)
        return True

    def start(self) -> None:
        self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _bags_per_min(self) -> float | None:
        """Bags over the last minute (or since the start, when shorter than a minute)."""
        now = time.monotonic()
        while self._bags and self._bags[0] < now - BAG_RATE_WINDOW_SECS:
            self._bags.popleft()
        window = min(BAG_RATE_WINDOW_SECS, now - self._since)
        return len(self._bags) * 60.0 / window if window >= BAG_RATE_MIN_SECS else None

    def snapshot(self, **known: Any) -> DemoSnapshot:
        """The view now; ``known`` adds what the gateway and the bridge know (elapsed_secs,
        broker, phase, backlog, upload, …)."""
        with self._lock:
            window = self.kpi.get("window") or {}
            return DemoSnapshot(
                last_seq=self.last_seq,
                types=dict(self.types),
                ccp={k: dict(v) for k, v in self.ccp.items()},
                latest_alarms=tuple(self.alarms),
                bags_per_min=self._bags_per_min(),
                scan_rate=_number(self._shift_kpi().get("scan_rate")),
                scan_rate_window=_number(window.get("scan_rate")),
                devices=dict(self.states),
                last_bag=self._published_bag(),
                **known,
            )

    def _published_bag(self) -> str | None:
        """The newest bag old enough to be in the resolver's public snapshot by now."""
        settled = time.monotonic() - BAG_PUBLISHED_AFTER_SECS
        return next((code for t, code in reversed(self._codes) if t <= settled), None)

    def _shift_kpi(self) -> dict[str, Any]:
        shift = self.kpi.get("scopes", {}).get("shift")
        return shift if isinstance(shift, dict) else {}

    def summary(self) -> dict[str, Any]:
        with self._lock:
            verdicts: Counter[str] = Counter()
            for v in self.ccp.values():
                verdicts.update(v)
            return {
                "events_by_type": dict(sorted(self.types.items())),
                "verdicts": dict(verdicts),
                "ccp": {k: dict(v) for k, v in sorted(self.ccp.items())},
                "alarms": {k: n for k, n in sorted(self.types.items()) if k.startswith("alarm.")},
                "device_states": {d: s for d, (s, _) in self.states.items()},
                "last_seq": self.last_seq,
                "kpi": self._shift_kpi() or None,
                "operator_commands": list(self.responses),
                "telemetry": {
                    "records_by_device": dict(sorted(self.telemetry.items())),
                    "values": self.telemetry_values,
                },
                "sparkplug": dict(sorted(self.sparkplug.items())),
            }


def _detail(data: dict[str, Any]) -> str:
    for key in ("detail", "reason", "state"):
        if isinstance(data.get(key), str) and data[key]:
            return str(data[key])
    return ""


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _resolver_check(url: str | None, code: str | None) -> dict[str, Any] | None:
    """What the resolver answers for a published bag (its JSON API), for the summary."""
    if url is None:
        return None
    out: dict[str, Any] = {"url": url, "code": code, "verdict": None}
    if code is None:
        return out
    try:
        with urllib.request.urlopen(f"{url}api/v1/codes/{code}", timeout=5) as r:
            out["verdict"] = json.loads(r.read()).get("verdict")
    except urllib.error.HTTPError as exc:  # 404: unknown, with the same shape
        with contextlib.suppress(ValueError):
            out["verdict"] = json.loads(exc.read()).get("verdict")
        out["status"] = exc.code
    except (OSError, ValueError) as exc:
        out["error"] = str(exc)
    return out


def _console_check(url: str | None) -> dict[str, Any] | None:
    """What the console's /healthz answers at the end (its broker link), for the summary."""
    if url is None:
        return None
    out: dict[str, Any] = {"url": url, "users": list(DEMO_USERS)}
    try:
        with urllib.request.urlopen(f"{url}healthz", timeout=5) as r:
            health = json.loads(r.read())
        out["status"], out["broker"] = health.get("status"), health.get("broker")
    except (OSError, ValueError) as exc:
        out["error"] = str(exc)
    return out


def _upload_view(bridge: Any) -> UploadView | None:
    """The bridge's counters and its outbox (read on a connection of its own)."""
    if bridge is None:
        return None
    s = bridge.status()
    up = s.get("upload") or {}
    backlog = read_backlog(bridge.bcfg.store)
    target = getattr(bridge.bcfg.upload, "path", None) or getattr(bridge.bcfg.upload, "url", None)
    return UploadView(
        stored=s["store"].get("accepted", 0),
        built=s["documents_built"],
        uploaded=up.get("acked", 0),
        pending=backlog.unacked if backlog else 0,
        quarantined=backlog.count("quarantined") if backlog else 0,
        events_waiting=backlog.events_waiting if backlog else 0,
        target=str(target) if target else None,
    )


async def run_demo(
    *,
    duration: float | None,
    broker_url: str | None,
    stop: asyncio.Event,
    config: Path | None = None,
    out: TextIO = sys.stdout,
    outbox: Path | None = None,
    live: bool | None = None,
    sparkplug: bool = False,
    epcis: bool = False,
) -> dict[str, Any]:
    """Run the demo until ``stop`` (or ``duration``); returns the summary, whose
    ``exit_code`` is the gateway's. ``live``: the redrawn view (default: when ``out`` is a
    terminal) or plain progress lines and a JSON summary line. ``epcis``: the demo's bridge
    writes EPCIS 2.0 documents (docs/wholesale.md) instead of platform XML."""
    from gateway.bridge.demo import with_demo_bridge

    cfg = with_demo_bridge(load_config(config or demo_config_path()), outbox, epcis=epcis)
    cfg, key = with_demo_operator(cfg)  # the operator's unpack is signed
    if sparkplug:
        cfg = with_sparkplug(cfg)
        assert cfg.sparkplug is not None
        print(
            f"sparkplug: spBv1.0/{cfg.sparkplug.group_id}/+/{cfg.sparkplug.node_id}/# "
            "(Sparkplug B, gateway/telemetry/sparkplug/README.md)",
            file=out,
            flush=True,
        )
    sims = await start_simulators(cfg.simulators)
    show = open_progress(out, live)
    public = cfg.bridge.public.path if cfg.bridge and cfg.bridge.public else None
    workdir = Path(str(cfg.bridge.store)).parent if cfg.bridge else Path("var")

    async def with_console(url: str, resolver: str | None) -> dict[str, Any]:
        # the people on the line: the web console, stopped before the broker
        with demo_console(cfg, url, workdir, out) as console:
            return await _run(cfg, key, url, duration, stop, out, show, resolver, console)

    try:
        with ExitStack() as stack:
            resolver = None
            if public is not None:  # the consumers' side: a scan of a bag opens its page
                resolver = stack.enter_context(demo_resolver(public, public.parent, out))
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
                    return await with_console(broker.url, resolver)
            return await with_console(broker_url, resolver)
    finally:
        await stop_simulators(sims)


async def _run(
    cfg: ConfigBase,
    key: bytes,
    url: str,
    duration: float | None,
    stop: asyncio.Event,
    out: TextIO,
    show: PlainProgress | LiveProgress,
    resolver: str | None = None,
    console: str | None = None,
) -> dict[str, Any]:
    from urllib.parse import urlsplit

    from gateway.bridge.demo import bridge_summary

    watch = Watch(cfg, urlsplit(url).port or 1883, key)
    watch.start()
    gw = Gateway(cfg, broker_url=url)
    task = asyncio.create_task(gw.run(stop), name="gateway")
    t0 = time.monotonic()

    async def snapshot(phase: str) -> DemoSnapshot:
        upload = await asyncio.to_thread(_upload_view, gw.bridge)
        return watch.snapshot(
            elapsed_secs=time.monotonic() - t0,
            broker=url,
            duration_secs=duration,
            phase=phase,
            backlog=gw.journal.stats.backlog,
            refused=gw.forwarder.refused_waiting,
            upload=upload,
            resolver=resolver,
            console=console,
        )

    unpack_sent = False
    with show:
        try:
            while not stop.is_set() and not task.done():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=show.interval_secs)
                except TimeoutError:
                    pass
                elapsed = time.monotonic() - t0
                if not unpack_sent and elapsed >= OPERATOR_UNPACK_AFTER_S:
                    unpack_sent = watch.operator_unpack()
                show.update(await snapshot("running"))
                if duration is not None and elapsed >= duration:
                    stop.set()
        finally:
            stop.set()
            show.update(await snapshot("stopping"))
            exit_code = await task
            await asyncio.sleep(0.3)
            watch.stop()
            final = await snapshot("stopped")
            show.update(final)
    summary = watch.summary()
    if gw.bridge is not None:
        summary["bridge"] = bridge_summary(gw.bridge)
        summary["upload"] = asdict(final.upload) if final.upload else None
    summary["resolver"] = await asyncio.to_thread(_resolver_check, resolver, final.last_bag)
    summary["console"] = await asyncio.to_thread(_console_check, console)
    summary["exit_code"] = exit_code
    if isinstance(show, LiveProgress):
        print(closing_line(final), file=out, flush=True)
    else:
        print("summary: " + json.dumps(summary, ensure_ascii=False), file=out, flush=True)
    return summary
