"""Broker failover of the tag outputs (mqtt.urls, gateway/failover.py) on two real mosquitto
nodes: when the node in use is killed, the UNS output and the Sparkplug B node move to the
other one within 5 s. The UNS output sends its retained last values there again (the new node
has none of them: a tag that never changes after the switch is still found), the records put
after the kill arrive there; the Sparkplug node is born there as a new session (NBIRTH with
the next bdSeq, DBIRTHs) and its data follows."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config.models import MqttSection
from gateway.telemetry.memory import MemoryFeed
from gateway.telemetry.record import TagMeta
from gateway.telemetry.uns import UnsOutput
from gateway.topics import Topics
from tests.support.broker import Mosquitto, mosquitto_available, mosquitto_nodes
from tests.support.sparkplug import METAS, bd_seq, decode, find, output
from tests.support.subscriber import Collector, Received

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed"),
]

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
FAILOVER_LIMIT_SECS = 5.0
TOPICS = Topics("salt/v1", "8035", "daiyue", "L1", "gw-tags")


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Mosquitto]]:
    with mosquitto_nodes(tmp_path) as out:
        yield out


def _kill(node: Mosquitto) -> float:
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait(10)
    node.proc = None
    return time.monotonic()


def _retained(msgs: list[Received], tag: str) -> list[Received]:
    """The last-value messages of ``tag`` (live to a subscriber already there, or retained)."""
    return [m for m in msgs if m.topic == TOPICS.tag("cw1", tag)]


def test_the_uns_output_fails_over_and_sends_its_retained_values_again(
    nodes: list[Mosquitto],
) -> None:
    metas = (TagMeta("cw1", "weight", "float", "g"), TagMeta("cw1", "speed", "int"))
    feed = MemoryFeed(metas)
    cfg = MqttSection(urls=[n.url for n in nodes], keepalive_secs=5,
                      reconnect_min_secs=0.1, reconnect_max_secs=0.5)  # fmt: skip
    out = UnsOutput(cfg, TOPICS, "gw-tags-uns", retained_interval_ms=100)
    out.start(feed)
    try:
        feed.put("cw1", {"weight": 500.5, "speed": 60}, T0)
        first = Collector(nodes[0].port, topic=f"{TOPICS.prefix}/#").start()
        first.wait_for(lambda m: bool(_retained(m, "speed")), 10, "speed retained on node 1")
        first.stop()
        assert out.link.rotation.current.port == nodes[0].port
        killed = _kill(nodes[0])
        rec = feed.put("cw1", {"weight": 501.0}, T0)  # speed never changes again
        deadline = time.monotonic() + FAILOVER_LIMIT_SECS
        while out.link.rotation.in_use != out.link.rotation.endpoints[1]:
            assert time.monotonic() < deadline, "the UNS output did not move to node 2 in 5 s"
            time.sleep(0.005)
        switch_secs = time.monotonic() - killed
        assert feed.wait_acked(rec.id, 10)
        second = Collector(nodes[1].port, topic=f"{TOPICS.prefix}/#").start()
        try:
            msgs = second.wait_for(
                lambda m: bool(_retained(m, "speed")) and bool(_retained(m, "weight")), 10,
                "both retained values on node 2",
            )  # fmt: skip
        finally:
            second.stop()
        # a subscriber that comes now gets them from the node's retained store
        late = Collector(nodes[1].port, topic=TOPICS.tag("cw1", "+")).start()
        try:
            stored = late.wait_for(lambda m: len(m) >= 2, 10, "the retained values on node 2")
        finally:
            late.stop()
    finally:
        out.stop(5)
    assert {m.topic: (m.retain, m.json()["value"]) for m in stored} == {
        TOPICS.tag("cw1", "speed"): (True, 60), TOPICS.tag("cw1", "weight"): (True, 501.0)
    }  # fmt: skip
    assert switch_secs <= FAILOVER_LIMIT_SECS
    assert out.link.rotation.switches == 1
    assert _retained(msgs, "speed")[-1].json()["value"] == 60  # sent again after the switch
    assert _retained(msgs, "weight")[-1].json()["value"] == 501.0  # the latest, not the first


def _weights(msgs: list[Received]) -> list[float]:
    """cw1's weights in its births and data, in arrival order (decoded with the birth)."""
    out, birth = [], None
    for m in msgs:
        if m.topic.endswith("/DBIRTH/gw1/cw1"):
            birth = decode(m)
            out += [mt.value for mt in birth.metrics if mt.name == "weight"]
        elif m.topic.endswith("/DDATA/gw1/cw1") and birth is not None:
            out += [mt.value for mt in decode(m, birth=birth).metrics if mt.name == "weight"]
    return out


def test_the_sparkplug_node_fails_over_and_is_born_again_on_the_other_node(
    tmp_path: Path, nodes: list[Mosquitto]
) -> None:
    subs = [Collector(n.port, topic="spBv1.0/#").start() for n in nodes]
    feed = MemoryFeed(METAS)
    out = output([n.url for n in nodes], tmp_path)
    out.start(feed)
    try:
        feed.put("cw1", {"weight": 500.25, "count": 1, "running": True}, T0)
        before = subs[0].wait_for(lambda m: bool(find(m, "DBIRTH/cw1")), 10, "born on node 1")
        killed = _kill(nodes[0])
        feed.put("cw1", {"weight": 502.0})
        deadline = time.monotonic() + FAILOVER_LIMIT_SECS
        while out.stats.switches < 1 or not out.born.is_set():
            assert time.monotonic() < deadline, "the Sparkplug node was not born on node 2 in 5 s"
            time.sleep(0.005)
        switch_secs = time.monotonic() - killed
        after = subs[1].wait_for(lambda m: 502.0 in _weights(m), 10, "the new weight on node 2")
    finally:
        out.stop(5)
        for s in subs:
            s.stop()
    assert switch_secs <= FAILOVER_LIMIT_SECS
    assert [m.topic.split("/")[2] for m in after[:2]] == ["NBIRTH", "DBIRTH"]
    assert bd_seq(decode(find(after, "NBIRTH")[0])) == bd_seq(decode(find(before, "NBIRTH")[0])) + 1
    assert out.rotation.current.port == nodes[1].port and out.rotation.switches == 1
