"""The UNS output: tag telemetry on the gateway's broker, under the line (README.md here).

One paho client of its own (client id ``{gateway client id}-uns``; the broker settings and TLS
of the ``mqtt:`` section, set up by :class:`gateway.mqtt.MqttLink` without the gateway's status
and last will), driven by one thread of its own, like the event forwarder:

- every record is one QoS 1 message on ``…/{line}/tags/{device}`` (not retained);
- each tag's latest value is retained on ``…/{line}/tag/{device}/{tag}``, at most every
  ``telemetry.retained_interval_ms`` (the latest value wins; a change of quality goes out at
  once);
- the store's cursor moves only past records whose message and retained values the broker
  acknowledged (PUBACK): after a crash or an outage, what was not acknowledged is sent again
  (at-least-once, de-duplicate by ``id``);
- reconnects with exponential backoff; it subscribes to nothing, so nothing a peer sends
  reaches it; an unexpected error in one round is logged and the thread goes on.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import ssl
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from paho.mqtt.enums import MQTTErrorCode

from gateway.config.models import MqttSection
from gateway.mqtt import STATE_CHANGE, MqttLink
from gateway.telemetry.record import Quality, TagPoint, TagRecord, TelemetryFeed
from gateway.topics import Topics

__all__ = ["UnsOutput", "UnsStats", "record_payload", "tag_payload"]

log = logging.getLogger(__name__)

IDLE_POLL_SECS = 0.005
READ_CHUNK = 200


@dataclass(slots=True)
class UnsStats:
    records_published: int = 0  # per-record messages handed to paho (again after a reconnect)
    acked_upto: int = 0  # the store cursor: every record up to it acknowledged by the broker
    retained_published: int = 0  # retained per-tag messages handed to paho
    retained_coalesced: int = 0  # per-tag values replaced by a newer one before being sent
    errors: int = 0  # rounds that failed unexpectedly (logged)


def record_payload(r: TagRecord) -> bytes:
    """``{"id", "ts", "values"}`` plus ``"quality"`` for tags not good and ``"coalesced"``."""
    body: dict[str, Any] = {
        "id": r.id,
        "ts": r.ts.isoformat(timespec="milliseconds"),
        "values": {t: p.value for t, p in r.points.items()},
    }
    bad = {t: str(p.quality) for t, p in r.points.items() if p.quality is not Quality.GOOD}
    if bad:
        body["quality"] = bad
    if r.coalesced:
        body["coalesced"] = r.coalesced
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def tag_payload(p: TagPoint, ts: str, unit: str | None) -> bytes:
    body = {"value": p.value, "ts": ts, "quality": str(p.quality), "unit": unit}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class UnsOutput:
    name = "uns"

    def __init__(
        self,
        mqtt_cfg: MqttSection,
        topics: Topics,
        client_id: str,
        *,
        retained_interval_ms: int = 1000,
        broker_url: str | None = None,
    ) -> None:
        self.link = MqttLink(mqtt_cfg, topics, client_id, broker_url=broker_url, announce=False)
        self.topics = topics
        self.inflight = mqtt_cfg.inflight
        self.retained_interval = retained_interval_ms / 1000.0
        self.ack_timeout = mqtt_cfg.ack_timeout_secs
        self.stats = UnsStats()
        self._feed: TelemetryFeed | None = None
        self._units: dict[tuple[str, str], str | None] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sent_upto = 0  # highest record id published
        self._acked = 0  # highest record id acknowledged to the store
        # record id -> messages of it not yet acknowledged (or retained values not yet sent)
        self._outstanding: Counter[int] = Counter()
        self._heap: list[int] = []  # ids in _outstanding (lazily cleaned)
        # tag -> (record id, ts, point): the latest value not yet sent, in order of update
        self._retained: dict[tuple[str, str], tuple[int, str, TagPoint]] = {}
        self._not_good: set[tuple[str, str]] = set()  # tags whose last quality is not good
        self._retained_quality: dict[tuple[str, str], Quality] = {}  # last sent
        self._urgent = False  # a quality changed: send the retained values now
        self._next_retained = 0.0
        self._socket_open = False
        # which broker endpoint next, and when (mqtt.urls; gateway/failover.py): a lost session
        # moves on to the next endpoint at once
        self.reconnect = self.link.rotation
        # the last retained value sent per tag: sent again to a broker that takes over
        self._retained_sent: dict[tuple[str, str], tuple[int, str, TagPoint]] = {}
        self._topic_cache: dict[str, str] = {}

    # -- TelemetryOutput -------------------------------------------------------------------------
    def start(self, feed: TelemetryFeed) -> None:
        self._feed = feed
        self._units = {(m.device, m.tag): m.unit for m in feed.metas()}
        self._acked = self._sent_upto = getattr(feed, "cursor", 0)
        self._thread = threading.Thread(target=self._run, name="telemetry-uns", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float) -> None:
        """Give the broker up to ``timeout`` s to acknowledge what is sent, then disconnect."""
        deadline = time.monotonic() + timeout
        while self.alive() and self.link.connected.is_set() and time.monotonic() < deadline:
            waiting = self._feed is not None and self._feed.wait(0)  # committed, not acked
            if not (self.link.pending or self._retained or waiting):
                break
            time.sleep(0.02)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(max(0.5, deadline - time.monotonic()))

    def stalled(self) -> str | None:
        """Why nothing is delivered although records wait, else None (for /healthz)."""
        secs = self.link.stalled_secs()
        if secs >= self.ack_timeout:
            return f"no PUBACK for {secs:.0f} s with {len(self.link.pending)} messages waiting"
        if not self.link.connected.is_set() and self.link.stats.connects + \
                self.link.stats.connect_failures > 0:  # fmt: skip
            return f"not connected: {self.link.stats.last_error or 'connecting'}"
        return None

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        client = self.link.client
        while not self._stop.is_set():
            try:
                if not self._socket_open:
                    self._try_connect()
                busy = self._send()
                if self._socket_open:
                    was_up = self.link.connected.is_set()
                    rc = client.loop(timeout=0 if busy else IDLE_POLL_SECS)
                    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        self._lost(rc, was_up)
                else:
                    time.sleep(IDLE_POLL_SECS * 4)
                self._flush_acks()
            except Exception:  # a bug in one round must not end telemetry: log, go on
                self.stats.errors += 1
                log.exception("UNS telemetry output: a round failed; going on")
                time.sleep(0.1)
        self._close()

    def _close(self) -> None:
        if self._socket_open:
            try:
                self.link.client.disconnect()
                self.link.client.loop(timeout=0.1)
            except Exception:  # closing: nothing left to save
                pass
        self._socket_open = False
        self._flush_acks()
        close = getattr(self._feed, "close", None)
        if callable(close):
            close()

    def _try_connect(self) -> None:
        if not self.reconnect.due():
            return
        try:
            self.link.connect()
            self._socket_open = True
        except (OSError, ssl.SSLError) as exc:
            self.link.stats.connect_failures += 1
            self.link.stats.last_error = f"cannot connect to {self.link.broker}: {exc}"
            tried, first = self.link.broker, self.reconnect.failures == 0
            delay = self.reconnect.failed()
            if first:
                log.warning("UNS telemetry: broker %s unreachable: %s (trying %s in %.1f s)",
                            tried, exc, self.link.broker, delay, extra=STATE_CHANGE)  # fmt: skip

    def _lost(self, rc: MQTTErrorCode, was_up: bool) -> None:
        self._socket_open = False
        self.link.refused = False
        if was_up:  # a working session ended: the next endpoint at once
            self.link.connected.clear()
            self.link.stats.last_error = f"connection lost: {rc}"
            lost = self.link.broker
            self.reconnect.lost()
            if self.reconnect.multiple:
                log.warning("UNS telemetry: broker %s lost; trying %s next", lost,
                            self.link.broker, extra=STATE_CHANGE)  # fmt: skip
            return
        self.reconnect.failed()

    def _hold(self, rid: int) -> None:
        if self._outstanding[rid] == 0:
            heapq.heappush(self._heap, rid)
        self._outstanding[rid] += 1

    def _release(self, rid: int) -> None:
        n = self._outstanding[rid] - 1
        if n > 0:
            self._outstanding[rid] = n
        else:
            del self._outstanding[rid]

    def _send(self) -> bool:
        link = self.link
        if not link.connected.is_set() or self._feed is None:
            return False
        if link.switched:  # another broker took over: it lacks the retained values sent so far
            link.switched = False
            again = {k: v for k, v in self._retained_sent.items() if k not in self._retained}
            self._retained = {**again, **self._retained}  # older records first (the cursor)
            self._urgent = True
        sent = False
        now = time.monotonic()
        due = bool(self._retained) and (self._urgent or now >= self._next_retained)
        room = self.inflight - len(link.pending)
        if room > 0:  # records first; while retained values are due, half the room for them
            records = self._read(min(room // 2 if due else room, READ_CHUNK) or 1)
            for r in records:
                self._publish_record(r)
            sent = bool(records)
        room = self.inflight - len(link.pending)
        if due and room > 0:
            self._publish_retained(room)
            if not self._retained:  # all out: the next round after the interval
                self._next_retained = now + self.retained_interval
                self._urgent = False
            sent = True
        return sent

    def _read(self, limit: int) -> Sequence[TagRecord]:
        assert self._feed is not None
        read_after = getattr(self._feed, "read_after", None)
        if callable(read_after):
            out: Sequence[TagRecord] = read_after(self._sent_upto, limit)
            return out
        return [r for r in self._feed.read(limit + len(self._outstanding))
                if r.id > self._sent_upto][:limit]  # fmt: skip

    def _publish_record(self, r: TagRecord) -> None:
        topic = self._topic_cache.get(r.device)
        if topic is None:
            topic = self._topic_cache[r.device] = self.topics.tags(r.device)
        self._hold(r.id)
        try:
            self.link.publish(topic, record_payload(r), seq=r.id)
        except Exception:
            # not handed over (the connection dropped under the publish): no PUBACK will
            # release this hold, which would pin the store's cursor below this record for
            # ever; the record is read again (_sent_upto did not move) and published again
            self._release(r.id)
            raise
        self.stats.records_published += 1
        self._sent_upto = r.id
        # latest value per tag, in order of update: the first entry is the oldest record any
        # waiting value comes from, which the store's cursor must not pass (_flush_acks)
        ts = r.ts.isoformat(timespec="milliseconds")
        retained, not_good = self._retained, self._not_good
        replaced = 0
        for tag, p in r.points.items():
            key = (r.device, tag)
            if retained.pop(key, None) is not None:
                replaced += 1
            retained[key] = (r.id, ts, p)
            if p.quality is not Quality.GOOD or key in not_good:
                if self._retained_quality.get(key, Quality.GOOD) is not p.quality:
                    self._urgent = True
                if p.quality is Quality.GOOD:
                    not_good.discard(key)
                else:
                    not_good.add(key)
        self.stats.retained_coalesced += replaced

    def _publish_retained(self, room: int) -> None:
        """Up to ``room`` of the waiting retained values, oldest update first."""
        batch = list(itertools.islice(self._retained.items(), room))
        for key, (rid, ts, p) in batch:
            del self._retained[key]
            device, tag = key
            payload = tag_payload(p, ts, self._units.get(key))
            self._hold(rid)  # released by its PUBACK
            try:
                self.link.publish(self.topics.tag(device, tag), payload, retain=True, seq=rid)
            except Exception:
                # not handed over: release the hold (no PUBACK will) and put the value back
                # first in line (it is older than every value still waiting)
                self._release(rid)
                self._retained = {key: (rid, ts, p), **self._retained}
                raise
            self._retained_quality[key] = p.quality
            self._retained_sent[key] = (rid, ts, p)
            self.stats.retained_published += 1

    def _flush_acks(self) -> None:
        for rid in self.link.take_acked():
            self._release(rid)
        heap = self._heap
        while heap and heap[0] not in self._outstanding:
            heapq.heappop(heap)
        upto = heap[0] - 1 if heap else self._sent_upto
        if self._retained:  # values not yet sent hold the cursor at their oldest record
            upto = min(upto, next(iter(self._retained.values()))[0] - 1)
        if upto > self._acked and self._feed is not None:
            self._acked = self.stats.acked_upto = upto
            self._feed.ack(upto)
