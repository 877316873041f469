"""Simulated packing lines for the scale bench (bench/scale.py, issue 20): each line is the
gateway's own delivery path — a durable journal (events signed with the line gateway's key)
and the forwarder publishing QoS 1 over MQTT with broker failover (``mqtt.urls``) — fed with
contract events of whole batches (batch.start, bags each with a net-content check, cases,
pallets, a rework unpack, a metal-detector check, an outbound order, batch.end:
tests/support/trace_events.py) at a steady rate.

What a line produced is known exactly (its journal's seqs, its bags' codes), so the bench can
check at the end that every event reached the enterprise store and every bag is in exactly one
uploaded document.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gateway.config.models import MqttSection
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.mqtt import Forwarder, MqttLink
from gateway.signing import EnvelopeSigner
from gateway.topics import Topics
from tests.support.trace_events import LineEvents, batch_events

__all__ = ["SimLine", "line_key"]

ENTERPRISE, SITE, PREFIX = "8035", "daiyue", "salt/v1"


def line_key(line: str) -> bytes:
    """The event signing key of the line's gateway (a bench key; the bridges are told it)."""
    return f"saltgw-scale-bench-key-{line}".encode().ljust(32, b".")


@dataclass
class SimLine:
    """Line ``name`` (gateway ``gw-{name}``) publishing to ``urls`` (tried in that order)."""

    name: str
    urls: list[str]
    folder: Path
    rate: float  # events per second
    bags_per_batch: int = 120
    protocol: str = "3.1.1"
    appended: int = 0
    bags: list[str] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gateway = f"gw-{self.name}"
        self.topics = Topics(PREFIX, ENTERPRISE, SITE, self.name, self.gateway)
        self.journal = Journal(
            self.folder / f"{self.gateway}-journal.db",
            Origin(self.gateway, ENTERPRISE, SITE, self.name),
            keep_delivered_secs=3600, keep_delivered_events=1_000_000,
            signer=EnvelopeSigner(self.gateway, line_key(self.name)),
        ).open()  # fmt: skip
        cfg = MqttSection(urls=self.urls, protocol=self.protocol, keepalive_secs=5,
                          ack_timeout_secs=2.0, reconnect_min_secs=0.2,
                          reconnect_max_secs=2.0)  # fmt: skip
        self.link = MqttLink(cfg, self.topics, f"saltgw-{self.gateway}")
        self.forwarder = Forwarder(self.journal, self.link, self.topics, 200,
                                   backoff_min_secs=0.2, backoff_max_secs=2.0,
                                   ack_timeout_secs=2.0)  # fmt: skip
        self._events = LineEvents(ENTERPRISE, SITE, self.name, self.gateway, PREFIX)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"line-{self.name}", daemon=True)

    def start(self) -> SimLine:
        self.forwarder.start()
        self._thread.start()
        return self

    def _drafts(self, n: int) -> list[EventDraft]:
        batch = f"20261122-{self.name}-{n + 1:03d}"
        plan = batch_events(self._events, batch, self.bags_per_batch)
        self.batches.append(batch)
        self.bags += plan.bags
        out = []
        for ev in plan.events:
            data = ev["data"]
            if "line" in data:  # completed from the type's example: this line's, not L1
                data = {**data, "line": self.name}
            out.append(EventDraft(ev["type"], datetime.fromisoformat(ev["ts"]), data,
                                  device=ev["device"], batch=ev["batch"]))  # fmt: skip
        return out

    def _run(self) -> None:
        """Append at ``rate`` events/s in chunks of 0.1 s, whole batches one after another."""
        queue: list[EventDraft] = []
        started, n = time.monotonic(), 0
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate) - self.appended
            if due <= 0:
                self._stop.wait(0.1)
                continue
            while len(queue) < due:
                queue += self._drafts(n)
                n += 1
            chunk, queue = queue[:due], queue[due:]
            self.journal.append(chunk).result(30)
            self.appended += len(chunk)
        # finish the batch under way: no batch is left without its end
        if queue:
            self.journal.append(queue).result(30)
            self.appended += len(queue)

    def stop_producing(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def drain(self, timeout: float) -> bool:
        """Every event journaled so far acknowledged by a broker, within ``timeout`` s."""
        return self.forwarder.drain(timeout)

    def close(self) -> None:
        self.stop_producing()
        self.forwarder.stop()
        self.journal.close()
