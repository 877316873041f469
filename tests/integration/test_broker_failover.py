"""Broker failover (mqtt.urls, gateway/failover.py) with real mosquitto nodes on free ports.

Events flow (100/s) from a journal through the forwarder; the node in use is killed (SIGKILL)
or frozen (SIGSTOP: a hung broker that stops acknowledging). The time from the kill to the
first event acknowledged by the node that took over is measured on the forwarder's own
counters (polled every 5 ms, no sleeps that decide anything) and must be <= 5 s; the switch's
log line says which node. Nothing is lost: subscribers on every node together receive every
seq, and the bridge's trace store ends with every seq (what the dead node held for the bridge
is replayed from the gateway's journal: gateway/bridge/gaps.py).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.bridge.service import Bridge
from gateway.config.models import MqttSection
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.mqtt import Forwarder, MqttLink
from gateway.signing import EnvelopeSigner, event_key
from gateway.topics import Topics
from tests.support.bridge_env import bridge_config, wait
from tests.support.broker import Mosquitto, mosquitto_available, mosquitto_nodes
from tests.support.trace_events import _complete

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed"),
]

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
FAILOVER_LIMIT_SECS = 5.0
EVENTS = "salt/v1/8035/daiyue/L1/event/#"


def bag(i: int) -> EventDraft:
    data, device = _complete("pack.bag", {"code": f"8035FO{i:07d}"}, None)
    return EventDraft("pack.bag", T0 + timedelta(seconds=i), data, device=device, batch="B1")


class Line:
    """Appends one bag every 10 ms to the journal until stopped."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-line", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.journal.append([bag(self.n)]).result(10)
            self.n += 1

    def __enter__(self) -> Line:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


class Watcher:
    """A plain subscriber on one node: the seqs it received, the status messages."""

    def __init__(self, port: int, name: str, protocol: str, gateway: str) -> None:
        v5 = protocol == "5"
        self.seqs: set[int] = set()
        self.status: list[paho.MQTTMessage] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"watch-{name}",
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(EVENTS, qos=1)
        self.client.subscribe(f"salt/v1/8035/daiyue/gateway/{gateway}/status/#", qos=1)
        self.client.loop_start()

    def _on_message(self, c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        if "/event/" in msg.topic:
            self.seqs.add(json.loads(msg.payload)["seq"])
        else:
            self.status.append(msg)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Mosquitto]]:
    with mosquitto_nodes(tmp_path) as out:
        yield out


def gateway_link(
    tmp_path: Path, nodes: list[Mosquitto], protocol: str, gw: str, **mqtt: Any
) -> tuple[Journal, MqttLink, Forwarder]:
    cfg = MqttSection(
        urls=[n.url for n in nodes], protocol=protocol, keepalive_secs=5, **mqtt
    )  # fmt: skip
    topics = Topics("salt/v1", "8035", "daiyue", "L1", gw)
    journal = Journal(
        tmp_path / f"{gw}-journal.db", Origin(gw, "8035", "daiyue", "L1"),
        keep_delivered_secs=3600, keep_delivered_events=100_000,
    ).open()  # fmt: skip
    link = MqttLink(cfg, topics, f"{gw}-link")
    fwd = Forwarder(journal, link, topics, 100, backoff_min_secs=0.2, backoff_max_secs=1.0,
                    ack_timeout_secs=cfg.ack_timeout_secs)  # fmt: skip
    return journal, link, fwd


def first_ack_on(link: MqttLink, port: int, since: float, timeout: float) -> float:
    """Seconds from ``since`` to the first PUBACK of a session on the node at ``port`` (the
    link's own timestamp; polled every 5 ms, up to ``timeout``). PUBACKs of the old node still
    read after ``since`` do not count."""
    deadline = since + timeout
    while time.monotonic() < deadline:
        ep, first = link.rotation.in_use, link.stats.first_ack_at
        if ep is not None and ep.port == port and first is not None:
            return first - since
        time.sleep(0.005)
    raise AssertionError(f"no PUBACK from the node at port {port} within {timeout} s")


def failover_line(caplog: pytest.LogCaptureFixture, port: int) -> logging.LogRecord:
    want = f"MQTT broker failover: now on 127.0.0.1:{port}"
    recs = [r for r in caplog.records if r.getMessage().startswith(want)]
    assert len(recs) == 1, [r.getMessage() for r in caplog.records]
    return recs[0]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
