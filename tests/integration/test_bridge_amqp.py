"""Bridges sharing lines on a real 3-node RabbitMQ cluster (bridge.source: amqp).

One cluster for the module (Debian's rabbitmq-server, rabbitmq_mqtt; tests/support/rabbitmq.py).
Each line is a real gateway journal and forwarder (gateway/mqtt.py) publishing signed pack.bag
events over MQTT 3.1.1 to the cluster's MQTT listeners (failover across all three); two bridge
processes (tests/support/bridge_proc.py) share one SQLite trace store file and the lines'
quorum queues. At the end every event of every line is in the store exactly once, and stored in
seq order per line (rid order). Each test uses its own queues (queue_prefix) and store.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.bridge.amqp_lines import preferred_bridge
from gateway.config.models import MqttSection
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.mqtt import Forwarder, MqttLink
from gateway.signing import EnvelopeSigner
from gateway.topics import Topics
from tests.support.bridge_env import known_gateway, wait
from tests.support.enterprise import BridgeProcess
from tests.support.rabbitmq import RabbitCluster, rabbitmq_missing
from tests.support.trace_events import TEST_KEY, _complete

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(rabbitmq_missing() is not None, reason=str(rabbitmq_missing())),
]

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
SITE = "daiyue"
LINES = ["L1", "L2", "L3", "L4"]
BRIDGES = ["bA", "bB"]
EVERY = [f"{SITE}/{ln}" for ln in LINES]
TAKEOVER_LIMIT_SECS = 10.0
EVERY_SECS = 0.02  # one bag per line every 20 ms: 50 events/s per line


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    c = RabbitCluster(tmp_path_factory.mktemp("rabbitmq"), 3)
    t0 = time.monotonic()
    c.start()
    print(f"\nRabbitMQ: 3 nodes up in {time.monotonic() - t0:.1f} s")
    yield c
    c.stop()


class Line:
    """A gateway's journal and forwarder on the cluster's MQTT listeners; a thread appends one
    signed pack.bag every EVERY_SECS until stopped."""

    def __init__(self, tmp: Path, line: str, cluster: RabbitCluster) -> None:
        self.line = line
        self.gw = f"gw-{line}"
        topics = Topics("salt/v1", "8035", SITE, line, self.gw)
        self.journal = Journal(
            tmp / f"{self.gw}-journal.db", Origin(self.gw, "8035", SITE, line),
            keep_delivered_secs=3600, keep_delivered_events=100_000,
            signer=EnvelopeSigner(self.gw, TEST_KEY),
        ).open()  # fmt: skip
        # the gateways publish on node 2 first (node 3 next): test 3 kills node 1, the bridges';
        # a gateway's own node dying is tests/integration/test_enterprise.py's case
        urls = cluster.mqtt_urls[1:] + cluster.mqtt_urls[:1]
        mqtt = MqttSection(urls=urls, protocol="3.1.1", keepalive_secs=5)
        self.link = MqttLink(mqtt, topics, f"{self.gw}-link")
        self.fwd = Forwarder(self.journal, self.link, topics, 200, backoff_min_secs=0.2,
                             backoff_max_secs=1.0, ack_timeout_secs=2.0)  # fmt: skip
        self.n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"line-{line}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(EVERY_SECS):
            data, device = _complete("pack.bag", {"code": f"8035{self.gw[-2:]}{self.n:07d}"}, None)
            draft = EventDraft("pack.bag", T0 + timedelta(seconds=self.n), data, device=device,
                               batch=f"B-{self.gw}")  # fmt: skip
            self.journal.append([draft]).result(10)
            self.n += 1

    def start(self) -> None:
        self.fwd.start()
        self._thread.start()

    def stop_producing(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def close(self) -> None:
        self.stop_producing()
        self.fwd.stop()
        self.journal.close()


def bridge_config(tmp: Path, node: str, cluster: RabbitCluster, prefix: str) -> dict[str, Any]:
    """One of the two bridges sharing one SQLite store file and the lines' queues."""
    return {
        "gateway": {"id": f"host-{node}", "enterprise": "8035", "site": SITE, "line": "HQ"},
        "mqtt": {"url": cluster.mqtt_urls[0], "reconnect_min_secs": 0.2, "reconnect_max_secs": 1},
        "journal": {"path": str(tmp / f"{node}-journal.db")},
        "bridge": {
            "store": str(tmp / "trace.db"),  # one store file for both bridges
            "node_id": node,
            "source": "amqp",
            "amqp": {
                "urls": cluster.amqp_urls, "lines": [f"{SITE}/{ln}" for ln in LINES],
                "bridges": BRIDGES, "queue_prefix": prefix, "prefetch": 200,
                # long enough for the second bridge to register on the lines it prefers
                # before the first joins them as standby, on a loaded machine too
                "standby_delay_secs": 5.0, "heartbeat_secs": 5,
            },
            "gateways": [known_gateway(tmp, f"gw-{ln}") for ln in LINES],
        },
    }  # fmt: skip


