"""The broker link (paho-mqtt 2.x) and the forwarder that drains the journal into it.

- :class:`MqttLink` owns one paho client: protocol 3.1.1 or 5, TLS, credentials, last will
  ``offline`` on the gateway status topic, automatic reconnect with bounded backoff. Messages
  published while the link is down stay queued in paho and are re-sent, in order, on reconnect.
- :class:`Forwarder` publishes journal rows in ``seq`` order with QoS 1, at most ``inflight``
  unacknowledged at once; each PUBACK deletes its row from the journal. After a restart it
  starts again from the oldest undelivered row, so an event is delivered at least once, with
  its original ``id``.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config.models import MqttSection
from gateway.journal import Journal, JournalReader
from gateway.topics import Topics

__all__ = ["Forwarder", "LinkStats", "MqttLink"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LinkStats:
    connects: int = 0
    disconnects: int = 0
    published: int = 0
    acked: int = 0
    last_error: str | None = None


class MqttLink:
    """A paho client with the gateway's status topic and PUBACK bookkeeping."""

    def __init__(
        self,
        cfg: MqttSection,
        topics: Topics,
        client_id: str,
        *,
        broker_url: str | None = None,
        on_ack: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.topics = topics
        self.url = urlsplit(broker_url or cfg.url)
        self.on_ack = on_ack
        self.stats = LinkStats()
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[int, int | None] = {}  # mid -> journal seq (None: not journaled)
        self._early: set[int] = set()  # PUBACKs that arrived before publish() returned
        self._ack_listeners: list[Callable[[int], None]] = []
        v5 = cfg.protocol == "5"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else True,
        )
        self.client.max_inflight_messages_set(cfg.inflight)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(
            min_delay=max(1, round(cfg.reconnect_min_secs)), max_delay=round(cfg.reconnect_max_secs)
        )
        if cfg.username:
            self.client.username_pw_set(cfg.username, cfg.password())
        if self.url.scheme in ("mqtts", "ssl") or cfg.tls is not None:
            self._setup_tls()
        self.client.will_set(topics.status(), b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    def _setup_tls(self) -> None:
        tls = self.cfg.tls
        ctx = ssl.create_default_context(
            cafile=str(tls.ca_file) if tls and tls.ca_file else None
        )
        if tls and tls.cert_file:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        if tls and not tls.verify_hostname:
            ctx.check_hostname = False
        self.client.tls_set_context(ctx)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        host = self.url.hostname or "127.0.0.1"
        default_port = 8883 if self.url.scheme in ("mqtts", "ssl") else 1883
        port = self.url.port or default_port
        # connect_async: the loop thread connects and keeps reconnecting by itself.
        self.client.connect_async(host, port, keepalive=self.cfg.keepalive_secs)
        self.client.loop_start()

    def stop(self) -> None:
        """Publish status ``offline`` (when connected), then disconnect."""
        if self.connected.is_set():
            info = self.client.publish(self.topics.status(), b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=3)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def broker(self) -> str:
        return f"{self.url.hostname}:{self.url.port}"

    # -- publishing --------------------------------------------------------------------------
    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, seq: int | None = None
    ) -> None:
        """QoS 1 publish; ``seq`` (a journal row) is acknowledged through ``on_ack``."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"publish to {topic!r} refused by paho: {info.rc}")
        self.stats.published += 1
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                done = True
            else:
                self._pending[info.mid] = seq
                done = False
        if done:
            self._acked(seq)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _acked(self, seq: int | None) -> None:
        self.stats.acked += 1
        if seq is not None and self.on_ack is not None:
            self.on_ack([seq])

    # -- paho callbacks (paho's network thread) ------------------------------------------------
    def _on_publish(
        self, client: Any, userdata: Any, mid: int, rc: ReasonCode, props: Properties
    ) -> None:
        with self._lock:
            if mid in self._pending:
                seq = self._pending.pop(mid)
            else:
                self._early.add(mid)
                return
        self._acked(seq)

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            self.stats.last_error = f"broker refused connection: {rc}"
            log.error("MQTT broker %s refused the connection: %s", self.broker, rc)
            return
        self.stats.connects += 1
        log.info("connected to MQTT broker %s", self.broker)
        client.publish(self.topics.status(), b"online", qos=1, retain=True)
        self.connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was:
            self.stats.disconnects += 1
            log.warning("disconnected from MQTT broker %s: %s", self.broker, rc)


class Forwarder:
    """Moves journal rows to the broker, in order, bounded by ``inflight``."""

    def __init__(self, journal: Journal, link: MqttLink, topics: Topics, inflight: int) -> None:
        self.journal = journal
        self.link = link
        self.topics = topics
        self.inflight = inflight
        self._wake = threading.Condition()
        self._stop = False
        self._cursor = 0  # highest seq handed to paho
        self._thread: threading.Thread | None = None
        self._topic_cache: dict[str, str] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        self._thread.start()

    def notify(self, _last_seq: int = 0) -> None:
        """New rows were committed, or acks freed room."""
        with self._wake:
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()

    def drain(self, timeout: float) -> bool:
        """Wait until everything journaled so far was acknowledged, up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.journal.stats.backlog == 0 and self.link.pending() == 0:
                return True
            self.notify()
            time.sleep(0.02)
        return False

    def _topic(self, event_type: str) -> str:
        t = self._topic_cache.get(event_type)
        if t is None:
            t = self._topic_cache[event_type] = self.topics.event(event_type)
        return t

    def _run(self) -> None:
        reader: JournalReader = self.journal.reader()
        try:
            while True:
                with self._wake:
                    while not self._stop and (
                        self.link.pending() >= self.inflight
                        or self.journal.stats.last_seq <= self._cursor
                    ):
                        self._wake.wait(timeout=0.5)
                    if self._stop:
                        return
                room = self.inflight - self.link.pending()
                rows = reader.after(self._cursor, min(room, 500))
                for row in rows:
                    self.link.publish(self._topic(row.type), row.payload, seq=row.seq)
                    self._cursor = row.seq
                if not rows:
                    # rows up to last_seq were dropped (drop_oldest) or acked meanwhile
                    self._cursor = max(self._cursor, self.journal.stats.last_seq)
        except Exception:
            log.exception("forwarder stopped by an unexpected error")
            raise
        finally:
            reader.close()
