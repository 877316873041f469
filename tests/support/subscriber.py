"""An MQTT subscriber that collects what a MES would receive (persistent session, QoS 1)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Collector:
    url_port: int
    topic: str = "#"
    client_id: str = field(default_factory=lambda: f"test-sub-{uuid.uuid4().hex[:8]}")
    messages: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv311,
            clean_session=False,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self._connected.clear()
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe(self.topic, qos=1)
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def start(self, timeout: float = 10) -> Collector:
        self.client.connect("127.0.0.1", self.url_port, keepalive=10)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError("test subscriber could not connect")
        if not self._subscribed.wait(timeout):  # SUBACK: from now on nothing is missed
            raise TimeoutError("test subscriber got no SUBACK")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def events(self) -> list[dict[str, Any]]:
        return [m.json() for m in self.snapshot() if "/event/" in m.topic or "/alarm/" in m.topic]

    def wait_for(
        self, pred: Callable[[list[Received]], bool], timeout: float, what: str = "condition"
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = self.snapshot()
            if pred(snap):
                return snap
            time.sleep(0.05)
        snap = self.snapshot()
        topics = sorted({m.topic for m in snap})
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}; topics seen: {topics}"
        )
