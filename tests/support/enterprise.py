"""An enterprise on one machine (issue 20), for tests/integration/test_enterprise.py and the
scale bench (bench/scale.py): a 3-node RabbitMQ cluster (tests/support/rabbitmq.py), one
PostgreSQL trace store (tests/support/postgres.py), bridge processes sharing the lines' queues
(``bridge.source: amqp``) and writing that store, their documents in one outbox directory (the
platform), and simulated lines publishing to the cluster with failover.

Simulated lines (:class:`SimLine`): each is the gateway's own delivery path — a durable
journal (events signed with the line gateway's key) and the forwarder publishing QoS 1 over
MQTT with broker failover (``mqtt.urls``) — fed with contract events of whole batches
(batch.start, bags each with a net-content check, cases, pallets, a rework unpack, a
metal-detector check, an outbound order, batch.end: tests/support/trace_events.py) at a
steady rate.

What a line produced is known exactly (its journal's seqs, its bags' codes), so the bench can
check at the end that every event reached the enterprise store and every bag is in exactly one
uploaded document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from gateway.config.models import MqttSection
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.mqtt import Forwarder, MqttLink
from gateway.signing import EnvelopeSigner
from gateway.topics import Topics
from tests.support.bridge_docs import facts_of
from tests.support.postgres import PgServer
from tests.support.procs import ROOT
from tests.support.rabbitmq import RabbitCluster
from tests.support.trace_events import LineEvents, batch_events

__all__ = ["Enterprise", "SimLine", "Verdict", "line_key"]

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


CHAIN_KEY = "enterprise-test-chain-key-0123456789abcdef"


class BridgeProcess:
    """``python -m tests.support.bridge_proc`` for one bridge; its counters in a status file."""

    def __init__(self, folder: Path, name: str, raw: dict[str, Any]) -> None:
        self.name = name
        self.cfg = folder / f"{name}.yaml"
        self.status_file = folder / f"{name}.status.json"
        self.log = folder / f"{name}.log"
        self.cfg.write_text(yaml.safe_dump(raw, allow_unicode=True))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **env_extra: str) -> None:
        """Start it; ``env_extra``: more of its environment (a test seam such as
        ``SALTGW_TEST_ACK_DELAY_SECS``, tests/support/bridge_proc.py)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SALTGW_STORE_CHAIN_KEY": CHAIN_KEY,
               **env_extra}  # fmt: skip
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.bridge_proc", str(self.cfg),
                 str(self.status_file)], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.status_file.read_text()))
        except (OSError, ValueError):
            return {}

    def wait_subscribed(self, timeout: float = 30) -> None:
        """Until its queues are declared (its status says ``subscribed``); it must stay up."""

        def ok() -> bool:
            assert self.alive, self.log.read_text()[-3000:]
            return bool(self.status().get("subscribed"))

        wait_until(ok, timeout, f"bridge {self.name} to declare its queues")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, *, strict: bool = False) -> None:
        """SIGTERM, SIGKILL after 30 s; ``strict``: a bridge that needed SIGKILL fails the test."""
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                if strict:
                    raise AssertionError(f"bridge {self.name} did not stop") from None


def wait_until(pred: Any, timeout: float, what: str, poll: float = 0.05) -> float:
    """Poll ``pred`` until true (returns the seconds it took); TimeoutError naming ``what``."""
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
    return time.monotonic() - t0


@dataclass
class Verdict:
    """What reached the enterprise store and the platform, against what the lines produced."""

    produced: int  # events journaled by every line
    stored: int  # distinct events in the store
    missing: int  # seqs of some line not in the store
    stored_twice: int  # events stored more than once (by id or by gateway+seq)
    bags: int  # bags the lines made
    documents: int  # documents in the outbox (one file per number)
    bags_in_documents: int  # distinct bag codes in them
    bags_missing: int  # made, in no document
    bags_doubled: int  # in more than one document
    chain_ok: bool

    @property
    def ok(self) -> bool:
        return (self.missing == self.stored_twice == self.bags_missing == self.bags_doubled == 0
                and self.stored == self.produced and self.chain_ok)  # fmt: skip


