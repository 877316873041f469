"""The broker link: one thread owns the paho-mqtt 2.x client and drains the journal into it.

- :class:`MqttLink` configures paho: protocol 3.1.1 or 5, TLS, credentials, last will
  ``offline`` on the gateway status topic, PUBACK bookkeeping.
- :class:`Forwarder` is the only thread that touches the client. It publishes journal rows in
  ``seq`` order with QoS 1, at most ``inflight`` unacknowledged; each PUBACK deletes its row from
  the journal. It runs paho's network loop itself (no ``loop_start`` thread): measured here, this
  publishes ~25 % faster than paho's threaded mode, and keeps all bookkeeping single-threaded.
  It reconnects with exponential backoff, rotating through the broker endpoints (``mqtt.urls``,
  :mod:`gateway.failover`): a refused or lost connection, a keep-alive timeout or PUBACKs owed
  past ``ack_timeout_secs`` move it to the next one. paho keeps unacknowledged messages and
  re-sends them, in order, after a reconnect — to whichever endpoint took over. After a
  gateway restart the journal still holds every unacknowledged row, so each event is delivered
  at least once, always with its original ``id``.
- A PUBACK with a failure reason code (MQTT 5, e.g. 0x87 not authorized by the broker's ACL)
  is a refusal, not a delivery: the row stays in the journal and is sent again with a backoff
  per topic, out of order if need be; refusals are logged once per topic and reason and
  counted (:mod:`gateway.refusals`).
- Incoming messages (MES commands, ``docs/commands.md``): :meth:`Forwarder.listen` registers a
  topic filter before the thread starts; the filter is subscribed (QoS 1) on every connect and
  each message is handed to its handler on this thread, which must only pass it on (e.g. with
  ``loop.call_soon_threadsafe``), never block.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.chain import ALG_HMAC
from gateway.config.models import MqttSection
from gateway.failover import (
    BrokerRotation,
    Endpoint,
    OnRotation,
    broker_address,
    session_client_id,
)
from gateway.journal import Journal, JournalReader
from gateway.refusals import (
    REFUSED_RETRY_MAX_SECS,
    Refusal,
    RefusalLog,
    RetryQueue,
    is_refusal,
    reason_label,
)
from gateway.replay import Replayer, replay_topic
from gateway.topics import Topics

__all__ = [
    "ControlOutbox",
    "Forwarder",
    "LinkStats",
    "MessageHandler",
    "MqttLink",
    "broker_address",
    "broker_urls",
    "new_client",
]

log = logging.getLogger(__name__)
STATE_CHANGE = {"state_change": True}  # connects and disconnects: never rate-limited (logs.py)

MARK_EVERY_SECS = 1.0  # the seq mark (Topics.seq_mark) at most this often
IDLE_POLL_SECS = 0.005  # how long the IO thread waits on the socket when it has nothing to send
READ_CHUNK = 500

#: Called on the forwarder thread with (topic, payload, retained) for a subscribed message.
MessageHandler = Callable[[str, bytes, bool], None]


@dataclass(slots=True)
class LinkStats:
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    published: int = 0
    acked: int = 0
    last_error: str | None = None
    control_coalesced: int = 0  # retained control messages replaced by a newer one, unsent
    control_dropped: int = 0  # non-retained control messages dropped (queue full, offline)
    first_ack_at: float | None = None  # time.monotonic() of the current session's first PUBACK
    # PUBACKs that refused the message (MQTT 5 reason code >= 0x80), by reason (reason_label)
    refused: dict[str, int] = field(default_factory=dict)


class ControlOutbox:
    """Control messages (device states, KPIs, command responses: not journaled) waiting for the
    forwarder, bounded however long the broker is away.

    A retained message is the topic's last value: a newer one replaces the one waiting (latest
    wins, counted), so states and KPIs of a week-long outage take one slot per topic. Other
    messages (command responses) wait in order, at most ``max_plain``; past that the oldest is
    dropped and counted. Thread-safe: any thread puts, the forwarder takes.
    """

    def __init__(self, stats: LinkStats, max_plain: int = 10_000) -> None:
        self._stats = stats
        self._max_plain = max_plain
        self._lock = threading.Lock()
        self._retained: dict[str, bytes] = {}  # topic -> payload, in order of last update
        self._plain: deque[tuple[str, bytes]] = deque()

    def put(self, topic: str, payload: bytes, retain: bool) -> None:
        with self._lock:
            if retain:
                if self._retained.pop(topic, None) is not None:
                    self._stats.control_coalesced += 1
                self._retained[topic] = payload
                return
            if len(self._plain) >= self._max_plain:
                self._plain.popleft()
                self._stats.control_dropped += 1
            self._plain.append((topic, payload))

    def put_stale(self, topic: str, payload: bytes) -> None:
        """A retained value sent before (again, e.g. to a broker that took over), unless a
        newer one for its topic is waiting."""
        with self._lock:
            self._retained.setdefault(topic, payload)

    def take(self) -> list[tuple[str, bytes, bool]]:
        """Everything waiting, retained values first, and empty the outbox."""
        with self._lock:
            out = [(t, p, True) for t, p in self._retained.items()]
            out += [(t, p, False) for t, p in self._plain]
            self._retained.clear()
            self._plain.clear()
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._retained) + len(self._plain)


def broker_urls(cfg: MqttSection, broker_url: str | None = None) -> list[str]:
    """The broker endpoints in order: ``broker_url`` (``--broker``; several separated by
    commas) when given, else the config's ``mqtt.urls`` or ``mqtt.url``."""
    if broker_url:
        return [u.strip() for u in broker_url.split(",") if u.strip()]
    return cfg.endpoints