def rows(store: Path) -> list[tuple[str, int, float]]:
    """(gateway, seq, received) of every stored event, in insertion (rid) order."""
    with sqlite3.connect(store, timeout=30) as db:
        return db.execute("SELECT gateway, seq, received FROM events ORDER BY rid").fetchall()


def check_every_event_once_in_order(store: Path, lines: list[Line]) -> None:
    got = rows(store)
    for ln in lines:
        seqs = [s for g, s, _ in got if g == ln.gw]
        last = ln.journal.stats.last_seq
        assert seqs == list(range(1, last + 1)), (
            f"{ln.gw}: {len(seqs)} stored of {last}; out of order or missing: "
            f"{[s for a, s in itertools.pairwise(seqs) if s != a + 1][:10]}"
        )


@pytest.fixture
def world(tmp_path: Path, cluster: RabbitCluster, request: pytest.FixtureRequest) -> Iterator[
    tuple[list[Line], list[BridgeProcess], Path]
]:  # fmt: skip
    prefix = f"t{request.node.name.split('_')[1]}.{os.getpid()}"
    bridges = [
        BridgeProcess(tmp_path, b, bridge_config(tmp_path, b, cluster, prefix)) for b in BRIDGES
    ]
    lines = [Line(tmp_path, ln, cluster) for ln in LINES]
    # test 2 kills A: it waits 0.3 s between each commit and its ack, so the kill lands there
    delay = 0.3 if request.node.name.startswith("test_2") else 0.0
    try:
        bridges[0].start(SALTGW_TEST_ACK_DELAY_SECS=str(delay))
        bridges[0].wait_subscribed()  # creates the store and declares the queues
        bridges[1].start()
        bridges[1].wait_subscribed()
        for ln in lines:
            ln.start()
        yield lines, bridges, tmp_path / "trace.db"
    finally:
        for ln in lines:
            ln.close()
        for b in bridges:
            b.stop(strict=True)


def finish(lines: list[Line], store: Path) -> None:
    """Stop producing, have every event acknowledged by the cluster, wait for the store."""
    for ln in lines:
        ln.stop_producing()
    for ln in lines:
        assert ln.fwd.drain(30), f"{ln.gw}: events not acknowledged by the cluster"
    total = sum(ln.journal.stats.last_seq for ln in lines)
    wait(lambda: len(rows(store)) >= total, 60, f"{total} events in the trace store")


def test_1_two_bridges_share_the_lines_in_order(
    world: tuple[list[Line], list[BridgeProcess], Path],
) -> None:
    lines, bridges, store = world
    wait(lambda: all(ln.journal.stats.delivered >= 100 for ln in lines), 30, "100 per line")
    finish(lines, store)
    check_every_event_once_in_order(store, lines)
    # each bridge stored the lines it prefers: both took a share (their status files are
    # written every 50 ms: waited for)
    want = {b: 0 for b in BRIDGES}
    for ln in lines:
        want[preferred_bridge(f"{SITE}/{ln.line}", BRIDGES, EVERY)] += ln.journal.stats.last_seq
    assert all(want.values()), want

    def accepted() -> dict[str, int]:
        return {b.name: b.status().get("store", {}).get("accepted", -1) for b in bridges}

    wait(lambda: accepted() == want, 5, f"{want} events stored by each bridge; got {accepted()}")


