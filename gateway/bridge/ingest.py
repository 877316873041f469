"""The bridge's MQTT consumer: one thread owns its paho client and its store connection (an
:class:`~gateway.bridge.source.EventSource`; the AMQP one is :mod:`gateway.bridge.amqp`).

Constraints:

- Persistent session with a fixed client id (MQTT 3.1.1 ``clean_session=False``; MQTT 5
  ``clean_start=False`` + session expiry): events published while the bridge is away wait in the
  broker. QoS 1 subscriptions.
- Acknowledge after commit: manual acks (``manual_ack_set(True)``). Messages received in one
  network-loop pass are committed to the trace store in one transaction (``synchronous=FULL``),
  and only then are their PUBACKs sent, in the order received (MQTT 4.6). A crash before the
  PUBACK makes the broker send the message again; the store drops the repeat by event ``id``.
- Messages of a connection that dropped are still committed, but never acknowledged on the new
  connection (packet ids are per connection): the broker re-sends them, and they are de-duplicated.
- Broker failover (``mqtt.urls``, :mod:`gateway.failover`): a refused or lost connection or a
  keep-alive timeout moves the consumer to the next endpoint, with the same client id and
  persistent session flags, so a clustered broker resumes its session there. With brokers that
  do not share sessions (independent mosquitto nodes), what the old node still held for it is
  found missing by seq tracking and replayed from the gateway's journal (gaps.py;
  docs/scaling.md, "Broker failover").
- Optional MQTT 5 shared subscription ``$share/{group}/…`` so several bridges split the load; the
  batch topics are subscribed unshared too, so every bridge knows every batch.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.bridge.source import store_group
from gateway.bridge.store import TraceStore
from gateway.config.models import MqttSection
from gateway.failover import BrokerRotation, OnRotation, is_tls_url
from gateway.replay import replay_topic

__all__ = ["Consumer", "subscriptions"]

log = logging.getLogger(__name__)

LOOP_SECS = 0.05
GAP_CHECK_SECS = 0.5  # how often open seq gaps are looked at (alarm, replay request)
MAX_GROUP = 2000  # messages committed in one transaction at most


@dataclass(slots=True)
class _Msg:
    mid: int
    qos: int
    topic: str
    payload: bytes
    epoch: int


def subscriptions(line_root: str, topics: list[str], share_group: str | None) -> list[str]:
    """The filters to subscribe: the configured ones (default: the line's events and alarms)
    and the gateways' seq marks (``Topics.seq_mark``: gaps at the tail); with a share group, the
    configured ones shared plus the unshared batch topics (and no seq marks: no bridge of a
    group sees every seq, so none tracks them)."""
    base = topics or [f"{line_root}/event/#", f"{line_root}/alarm/#"]
    if share_group is None:
        site_root = line_root.rsplit("/", 1)[0]
        return [*base, f"{site_root}/gateway/+/seq"]
    out = [f"$share/{share_group}/{t}" for t in base]
    out += [t[: -len("#")] + "batch/#" for t in base if t.endswith("/event/#")]
    return out


class Consumer(OnRotation):
    def __init__(
        self,
        store: TraceStore,
        mqtt: MqttSection,
        *,
        rotation: BrokerRotation,
        client_id: str,
        filters: list[str],
        session_expiry_secs: int,
        stop: threading.Event,
        prefix: str = "salt/v1",
        alarm: Callable[..., None] | None = None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.alarm = alarm
        self._next_gap_check = 0.0
        self.replays_asked = 0
        self.rotation = rotation  # owned by the Bridge: it outlives a restart of this thread
        self.filters = filters
        self.stop = stop
        self.v5 = mqtt.protocol == "5"
        self.keepalive = mqtt.keepalive_secs
        self.session_expiry = session_expiry_secs
        self.connected = threading.Event()
        # SUBACK received on the current connection: from then on the broker holds every event
        # for us (the gateway waits for it before publishing: runtime.py, Forwarder.gate)
        self.subscribed = threading.Event()
        # filters the broker refused on the current connection (an ACL): filter → reason; they
        # are asked for again with backoff, and /healthz names them meanwhile
        self.refused: dict[str, str] = {}
        self._granted: set[str] = set()
        self._sub_mids: dict[int, list[str]] = {}
        self._sub_attempts = 0
        self._resub_at = 0.0
        self.received = 0
        self.used = False  # run() was called (a restart makes a new Consumer)
        self._epoch = 0
        self._inbox: list[_Msg] = []
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if self.v5 else paho.MQTTv311,
            clean_session=None if self.v5 else False,
        )
        c.manual_ack_set(True)
        if mqtt.username:
            c.username_pw_set(mqtt.username, mqtt.password())
        if mqtt.tls is not None or is_tls_url(rotation.current.url):
            c.tls_set_context(_tls_context(mqtt))
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        self.client = c

    broker_kind = "MQTT broker"

    # -- paho callbacks (inside client.loop, on this thread) -------------------------------------
    def _on_connect(self, c: Any, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            log.error("bridge: broker %s:%d refused the connection: %s", self.host, self.port, rc)
            return
        previous = self.rotation.last_used
        if self.rotation.connected():
            log.warning(
                "bridge: broker failover: now on %s (endpoint %d of %d) instead of %s "
                "(session present: %s; switch %d)",
                self.rotation.current.name, self.rotation.current.index + 1,
                len(self.rotation.endpoints), previous.name if previous else "?",
                flags.session_present, self.rotation.switches,
            )  # fmt: skip
        self._epoch += 1
        self._granted.clear()
        self._sub_mids.clear()
        self._sub_attempts = 0
        self._subscribe(list(self.filters))
        log.info(
            "bridge: connected to %s:%d (session present: %s), subscribed %s",
            self.host, self.port, flags.session_present, self.filters,
        )  # fmt: skip
        self.connected.set()

    def _subscribe(self, filters: list[str]) -> None:
        rc, mid = self.client.subscribe([(f, 1) for f in filters])
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            self._sub_mids[mid] = filters

    def _on_subscribe(self, c: Any, u: Any, mid: int, codes: list[ReasonCode], p: Any) -> None:
        self.rotation.worked()  # the broker answers: a working session (gateway/failover.py)
        filters = self._sub_mids.pop(mid, [])
        for f, rc in zip(filters, codes, strict=False):
            if rc.is_failure:
                self.refused[f] = str(rc)
            else:
                self.refused.pop(f, None)
                self._granted.add(f)
        if self.refused:
            self._sub_attempts += 1
            delay = self._delay(self._sub_attempts)
            self._resub_at = time.monotonic() + delay
            log.error(
                "bridge: the broker refused the subscription to %s (%s); asking again in %.1f s "
                "(events wait in the gateway's journal meanwhile)",
                ", ".join(repr(f) for f in self.refused), ", ".join(set(self.refused.values())),
                delay,
            )  # fmt: skip
            return
        if self._granted >= set(self.filters) and not self.subscribed.is_set():
            if self._sub_attempts:
                log.warning("bridge: the broker granted the subscriptions now")
            self.subscribed.set()

    def _retry_refused(self) -> None:
        """Ask again for refused filters once their backoff has passed (the ACL may be fixed)."""
        if self.refused and self.connected.is_set() and time.monotonic() >= self._resub_at:
            self._resub_at = float("inf")  # until this SUBACK answers
            self._subscribe(list(self.refused))

    def _on_disconnect(self, c: Any, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if self.connected.is_set():
            log.warning("bridge: disconnected from %s:%d: %s", self.host, self.port, rc)
        self.connected.clear()
        self.subscribed.clear()
        self.refused.clear()

    def _on_message(self, c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        self._inbox.append(_Msg(msg.mid, msg.qos, msg.topic, bytes(msg.payload), self._epoch))

    # -- the thread ------------------------------------------------------------------------------
    def run(self) -> None:
        rot = self.rotation
        open_ = False
        while not self.stop.is_set():
            if not open_:
                if not rot.due():
                    self.stop.wait(LOOP_SECS)
                    continue
                try:
                    self._connect()
                    open_ = True
                except (OSError, ssl.SSLError) as exc:
                    tried, first = rot.current.name, rot.failures == 0
                    delay = rot.failed()
                    if first:
                        log.warning("bridge: broker %s unreachable: %s (trying %s in %.1f s)",
                                    tried, exc, rot.current.name, delay)  # fmt: skip
                    continue
            was_up = self.connected.is_set()  # _on_disconnect clears it inside loop()
            rc = self.client.loop(timeout=LOOP_SECS)
            self._commit_and_ack()
            self._retry_refused()
            self._check_gaps()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                open_ = False
                self.connected.clear()
                self.subscribed.clear()
                self.refused.clear()
                lost = rot.current.name
                if was_up:  # a working session ended: the next endpoint at once
                    rot.lost()
                    if rot.multiple:
                        log.warning("bridge: broker %s lost; trying %s next", lost,
                                    rot.current.name)  # fmt: skip
                else:  # refused, or closed before CONNACK
                    rot.failed()
        self._commit_and_ack()
        if open_:
            self.client.loop(timeout=0.1)  # flush the last PUBACKs
            self.client.disconnect()
            self.client.loop(timeout=0.1)

    def _check_gaps(self) -> None:
        """Alarm seq gaps past their grace and ask the gateway to replay them (gaps.py)."""
        now = time.time()
        if now < self._next_gap_check:
            return
        self._next_gap_check = now + GAP_CHECK_SECS
        gaps = self.store.gaps
        if not gaps.gaps:
            return
        alarms, asks = gaps.due(self.store.db, now)
        for gap in alarms:
            self._raise(gaps.alarm_data(gap, "missing"))
        if not self.connected.is_set():
            return
        for r in asks:
            topic = replay_topic(self.prefix, r.enterprise, r.site, r.gateway)
            body = json.dumps({"from": r.lo, "to": r.hi}).encode()
            self.client.publish(topic, body, qos=1)
            self.replays_asked += 1
            log.warning("bridge: asked gateway %s to replay seq %d..%d", r.gateway, r.lo, r.hi)

    def _raise(self, data: dict[str, Any]) -> None:
        if data["state"] == "missing":
            log.warning("alarm.seq_gap: %s", data["detail"])
        else:
            log.info("alarm.seq_gap cleared: %s", data["detail"])
        if self.alarm is not None:
            try:
                self.alarm(data, "alarm.seq_gap")
            except Exception:  # the alarm sink must not stop ingest
                log.exception("bridge: raising alarm.seq_gap failed")

    def _delay(self, attempts: int) -> float:
        return self.rotation.backoff(attempts)

    def _connect(self) -> None:
        """Connect to the current endpoint, same client id and persistent session flags on
        every endpoint: a broker that has the session (a cluster) resumes it."""
        if self.v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.session_expiry
            self.client.connect(
                self.host, self.port, keepalive=self.keepalive, clean_start=False, properties=props
            )
        else:
            self.client.connect(self.host, self.port, keepalive=self.keepalive)

    def _commit_and_ack(self) -> None:
        while self._inbox:
            group = self._inbox[:MAX_GROUP]
            if not store_group(self.store, [(m.topic, m.payload) for m in group], self.stop):
                return
            del self._inbox[: len(group)]
            self.received += len(group)
            for gap in self.store.filled:
                if gap.alarmed is not None:
                    self._raise(self.store.gaps.alarm_data(gap, "filled"))
                else:
                    log.info("bridge: gateway %s seq %d..%d arrived late (within the grace)",
                             gap.gateway, gap.lo, gap.hi)  # fmt: skip
            self.store.filled = []
            for m in group:
                if m.qos > 0 and m.epoch == self._epoch and self.connected.is_set():
                    self.client.ack(m.mid, m.qos)


def _tls_context(mqtt: MqttSection) -> ssl.SSLContext:
    tls = mqtt.tls
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls and tls.ca_file else None)
    if tls and tls.cert_file:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    if tls and not tls.verify_hostname:
        ctx.check_hostname = False
    return ctx
