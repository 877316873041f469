"""The bridge's AMQP event source (``bridge.source: amqp``): per-line RabbitMQ quorum queues with
a single active consumer, read over AMQP 0-9-1 with pika (the ``amqp`` extra); one thread owns
the connection and its store connection (an :class:`~gateway.bridge.source.EventSource`).

Constraints (docs/scaling.md, "Bridges sharing the load on RabbitMQ"):

- The gateways are unchanged: they publish MQTT 3.1.1 to the cluster's MQTT plugin (failover
  across ``mqtt.urls``), which routes every event to ``amq.topic``; each line's queue
  (:mod:`gateway.bridge.amqp_lines`: durable, quorum, ``x-single-active-consumer``) is bound
  to that line's event and alarm routing keys. The bridge declares and binds every queue of
  ``bridge.amqp.lines`` on every connection (idempotent) before it counts as subscribed:
  from then on the cluster keeps each event for the lines, replicated, whether a bridge is
  there or not. An event published before its line's queue first existed is not kept.
- One bridge at a time per line, in order: RabbitMQ 3.10 makes the first consumer registered
  on a single-active-consumer queue the active one; the others are standby and the next one
  becomes active when it goes (its connection closed or lost, its node down), receiving first
  what the previous one had not acknowledged, in queue order.
- Spreading: on every connection a bridge registers at once on the lines it prefers
  (:func:`~gateway.bridge.amqp_lines.assign`) and ``standby_delay_secs`` later on
  the others. No fail-back: a bridge that comes back finds its lines taken and stands by.
- Acknowledge after commit: manual acks; messages received in one pass are committed to the
  trace store in one transaction (:func:`~gateway.bridge.source.store_group`) and only then
  acknowledged (``basic.ack`` ``multiple`` up to the group's last tag). ``prefetch`` bounds
  the unacknowledged messages per line. A repeat (committed, not yet acknowledged when the
  bridge or its connection died) is given to the next active bridge and dropped by the store
  as a duplicate of its event ``id``.
- Messages of a connection that ended are not committed: the queue gives them again to
  whichever bridge holds the line now, so two bridges never interleave one line's events.
- Node failover over ``bridge.amqp.urls`` (:class:`gateway.failover.BrokerRotation`): a
  refused or lost connection or a missed heartbeat moves to the next node, with exponential
  backoff once all failed; queues are declared and consumers registered again there.
- No seq tracking: a bridge sees only the lines it holds, and the quorum queues keep what the
  plugin acknowledged to the gateways (docs/scaling.md says what that leaves out).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions

from gateway.bridge.amqp_lines import LineQueue, line_queues, topic_of
from gateway.bridge.config import AmqpSourceSection
from gateway.bridge.source import store_group
from gateway.bridge.store import TraceStore
from gateway.failover import BrokerRotation, OnRotation

__all__ = ["AmqpConsumer", "queue_arguments"]

log = logging.getLogger(__name__)

LOOP_SECS = 0.05
MAX_GROUP = 2000  # messages committed in one transaction at most
CONNECT_TIMEOUT_SECS = 5.0


def queue_arguments() -> dict[str, Any]:
    return {"x-queue-type": "quorum", "x-single-active-consumer": True}


@dataclass(slots=True)
class _Delivery:
    tag: int
    routing_key: str
    body: bytes
    epoch: int


class AmqpConsumer(OnRotation):
    broker_kind = "AMQP node"

    def __init__(
        self,
        store: TraceStore,
        section: AmqpSourceSection,
        *,
        rotation: BrokerRotation,
        node: str,
        enterprise: str,
        stop: threading.Event,
        prefix: str = "salt/v1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.section = section
        self.rotation = rotation  # owned by the Bridge: it outlives a restart of this thread
        self.node = node
        self.stop = stop
        self._clock = clock
        bridges = section.bridges
        if bridges and node not in bridges:
            raise ValueError(
                f"bridge.amqp.bridges {bridges} does not list this bridge's node id {node!r} "
                "(bridge.node_id): every bridge sharing the lines must be listed, itself too"
            )
        self.queues = line_queues(
            section.lines, prefix=prefix, enterprise=enterprise,
            queue_prefix=section.queue_prefix, node=node, bridges=bridges,
        )  # fmt: skip
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # every line's queue declared and bound
        self.refused: dict[str, str] = {}
        self.received = 0
        self.used = False
        self.consuming: dict[str, str] = {}  # queue → consumer tag, on this connection
        self._conn: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._epoch = 0
        self._standby_at: float | None = None
        self._inbox: list[_Delivery] = []

    # -- the thread ------------------------------------------------------------------------------
    def run(self) -> None:
        rot = self.rotation
        try:
            while not self.stop.is_set():
                if self._conn is None:
                    if not rot.due():
                        self.stop.wait(LOOP_SECS)
                        continue
                    self._open()
                    continue
                try:
                    self._conn.process_data_events(time_limit=LOOP_SECS)
                    self._join_standby()
                    self._commit_and_ack()
                except (pika.exceptions.AMQPError, OSError) as exc:
                    self._lost(exc)
            if self._conn is not None:
                try:
                    self._commit_and_ack()
                except (pika.exceptions.AMQPError, OSError) as exc:
                    log.warning("bridge: the last acknowledgements were not sent: %s", exc)
        finally:
            self._close()

    def _open(self) -> None:
        """Connect to the current node, declare and bind every line's queue, consume the
        preferred ones; a failure moves the rotation on (with backoff once all failed)."""
        rot = self.rotation
        tried = rot.current.name
        try:
            self._conn = pika.BlockingConnection(self._parameters())
            self._channel = self._conn.channel()
            self._channel.basic_qos(prefetch_count=self.section.prefetch)
            self._declare()
        except (pika.exceptions.AMQPError, OSError, ssl.SSLError) as exc:
            self._close()
            if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
                self.refused["queues"] = f"{exc.reply_code} {exc.reply_text}"
                log.error("bridge: AMQP node %s refused the line queues: %s", tried, exc)
            first = rot.failures == 0
            delay = rot.failed()
            if first:
                log.warning("bridge: AMQP node %s unreachable: %r (trying %s in %.1f s)",
                            tried, exc, rot.current.name, delay)  # fmt: skip
            return
        previous = rot.last_used
        if rot.connected():
            log.warning(
                "bridge: AMQP node failover: now on %s (endpoint %d of %d) instead of %s "
                "(switch %d)", rot.current.name, rot.current.index + 1, len(rot.endpoints),
                previous.name if previous else "?", rot.switches,
            )  # fmt: skip
        rot.worked()  # the node declared the queues: a working session (gateway/failover.py)
        self._epoch += 1
        self.refused.clear()
        self.connected.set()
        self.subscribed.set()
        preferred = [q for q in self.queues if q.preferred]
        for q in preferred:
            self._consume(q)
        standby = [q.name for q in self.queues if not q.preferred]
        self._standby_at = (
            self._clock() + self.section.standby_delay_secs if standby else None
        )  # fmt: skip
        log.info(
            "bridge %s: on AMQP node %s; active or first in line for %s; standby for %s in %.1f s",
            self.node, rot.current.name, [q.name for q in preferred] or "none",
            standby or "none", self.section.standby_delay_secs,
        )  # fmt: skip

    def _declare(self) -> None:
        ex = self.section.exchange
        for q in self.queues:
            self._channel.queue_declare(q.queue, durable=True, arguments=queue_arguments())
            for key in q.binding_keys:
                self._channel.queue_bind(q.queue, ex, routing_key=key)

    def _consume(self, q: LineQueue) -> None:
        tag = self._channel.basic_consume(
            q.queue, self._on_message, auto_ack=False, consumer_tag=f"{self.node}/{q.name}"
        )  # fmt: skip
        self.consuming[q.queue] = tag

    @property
    def standby_joined(self) -> bool:
        """Registered on every line of the node it is on: the preferred ones at once, the
        others (as standby) ``standby_delay_secs`` later."""
        return self.subscribed.is_set() and self._standby_at is None

    def _join_standby(self) -> None:
        if self._standby_at is None or self._clock() < self._standby_at:
            return
        self._standby_at = None
        for q in self.queues:
            if not q.preferred:
                self._consume(q)

    def _on_message(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        self._inbox.append(_Delivery(method.delivery_tag, method.routing_key, body, self._epoch))

    def _commit_and_ack(self) -> None:
        while self._inbox:
            group = self._inbox[:MAX_GROUP]
            msgs = [(topic_of(d.routing_key), d.body) for d in group]
            if not store_group(self.store, msgs, self.stop):
                return
            del self._inbox[: len(group)]
            self.received += len(group)
            self.store.filled = []
            # tags are per channel and ascending: one ack for the group and all before it
            self._channel.basic_ack(delivery_tag=group[-1].tag, multiple=True)

    def _lost(self, exc: BaseException) -> None:
        """The connection ended: what it delivered and is not committed is dropped (the queue
        gives it to the line's next active consumer); the next node is tried at once."""
        dropped = len(self._inbox)
        self._inbox.clear()
        lost = self.rotation.current.name
        self._close()
        self.rotation.lost()
        log.warning(
            "bridge: AMQP node %s lost: %r; %d messages not committed are delivered again; "
            "trying %s next", lost, exc, dropped, self.rotation.current.name,
        )  # fmt: skip

    def _close(self) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self.consuming.clear()
        self._standby_at = None
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except (pika.exceptions.AMQPError, OSError):
                pass

    def _parameters(self) -> pika.ConnectionParameters:
        s, ep = self.section, self.rotation.current
        kw: dict[str, Any] = {}
        if s.username:
            kw["credentials"] = pika.PlainCredentials(s.username, s.password() or "")
        if ep.url.startswith("amqps://"):
            ctx = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
            if s.cert_file:
                ctx.load_cert_chain(str(s.cert_file), str(s.key_file) if s.key_file else None)
            kw["ssl_options"] = pika.SSLOptions(ctx, ep.host)
        return pika.ConnectionParameters(
            host=ep.host, port=ep.port, virtual_host=s.vhost, heartbeat=s.heartbeat_secs,
            connection_attempts=1, socket_timeout=CONNECT_TIMEOUT_SECS,
            stack_timeout=CONNECT_TIMEOUT_SECS * 2, blocked_connection_timeout=60,
            client_properties={"connection_name": f"saltgw-bridge-{self.node}"}, **kw,
        )  # fmt: skip
