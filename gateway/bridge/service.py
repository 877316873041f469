"""The bridge as a running service: three threads, each with its own store connection.

- ``bridge-ingest``: the event source (:mod:`gateway.bridge.source`): events → trace store;
  the MQTT consumer (:mod:`gateway.bridge.ingest`), or with ``source: amqp`` the per-line
  RabbitMQ queues (:mod:`gateway.bridge.amqp`, imported only then: the ``amqp`` extra).
- ``bridge-build``: builds due documents into the outbox, reconciles batches, purges expired
  records (:mod:`~gateway.bridge.documents`, :mod:`~gateway.bridge.reconcile`,
  :mod:`~gateway.bridge.retention`).
- ``bridge-upload``: delivers documents (:mod:`gateway.bridge.upload`), when ``upload`` is set.
- ``bridge-public``: keeps the public snapshot the resolver reads up to date and publishes it
  (:mod:`gateway.bridge.public`), when ``public`` is set; it reads the store on a read-only
  connection of its own. A failure there is logged and retried with backoff (the working copy
  and the connection opened again); it never stops the bridge.

``saltgw run`` starts it when the config has a ``bridge:`` section (:meth:`Bridge.for_gateway`),
connected to the gateway's broker; its ``alarm.upload`` events then go through the gateway's
journal like any other event. A bug in a periodic job is logged and the job runs again later.

Every thread is supervised: one that raises is logged with its traceback and started again
(fresh store connection and, for ingest, a fresh MQTT client) after an exponential backoff with
jitter (tenacity), counted in ``restarts`` (``saltgw_bridge_thread_restarts_total``) and named
by ``/healthz`` while it waits. After :data:`RESTART_LIMIT` failures within
:data:`RESTART_WINDOW_SECS` it gives up: the thread ends, :meth:`Bridge.alive` is False and the
gateway stops with exit status 1 and a log line naming the thread and its last error.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import date, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from gateway.bridge.config import BridgeSection
from gateway.bridge.db import describe
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.gateways import KnownGateways
from gateway.bridge.ingest import Consumer, subscriptions
from gateway.bridge.integrity import store_chain_key
from gateway.bridge.lease import uploader_lease
from gateway.bridge.public import SnapshotStats, SnapshotWriter, open_store
from gateway.bridge.reconcile import Reconciler
from gateway.bridge.retention import purge
from gateway.bridge.source import EventSource
from gateway.bridge.store import IngestStats, TraceStore
from gateway.bridge.transport import make_transport
from gateway.bridge.upload import Uploader
from gateway.config.models import ConfigBase
from gateway.events import EventDraft
from gateway.failover import BrokerRotation, is_tls_url
from gateway.topics import Topics

if TYPE_CHECKING:
    from gateway.runtime import Gateway

__all__ = ["Bridge", "node_of"]

log = logging.getLogger(__name__)

TICK_SECS = 0.2
PUBLIC_TICK_SECS = 1.0  # how often the public snapshot's working copy catches up
PUBLIC_BACKOFF_MAX_SECS = 60.0
RESTART_LIMIT = 5  # failures of one thread within the window before the bridge gives up
RESTART_WINDOW_SECS = 600.0

AlarmSink = Callable[..., None]  # (data, event_type="alarm.upload")


def node_of(cfg: ConfigBase) -> str:
    b = cfg.bridge
    if b is not None and b.node_id:
        return b.node_id
    return re.sub(r"[^A-Za-z0-9_]", "", cfg.gateway.id)[:32] or "bridge"


class Bridge:
    def __init__(
        self,
        cfg: ConfigBase,
        *,
        host: str | None = None,
        port: int | None = None,
        urls: list[str] | None = None,
        alarm: AlarmSink | None = None,
    ) -> None:
        """The broker: ``urls`` (endpoints in order, failover), else ``host``/``port`` (one
        endpoint, the scheme of the config's), else the config's ``mqtt.urls``/``mqtt.url``.
        With ``bridge.source: amqp`` the RabbitMQ nodes of ``bridge.amqp.urls`` instead."""
        if cfg.bridge is None:
            raise ValueError("the config has no bridge: section")
        self.cfg = cfg
        self.bcfg: BridgeSection = cfg.bridge
        g = cfg.gateway
        self.tz: tzinfo = g.tz()
        self.node = node_of(cfg)
        self.client_id = self.bcfg.client_id or f"saltgw-bridge-{self.node}"
        root = Topics(cfg.mqtt.topic_prefix, g.enterprise, g.site, g.line, g.id).line_root
        self.filters = subscriptions(root, self.bcfg.topics, self.bcfg.share_group)
        if urls is None and host is not None and port is not None:
            scheme = "mqtts" if is_tls_url(cfg.mqtt.endpoints[0]) else "mqtt"
            urls = [f"{scheme}://{host}:{port}"]
        m = cfg.mqtt
        # the endpoints and the one in use; kept across restarts of the ingest thread
        amqp = self.bcfg.amqp if self.bcfg.source == "amqp" else None
        self.rotation = BrokerRotation(
            amqp.urls if amqp is not None else urls or m.endpoints,
            m.reconnect_min_secs,
            m.reconnect_max_secs,
        )
        # whose events are stored: this config's gateway and bridge.gateways (gateways.py);
        # a key that cannot be read stops the start here, naming it
        self.known = KnownGateways.from_config(cfg)
        self.alarm = alarm
        self.chain_key = store_chain_key(self.bcfg)  # refused here when its file is loose
        self._stop = threading.Event()
        self._wake_upload = threading.Event()
        self._threads: list[threading.Thread] = []
        self.consumer: EventSource | None = None
        self.uploader: Uploader | None = None
        self.reconciler: Reconciler | None = None
        self.documents_built = 0
        self.ingest_stats = IngestStats()  # kept across restarts of the ingest thread
        self.restarts: dict[str, int] = {}  # thread name → restarts after an error
        self.failing: dict[str, str] = {}  # thread name → its error, while it waits to restart
        self.public_stats: SnapshotStats | None = (
            SnapshotStats() if self.bcfg.public is not None else None
        )

    @classmethod
    def for_gateway(cls, gw: Gateway) -> Bridge:
        """The bridge of ``saltgw run``: the gateway's broker; alarms into its journal."""
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[Any]] = set()

        def alarm(data: dict[str, Any], event_type: str = "alarm.upload") -> None:
            # the alarm belongs to the batch it is about, not to the one running now
            draft = EventDraft(event_type, datetime.now(gw.tz), data, batch=data.get("batch"))

            def go() -> None:
                task = loop.create_task(gw.accept([draft]), name="alarm-bridge-upload")
                pending.add(task)  # referenced until done (the gateway awaits alarm- tasks)
                task.add_done_callback(pending.discard)

            try:
                loop.call_soon_threadsafe(go)
            except RuntimeError:  # the loop is closing: the alarm is in the log
                pass

        urls = [ep.url for ep in gw.link.rotation.endpoints]  # the gateway's (with --broker)
        return cls(gw.cfg, urls=urls, alarm=alarm)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Bridge:
        self.consumer = self._new_consumer()
        self._spawn("bridge-ingest", self._run_consumer)
        self._spawn("bridge-build", self._run_builder)
        if self.bcfg.upload is not None:
            self._spawn("bridge-upload", self._run_uploader)
        if self.bcfg.public is not None:
            self._spawn("bridge-public", self._run_public)
        log.info(
            "bridge %s: store %s, profile %s, upload %s; events stored from gateways %s",
            self.node, describe(self.bcfg.store), self.bcfg.profile,
            self.bcfg.upload.type if self.bcfg.upload else "none", ", ".join(self.known.ids),
        )  # fmt: skip
        return self

    def _new_consumer(self) -> EventSource:
        store = TraceStore(
            self.bcfg.store,
            grace_secs=self.bcfg.seq_gap_grace_secs,
            # no bridge of a share group or of shared AMQP lines sees every seq of a gateway
            track_seq=self.bcfg.share_group is None and self.bcfg.source == "mqtt",
            chain_key=self.chain_key,
            known=self.known,
        )
        store.stats = self.ingest_stats
        c: EventSource
        if self.bcfg.amqp is not None and self.bcfg.source == "amqp":
            from gateway.bridge.amqp import AmqpConsumer  # the amqp extra (pika)

            try:
                c = AmqpConsumer(
                    store, self.bcfg.amqp, rotation=self.rotation, node=self.node,
                    enterprise=self.cfg.gateway.enterprise, stop=self._stop,
                    prefix=self.cfg.mqtt.topic_prefix,
                )  # fmt: skip
            except BaseException:
                store.close()
                raise
            if self.consumer is not None:
                c.received = self.consumer.received
            return c
        c = Consumer(
            store,
            self.cfg.mqtt,
            rotation=self.rotation,
            client_id=self.client_id,
            filters=self.filters,
            session_expiry_secs=self.bcfg.session_expiry_secs,
            stop=self._stop,
            prefix=self.cfg.mqtt.topic_prefix,
            alarm=self.alarm,
        )
        if self.consumer is not None:
            c.received = self.consumer.received
        return c

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=self._supervise, args=(name, target), name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _backoff_sleep(self, secs: float) -> None:
        self._stop.wait(secs)  # a stop ends the wait

    def _supervise(self, name: str, target: Callable[[], None]) -> None:
        """Run ``target`` until the bridge stops; restart it with backoff when it raises."""
        recent: deque[float] = deque()

        def give_up(state: RetryCallState) -> bool:
            now = time.monotonic()
            recent.append(now)
            while recent and now - recent[0] > RESTART_WINDOW_SECS:
                recent.popleft()
            return self._stop.is_set() or len(recent) > RESTART_LIMIT

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self.failing[name] = f"{type(exc).__name__}: {exc}"
            wait = state.next_action.sleep if state.next_action else 0.0
            log.error("bridge thread %s failed; restarting in %.1f s (%d restarts)", name, wait,
                      self.restarts[name], exc_info=exc)  # fmt: skip

        retrying = Retrying(
            retry=retry_if_exception_type(Exception),
            stop=give_up,
            wait=wait_exponential_jitter(multiplier=0.5, max=30.0, jitter=0.5),
            sleep=self._backoff_sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self.failing.pop(name, None)
                    target()
        except Exception as exc:
            self.failing[name] = f"{type(exc).__name__}: {exc}"
            if not self._stop.is_set():
                log.critical("bridge thread %s failed %d times within %.0f s; giving up (%s)",
                             name, len(recent), RESTART_WINDOW_SECS, self.failing[name],
                             exc_info=exc)  # fmt: skip

    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def listening(self) -> bool:
        """The gateway may publish events: the bridge is subscribed on its current connection,
        so the broker delivers or keeps every event for it. Also True once its ingest thread
        has died (then /healthz says so, and MES must not be held up by it)."""
        c = self.consumer
        if c is None:
            return False
        ingest = self._threads[0] if self._threads else None
        return c.subscribed.is_set() or ingest is None or not ingest.is_alive()

    def problems(self) -> list[str]:
        """Why the bridge is not ready, one reason each (``/healthz``); empty when it is."""
        out: list[str] = []
        for t in self._threads:
            if not t.is_alive() and not self._stop.is_set():
                why = self.failing.get(t.name, "see the log")
                out.append(f"bridge: thread {t.name} has stopped ({why}); the gateway is stopping")
        for name, why in sorted(self.failing.items()):
            if any(t.name == name and t.is_alive() for t in self._threads):
                n = self.restarts.get(name, 0)
                out.append(f"bridge: thread {name} failed ({why}); restarting ({n} restarts)")
        c = self.consumer
        if c is None or out:
            return out
        held = "events wait in the gateway's journal"
        if not c.connected.is_set():
            out.append(f"bridge: not connected to the {c.broker_kind} {c.host}:{c.port}")
        elif c.refused:
            for f, why in sorted(c.refused.items()):
                out.append(f"bridge subscription to {f!r} refused by the broker: {why} ({held}; "
                           "asked again with backoff)")  # fmt: skip
        elif not c.subscribed.is_set():
            out.append(f"bridge: waiting for the broker to grant its subscriptions ({held})")
        return out

    def stop(self, timeout: float = 15.0, *, quiet_secs: float = 0.3) -> None:
        """Let events in flight arrive (until none came for ``quiet_secs``, 3 s at most), then
        stop the threads; what is not yet uploaded stays in the outbox for the next start."""
        c = self.consumer
        if c is not None and c.connected.is_set():
            end = time.monotonic() + 3.0
            seen = -1
            while c.received != seen and time.monotonic() < end:
                seen = c.received
                time.sleep(quiet_secs)
        self._stop.set()
        self._wake_upload.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("bridge thread %s did not stop within %.0f s", t.name, timeout)

    def status(self) -> dict[str, Any]:
        c = self.consumer
        u = self.uploader
        return {
            "received": c.received if c else 0,
            "store": (
                {"accepted": c.store.stats.accepted, "duplicates": c.store.stats.duplicates,
                 "quarantined": c.store.stats.quarantined} if c else {}
            ),
            "documents_built": self.documents_built,
            "upload": (
                {"acked": u.stats.acked, "sent": u.stats.sent, "failed": u.stats.failed,
                 "quarantined": u.stats.quarantined} if u else None
            ),
        }  # fmt: skip

    # -- threads ---------------------------------------------------------------------------------
    def _run_consumer(self) -> None:
        c = self.consumer
        if c is None or c.used:  # a restart: a fresh client and store connection
            c = self.consumer = self._new_consumer()
        c.used = True
        try:
            c.run()
        finally:
            c.store.close()

    def _run_builder(self) -> None:
        db = TraceStore(self.bcfg.store, chain_key=self.chain_key).db
        g = self.cfg.gateway
        builder = DocumentBuilder(
            db, self.bcfg, enterprise=g.enterprise, node=self.node, tz=self.tz
        )
        rec = self.reconciler = Reconciler(
            db, self.bcfg.reconcile.incomplete_alarm_secs, self.alarm
        )
        last_reconcile = last_purge = float("-inf")
        try:
            while not self._stop.wait(TICK_SECS):
                now = time.monotonic()
                try:
                    built = builder.build_ready()
                    if built:
                        self.documents_built += len(built)
                        self._wake_upload.set()
                    if now - last_reconcile >= self.bcfg.reconcile.interval_secs:
                        last_reconcile = now
                        rec.run_once()
                    if now - last_purge >= self.bcfg.retention.purge_interval_secs:
                        last_purge = now
                        purge(db, self.bcfg, date.today(), key=self.chain_key)
                except Exception:  # a bug or a store error: logged, tried again next tick
                    log.exception("bridge: document/reconcile job failed")
                    self._stop.wait(1.0)
        finally:
            db.close()

    def _run_uploader(self) -> None:
        assert self.bcfg.upload is not None
        db = TraceStore(self.bcfg.store, chain_key=self.chain_key).db
        # several bridges on one store: one uploads at a time (gateway/bridge/lease.py)
        lease = uploader_lease(db, self.bcfg.store)
        up = self.uploader = Uploader(
            db, make_transport(self.bcfg.upload), self.bcfg.upload.retry, self._stop, lease=lease
        )
        try:
            while not self._stop.is_set():
                try:
                    up.run_once()
                except Exception:
                    log.exception("bridge: upload loop failed")
                    self._stop.wait(1.0)
                self._wake_upload.wait(1.0)
                self._wake_upload.clear()
        finally:
            lease.release()
            up.db.close()

    def _run_public(self) -> None:
        """Bring the snapshot's working copy up to date every second and publish it when due;
        any failure (the store not there yet, a full disk) is logged, counted and tried again
        after a backoff, with a fresh working copy and store connection."""
        pub, stats = self.bcfg.public, self.public_stats
        assert pub is not None and stats is not None
        writer: SnapshotWriter | None = None
        store = None
        failures = 0
        try:
            while not self._stop.wait(PUBLIC_TICK_SECS):
                try:
                    if writer is None:
                        writer = SnapshotWriter(
                            pub, self.bcfg, enterprise=self.cfg.gateway.enterprise,
                            source=self.node, clock=lambda: datetime.now(self.tz), stats=stats,
                        )  # fmt: skip
                    if store is None:
                        store = open_store(self.bcfg.store)
                    writer.run_once(store, time.monotonic())
                    failures = 0
                except Exception:
                    failures += 1
                    stats.failures += 1
                    wait = min(PUBLIC_BACKOFF_MAX_SECS, 2.0**failures)
                    log.exception("bridge: public snapshot %s failed; trying again in %.0f s",
                                  pub.path, wait)  # fmt: skip
                    for c in (writer, store):
                        if c is not None:
                            c.close()
                    writer = store = None
                    self._stop.wait(wait)
        finally:
            for c in (writer, store):
                if c is not None:
                    c.close()
