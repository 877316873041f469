"""Sparkplug B test helpers: decode what the output published with pysparkplug (a decoder
saltgw did not write), and a node process to kill -9 (``python -m tests.support.sparkplug``).

pysparkplug pins paho-mqtt<2 for its client, which is not used here: scripts/setup.sh installs
it with --no-deps for its payload decoder only."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config.models import MqttSection
from gateway.telemetry.memory import MemoryFeed
from gateway.telemetry.record import TagMeta
from gateway.telemetry.sparkplug import CommandSink, SparkplugConfig, SparkplugOutput
from tests.support.subscriber import Received

GROUP = "plant"
NODE = "gw1"
METAS = (
    TagMeta("cw1", "weight", "float", "g"),
    TagMeta("cw1", "count", "int"),
    TagMeta("cw1", "running", "bool"),
    TagMeta("plc", "batch", "string"),
)


def decode(msg: Received, birth: Any = None) -> Any:
    """The pysparkplug payload of ``msg`` by its topic's message type."""
    import pysparkplug as spb

    kind = msg.topic.split("/")[2]
    cls = {
        "NBIRTH": spb.NBirth, "DBIRTH": spb.DBirth, "NDATA": spb.NData, "DDATA": spb.DData,
        "NDEATH": spb.NDeath, "DDEATH": spb.DDeath, "NCMD": spb.NCmd, "DCMD": spb.DCmd,
    }[kind]  # fmt: skip
    return cls.decode(msg.payload, birth=birth)


def decode_all(msgs: list[Received], node: str = NODE) -> list[tuple[str, Any]]:
    """(kind, pysparkplug payload) of the node's messages in arrival order; data messages are
    decoded with their device's latest DBIRTH (aliases, data types), as a host does."""
    births: dict[str, Any] = {}
    out = []
    for m, kind in zip(_own(msgs, node), kinds(msgs, node), strict=True):
        device = kind.partition("/")[2]
        payload = decode(m, birth=births.get(device) if kind.startswith("DDATA") else None)
        if kind.startswith("DBIRTH"):
            births[device] = payload
        out.append((kind, payload))
    return out


def seqs(msgs: list[Received], node: str = NODE) -> list[int]:
    """The seq of every node message but NDEATH (which has none), in arrival order."""
    return [p.seq for k, p in decode_all(msgs, node) if k != "NDEATH"]


def _own(msgs: list[Received], node: str) -> list[Received]:
    out = []
    for m in msgs:
        parts = m.topic.split("/")
        if len(parts) >= 4 and parts[3] == node and parts[2] not in ("NCMD", "DCMD"):
            out.append(m)
    return out


def kinds(msgs: list[Received], node: str = NODE) -> list[str]:
    """'NBIRTH', 'DBIRTH/cw1', … in arrival order (STATE and commands left out)."""
    return ["/".join([m.topic.split("/")[2], *m.topic.split("/")[4:]]) for m in _own(msgs, node)]


def find(msgs: list[Received], kind: str) -> list[Received]:
    """The messages of one kind ('DDATA/cw1'), in arrival order."""
    return [m for m in msgs if "/".join([m.topic.split("/")[2], *m.topic.split("/")[4:]]) == kind]


def bd_seq(payload: Any) -> int:
    if hasattr(payload, "bd_seq_metric"):
        return int(payload.bd_seq_metric.value)
    return int(next(m.value for m in payload.metrics if m.name == "bdSeq"))


def output(
    port: int | list[str], state_dir: Path, command_sink: CommandSink | None = None, **cfg: Any
) -> SparkplugOutput:
    """The node on the broker at ``port`` (or on the endpoints ``port``: mqtt.urls)."""
    where = {"urls": port} if isinstance(port, list) else {"url": f"mqtt://127.0.0.1:{port}"}
    return SparkplugOutput(
        SparkplugConfig(group_id=GROUP, **cfg),
        MqttSection(**where, keepalive_secs=5),
        gateway_id=NODE,
        state_dir=state_dir,
        command_sink=command_sink,
        backoff_min_secs=0.05,
        backoff_max_secs=0.2,
    )


def main() -> None:
    """A node that publishes one record and waits to be killed: PORT STATE_DIR."""
    port, state_dir = int(sys.argv[1]), Path(sys.argv[2])
    feed = MemoryFeed(METAS)
    out = output(port, state_dir)
    out.start(feed)
    feed.put("cw1", {"weight": 500.5, "count": 7, "running": True}, datetime.now(UTC))
    print("started", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
