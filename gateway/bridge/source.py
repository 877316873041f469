"""The seam between the bridge service and where its events come from.

An :class:`EventSource` owns one thread's connection to a broker and one trace store
connection; :meth:`EventSource.run` receives messages until the bridge stops, hands each group
to :func:`store_group` and acknowledges the group to the broker only when that returned True
(the group is committed: an acknowledged event is on disk). Two sources exist:

- :class:`gateway.bridge.ingest.Consumer`: MQTT subscriptions on the gateway's broker
  (``bridge.source: mqtt``, the default);
- :class:`gateway.bridge.amqp.AmqpConsumer`: per-line RabbitMQ quorum queues over AMQP 0-9-1
  (``bridge.source: amqp``; the ``amqp`` extra).

The service (:mod:`gateway.bridge.service`), ``/healthz`` and ``/metrics`` read only what the
protocol below names.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from typing import Protocol

from gateway.bridge.store import TraceStore

__all__ = ["EventSource", "store_group"]

log = logging.getLogger(__name__)


class EventSource(Protocol):
    store: TraceStore
    received: int  # messages committed (repeats and bad ones included)
    used: bool  # run() was called (a restart makes a new source)
    connected: threading.Event  # a connection to the broker stands
    # the broker keeps every event for this bridge from now on (subscribed, or queues declared):
    # the gateway of ``saltgw run`` publishes nothing before (runtime.py, Forwarder.gate)
    subscribed: threading.Event
    refused: dict[str, str]  # what the broker refused (a subscription, a queue) → why

    @property
    def broker_kind(self) -> str: ...  # "MQTT broker", "AMQP node": for /healthz

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    def run(self) -> None: ...


def store_group(
    store: TraceStore, msgs: Sequence[tuple[str, bytes]], stop: threading.Event
) -> bool:
    """Commit one group of ``(topic, payload)`` messages; True when it is on disk (stored, or
    quarantined as received when the bridge failed on it: never a poison loop), so the caller
    may acknowledge it. False after a store error (a full disk, a locked file), after waiting
    a second: nothing was committed, nothing may be acknowledged, the caller tries again."""
    try:
        store.ingest(msgs)  # commits
    except sqlite3.OperationalError as exc:  # e.g. a full disk: nothing acked, retried
        log.error("bridge: cannot store %d events: %s (not acknowledged)", len(msgs), exc)
        stop.wait(1.0)
        return False
    except Exception:  # never a poison loop: keep them as they came, acknowledge
        log.exception("bridge: storing %d messages failed; quarantined as received", len(msgs))
        try:
            store.quarantine_raw(msgs, "bridge error while storing the group")
        except sqlite3.Error as exc:
            log.error("bridge: cannot quarantine them either: %s (not acknowledged)", exc)
            stop.wait(1.0)
            return False
    return True
