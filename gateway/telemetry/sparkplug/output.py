"""The Sparkplug B edge node (spBv1.0, Sparkplug 3.0): a telemetry output with its own MQTT
connection and thread. README.md beside this file says what it publishes and when.

One thread does everything: it runs paho's network loop itself (callbacks run here too), reads
the feed, publishes and acknowledges, so the node's state (seq, bdSeq, which devices are born,
whether the primary host is online) needs no locks.

Delivery: NBIRTH, DBIRTH, NDATA, DDATA and DDEATH are QoS 0 (Sparkplug 3.0, 7.x). A record is
acknowledged to the feed once paho wrote all its messages to the socket; a connection lost
before that leaves it in the store, sent again after the next birth.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from drivers.base import TagValue
from gateway.config.extras import needs_message
from gateway.config.models import MqttSection
from gateway.failover import BrokerRotation, OnRotation, session_client_id
from gateway.mqtt import (
    STATE_CHANGE,
    broker_urls,
    describe_disconnect,
    new_client,
)
from gateway.telemetry.record import Quality, TagMeta, TagPoint, TagRecord, TelemetryFeed
from gateway.telemetry.sparkplug.commands import CommandRefused, CommandSink
from gateway.telemetry.sparkplug.config import SparkplugConfig
from gateway.telemetry.sparkplug.payload import TYPE_OF, DataType, Metric, Payload
from gateway.telemetry.sparkplug.state import NodeState

__all__ = ["REBIRTH", "SparkplugOutput", "SparkplugStats", "SparkplugUnavailable"]

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
BD_SEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
READ_CHUNK = 200
IDLE_SECS = 0.05  # longest wait for a new record (or a peer's message) when there is nothing
WRITE_WAIT_SECS = 10.0  # a batch paho could not write to the socket in this: connection lost


class SparkplugUnavailable(RuntimeError):
    """The sparkplug extra (protobuf) is not installed."""


@dataclass(slots=True)
class SparkplugStats:
    connects: int = 0
    switches: int = 0  # sessions on another broker endpoint than the one before (mqtt.urls)
    births: int = 0  # NBIRTHs (each followed by the DBIRTHs)
    rebirths: int = 0  # of which asked by NCMD Node Control/Rebirth
    messages: int = 0  # handed to the socket
    records: int = 0  # acknowledged to the feed
    historical: int = 0  # records sent flagged is_historical
    commands_refused: int = 0
    commands_written: int = 0
    peer_errors: int = 0  # malformed messages from peers (ignored)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


class SparkplugOutput(OnRotation):
    """A :class:`~gateway.telemetry.record.TelemetryOutput` publishing Sparkplug B."""

    name = "sparkplug"

    def __init__(
        self,
        cfg: SparkplugConfig,
        mqtt: MqttSection,
        *,
        gateway_id: str,
        state_dir: Path,
        command_sink: CommandSink | None = None,
        clock: Callable[[], datetime] = _utcnow,
        broker_url: str | None = None,
        backoff_min_secs: float | None = None,
        backoff_max_secs: float | None = None,
    ) -> None:
        missing = needs_message("the Sparkplug B output", {"sparkplug": ["google.protobuf"]})
        if missing is not None:
            raise SparkplugUnavailable(missing)
        from gateway.telemetry.sparkplug import codec  # the generated protobuf module

        self._codec = codec
        self.cfg = cfg
        self.group = cfg.group_id
        self.node = cfg.node_id or gateway_id
        self.host_id = cfg.primary_host_id
        self.sink = command_sink if cfg.dcmd_writes else None
        self.clock = clock
        self.stats = SparkplugStats()
        self.state = NodeState(
            cfg.state_file or state_dir / f"sparkplug-{self.group}-{self.node}.json"
        )
        self._v5 = mqtt.protocol == "5"
        self._keepalive = mqtt.keepalive_secs
        # the broker endpoints (mqtt.urls) in order, the one in use, when to try which next: a
        # lost session moves on to the next endpoint at once (gateway/failover.py); each new
        # session is a new Sparkplug session there (NBIRTH with the next bdSeq, DBIRTHs)
        self.rotation = BrokerRotation(
            broker_urls(mqtt, broker_url),
            backoff_min_secs if backoff_min_secs is not None else mqtt.reconnect_min_secs,
            backoff_max_secs if backoff_max_secs is not None else mqtt.reconnect_max_secs,
        )
        self.client_id = cfg.client_id or f"saltgw-{gateway_id}-sparkplug"
        self.client = new_client(mqtt, self.client_id, broker_url=broker_url)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        # -- node state (only the thread touches it after start) --------------------------------
        self._feed: TelemetryFeed | None = None
        self._metas: dict[str, list[TagMeta]] = {}  # device -> its tags, config order
        self._types: dict[str, dict[str, DataType]] = {}
        self._by_alias: dict[int, tuple[str, str]] = {}
        self._last: dict[str, dict[str, tuple[TagPoint, datetime]]] = {}
        self._dead: set[str] = set()  # devices whose last record said offline (all stale)
        self._born: set[str] = set()  # devices with a DBIRTH in this session
        self._hist: dict[str, dict[str, tuple[TagPoint, datetime]]] = {}  # held, sent historical
        self._seq = 0
        self._bd_seq = 0
        self._born_at: datetime | None = None  # NBIRTH of this session (None: not born)
        self._need_birth = False
        self._connected = False
        self._socket_open = False
        self.host_online = self.host_id is None
        self.host_ts: int | None = None
        self._drop_session = False  # the primary host went offline: NDEATH, disconnect, anew
        self._warned: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.born = threading.Event()  # set while the node is born (tests, health)

    # -- topics --------------------------------------------------------------------------------
    def topic(self, kind: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group}/{kind}/{self.node}"
        return base if device is None else f"{base}/{device}"

    # -- TelemetryOutput -----------------------------------------------------------------------
    def start(self, feed: TelemetryFeed) -> None:
        if self._thread is not None:
            raise RuntimeError("SparkplugOutput.start() called twice")
        self._feed = feed
        for meta in feed.metas():
            self._metas.setdefault(meta.device, []).append(meta)
            self._types.setdefault(meta.device, {})[meta.tag] = TYPE_OF[meta.type]
            alias = self.state.alias(meta.device, meta.tag)
            self._by_alias[alias] = (meta.device, meta.tag)
        self.state.save()
        self._thread = threading.Thread(target=self._run, name="sparkplug", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float) -> None:
        """Publish NDEATH (QoS 1, waited for up to 3 s) when born, disconnect, end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        feed = self._feed
        assert feed is not None
        try:
            while not self._stop.is_set():
                if not self._socket_open:
                    self._try_connect()
                    if not self._socket_open:
                        time.sleep(IDLE_SECS)
                        continue
                if self._drop_session:
                    self._end_session()
                    continue
                if self._connected and self.host_online and self._need_birth:
                    self._births()
                busy = False
                if self._born_at is not None:
                    busy = self._pump(feed)
                if not self._loop(0 if busy or self._born_at is not None else IDLE_SECS):
                    continue
                if self._born_at is not None and not busy:
                    feed.wait(IDLE_SECS)
            self._end_session(final=True)
        except Exception:
            log.exception("Sparkplug output stopped by an unexpected error")
            raise

    def _loop(self, timeout: float) -> bool:
        """One round of paho's network loop; False when the connection is gone."""
        was_up = self._connected  # on_disconnect (inside loop) clears it
        rc = self.client.loop(timeout=timeout)
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return True
        self._lost(f"connection lost: {paho.error_string(rc)}", was_up)
        return False

    def _try_connect(self) -> None:
        if not self.rotation.due():
            return
        # Sparkplug 3.0: every CONNECT carries an NDEATH will with the next bdSeq, saved first
        self._bd_seq = self.state.next_bd_seq()
        will = self._codec.encode(Payload(_ms(self.clock()), None, (self._bd_metric(),)))
        self.client.will_set(self.topic("NDEATH"), will, qos=1, retain=False)
        # another id per endpoint (gateway/failover.py); paho has no setter
        self.client._client_id = session_client_id(self.client_id, self.rotation.index).encode()
        try:
            if self._v5:
                self.client.connect(self.host, self.port, self._keepalive, clean_start=True)
            else:
                self.client.connect(self.host, self.port, self._keepalive)
            self._socket_open = True
        except OSError as exc:  # includes ssl.SSLError
            tried, first = self.rotation.current.name, self.rotation.failures == 0
            delay = self.rotation.failed()
            if first:
                log.warning("Sparkplug: MQTT broker %s unreachable: %s (trying %s:%d in %.1f s)",
                            tried, exc, self.host, self.port, delay)  # fmt: skip

    def _lost(self, why: str, was_up: bool) -> None:
        self._socket_open = False
        if was_up:
            lost = self.rotation.current.name
            self.rotation.lost()  # a working session ended: the next endpoint at once
            log.warning("Sparkplug: %s (broker %s); records not yet written stay in the "
                        "telemetry store; trying %s:%d next", why, lost, self.host, self.port,
                        extra=STATE_CHANGE)  # fmt: skip
        else:
            self.rotation.failed()  # closed before CONNACK (refused, TLS): the next endpoint
        self._session_over()

    def _session_over(self) -> None:
        self._connected = False
        self._born_at = None
        self._born.clear()
        self._hist.clear()
        self.born.clear()
        if self.host_id is not None:
            self.host_online = False

    def _end_session(self, final: bool = False) -> None:
        """NDEATH (when born), DISCONNECT; the next CONNECT starts a new session."""
        self._drop_session = False
        if self._socket_open and self._connected and self._born_at is not None:
            body = self._codec.encode(Payload(_ms(self.clock()), None, (self._bd_metric(),)))
            info = self.client.publish(self.topic("NDEATH"), body, qos=1)
            deadline = time.monotonic() + 3
            while not info.is_published() and time.monotonic() < deadline:
                if self.client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        if self._socket_open:
            self.client.disconnect()
            self.client.loop(timeout=0.1)
        self._socket_open = False
        self._session_over()
        self.rotation.next_at = 0.0  # a session we ended: connect anew at once, same endpoint
        if not final:
            log.info("Sparkplug: session ended (primary host offline); connecting anew",
                     extra=STATE_CHANGE)  # fmt: skip

    # -- paho callbacks (inside client.loop, on this thread) -----------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
                    ) -> None:  # fmt: skip
        if rc.is_failure:
            log.error("Sparkplug: MQTT broker %s:%d refused the connection: %s",
                      self.host, self.port, rc)  # fmt: skip
            return
        self._connected = True
        previous = self.rotation.last_used
        if self.rotation.connected():
            self.stats.switches += 1
            log.warning("Sparkplug: broker failover: now on %s:%d instead of %s (switch %d)",
                        self.host, self.port, previous.name if previous else "?",
                        self.rotation.switches, extra=STATE_CHANGE)  # fmt: skip
        self.stats.connects += 1
        log.info("Sparkplug: connected to %s:%d as edge node %s/%s (bdSeq %d)",
                 self.host, self.port, self.group, self.node, self._bd_seq,
                 extra=STATE_CHANGE)  # fmt: skip
        client.subscribe(self.topic("NCMD"), qos=1)
        client.subscribe(self.topic("DCMD") + "/+", qos=1)
        if self.host_id is not None:
            self.host_online = False  # until the (retained) STATE says otherwise
            client.subscribe(f"{NAMESPACE}/STATE/{self.host_id}", qos=1)
        self._need_birth = True

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
                       ) -> None:  # fmt: skip
        if self._connected and not self._stop.is_set():
            log.warning("Sparkplug: disconnected from %s:%d: %s", self.host, self.port,
                        describe_disconnect(rc, flags), extra=STATE_CHANGE)  # fmt: skip
        self._session_over()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            parts = msg.topic.split("/")
            if len(parts) == 3 and parts[1] == "STATE":
                self._on_state(bytes(msg.payload))
            elif len(parts) == 4 and parts[2] == "NCMD":
                self._on_ncmd(bytes(msg.payload))
            elif len(parts) == 5 and parts[2] == "DCMD":
                self._on_dcmd(parts[4], bytes(msg.payload))
        except Exception as exc:  # nothing a peer sends may stop the thread
            self.stats.peer_errors += 1
            log.warning("Sparkplug: message on %r ignored: %s", msg.topic, exc)

    def _on_state(self, raw: bytes) -> None:
        """Sparkplug 3.0 STATE: ``{"online": bool, "timestamp": ms}``; older ones ignored."""
        try:
            body = json.loads(raw)
            online, ts = body["online"], body["timestamp"]
            if not isinstance(online, bool) or not isinstance(ts, int) or isinstance(ts, bool):
                raise TypeError("online must be a boolean and timestamp an integer")
        except (ValueError, KeyError, TypeError) as exc:
            self.stats.peer_errors += 1
            log.warning("Sparkplug: STATE of host %r ignored: not a Sparkplug 3.0 STATE "
                        "payload (%s): %r", self.host_id, exc, raw[:200])  # fmt: skip
            return
        if self.host_ts is not None and ts < self.host_ts:
            log.info("Sparkplug: STATE of host %r with an older timestamp ignored",
                     self.host_id)  # fmt: skip
            return
        self.host_ts = ts
        if online and not self.host_online:
            log.info("Sparkplug: primary host %r online", self.host_id, extra=STATE_CHANGE)
            self.host_online = True
            self._need_birth = True
        elif not online and self.host_online:
            log.warning("Sparkplug: primary host %r offline: data held in the telemetry store",
                        self.host_id, extra=STATE_CHANGE)  # fmt: skip
            self.host_online = False
            self._drop_session = self._born_at is not None

    def _on_ncmd(self, raw: bytes) -> None:
        payload = self._codec.decode(raw, {REBIRTH: DataType.BOOLEAN})
        for m in payload.metrics:
            if m.name == REBIRTH and m.value is True:
                log.info("Sparkplug: rebirth asked (NCMD %s)", REBIRTH)
                self.stats.rebirths += 1
                self._need_birth = True
            else:
                self.stats.commands_refused += 1
                log.warning("Sparkplug: NCMD metric %r (alias %r) not supported: ignored",
                            m.name, m.alias)  # fmt: skip

    def _on_dcmd(self, device: str, raw: bytes) -> None:
        types = self._types.get(device)
        if types is None:
            self.stats.commands_refused += 1
            log.warning("Sparkplug: DCMD for unknown device %r refused", device)
            return
        payload = self._codec.decode(raw, types)
        for m in payload.metrics:
            tag = m.name
            if tag is None and m.alias is not None:
                dev_tag = self._by_alias.get(m.alias)
                tag = dev_tag[1] if dev_tag is not None and dev_tag[0] == device else None
            if tag is None or tag not in types:
                self._refuse(device, m.name or f"alias {m.alias}", "no such metric")
                continue
            why = _wrong_type(types[tag], m.value)
            if why is not None:
                self._refuse(device, tag, why)
                continue
            assert m.value is not None
            self._write(device, tag, m.value)

    def _write(self, device: str, tag: str, value: TagValue) -> None:
        if self.sink is None:
            self._refuse(device, tag, "DCMD writes are off (sparkplug.dcmd_writes)")
            return
        try:
            fut = self.sink.write(device, tag, value)
        except CommandRefused as exc:
            self._refuse(device, tag, str(exc))
            return
        fut.add_done_callback(lambda f: self._written(device, tag, value, f))

    def _written(self, device: str, tag: str, value: TagValue, fut: Future[None]) -> None:
        exc = fut.exception() if not fut.cancelled() else CommandRefused("cancelled")
        if exc is None:
            self.stats.commands_written += 1
            log.info("Sparkplug: DCMD wrote %s.%s = %r", device, tag, value)
        else:
            self._refuse(device, tag, str(exc) or type(exc).__name__)

    def _refuse(self, device: str, tag: str, why: str) -> None:
        self.stats.commands_refused += 1
        log.warning("Sparkplug: DCMD %s/%s refused: %s", device, tag, why)

    # -- births, data, deaths ------------------------------------------------------------------
    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 256
        return seq

    def _bd_metric(self) -> Metric:
        return Metric(BD_SEQ, None, DataType.INT64, self._bd_seq)

    def _births(self) -> None:
        """NBIRTH (seq 0, bdSeq of this CONNECT), then DBIRTH for every device (and DDEATH
        right after for a device known to be offline). A rebirth repeats them, same bdSeq."""
        self._need_birth = False
        now = self.clock()
        self._seq = 0
        node = (
            self._bd_metric(),
            Metric(REBIRTH, None, DataType.BOOLEAN, False),
            Metric("Properties/Gateway", None, DataType.STRING, self.node),
        )
        self._send(self.topic("NBIRTH"), Payload(_ms(now), self._next_seq(), node))
        self._born.clear()
        self._hist.clear()
        for device in self._metas:
            self._dbirth(device, now)
            if device in self._dead:
                self._ddeath(device, now)
        self._born_at = now
        self.stats.births += 1
        self.born.set()
        log.info("Sparkplug: NBIRTH (bdSeq %d) and %d DBIRTH published", self._bd_seq,
                 len(self._metas), extra=STATE_CHANGE)  # fmt: skip

    def _dbirth(self, device: str, now: datetime) -> paho.MQTTMessageInfo:
        last = self._last.get(device, {})
        metrics = []
        for meta in self._metas[device]:
            point, ts = last.get(meta.tag, (TagPoint(None, Quality.BAD), now))
            metrics.append(Metric(meta.tag, self.state.alias(device, meta.tag),
                                  TYPE_OF[meta.type], point.value, _ms(ts)))  # fmt: skip
        self._born.add(device)
        return self._send(self.topic("DBIRTH", device), Payload(_ms(now), self._next_seq(),
                                                                tuple(metrics)))  # fmt: skip

    def _ddeath(self, device: str, now: datetime) -> paho.MQTTMessageInfo:
        self._born.discard(device)
        return self._send(self.topic("DDEATH", device), Payload(_ms(now), self._next_seq()))

    def _send(self, topic: str, payload: Payload) -> paho.MQTTMessageInfo:
        info = self.client.publish(topic, self._codec.encode(payload), qos=0, retain=False)
        self.stats.messages += 1
        return info

    def _pump(self, feed: TelemetryFeed) -> bool:
        """Publish the next records; acknowledge them once written. True if any were read."""
        records = feed.read(READ_CHUNK)
        if not records:
            self._refresh()
            return False
        infos: list[paho.MQTTMessageInfo] = []
        for rec in records:
            infos += self._publish_record(rec)
        if len(records) < READ_CHUNK:  # caught up
            self._refresh()
        deadline = time.monotonic() + WRITE_WAIT_SECS
        while not all(i.is_published() for i in infos):
            if time.monotonic() > deadline:
                self._end_session()  # a socket that takes nothing: start over (records kept)
                return True
            if not self._loop(0.01):
                return True  # not acknowledged: sent again after the next birth
        feed.ack(records[-1].id)
        self.stats.records += len(records)
        return True

    def _publish_record(self, rec: TagRecord) -> list[paho.MQTTMessageInfo]:
        device = rec.device
        types = self._types.get(device)
        if types is None:
            self._warn_once(device, "", "records of a device with no telemetry tags skipped")
            return []
        known = {t: p for t, p in rec.points.items() if t in types}
        for tag in rec.points.keys() - known.keys():
            self._warn_once(device, tag, "a tag missing from the feed's metas skipped")
        assert self._born_at is not None
        historical = rec.ts < self._born_at
        if historical:
            self.stats.historical += 1
        else:
            self._refresh()  # the held values' latest first, then live data over them
        last = self._last.setdefault(device, {})
        now = self.clock()
        if known and all(p.quality == Quality.STALE for p in known.values()):
            self._dead.add(device)
            return [self._ddeath(device, now)] if device in self._born else []
        for tag, point in known.items():
            last[tag] = (point, rec.ts)
        if device not in self._born or device in self._dead:  # back online: born again
            self._dead.discard(device)
            return [self._dbirth(device, now)]  # (it carries this record's values)
        if historical:
            hist = self._hist.setdefault(device, {})
            hist.update({t: (p, rec.ts) for t, p in known.items()})
        ts = _ms(rec.ts)
        metrics = tuple(
            Metric(None, self.state.alias(device, tag), types[tag], p.value, ts, historical)
            for tag, p in known.items()
        )
        if not metrics:
            return []
        return [self._send(self.topic("DDATA", device), Payload(_ms(now), self._next_seq(),
                                                                metrics))]  # fmt: skip

    def _refresh(self) -> None:
        """After held records went out flagged historical: their latest values once more, not
        historical, so hosts' current values are the newest (the births carried older ones)."""
        if not self._hist:
            return
        now = self.clock()
        for device, points in self._hist.items():
            if device not in self._born:
                continue
            types = self._types[device]
            metrics = tuple(
                Metric(None, self.state.alias(device, tag), types[tag], p.value, _ms(ts))
                for tag, (p, ts) in points.items()
            )
            self._send(self.topic("DDATA", device), Payload(_ms(now), self._next_seq(), metrics))
        self._hist.clear()

    def _warn_once(self, device: str, tag: str, what: str) -> None:
        if (device, tag) not in self._warned:
            self._warned.add((device, tag))
            log.warning("Sparkplug: %s (device %r, tag %r)", what, device, tag)


def _wrong_type(dt: DataType, value: object) -> str | None:
    """Why ``value`` cannot be written to a tag of Sparkplug type ``dt`` (None: it can)."""
    if value is None:
        return "no value (is_null)"
    ok = {
        DataType.BOOLEAN: isinstance(value, bool),
        DataType.INT64: isinstance(value, int) and not isinstance(value, bool),
        DataType.DOUBLE: isinstance(value, int | float) and not isinstance(value, bool),
        DataType.STRING: isinstance(value, str),
    }.get(dt, False)
    return None if ok else f"a {type(value).__name__} value for a {dt.name} metric"
