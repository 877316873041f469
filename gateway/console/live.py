"""The line as the gateway publishes it (contract, "MQTT topic tree"; docs/events.md), kept up
to date from the broker for the overview and the charts, and pushed to browsers.

:class:`LineState` is fed one MQTT message at a time (:meth:`LineState.feed`) and keeps: the
gateways' status, each device's state (retained ``…/state/{device}``), the running batch, the
PackML state (``line.state``), bags per minute (``line.counters`` ``rate``; without a line PLC,
``pack.bag`` events over the last minute), the latest alarms, and the retained ``…/kpi`` with a
bounded history of its samples for the charts. Every change bumps :attr:`LineState.version`
and wakes the streams waiting in :meth:`LineState.wait`.

:class:`LiveFeed` is the MQTT side: a paho client that subscribes to ``{line}/#`` and the
gateways' status, reconnects by itself (1 to 10 s) when the broker goes away, and feeds the
state; nothing a peer sends stops it (a bad message is counted and logged)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho

from gateway.console.config import ConsoleSection
from gateway.mqtt import broker_address, new_client

__all__ = ["KpiSample", "LineState", "LiveFeed"]

log = logging.getLogger(__name__)

ALARMS_KEPT = 20
BAG_WINDOW_SECS = 60.0


@dataclass(frozen=True, slots=True)
class KpiSample:
    """One kpi message, as the charts draw it."""

    at: float  # epoch seconds of the message's ts
    ts: str
    shift: str
    batch: str | None
    threshold: float | None
    window_scan_rate: float | None
    shift_scan_rate: float | None
    shift_noread_rate: float | None
    shift_aggregation_rft: float | None


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _text(x: Any, most: int = 200) -> str | None:
    return x[:most] if isinstance(x, str) else None


def _detail(data: dict[str, Any]) -> str:
    for key in ("detail", "reason", "state"):
        if isinstance(data.get(key), str) and data[key]:
            return str(data[key])[:300]
    return ""


class LineState:
    def __init__(
        self, cfg: ConsoleSection, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.root = cfg.line_root
        self.line = cfg.line
        self.monotonic = monotonic
        self.broker_connected = False
        self.gateways: dict[str, str] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.batch: str | None = None
        self.packml: dict[str, Any] = {}
        self.counters: dict[str, Any] = {}
        self.alarms: deque[dict[str, Any]] = deque(maxlen=ALARMS_KEPT)
        self.kpi: dict[str, Any] = {}
        self.history: deque[KpiSample] = deque(maxlen=cfg.history_points)
        self.bad_messages = 0
        self.version = 0
        self.kpi_version = 0
        self.ccp_version = 0  # ccp.* events seen: the CCP charts' pages reload on a change
        self._bags: deque[float] = deque()
        self._cond = threading.Condition()

    # -- feeding ---------------------------------------------------------------------------------
    def connected(self, up: bool) -> None:
        with self._cond:
            self.broker_connected = up
            self._changed()

    def feed(self, topic: str, payload: bytes) -> None:
        """One message from the broker; a malformed one is counted and otherwise ignored."""
        try:
            body = json.loads(payload) if payload else None
        except (ValueError, UnicodeDecodeError):
            body = payload.decode("utf-8", "replace").strip() if topic.endswith("/status") else None
            if body is None:
                self._bad(topic, "not JSON")
                return
        with self._cond:
            try:
                changed = self._apply(topic, body)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                changed = False
                self._bad(topic, str(exc))
            if changed:
                self._changed()

    def _bad(self, topic: str, why: str) -> None:
        self.bad_messages += 1
        if self.bad_messages <= 10 or self.bad_messages % 1000 == 0:
            log.warning("console: ignored a message on %r: %s", topic[:200], why[:200])

    def _changed(self) -> None:
        self.version += 1
        self._cond.notify_all()

    def _apply(self, topic: str, body: Any) -> bool:
        if topic.endswith("/status") and "/gateway/" in topic:
            gw = topic.split("/gateway/", 1)[1].split("/", 1)[0]
            state = body if isinstance(body, str) else (
                body.get("status") or body.get("state") if isinstance(body, dict) else None
            )  # fmt: skip
            self.gateways[gw[:64]] = str(state or "?")[:32]
            return True
        if not topic.startswith(self.root + "/") or not isinstance(body, dict):
            return False
        rest = topic[len(self.root) + 1 :]
        if rest.startswith("state/"):
            device = _text(body.get("device"), 64) or rest[6:][:64]
            self.devices[device] = {
                "state": _text(body.get("state"), 16) or "?",
                "detail": _text(body.get("detail"), 300),
                "ts": _text(body.get("ts"), 40),
            }
            return True
        if rest == "kpi":
            self._kpi(body)
            return True
        if rest.startswith(("event/", "alarm/")):
            return self._event(body)
        return False

    def _kpi(self, body: dict[str, Any]) -> None:
        self.kpi = body
        ts = str(body["ts"])
        at = datetime.fromisoformat(ts).timestamp()
        if isinstance(body.get("batch"), str) or body.get("batch") is None:
            self.batch = body.get("batch") or self.batch
        shift = body.get("scopes", {}).get("shift") or {}
        window = body.get("window") or {}
        sample = KpiSample(
            at,
            ts,
            str(body.get("shift") or shift.get("id") or "?")[:32],
            _text(body.get("batch"), 64),
            _num(body.get("threshold")),
            _num(window.get("scan_rate")),
            _num(shift.get("scan_rate")),
            _num(shift.get("noread_rate")),
            _num(shift.get("aggregation_rft")),
        )
        if self.history and self.history[-1].ts == sample.ts:
            return  # the retained message again after a reconnect
        self.history.append(sample)
        self.kpi_version += 1

    def _event(self, ev: dict[str, Any]) -> bool:
        kind = ev["type"]
        data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
        assert isinstance(data, dict)
        if kind == "batch.start":
            self.batch = _text(ev.get("batch"), 64) or _text(data.get("batch"), 64)
        elif kind == "batch.end":
            self.batch = None
        elif kind == "line.state":
            self.packml = {k: data.get(k) for k in ("state", "state_name", "mode_name")}
        elif kind == "line.counters":
            self.counters = {k: data.get(k) for k in ("rate", "batch_bags", "batch_cases")}
        elif kind == "pack.bag":
            now = self.monotonic()
            self._bags.append(now)
            while self._bags and self._bags[0] < now - BAG_WINDOW_SECS:
                self._bags.popleft()
        elif kind.startswith("ccp."):
            self.ccp_version += 1
        elif kind.startswith("alarm."):
            self.alarms.appendleft({
                "ts": _text(ev.get("ts"), 40), "type": kind[:64],
                "device": _text(ev.get("device"), 64), "detail": _detail(data),
            })  # fmt: skip
        else:
            return False
        return True

    # -- reading ---------------------------------------------------------------------------------
    def bags_per_min(self) -> float | None:
        rate = _num(self.counters.get("rate"))
        if rate is not None:
            return rate
        now = self.monotonic()
        while self._bags and self._bags[0] < now - BAG_WINDOW_SECS:
            self._bags.popleft()
        return len(self._bags) * 60.0 / BAG_WINDOW_SECS if self._bags else None

    def snapshot(self) -> dict[str, Any]:
        """What the overview shows, as JSON-able data."""
        with self._cond:
            window = self.kpi.get("window") or {}
            shift = (self.kpi.get("scopes") or {}).get("shift") or {}
            return {
                "version": self.version,
                "kpi_version": self.kpi_version,
                "ccp_version": self.ccp_version,
                "broker": "connected" if self.broker_connected else "disconnected",
                "gateways": dict(self.gateways),
                "devices": {d: dict(v) for d, v in sorted(self.devices.items())},
                "batch": self.batch,
                "packml": self.packml.get("state_name"),
                "mode": self.packml.get("mode_name"),
                "bags_per_min": self.bags_per_min(),
                "batch_bags": _num(self.counters.get("batch_bags")),
                "batch_cases": _num(self.counters.get("batch_cases")),
                "shift": self.kpi.get("shift"),
                "threshold": _num(self.kpi.get("threshold")),
                "scan_rate_window": _num(window.get("scan_rate")),
                "scan_rate_shift": _num(shift.get("scan_rate")),
                "noread_rate_shift": _num(shift.get("noread_rate")),
                "aggregation_rft_shift": _num(shift.get("aggregation_rft")),
                "alarms": list(self.alarms),
            }

    def samples(self, shift: str | None = None) -> list[KpiSample]:
        with self._cond:
            return [s for s in self.history if shift is None or s.shift == shift]

    def shifts(self) -> list[str]:
        with self._cond:
            return list(dict.fromkeys(s.shift for s in self.history))

    def wait(self, seen: int, timeout: float) -> int:
        """Block until :attr:`version` differs from ``seen`` or ``timeout`` passes; the
        version now."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen, timeout)
            return self.version

    def sample_dicts(self, shift: str | None = None) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.samples(shift)]


class LiveFeed:
    """The paho client feeding ``state``; :meth:`start` returns at once (paho connects and
    reconnects in its own thread). Credentials and TLS as the gateway's ``mqtt:`` section
    when the console's settings came from a gateway config (gateway/mqtt.py, new_client)."""

    def __init__(self, cfg: ConsoleSection, state: LineState) -> None:
        self.cfg = cfg
        self.state = state
        mqtt = cfg.mqtt()
        self.host, self.port = broker_address(urlsplit(mqtt.url))
        self.client = new_client(mqtt, f"saltgw-console-{cfg.line}-{threading.get_native_id()}")
        self.client.reconnect_delay_set(1, 10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def _on_connect(self, c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("console: broker %s refused: %s", self.cfg.broker, rc)
            return
        c.subscribe([(f"{self.cfg.line_root}/#", 1), (self.cfg.status_filter, 1)])
        log.info("console: connected to %s", self.cfg.broker)
        self.state.connected(True)

    def _on_disconnect(self, *_args: Any) -> None:
        self.state.connected(False)

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            self.state.feed(msg.topic, bytes(msg.payload))
        except Exception:  # nothing a peer sends may stop the client's thread
            log.exception("console: failed on a message on %r", msg.topic[:200])

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