def test_2_a_killed_bridge_s_lines_are_taken_over(
    world: tuple[list[Line], list[BridgeProcess], Path],
) -> None:
    lines, (a, b), store = world
    mine = [ln for ln in lines if preferred_bridge(f"{SITE}/{ln.line}", BRIDGES, EVERY)
            == a.name]  # fmt: skip
    assert mine, "bridge A prefers at least one line"
    wait(lambda: a.status().get("store", {}).get("accepted", 0) >= 200, 30, "A storing")
    wait(lambda: bool(b.status().get("standby_joined")), 30, "B standing by on A's lines")
    a_last = a.status()
    kill_wall, kill_mono = time.time(), time.monotonic()
    a.kill()  # SIGKILL mid-batch: groups committed and not yet acknowledged are given again
    gws = {ln.gw for ln in mine}

    def taken_over() -> bool:
        return any(g in gws and r > kill_wall for g, _, r in rows(store))

    wait(taken_over, TAKEOVER_LIMIT_SECS, "B storing A's lines")
    first = min(r for g, _, r in rows(store) if g in gws and r > kill_wall)
    print(f"\ntakeover: bridge A killed; B stored A's first event after {first - kill_wall:.3f} s"
          f" (seen by the test after {time.monotonic() - kill_mono:.3f} s)")  # fmt: skip
    finish(lines, store)
    check_every_event_once_in_order(store, lines)
    total = sum(ln.journal.stats.last_seq for ln in lines)
    assert len(rows(store)) == total
    # what A had committed and not acknowledged came to B again: counted as duplicates, not
    # stored twice; every message B received is accounted for
    wait(lambda: b.status()["store"]["accepted"] + a_last["store"]["accepted"] >= total - 50,
         5, "B's status file")  # fmt: skip
    st, got_b = b.status()["store"], b.status()["received"]
    print(f"takeover: B received {got_b} messages: {st['accepted']} stored, {st['duplicates']} "
          "duplicates (committed by A, not acknowledged before the kill)")  # fmt: skip
    assert st["quarantined"] == 0
    assert got_b == st["accepted"] + st["duplicates"]
    assert st["duplicates"] > 0, "A's committed, unacknowledged events came to B again"
    assert st["accepted"] + a_last["store"]["accepted"] <= total  # A's status may lag, not lead


def test_3_a_killed_node_loses_nothing(
    world: tuple[list[Line], list[BridgeProcess], Path], cluster: RabbitCluster
) -> None:
    lines, bridges, store = world
    wait(lambda: all(ln.journal.stats.delivered >= 100 for ln in lines), 30, "100 per line")
    node = cluster.nodes[0]
    on_node = [b for b in bridges if b.status().get("endpoint") == f"127.0.0.1:{node.amqp_port}"]
    assert on_node, "the bridges start on the first node"
    kill_wall, n_before = time.time(), len(rows(store))
    cluster.kill(1)  # the last test of the module: the node stays down until the cluster stops
    wait(lambda: all(b.status().get("switches", 0) >= 1 and b.status().get("subscribed")
                     for b in on_node), 30, "the bridges on another node")  # fmt: skip
    switched = time.time() - kill_wall
    wait(lambda: any(r > kill_wall + switched for _, _, r in rows(store)), 30,
         "events stored after the switch")  # fmt: skip
    first = min(r for _, _, r in rows(store) if r > kill_wall + switched)
    print(
        f"\nnode failover: bridges on another node within {switched:.3f} s; events stored "
        f"again {first - kill_wall:.3f} s after the kill ({n_before} stored before)"
    )
    finish(lines, store)
    check_every_event_once_in_order(store, lines)