@pytest.mark.parametrize("how", ["kill", "hang"])
def test_the_gateway_fails_over_within_5_s_and_loses_nothing(
    tmp_path: Path, nodes: list[Mosquitto], protocol: str, how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="gateway.mqtt")
    a, b = nodes
    journal, link, fwd = gateway_link(tmp_path, nodes, protocol, "gw-fo", ack_timeout_secs=1.0)
    watchers = [Watcher(n.port, f"{i}", protocol, "gw-fo") for i, n in enumerate(nodes)]
    fwd.start()
    try:
        with Line(journal) as line:
            wait(lambda: len(watchers[0].seqs) >= 100, 20, "100 events through node A")
            assert link.rotation.in_use is not None and link.rotation.in_use.port == a.port
            assert not watchers[1].seqs  # independent nodes: B saw nothing yet
            t_kill, wall_kill, n_kill = time.monotonic(), time.time(), line.n
            if how == "kill":
                a.kill()
            else:  # hung: connections stay open, nothing is acknowledged
                assert a.proc is not None
                os.kill(a.proc.pid, signal.SIGSTOP)
            secs = first_ack_on(link, b.port, t_kill, 15)
            switched = link.rotation.switched_at
            assert switched is not None and 0 < switched - t_kill <= secs
            record = failover_line(caplog, b.port)
            assert 0 < record.created - wall_kill <= FAILOVER_LIMIT_SECS
            print(f"\nfailover ({how}, MQTT {protocol}): switched after {switched - t_kill:.3f} s,"
                  f" first event acknowledged by B after {secs:.3f} s")  # fmt: skip
            assert secs <= FAILOVER_LIMIT_SECS
            wait(lambda: journal.stats.delivered >= n_kill + 50, 10, "50 more events after it")
        assert fwd.drain(20), "every event acknowledged"
        last = journal.stats.last_seq
        assert last == line.n
        if how == "hang":  # what A acknowledged before it froze reaches its subscriber now
            assert a.proc is not None
            os.kill(a.proc.pid, signal.SIGCONT)
        every = set(range(1, last + 1))
        wait(lambda: watchers[0].seqs | watchers[1].seqs >= every, 20, "every seq received")
        assert (watchers[0].seqs | watchers[1].seqs) == every
        # the status topic says which node: retained JSON beside 'online' (both protocols)
        wait(lambda: any(m.topic.endswith("/status/broker") for m in watchers[1].status), 10,
             "the status/broker message on B")  # fmt: skip
        body = json.loads(
            next(m.payload for m in watchers[1].status if m.topic.endswith("/status/broker"))
        )
        assert body["broker"] == f"127.0.0.1:{b.port}" and body["endpoint"] == 2
        assert body["switches"] == 1
        online = [m for m in watchers[1].status if m.topic.endswith("/status")]
        assert online and online[-1].payload == b"online"
        if protocol == "5":
            props = dict(online[-1].properties.UserProperty)  # type: ignore[union-attr]
            assert props == {"broker": f"127.0.0.1:{b.port}", "endpoint": "2"}
    finally:
        fwd.stop()
        for w in watchers:
            w.close()
        journal.close()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_the_bridge_fails_over_and_its_store_ends_with_every_seq(
    tmp_path: Path, nodes: list[Mosquitto], protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Gateway and bridge on node A; A is killed while events flow. Both move to B (the gate
    holds the gateway's events until the bridge is subscribed there); what A had acknowledged
    and not yet delivered to the bridge is lost with A, found missing by seq tracking and
    replayed from the gateway's journal."""
    caplog.set_level(logging.INFO)
    a, b = nodes
    urls = [n.url for n in nodes]
    cfg = bridge_config(tmp_path, a.port, "fo", seq_gap_grace_secs=0.5)
    cfg.mqtt = cfg.mqtt.model_copy(update={"protocol": protocol})
    topics = Topics("salt/v1", "8035", "daiyue", "L1", "gw-fo")
    journal = Journal(
        tmp_path / "journal.db", Origin("gw-fo", "8035", "daiyue", "L1"),
        keep_delivered_secs=3600, keep_delivered_events=100_000,
        signer=EnvelopeSigner("gw-fo", event_key(cfg)),  # the bridge's own gateway: its key
    ).open()  # fmt: skip
    link = MqttLink(MqttSection(urls=urls, protocol=protocol, keepalive_secs=5), topics, "gw-fo")
    fwd = Forwarder(journal, link, topics, 100, backoff_min_secs=0.2, backoff_max_secs=1.0)
    bridge = Bridge(cfg, urls=urls).start()
    fwd.gate = bridge.listening
    fwd.start()
    store = cfg.bridge.store if cfg.bridge else Path()

    def seqs() -> list[int]:
        with sqlite3.connect(store) as db:
            return [r[0] for r in db.execute("SELECT seq FROM events ORDER BY seq")]

    try:
        with Line(journal) as line:
            wait(lambda: bridge.ingest_stats.accepted >= 100, 20, "100 events stored via A")
            c = bridge.consumer
            assert c is not None
            assert bridge.rotation.in_use is not None and bridge.rotation.in_use.port == a.port
            t_kill, n_kill = time.monotonic(), line.n
            a.kill()
            # received from B: counted after the bridge's session on B stands (messages of A
            # still read after the kill do not count); polled every 5 ms
            deadline, on_b = t_kill + 15, None
            while time.monotonic() < deadline:
                ep = bridge.rotation.in_use
                if on_b is None and ep is not None and ep.port == b.port:
                    on_b = c.received
                if on_b is not None and c.received > on_b:
                    break
                time.sleep(0.005)
            secs = time.monotonic() - t_kill
            assert on_b is not None and c.received > on_b, "nothing received from B"
            switched = bridge.rotation.switched_at
            assert switched is not None and switched - t_kill <= secs
            print(f"\nbridge failover (MQTT {protocol}): switched after {switched - t_kill:.3f} s,"
                  f" first event received from B after {secs:.3f} s")  # fmt: skip
            assert secs <= FAILOVER_LIMIT_SECS
            assert any(
                r.getMessage().startswith(f"bridge: broker failover: now on 127.0.0.1:{b.port}")
                for r in caplog.records
            )
            wait(lambda: journal.stats.delivered >= n_kill + 50, 10, "50 more events after it")
        assert fwd.drain(20)
        last = journal.stats.last_seq
        wait(lambda: seqs() == list(range(1, last + 1)), 60, "every seq in the trace store")
        with sqlite3.connect(store) as db:
            assert db.execute("SELECT COUNT(*) FROM seq_gaps").fetchone()[0] == 0
            assert db.execute("SELECT COUNT(DISTINCT id) FROM events").fetchone()[0] == last
        assert link.rotation.switches == 1 and bridge.rotation.switches == 1
    finally:
        bridge.stop()
        fwd.stop()
        journal.close()