class Enterprise:
    """``n_lines`` lines on a 3-node cluster, ``n_bridges`` bridges on one PostgreSQL store."""

    def __init__(self, folder: Path, cluster: RabbitCluster, pg: PgServer, *, n_lines: int,
                 n_bridges: int, rate: float, bags_per_batch: int = 60,
                 queue_prefix: str = "saltgw") -> None:  # fmt: skip
        self.folder = folder
        self.cluster = cluster
        self.store = pg.new_database()
        self.outbox = folder / "platform"
        self.outbox.mkdir(parents=True, exist_ok=True)
        self.site = "daiyue"
        names = [f"L{i + 1:02d}" for i in range(n_lines)]
        urls = cluster.mqtt_urls
        # the lines spread over the nodes: line i lists node (i mod 3) first
        self.lines = [
            SimLine(name, urls[i % len(urls):] + urls[:i % len(urls)], folder, rate,
                    bags_per_batch=bags_per_batch)
            for i, name in enumerate(names)
        ]  # fmt: skip
        keys = folder / "keys"
        keys.mkdir(exist_ok=True)
        gateways = []
        for ln in self.lines:
            kf = keys / f"{ln.gateway}.key"
            kf.write_bytes(line_key(ln.name))
            kf.chmod(0o600)
            gateways.append({"id": ln.gateway, "key_file": str(kf)})
        self.bridge_names = [f"b{i + 1}" for i in range(n_bridges)]
        self.bridges = [
            BridgeProcess(folder, b, self._bridge_config(b, gateways, queue_prefix))
            for b in self.bridge_names
        ]

    def _bridge_config(self, name: str, gateways: list[dict[str, str]],
                       prefix: str) -> dict[str, Any]:  # fmt: skip
        return {
            "gateway": {"id": f"host-{name}", "enterprise": ENTERPRISE, "site": "hq",
                        "line": "HQ"},
            "mqtt": {"url": self.cluster.mqtt_urls[0], "reconnect_min_secs": 0.2,
                     "reconnect_max_secs": 1},
            "journal": {"path": str(self.folder / f"{name}-journal.db")},
            "bridge": {
                "store": self.store,
                "node_id": name,
                "chain_key_env": "SALTGW_STORE_CHAIN_KEY",
                "source": "amqp",
                "amqp": {
                    "urls": self.cluster.amqp_urls,
                    "lines": [f"{self.site}/{ln.name}" for ln in self.lines],
                    "bridges": self.bridge_names, "queue_prefix": prefix, "prefetch": 500,
                    "standby_delay_secs": 5.0, "heartbeat_secs": 5,
                },
                "gateways": gateways,
                "max_delay_secs": 0.5,
                "codes_per_document": 500,
                "upload": {"type": "directory", "path": str(self.outbox), "ack": "on_write"},
                "products": [{"id": "P400", "name": "精制盐", "net_content": "400g"}],
            },
        }  # fmt: skip

    # -- running ---------------------------------------------------------------------------------
    def start_bridges(self, timeout: float = 60) -> None:
        """Start every bridge; return once each has declared and joined the lines' queues."""
        for b in self.bridges:
            b.start()
        for b in self.bridges:
            wait_until(lambda b=b: b.status().get("standby_joined") or not b.alive, timeout,
                       f"bridge {b.name} on every line's queue")  # fmt: skip
            if not b.alive:
                raise RuntimeError(f"bridge {b.name} died: {b.log.read_text()[-3000:]}")

    def start_lines(self) -> None:
        for ln in self.lines:
            ln.start()

    def holder(self, line: SimLine) -> str:
        """The bridge that prefers ``line`` (gateway/bridge/amqp_lines.py)."""
        from gateway.bridge.amqp_lines import preferred_bridge

        every = [f"{self.site}/{ln.name}" for ln in self.lines]
        return preferred_bridge(f"{self.site}/{line.name}", self.bridge_names, every)

    def produced(self) -> int:
        return sum(ln.journal.stats.last_seq for ln in self.lines)

    def stored(self) -> int:
        return int(self._q("SELECT COUNT(*) FROM events")[0][0])

    def last_stored(self, gateways: list[str], after_wall: float) -> float | None:
        """The earliest ``received`` (wall clock) after ``after_wall`` of the gateways' events."""
        rows = self._q(
            "SELECT MIN(received) FROM events WHERE received > ? AND gateway IN ("
            + ",".join("?" * len(gateways)) + ")", (after_wall, *gateways),
        )  # fmt: skip
        return None if rows[0][0] is None else float(rows[0][0])

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        from gateway.bridge.db import open_db

        db = open_db(self.store, readonly=True)
        try:
            return [tuple(r) for r in db.execute(sql, params).fetchall()]
        finally:
            db.close()

    def finish(self, timeout: float = 120) -> None:
        """Stop producing (each line ends its batch), every event acknowledged by the cluster,
        every event in the store, in a document, and every document in the outbox."""
        for ln in self.lines:
            ln.stop_producing()
        for ln in self.lines:
            if not ln.drain(timeout):
                raise TimeoutError(f"{ln.gateway}: events not acknowledged by the cluster")
        total = self.produced()
        wait_until(lambda: self.stored() >= total, timeout, f"{total} events in the store", 0.5)
        wait_until(self._all_uploaded, timeout, "every document built and uploaded", 0.5)

    def _all_uploaded(self) -> bool:
        from gateway.bridge.schema import PENDING_EVENTS_SQL

        pending = self._q(PENDING_EVENTS_SQL)[0][0]
        waiting = self._q("SELECT COUNT(*) FROM documents WHERE state != 'acked'")[0][0]
        return pending == 0 and waiting == 0

    def verdict(self) -> Verdict:
        rows = self._q("SELECT id, gateway, seq FROM events")
        by_gw: dict[str, set[int]] = {}
        for _, gw, seq in rows:
            by_gw.setdefault(gw, set()).add(int(seq))
        ids = Counter(r[0] for r in rows)
        keys = Counter((r[1], int(r[2])) for r in rows)
        missing = sum(
            len(set(range(1, ln.journal.stats.last_seq + 1)) - by_gw.get(ln.gateway, set()))
            for ln in self.lines
        )
        docs = sorted(self.outbox.glob("*.xml*"))
        codes = Counter()  # type: Counter[str]
        for body in docs:
            codes.update(set(facts_of([body.read_bytes()]).codes))
        made = {c for ln in self.lines for c in ln.bags}
        return Verdict(
            produced=self.produced(), stored=len(ids),
            missing=missing,
            stored_twice=sum(n - 1 for n in ids.values() if n > 1)
            + sum(n - 1 for n in keys.values() if n > 1),
            bags=len(made), documents=len(docs),
            bags_in_documents=len(codes),
            bags_missing=len(made - set(codes)),
            bags_doubled=sum(1 for c in made if codes.get(c, 0) > 1),
            chain_ok=self._chain_ok(),
        )  # fmt: skip

    def _chain_ok(self) -> bool:
        env = {**os.environ, "SALTGW_STORE_CHAIN_KEY": CHAIN_KEY}
        proc = subprocess.run(
            [sys.executable, "-m", "gateway", "verify", "--store", self.store],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        return proc.returncode == 0

    def close(self) -> None:
        for ln in self.lines:
            ln.close()
        for b in self.bridges:
            b.stop()