def new_client(cfg: MqttSection, client_id: str, *, broker_url: str | None = None) -> paho.Client:
    """A paho 2.x client for the ``mqtt:`` section: protocol, credentials and TLS (mqtts:// or
    a ``tls:`` section). Shared by every connection the gateway opens (the forwarder, the
    Sparkplug output); each sets its own last will and callbacks."""
    v5 = cfg.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else True,
    )
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password())
    url = urlsplit(broker_urls(cfg, broker_url)[0])  # all endpoints share the scheme (config)
    if url.scheme in ("mqtts", "ssl") or cfg.tls is not None:
        tls = cfg.tls
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls and tls.ca_file else None)
        if tls and tls.cert_file:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        if tls and not tls.verify_hostname:
            ctx.check_hostname = False
        client.tls_set_context(ctx)
    return client


class MqttLink(OnRotation):
    """A configured paho client plus the PUBACK bookkeeping. Not thread-safe: only the
    :class:`Forwarder` thread calls it (other threads use :meth:`Forwarder.publish_control`)."""

    def __init__(
        self,
        cfg: MqttSection,
        topics: Topics,
        client_id: str,
        *,
        broker_url: str | None = None,
        announce: bool = True,
    ) -> None:
        """``announce``: this client speaks for the gateway (its status topic: ``online`` on
        every connect, ``offline`` as the last will); False for a second client of the same
        gateway (the telemetry outputs), whose loss says nothing about the gateway."""
        self.cfg = cfg
        self.announce = announce
        self.topics = topics
        # the endpoints and which one is in use (gateway/failover.py)
        self.rotation = BrokerRotation(
            broker_urls(cfg, broker_url), cfg.reconnect_min_secs, cfg.reconnect_max_secs
        )
        self._target: Endpoint | None = None  # the endpoint paho's client is set up for
        self.switched = False  # a switch to another endpoint, not yet seen by the forwarder
        self.stats = LinkStats()
        self.connected = threading.Event()
        self.pending: dict[int, int | None] = {}  # mid -> journal seq (None: not journaled)
        self.acked: list[int] = []  # journal seqs acknowledged, not yet handed to the journal
        # since when the broker owes a PUBACK without having sent one (None: owes nothing)
        self.waiting_since: float | None = None
        self.refused = False  # the last CONNACK was a refusal (bad credentials, not authorised)
        self._topic_of: dict[int, str] = {}  # mid -> topic, until its PUBACK
        self.refusals = RefusalLog()  # topics the broker refuses now (logged once each)
        # A PUBACK that refuses a journaled message (gateway/refusals.py) goes to on_refused,
        # and the row stays unacknowledged (the forwarder sends it again); without a handler
        # (the UNS output) the message is counted and logged, and done with as before.
        self.on_refused: Callable[[Refusal], None] | None = None
        self.on_accepted: Callable[[str], None] | None = None  # a refused topic accepted again
        self.client_id = client_id  # on the first endpoint; per endpoint: session_client_id
        self.client = new_client(cfg, client_id, broker_url=broker_url)
        # The window (``inflight``) is kept by the thread that publishes (room = inflight -
        # pending), never by paho: paho's own limit makes every PUBACK walk all the messages in
        # flight (Client._update_inflight), O(inflight) per acknowledgement — at 1,000 in
        # flight that was a fifth of the UNS output's CPU (bench/telemetry_rate.py). 0: none.
        self.client.max_inflight_messages_set(0)
        self.client.max_queued_messages_set(0)
        if announce:
            self.client.will_set(topics.status(), b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.listeners: list[tuple[str, MessageHandler]] = []  # subscribed on every connect

    @property
    def url(self) -> SplitResult:
        """The URL of the endpoint in use (or tried next)."""
        return urlsplit(self.rotation.current.url)

    def connect(self) -> None:
        """Open the TCP (TLS) connection to the current endpoint and send CONNECT; CONNACK
        arrives in :meth:`loop`. Raises OSError (or ssl.SSLError) when it cannot be reached.
        paho keeps its unacknowledged messages across a change of endpoint and re-sends them
        after the CONNACK (dup flag set)."""
        ep = self.rotation.current
        if ep != self._target:
            self._target = ep
            # paho has no setter; the id goes into the next CONNECT (gateway/failover.py)
            self.client._client_id = session_client_id(self.client_id, ep.index).encode()
            self.client.connect(ep.host, ep.port, keepalive=self.cfg.keepalive_secs)
        else:
            self.client.reconnect()

    def drop(self) -> None:
        """End the connection without DISCONNECT (the broker publishes our last will): the
        next network loop sees it closed, as if the broker had dropped it."""
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, seq: int | None = None
    ) -> None:
        """QoS 1; when ``seq`` is given, the journal row is acknowledged on PUBACK.

        Not connected (NO_CONN) or the socket failing as the message is written (CONN_LOST)
        is no error: paho keeps a QoS 1 message and sends it again after the reconnect, so it
        is pending like any other (a raise here once left its record unacknowledged forever
        and would stop the forwarder: bench/telemetry_outage.py found it)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in _KEPT_BY_PAHO:
            raise RuntimeError(f"publish to {topic!r} refused by paho: {info.rc}")
        self.stats.published += 1
        if not self.pending:
            self.waiting_since = time.monotonic()
        self.pending[info.mid] = seq
        self._topic_of[info.mid] = topic

    def stalled_secs(self, now: float | None = None) -> float:
        """How long the broker has owed a PUBACK without acknowledging anything (0: owes none).
        A hung broker (stopped, overloaded, a half-open connection) shows here within seconds,
        long before the keep-alive notices."""
        if not self.pending or self.waiting_since is None or not self.connected.is_set():
            return 0.0
        return max(0.0, (time.monotonic() if now is None else now) - self.waiting_since)

    def take_acked(self) -> list[int]:
        out, self.acked = self.acked, []
        return out

    # -- paho callbacks: run inside client.loop(), on the forwarder thread ---------------------
    def _on_publish(
        self, client: Any, userdata: Any, mid: int, rc: ReasonCode, props: Properties
    ) -> None:
        self.rotation.worked()  # the broker acknowledges: a working session (failover.py)
        seq = self.pending.get(mid)
        topic = self._topic_of.pop(mid, None)
        kept = False  # a refused row handed to on_refused: not acknowledged
        if is_refusal(rc.value):  # MQTT 5 only; before the pop: drain() never misses it
            kept = self._refused(Refusal(seq, topic or "?", rc.value, rc.getName()))
        elif (
            topic is not None
            and self.refusals.refusing
            and self.refusals.accepted(topic, self.broker)
            and self.on_accepted is not None
        ):
            self.on_accepted(topic)
        self.pending.pop(mid, None)
        self.waiting_since = time.monotonic() if self.pending else None
        if self.stats.first_ack_at is None:
            self.stats.first_ack_at = time.monotonic()
        if kept:
            return
        self.stats.acked += 1
        if seq is not None:
            self.acked.append(seq)

    def _refused(self, r: Refusal) -> bool:
        """Count and log a refusing PUBACK; True when the row was handed to on_refused."""
        label = reason_label(r.name)
        self.stats.refused[label] = self.stats.refused.get(label, 0) + 1
        self.refusals.refused(r, self.broker)
        if r.seq is None or self.on_refused is None:
            return False
        self.on_refused(r)
        return True

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            self.refused = True
            self.stats.last_error = f"broker refused the connection: {rc}"
            log.error("MQTT broker %s refused the connection: %s", self.broker, rc)
            return
        self.stats.connects += 1
        self.stats.first_ack_at = None
        self.waiting_since = time.monotonic() if self.pending else None  # paho re-sends them
        rot = self.rotation
        previous = rot.last_used
        if rot.connected():
            self.switched = True
            log.warning(
                "MQTT broker failover: now on %s (endpoint %d of %d) instead of %s; "
                "%d events not acknowledged there are sent again here (switch %d)",
                self.broker, rot.current.index + 1, len(rot.endpoints),
                previous.name if previous else "?", len(self.pending), rot.switches,
                extra=STATE_CHANGE,
            )  # fmt: skip
        else:
            log.info(
                "connected to MQTT broker %s (connection %d)", self.broker, self.stats.connects,
                extra=STATE_CHANGE,
            )  # fmt: skip
        if self.announce:
            self._announce(client)
        for topic_filter, _ in self.listeners:
            client.subscribe(topic_filter, qos=1)
        self.connected.set()

    def _announce(self, client: Any) -> None:
        """Status ``online`` (the contract's bare text; on MQTT 5 with the user property
        ``broker`` = host:port in use) and, retained beside it, which endpoint that is."""
        rot = self.rotation
        props = None
        if self.cfg.protocol == "5":
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = [("broker", self.broker), ("endpoint", str(rot.current.index + 1))]
        info = client.publish(self.topics.status(), b"online", qos=1, retain=True, properties=props)
        self._topic_of[info.mid] = self.topics.status()
        body = {
            "gateway": self.topics.gateway,
            "broker": self.broker,
            "endpoint": rot.current.index + 1,
            "endpoints": [ep.name for ep in rot.endpoints],
            "switches": rot.switches,
        }
        info = client.publish(
            self.topics.status_broker(), json.dumps(body).encode(), qos=1, retain=True
        )
        self._topic_of[info.mid] = self.topics.status_broker()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        for topic_filter, handler in self.listeners:
            if paho.topic_matches_sub(topic_filter, msg.topic):
                try:
                    handler(msg.topic, bytes(msg.payload), bool(msg.retain))
                except Exception:  # a handler bug must not stop the forwarder
                    log.exception("handling the MQTT message on %r failed", msg.topic)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if self.connected.is_set():
            self.stats.disconnects += 1
            why = describe_disconnect(rc, flags)
            self.stats.last_error = why
            log.warning(
                "disconnected from MQTT broker %s: %s; %d events sent and not yet acknowledged "
                "stay in the journal and are sent again",
                self.broker, why, len(self.pending), extra=STATE_CHANGE,
            )  # fmt: skip
        self.connected.clear()


_KEPT_BY_PAHO = (
    MQTTErrorCode.MQTT_ERR_SUCCESS,
    MQTTErrorCode.MQTT_ERR_NO_CONN,
    MQTTErrorCode.MQTT_ERR_CONN_LOST,
)


def describe_disconnect(rc: ReasonCode, flags: Any) -> str:
    """What a disconnect was, in words: paho reports a closed socket as 'Unspecified error'."""
    if getattr(flags, "is_disconnect_packet_from_server", False):
        return f"the broker ended the session (DISCONNECT: {rc})"
    if rc.value == 0:
        return "disconnected on request"
    return "the connection was closed (broker stopped or restarted, or the network dropped)"


class Forwarder:
    """The IO thread: connection, control messages (retained states), journal rows, acks."""

    def __init__(
        self,
        journal: Journal,
        link: MqttLink,
        topics: Topics,
        inflight: int,
        *,
        backoff_min_secs: float = 0.5,
        backoff_max_secs: float = 10.0,
        ack_timeout_secs: float = 5.0,
        refused_retry_max_secs: float = REFUSED_RETRY_MAX_SECS,
    ) -> None:
        """``backoff_min_secs`` .. ``backoff_max_secs``: reconnects; ``backoff_min_secs`` ..
        ``refused_retry_max_secs``: events the broker refused in its PUBACK, sent again
        (gateway/refusals.py)."""
        self.journal = journal
        self.link = link
        self.topics = topics
        self.inflight = inflight
        self.ack_timeout = ack_timeout_secs
        self._acked_high = 0  # highest journal seq the broker acknowledged
        self._mark_sent = 0
        self._mark_at = float("-inf")
        self._head_sent = 0  # seq of the last chain head published (Topics.chain_head)
        self._head_at = float("-inf")
        self._stalled_logged = False
        self.control = ControlOutbox(link.stats)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._cursor = 0  # highest seq handed to paho
        self._thread: threading.Thread | None = None
        self._topic_cache: dict[str, str] = {}
        # rows the broker refused in its PUBACK, sent again with backoff (gateway/refusals.py)
        self.retry = RetryQueue(backoff_min_secs, refused_retry_max_secs)
        link.on_refused = self._on_refused
        link.on_accepted = self.retry.accepted
        # which broker endpoint next, and when (gateway/failover.py)
        self.reconnect = link.rotation
        self.reconnect.min_secs, self.reconnect.max_secs = backoff_min_secs, backoff_max_secs
        # the last retained control message of each topic (states, KPIs, seq mark, chain head):
        # sent again to a broker that takes over, which has none of them (a bounded set)
        self._retained_sent: dict[str, bytes] = {}
        self._abandoned: str | None = None  # why the link left a broker that stopped acking
        self._socket_open = False
        # journal rows are published only while this says yes (None: always); set before
        # start() — the in-process bridge must be subscribed first, or it misses events
        self.gate: Callable[[], bool] | None = None
        # -- replay (gateway/replay.py): events a subscriber found missing, published again --
        self.replayer = Replayer()
        t = topics
        self.listen(
            replay_topic(t.prefix, t.enterprise, t.site, t.gateway), self.replayer.on_message
        )

    # -- other threads -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-forwarder", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def listen(self, topic_filter: str, handler: MessageHandler) -> None:
        """Subscribe ``topic_filter`` (QoS 1) on every connect and hand each message to
        ``handler`` on the forwarder thread. Call before :meth:`start`."""
        if self._thread is not None:
            raise RuntimeError("listen() must be called before the forwarder starts")
        self.link.listeners.append((topic_filter, handler))

    def publish_control(self, topic: str, payload: bytes, *, retain: bool = True) -> None:
        """A QoS 1 message that is not journaled (device state, KPI, command response): sent
        before further rows while connected; while not, it waits in a bounded outbox where a
        retained message replaces an older one on its topic (:class:`ControlOutbox`)."""
        self.control.put(topic, payload, retain)

    def stalled(self) -> str | None:
        """Why the broker looks hung (it owes PUBACKs for ``ack_timeout_secs``), else None."""
        secs = self.link.stalled_secs()
        if secs < self.ack_timeout:
            return None
        return (
            f"no PUBACK for {secs:.0f} s with {len(self.link.pending)} messages waiting "
            f"(broker hung or overloaded?)"
        )

    @property
    def refused_waiting(self) -> int:
        """Events the broker refused (PUBACK reason code), not yet accepted: in the journal,
        waiting to be sent again or sent again and not yet acknowledged."""
        return len(self.retry.outstanding)

    def drain(self, timeout: float) -> bool:
        """Wait until everything journaled so far was acknowledged, up to ``timeout`` s;
        False while events the broker refused wait to be sent again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # every row sent and acknowledged; their deletes may still wait (e.g. disk full).
            # pending first: a refused row enters retry.outstanding before it leaves pending
            sent_all = self._cursor >= self.journal.stats.last_seq
            if (
                not self.link.pending
                and not self.retry.outstanding
                and (self.journal.stats.backlog == 0 or sent_all)
            ):
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Publish status ``offline`` when connected, disconnect, end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    # -- the IO thread ---------------------------------------------------------------------------
    def _topic(self, event_type: str) -> str:
        t = self._topic_cache.get(event_type)
        if t is None:
            t = self._topic_cache[event_type] = self.topics.event(event_type)
        return t

    def _flush_acks(self) -> None:
        acked = self.link.take_acked()
        if acked:
            self.journal.ack(acked)
            self._acked_high = max(self._acked_high, max(acked))
            self.retry.delivered(acked)

    def _on_refused(self, r: Refusal) -> None:
        """A journaled row the broker refused (inside paho's loop, on this thread)."""
        if r.seq is not None:
            self.retry.refused(r.seq, r.topic)

    def _resend(self, reader: JournalReader, room: int) -> bool:
        """Send again the refused rows that are due, read anew from the journal by seq."""
        seqs = self.retry.due(min(room, READ_CHUNK))
        if not seqs:
            return False
        rows = reader.rows(seqs)
        if len(rows) < len(seqs):  # no longer undelivered: dropped (when_full: drop_oldest)
            for s in set(seqs) - {r.seq for r in rows}:
                self.retry.forget(s)
        for row in rows:
            self.link.publish(self._topic(row.type), row.payload, seq=row.seq)
        return bool(rows)

    def _publish_mark(self) -> None:
        """Now and then, the highest seq the broker acknowledged (retained, latest wins): a
        bridge that lost the last events before the line went quiet sees the gap from it."""
        now = time.monotonic()
        if self._acked_high <= self._mark_sent or now - self._mark_at < MARK_EVERY_SECS:
            return
        self._mark_sent, self._mark_at = self._acked_high, now
        body = json.dumps({"gateway": self.topics.gateway, "last_seq": self._acked_high})
        sign = self.journal.signer  # signed like the events (gateway/signing.py)
        payload = body.encode() if sign is None else sign(body.encode())
        self.control.put(self.topics.seq_mark(), payload, True)

    def _publish_head(self, *, now: float | None = None) -> None:
        """Now and then (as the seq mark), the journal's newest committed chain link, retained:
        the anchor that a rewrite of the journal cannot match (docs/security.md)."""
        now = time.monotonic() if now is None else now
        seq, chain = self.journal.head  # replaced whole after each commit: consistent
        if seq <= self._head_sent or now - self._head_at < MARK_EVERY_SECS:
            return
        self._head_sent, self._head_at = seq, now
        body = {"gateway": self.topics.gateway, "seq": seq, "hash": chain.hex(), "alg": ALG_HMAC}
        self.control.put(self.topics.chain_head(), json.dumps(body).encode(), True)

    def _try_connect(self) -> None:
        if not self.reconnect.due():
            return
        try:
            self.link.connect()
            self._socket_open = True
        except (OSError, ssl.SSLError) as exc:
            self.link.stats.connect_failures += 1
            self.link.stats.last_error = f"cannot connect to {self.link.broker}: {exc}"
            tried = self.link.broker
            first = self.reconnect.failures == 0
            delay = self.reconnect.failed()
            if first:
                log.warning("MQTT broker %s unreachable: %s (trying %s in %.1f s)", tried, exc,
                            self.link.broker, delay)  # fmt: skip
            else:
                log.debug("MQTT broker %s unreachable: %s", tried, exc)

    def _send(self, reader: JournalReader) -> bool:
        """Hand control messages and journal rows to paho; True when something was sent."""
        link = self.link
        if not link.connected.is_set():
            return False  # control messages wait in the bounded outbox, rows in the journal
        sent = False
        if link.switched:  # another broker took over: it lacks the retained values
            link.switched = False
            for topic, payload in self._retained_sent.items():
                self.control.put_stale(topic, payload)
        for topic, payload, retain in self.control.take():
            link.publish(topic, payload, retain=retain)
            if retain:
                self._retained_sent[topic] = payload
            sent = True
        if self.gate is not None and not self.gate():
            return sent
        if self.replayer.queue or self.replayer.pending_answers:  # replay (gateway/replay.py)
            sent = self.replayer.pump(link, reader, self._topic) or sent
        room = self.inflight - len(link.pending)
        if room > 0 and self.retry.outstanding:  # refused rows due again go first
            sent = self._resend(reader, room) or sent
            room = self.inflight - len(link.pending)
        if room > 0 and self.journal.stats.last_seq > self._cursor:
            rows = reader.after(self._cursor, min(room, READ_CHUNK))
            for row in rows:
                link.publish(self._topic(row.type), row.payload, seq=row.seq)
                self._cursor = row.seq
            if not rows:  # rows up to last_seq were dropped (drop_oldest) meanwhile
                self._cursor = max(self._cursor, self.journal.stats.last_seq)
            sent = sent or bool(rows)
        return sent

    def _run(self) -> None:
        reader = self.journal.reader()
        client = self.link.client
        try:
            while not self._stop.is_set():
                if not self._socket_open:
                    self._try_connect()
                busy = self._send(reader)
                if self._socket_open:
                    # paho's on_disconnect clears ``connected`` inside loop(): look before
                    was_up = self.link.connected.is_set()
                    rc = client.loop(timeout=0 if busy else IDLE_POLL_SECS)
                    if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS,):
                        self._lost(rc, was_up)
                else:
                    time.sleep(IDLE_POLL_SECS * 4)
                self._flush_acks()
                self._publish_mark()
                self._publish_head()
                self._watch_acks()
            self._shutdown()
        except Exception:
            log.exception("MQTT forwarder stopped by an unexpected error")
            raise
        finally:
            self._flush_acks()
            reader.close()
            self._stopped.set()

    def _watch_acks(self) -> None:
        """Say once when the broker stops acknowledging, and once when it resumes; with
        other endpoints to go to, leave a broker that stopped acknowledging."""
        why = self.stalled()
        if why is not None and self.reconnect.multiple and self._socket_open:
            log.warning("MQTT broker %s: %s; leaving it for the next endpoint", self.link.broker,
                        why, extra=STATE_CHANGE)  # fmt: skip
            self._abandoned = why
            self.link.drop()  # the next loop() sees the connection closed: _lost()
            self.link.waiting_since = None  # said once
            return
        if why is not None and not self._stalled_logged:
            self._stalled_logged = True
            log.warning("MQTT broker %s: %s", self.link.broker, why, extra=STATE_CHANGE)
        elif why is None and self._stalled_logged:
            self._stalled_logged = False
            log.info("MQTT broker %s acknowledges again", self.link.broker, extra=STATE_CHANGE)

    def _lost(self, rc: MQTTErrorCode, was_up: bool) -> None:
        link = self.link
        self._socket_open = False
        if was_up:  # a working session dropped: the next endpoint at once (backoff anew)
            link.connected.clear()
            link.stats.last_error = self._abandoned or f"connection lost: {paho.error_string(rc)}"
            self._abandoned = None
            lost = link.broker
            self.reconnect.lost()
            if self.reconnect.multiple:
                log.warning("MQTT broker %s lost; trying %s next", lost, link.broker,
                            extra=STATE_CHANGE)  # fmt: skip
            link.refused = False
            return
        if not link.refused:  # the broker dropped us before CONNACK (e.g. TLS refused)
            link.stats.last_error = f"connection closed by broker: {paho.error_string(rc)}"
        link.refused = False
        self.reconnect.failed()

    def _shutdown(self) -> None:
        link = self.link
        if self._socket_open and link.connected.is_set():
            self._publish_head(now=float("inf"))  # the last head, whatever the rate limit
            self.control.put(self.topics.status(), b"offline", True)
            deadline = time.monotonic() + 3
            for topic, payload, retain in self.control.take():
                link.publish(topic, payload, retain=retain)
            while link.pending and time.monotonic() < deadline:
                if link.client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
            link.client.disconnect()
            link.client.loop(timeout=0.1)
        self._socket_open = False
