"""The Sparkplug B output against a real mosquitto, read back with pysparkplug (a decoder saltgw
did not write): births, data by exception with aliases, seq, DDEATH, NDEATH as the will after
a kill -9 with the NBIRTH's bdSeq, rebirth on NCMD, STATE awareness with historical replay,
DCMD writes through the sink, and peers' garbage ignored."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from drivers.base import TagValue
from gateway.telemetry.memory import MemoryFeed
from gateway.telemetry.sparkplug import CommandRefused, sparkplug_b_pb2
from tests.support.broker import Mosquitto
from tests.support.procs import ROOT
from tests.support.sparkplug import (
    GROUP,
    METAS,
    NODE,
    bd_seq,
    decode,
    find,
    kinds,
    output,
    seqs,
)
from tests.support.subscriber import Collector

spb = pytest.importorskip(
    "pysparkplug", reason="scripts/setup.sh dev installs it (--no-deps: it pins paho-mqtt<2)"
)
pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def sub(mosquitto: Mosquitto) -> Iterator[Collector]:
    c = Collector(mosquitto.port, topic="spBv1.0/#").start()
    yield c
    c.stop()


def _has(kind: str, n: int = 1) -> object:
    return lambda msgs: len(find(msgs, kind)) >= n


def _peer(port: int) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-host", protocol=paho.MQTTv311)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_births_then_ddata_by_exception_with_aliases_and_seq(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector
) -> None:
    feed = MemoryFeed(METAS)
    feed.put("cw1", {"weight": 500.25, "count": -3, "running": True}, T0)
    out = output(mosquitto.port, tmp_path)
    out.start(feed)
    try:
        assert feed.wait_acked(1, 10)
        rec = feed.put("cw1", {"weight": 501.5})
        feed.put("plc", {"batch": "B-1"})
        assert feed.wait_acked(rec.id + 1, 10)
        msgs = sub.wait_for(_has("DDATA/plc"), 10, "DDATA of plc")
    finally:
        out.stop(5)
    assert kinds(msgs)[:3] == ["NBIRTH", "DBIRTH/cw1", "DBIRTH/plc"]
    nbirth = decode(find(msgs, "NBIRTH")[0])
    assert nbirth.seq == 0
    names = {m.name: m for m in nbirth.metrics}
    assert names["bdSeq"].value == 0 and names["bdSeq"].datatype == spb.DataType.INT64
    assert names["Node Control/Rebirth"].value is False
    dbirth = decode(find(msgs, "DBIRTH/cw1")[0])
    assert dbirth.seq == 1
    by_name = {m.name: m for m in dbirth.metrics}
    assert [m.name for m in dbirth.metrics] == ["weight", "count", "running"]
    assert by_name["weight"].datatype == spb.DataType.DOUBLE
    assert by_name["count"].datatype == spb.DataType.INT64
    assert by_name["running"].datatype == spb.DataType.BOOLEAN
    # the record held before the birth went out historical; the birth had no value yet
    assert by_name["weight"].is_null
    aliases = [m.alias for m in dbirth.metrics] + [
        m.alias for m in decode(find(msgs, "DBIRTH/plc")[0]).metrics
    ]
    assert len(set(aliases)) == 4 and None not in aliases
    ddata = [decode(m, birth=dbirth) for m in find(msgs, "DDATA/cw1")]
    for d in ddata:
        for m in d.metrics:
            assert m.alias is not None  # aliases only: the name came from the birth
    raw = sparkplug_b_pb2.Payload.FromString(find(msgs, "DDATA/cw1")[-1].payload)
    assert [(m.HasField("name"), m.HasField("datatype")) for m in raw.metrics] == [(False, False)]
    live = ddata[-1]
    assert [(m.name, m.value, m.is_historical) for m in live.metrics] == [
        ("weight", 501.5, False)
    ]
    held = ddata[0]
    assert {m.name: m.value for m in held.metrics} == {
        "weight": 500.25, "count": -3, "running": True
    }  # fmt: skip
    assert all(m.is_historical for m in held.metrics)
    assert held.metrics[0].timestamp == int(T0.timestamp() * 1000)
    # every node message after NBIRTH: seq one more than the one before
    got = seqs(msgs)
    assert got == list(range(len(got)))


def test_seq_wraps_after_255(tmp_path: Path, mosquitto: Mosquitto, sub: Collector) -> None:
    feed = MemoryFeed(METAS[:1])
    out = output(mosquitto.port, tmp_path)
    out.start(feed)
    try:
        assert out.born.wait(10)
        last = None
        for i in range(300):
            last = feed.put("cw1", {"weight": float(i)})
        assert last is not None and feed.wait_acked(last.id, 20)
        msgs = sub.wait_for(_has("DDATA/cw1", 300), 20, "300 DDATA")
    finally:
        out.stop(5)
    got = seqs(msgs)
    assert got[:2] == [0, 1]  # NBIRTH, DBIRTH
    assert got == [i % 256 for i in range(len(got))]
    assert 255 in got and got.count(0) == 2


def test_ddeath_when_the_device_goes_offline_and_dbirth_when_back(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector
) -> None:
    feed = MemoryFeed(METAS)
    out = output(mosquitto.port, tmp_path)
    out.start(feed)
    try:
        assert out.born.wait(10)
        feed.put("cw1", {"weight": 10.0, "count": 1, "running": True})
        feed.offline("cw1")
        rec = feed.put("cw1", {"weight": 11.0, "count": 2, "running": True})
        assert feed.wait_acked(rec.id, 10)
        msgs = sub.wait_for(_has("DBIRTH/cw1", 2), 10, "the second DBIRTH of cw1")
    finally:
        out.stop(5)
    cw1 = [k for k in kinds(msgs) if k.endswith("/cw1")]
    assert cw1 == ["DBIRTH/cw1", "DDATA/cw1", "DDEATH/cw1", "DBIRTH/cw1"]
    ddeath = decode(find(msgs, "DDEATH/cw1")[0])
    assert ddeath.seq is not None
    again = decode(find(msgs, "DBIRTH/cw1")[1])
    assert {m.name: m.value for m in again.metrics} == {"weight": 11.0, "count": 2, "running": True}
    # the graceful stop published NDEATH itself, with this session's bdSeq
    ndeath = sub.wait_for(_has("NDEATH"), 5, "NDEATH at stop")
    assert bd_seq(decode(find(ndeath, "NDEATH")[0])) == bd_seq(decode(find(msgs, "NBIRTH")[0]))


def test_ndeath_will_after_kill_9_matches_the_nbirth_and_aliases_survive(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector
) -> None:
    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.sparkplug", str(mosquitto.port),
             str(tmp_path / "state")],
            cwd=ROOT, stdout=subprocess.PIPE,
        )  # fmt: skip

    proc = run()
    try:
        msgs = sub.wait_for(_has("DDATA/cw1"), 15, "the node's first DDATA")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        msgs = sub.wait_for(_has("NDEATH"), 10, "NDEATH (the will) after kill -9")
        first_birth = decode(find(msgs, "NBIRTH")[0])
        assert bd_seq(decode(find(msgs, "NDEATH")[0])) == bd_seq(first_birth) == 0
        proc = run()
        msgs = sub.wait_for(_has("NBIRTH", 2), 15, "the second NBIRTH")
        msgs = sub.wait_for(_has("DBIRTH/cw1", 2), 15, "the second DBIRTH")
    finally:
        proc.kill()
        proc.wait(10)
    second_birth = decode(find(msgs, "NBIRTH")[1])
    assert bd_seq(second_birth) == 1  # the next CONNECT's; the dead session's will said 0
    d1, d2 = (decode(m) for m in find(msgs, "DBIRTH/cw1")[:2])
    assert [(m.name, m.alias) for m in d1.metrics] == [(m.name, m.alias) for m in d2.metrics]
    sub.wait_for(_has("NDEATH", 2), 10, "the second process's will")
    assert bd_seq(decode(find(sub.snapshot(), "NDEATH")[1])) == 1


def test_rebirth_on_ncmd_and_garbage_does_not_stop_the_node(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector
) -> None:
    feed = MemoryFeed(METAS)
    out = output(mosquitto.port, tmp_path)
    out.start(feed)
    peer = _peer(mosquitto.port)
    try:
        assert out.born.wait(10)
        ncmd = f"spBv1.0/{GROUP}/NCMD/{NODE}"
        peer.publish(ncmd, b"\xff\x00 not protobuf", qos=1).wait_for_publish(5)
        peer.publish(f"spBv1.0/{GROUP}/DCMD/{NODE}/cw1", b"\x12\x03\x10\x99", qos=1)
        peer.publish(f"spBv1.0/{GROUP}/DCMD/{NODE}/nosuch", b"", qos=1)
        other = spb.NCmd(
            timestamp=1, metrics=(spb.Metric(None, "Other", spb.DataType.BOOLEAN, value=True),)
        )
        peer.publish(ncmd, other.encode(include_dtypes=True), qos=1)
        rebirth = spb.NCmd(
            timestamp=1,
            metrics=(spb.Metric(None, "Node Control/Rebirth", spb.DataType.BOOLEAN, value=True),),
        )
        peer.publish(ncmd, rebirth.encode(include_dtypes=True), qos=1)
        msgs = sub.wait_for(_has("DBIRTH/plc", 2), 10, "the rebirth")
        rec = feed.put("cw1", {"weight": 1.0})
        assert feed.wait_acked(rec.id, 10)
        assert out.alive()
    finally:
        peer.disconnect()
        peer.loop_stop()
        out.stop(5)
    births = find(msgs, "NBIRTH")
    assert len(births) == 2 and out.stats.rebirths == 1
    one, two = decode(births[0]), decode(births[1])
    assert two.seq == 0 and bd_seq(one) == bd_seq(two)  # same session, same bdSeq
    assert out.stats.peer_errors >= 1 and out.stats.commands_refused >= 2


def _state(peer: paho.Client, online: bool, ts: int) -> None:
    body = json.dumps({"online": online, "timestamp": ts}).encode()
    peer.publish("spBv1.0/STATE/scada", body, qos=1, retain=True).wait_for_publish(5)


def test_primary_host_offline_holds_data_then_replays_it_historical(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector
) -> None:
    feed = MemoryFeed(METAS[:2])
    out = output(mosquitto.port, tmp_path, primary_host_id="scada")
    peer = _peer(mosquitto.port)
    try:
        _state(peer, False, 1000)
        out.start(feed)
        held = feed.put("cw1", {"weight": 1.0, "count": 1}, T0)
        feed.put("cw1", {"weight": 2.0}, T0 + timedelta(seconds=1))
        # no birth while the host is offline, and nothing acknowledged: the store holds it
        sub.wait_for(lambda m: out.stats.connects >= 1, 10, "the node's connection")
        assert not out.born.wait(0.5)
        assert feed.acked == 0 and kinds(sub.snapshot()) == []
        _state(peer, True, 900)  # older than the last STATE: ignored
        assert not out.born.wait(0.5)
        _state(peer, True, 2000)
        assert feed.wait_acked(held.id + 1, 10)
        msgs = sub.wait_for(_has("DDATA/cw1", 3), 10, "held data and the refresh")
        # the host goes away again: NDEATH, a new session that waits for the host
        _state(peer, False, 3000)
        msgs = sub.wait_for(_has("NDEATH"), 10, "NDEATH when the host went offline")
        live = feed.put("cw1", {"weight": 3.0})
        assert not feed.wait_acked(live.id, 0.5)
        _state(peer, True, 4000)
        assert feed.wait_acked(live.id, 10)
        msgs = sub.wait_for(_has("NBIRTH", 2), 10, "the birth after the host came back")
    finally:
        peer.disconnect()
        peer.loop_stop()
        out.stop(5)
    assert kinds(msgs)[:2] == ["NBIRTH", "DBIRTH/cw1"]
    birth = decode(find(msgs, "DBIRTH/cw1")[0])
    d = [decode(m, birth=birth) for m in find(msgs, "DDATA/cw1")]
    assert [(m.name, m.value, m.is_historical) for m in d[0].metrics] == [
        ("weight", 1.0, True), ("count", 1, True)
    ]  # fmt: skip
    assert [(m.name, m.value, m.is_historical) for m in d[1].metrics] == [("weight", 2.0, True)]
    # then the latest held values once more as current values
    assert {(m.name, m.value, m.is_historical) for m in d[2].metrics} == {
        ("weight", 2.0, False), ("count", 1, False)
    }  # fmt: skip
    nbirths = [decode(m) for m in find(msgs, "NBIRTH")]
    ndeath = decode(find(msgs, "NDEATH")[0])
    assert bd_seq(ndeath) == bd_seq(nbirths[0]) and bd_seq(nbirths[1]) == bd_seq(nbirths[0]) + 1


class _Sink:
    def __init__(self) -> None:
        self.writes: list[tuple[str, str, TagValue]] = []
        self.done = threading.Event()

    def write(self, device: str, tag: str, value: TagValue) -> Future[None]:
        if tag == "count":
            raise CommandRefused("not in the command map")
        self.writes.append((device, tag, value))
        fut: Future[None] = Future()
        fut.set_result(None)
        self.done.set()
        return fut


def test_dcmd_writes_go_through_the_sink_only_when_allowed(
    tmp_path: Path, mosquitto: Mosquitto, sub: Collector
) -> None:
    feed = MemoryFeed(METAS)
    sink = _Sink()
    out = output(mosquitto.port, tmp_path, command_sink=sink, dcmd_writes=True)
    out.start(feed)
    peer = _peer(mosquitto.port)
    try:
        assert out.born.wait(10)
        birth = decode(sub.wait_for(_has("DBIRTH/plc"), 10, "DBIRTH")[-1])
        batch_alias = next(m.alias for m in birth.metrics if m.name == "batch")
        dcmd = f"spBv1.0/{GROUP}/DCMD/{NODE}/"
        cmds = [
            ("cw1", spb.Metric(None, "count", spb.DataType.INT64, value=5)),  # sink refuses
            ("cw1", spb.Metric(None, "weight", spb.DataType.STRING, value="x")),  # wrong type
            ("plc", spb.Metric(None, "nosuch", spb.DataType.STRING, value="x")),  # no metric
            ("plc", spb.Metric(None, None, spb.DataType.STRING, value="B-7", alias=batch_alias)),
        ]
        for device, metric in cmds:
            body = spb.DCmd(timestamp=1, metrics=(metric,)).encode(include_dtypes=True)
            peer.publish(dcmd + device, body, qos=1).wait_for_publish(5)
        assert sink.done.wait(10)
    finally:
        peer.disconnect()
        peer.loop_stop()
        out.stop(5)
    assert sink.writes == [("plc", "batch", "B-7")]
    assert out.stats.commands_refused == 3 and out.stats.commands_written == 1

