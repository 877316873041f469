"""Sparkplug B without a broker: the codec read back by pysparkplug (and pysparkplug's commands
read by the codec), bdSeq and aliases kept across restarts, the example config, the DCMD
allow-list sink, the message without protobuf, and the MemoryFeed test double."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from drivers.base import TagValue
from gateway.command_auth import CommandAuthSection
from gateway.commands import CommandMap
from gateway.telemetry.memory import MemoryFeed
from gateway.telemetry.record import Quality, TagMeta, TagPoint
from gateway.telemetry.sparkplug import CommandMapSink, CommandRefused, SparkplugConfig, codec
from gateway.telemetry.sparkplug.payload import DataType, Metric, Payload
from gateway.telemetry.sparkplug.state import NodeState
from tests.support.extras import blocked_env
from tests.support.procs import ROOT

spb = pytest.importorskip(
    "pysparkplug", reason="scripts/setup.sh dev installs it (--no-deps: it pins paho-mqtt<2)"
)
FOLDER = ROOT / "gateway" / "telemetry" / "sparkplug"


# -- codec -----------------------------------------------------------------------------------------
def test_a_birth_encoded_here_is_read_by_pysparkplug() -> None:
    metrics = (
        Metric("bdSeq", None, DataType.INT64, 7),
        Metric("neg", 3, DataType.INT64, -(2**40), 1000),
        Metric("w", 4, DataType.DOUBLE, 500.125, 1001),
        Metric("on", 5, DataType.BOOLEAN, True),
        Metric("batch", 6, DataType.STRING, "批次-1"),
        Metric("never", 7, DataType.DOUBLE, None),
    )
    birth = spb.DBirth.decode(codec.encode(Payload(1_700_000_000_000, 3, metrics)))
    assert birth.seq == 3 and birth.timestamp == 1_700_000_000_000
    got = {m.name: (m.alias, m.datatype, m.value, m.is_null) for m in birth.metrics}
    assert got == {
        "bdSeq": (None, spb.DataType.INT64, 7, False),
        "neg": (3, spb.DataType.INT64, -(2**40), False),
        "w": (4, spb.DataType.DOUBLE, 500.125, False),
        "on": (5, spb.DataType.BOOLEAN, True, False),
        "batch": (6, spb.DataType.STRING, "批次-1", False),
        "never": (7, spb.DataType.DOUBLE, None, True),
    }
    # data: aliases only, typed by the birth; historical flag and timestamps kept
    data = (Metric(None, 3, DataType.INT64, -1, 5, True), Metric(None, 4, DataType.DOUBLE, 1.5))
    ddata = spb.DData.decode(codec.encode(Payload(2, 4, data)), birth=birth)
    assert [(m.name, m.value, m.is_historical, m.timestamp) for m in ddata.metrics] == [
        ("neg", -1, True, 5), ("w", 1.5, False, None)
    ]  # fmt: skip


def test_commands_encoded_by_pysparkplug_are_read_by_the_codec() -> None:
    cmd = spb.DCmd(
        timestamp=9,
        metrics=(
            spb.Metric(None, "a", spb.DataType.INT16, value=-5),
            spb.Metric(None, "b", spb.DataType.INT64, value=-7),
            spb.Metric(None, "c", spb.DataType.UINT32, value=4_000_000_000),
            spb.Metric(None, "d", spb.DataType.FLOAT, value=0.5),
            spb.Metric(None, "e", spb.DataType.STRING, value="x"),
            spb.Metric(None, "f", spb.DataType.BOOLEAN, value=False),
            spb.Metric(None, None, spb.DataType.DOUBLE, value=2.5, alias=12),
        ),
    )
    got = codec.decode(cmd.encode(include_dtypes=True))
    assert got.timestamp == 9 and got.seq is None
    assert [(m.name, m.alias, m.value) for m in got.metrics] == [
        ("a", None, -5), ("b", None, -7), ("c", None, 4_000_000_000), ("d", None, 0.5),
        ("e", None, "x"), ("f", None, False), (None, 12, 2.5),
    ]  # fmt: skip
    # without datatypes (allowed in commands), the types of the birth decide
    bare = spb.DCmd(timestamp=1, metrics=(spb.Metric(None, "b", spb.DataType.INT64, value=-7),))
    typed = codec.decode(bare.encode(include_dtypes=False), {"b": DataType.INT64})
    assert typed.metrics[0].value == -7


@pytest.mark.parametrize("raw", [b"\xff\xff\xff", b"\x12\x05\x08", b"\x0a"])
def test_garbage_is_a_payload_error(raw: bytes) -> None:
    with pytest.raises(codec.PayloadError, match="not a Sparkplug B payload"):
        codec.decode(raw)


def test_an_unknown_data_type_is_named() -> None:
    raw = codec.pb.Payload(metrics=[codec.pb.Payload.Metric(name="x", datatype=99)])
    with pytest.raises(codec.PayloadError, match="'x': unsupported data type 99"):
        codec.decode(raw.SerializeToString())


# -- state: bdSeq and aliases across restarts --------------------------------------------------
def test_bd_seq_persists_and_wraps(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    assert NodeState(path).next_bd_seq() == 0
    assert NodeState(path).next_bd_seq() == 1  # a new process (kill -9) goes on from the file
    state = NodeState(path)
    state.bd_seq = 254
    state.save()
    again = NodeState(path)
    assert [again.next_bd_seq() for _ in range(3)] == [255, 0, 1]
    assert NodeState(path).bd_seq == 1


def test_aliases_are_stable_and_new_tags_get_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    one = NodeState(path)
    first = {(d, t): one.alias(d, t) for d, t in [("cw1", "w"), ("cw1", "n"), ("plc", "b")]}
    one.save()
    two = NodeState(path)
    assert two.alias("plc", "new") == 4  # after the highest, unique over the node
    assert {k: two.alias(*k) for k in first} == first == {
        ("cw1", "w"): 1, ("cw1", "n"): 2, ("plc", "b"): 3
    }  # fmt: skip


@pytest.mark.parametrize("body", ["{", '{"bd_seq": 300, "aliases": {}}', '{"aliases": []}', "[]"])
def test_an_unreadable_state_file_starts_anew(
    tmp_path: Path, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "node.json"
    path.write_text(body)
    state = NodeState(path)
    assert state.bd_seq is None and state.aliases == {}
    assert "starting anew" in caplog.text and str(path) in caplog.text
    assert state.next_bd_seq() == 0
    assert json.loads(path.read_text()) == {"bd_seq": 0, "aliases": {}}


# -- config -------------------------------------------------------------------------------------
def test_the_example_config_is_valid_and_ids_are_one_topic_level() -> None:
    data = yaml.safe_load((FOLDER / "example.yaml").read_text())
    cfg = SparkplugConfig.model_validate(data["sparkplug"])
    assert cfg.group_id and cfg.primary_host_id
    for bad in ("a/b", "a+", "#"):
        with pytest.raises(ValueError, match="group_id"):
            SparkplugConfig(group_id=bad)
    with pytest.raises(ValueError, match="extra"):
        SparkplugConfig.model_validate({"group": "x"})


def test_without_protobuf_the_output_says_which_extra(tmp_path: Path) -> None:
    code = (
        "from pathlib import Path\n"
        "from gateway.config.models import MqttSection\n"
        "from gateway.telemetry.sparkplug import SparkplugConfig, SparkplugOutput\n"
        "SparkplugOutput(SparkplugConfig(), MqttSection(), gateway_id='g', state_dir=Path('.'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
        env=blocked_env(tmp_path), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "SparkplugUnavailable: the Sparkplug B output needs google.protobuf" in proc.stderr
    assert "pip install 'saltgw[sparkplug]'" in proc.stderr


# -- the DCMD allow-list sink ---------------------------------------------------------------------
def test_the_command_map_sink_writes_only_command_tags_and_only_when_open() -> None:
    maps = {"plc": CommandMap.model_validate({"set_batch": {"batch": "batch_no"}})}
    written: list[tuple[str, str, TagValue]] = []

    async def write(device: str, tag: str, value: TagValue) -> None:
        written.append((device, tag, value))

    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        closed = CommandMapSink(maps, None, write, loop)
        with pytest.raises(CommandRefused, match="closed"):
            closed.write("plc", "batch_no", "B1")
        listed = CommandAuthSection.model_validate(
            {"issuers": [{"name": "mes", "key_env": "K", "allow": [{"commands": ["set_batch"]}]}]}
        )
        with pytest.raises(CommandRefused, match="allow_list"):
            CommandMapSink(maps, listed, write, loop).write("plc", "batch_no", "B1")
        sink = CommandMapSink(maps, CommandAuthSection(mode="open"), write, loop)
        with pytest.raises(CommandRefused, match="not written by any of its commands"):
            sink.write("plc", "speed", 3)
        with pytest.raises(CommandRefused, match="no command map"):
            sink.write("cw1", "batch_no", "B1")
        sink.write("plc", "batch_no", "B1").result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()
    assert written == [("plc", "batch_no", "B1")]


# -- MemoryFeed ------------------------------------------------------------------------------------
def test_memory_feed_reads_from_the_cursor_until_acked() -> None:
    t = datetime(2025, 1, 1, tzinfo=UTC)
    feed = MemoryFeed([TagMeta("d", "a", "float"), TagMeta("d", "b", "int")], clock=lambda: t)
    assert not feed.wait(0.01) and feed.read(10) == []
    one = feed.put("d", {"a": 1.5, "b": None})
    two = feed.put("d", {"a": TagPoint(2.0, Quality.GOOD)})
    assert one.points["b"] == TagPoint(None, Quality.BAD) and one.ts == t
    assert feed.wait(0) and [r.id for r in feed.read(1)] == [1]
    assert [r.id for r in feed.read(10)] == [1, 2]  # not acknowledged: again
    feed.ack(1)
    assert [r.id for r in feed.read(10)] == [2] and feed.acked == 1
    with pytest.raises(ValueError, match="no such record"):
        feed.ack(3)
    feed.ack(two.id)
    assert feed.read(10) == [] and feed.wait_acked(2, 0)
    off = feed.offline("d")
    assert off.points == {"a": TagPoint(2.0, Quality.STALE), "b": TagPoint(None, Quality.STALE)}
    with pytest.raises(ValueError, match="timezone-aware"):
        feed.put("d", {"a": 1.0}, datetime(2025, 1, 1))


def test_memory_feed_wait_wakes_on_put() -> None:
    feed = MemoryFeed()
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(feed.wait(10)))
    waiter.start()
    feed.put("d", {"a": math.pi})
    waiter.join(10)
    assert woke == [True]


def test_the_readme_shows_the_example() -> None:
    example = (FOLDER / "example.yaml").read_text()
    body = "\n".join(line for line in example.splitlines() if not line.startswith("#"))
    assert body.strip() in (FOLDER / "README.md").read_text()
