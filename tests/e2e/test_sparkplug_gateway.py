"""Sparkplug B from a running gateway, as deployed: `saltgw run` reading a Modbus farm
(firmware-sim, real sockets) + mosquitto + a Sparkplug host decoding with pysparkplug (a
decoder saltgw did not write). The gateway is killed with SIGKILL and started again: the
broker's NDEATH (the last will) carries the bdSeq of the session's NBIRTH, the next session
the next bdSeq, and every metric keeps its alias (issue 14)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from firmware_sim.modbus_farm import ModbusFarmSim, ModbusFarmSimConfig, farm_devices
from tests.support.broker import Mosquitto
from tests.support.gateway_proc import GatewayProc
from tests.support.sparkplug import bd_seq, decode, find, kinds
from tests.support.subscriber import Collector, Received

pytestmark = pytest.mark.e2e
pytest.importorskip("google.protobuf", reason="the sparkplug extra (saltgw[sparkplug])")
pytest.importorskip("pysparkplug", reason="the independent decoder (scripts/setup.sh dev)")

GROUP, NODE = "plant", "gw-spb"
DEVICES, REGISTERS = 2, 5


class Farm:
    """The farm simulator on its own event loop in a thread (its devices on free ports)."""

    def __init__(self) -> None:
        cfg = {"id": "farm", "kind": "modbus_farm", "port": 0, "devices": DEVICES,
               "registers": REGISTERS, "period_ms": 200}  # fmt: skip
        self.sim = ModbusFarmSim(ModbusFarmSimConfig.model_validate(cfg))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Farm:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def farm() -> Iterator[Farm]:
    with Farm() as f:
        yield f


def _config(tmp_path: Path, broker: Mosquitto, ports: list[int]) -> Path:
    cfg: dict[str, Any] = {
        "gateway": {"id": NODE, "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "mqtt": {"url": broker.url, "keepalive_secs": 5},
        "journal": {"path": str(tmp_path / "journal.db")},
        "telemetry": {"uns": False},
        "sparkplug": {"group_id": GROUP},
        "devices": farm_devices(ports, REGISTERS, extra={"telemetry": {"tags": "all"}}),
        "profiles": [],
    }
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _aliases(birth: Any) -> dict[str, int]:
    return {m.name: int(m.alias) for m in birth.metrics if m.alias is not None}


def _session(msgs: list[Received]) -> bool:
    """One NBIRTH, a DBIRTH per device and data from each after it."""
    k = kinds(msgs, NODE)
    return "NBIRTH" in k and all(
        f"DBIRTH/farm{d}" in k and f"DDATA/farm{d}" in k for d in range(DEVICES)
    )


def test_kill9_keeps_bdseq_and_aliases_consistent(
    tmp_path: Path, mosquitto: Mosquitto, farm: Farm
) -> None:
    host = Collector(mosquitto.port, topic="spBv1.0/#").start()
    try:
        gw = GatewayProc(_config(tmp_path, mosquitto, farm.sim.ports), tmp_path / "gw.log")
        gw.start()
        first = host.wait_for(_session, 60, "a first Sparkplug session")
        nbirth1 = decode(find(first, "NBIRTH")[-1])
        births1 = {d: decode(find(first, f"DBIRTH/farm{d}")[-1]) for d in range(DEVICES)}
        for d in range(DEVICES):  # every farm tag born, with its alias
            names = set(_aliases(births1[d]))
            assert {"changed_ms", *(f"v{i}" for i in range(REGISTERS))} <= names
        gw.kill9()
        # the broker publishes the will: NDEATH with the session's bdSeq
        dead = host.wait_for(lambda m: find(m, "NDEATH") != [], 30, "NDEATH (the will)")
        assert bd_seq(decode(find(dead, "NDEATH")[-1])) == bd_seq(nbirth1)

        n_before = len(host.snapshot())
        gw.start()
        second = host.wait_for(lambda m: _session(m[n_before:]), 60, "a second session")[n_before:]
        nbirth2 = decode(find(second, "NBIRTH")[0])
        assert bd_seq(nbirth2) == (bd_seq(nbirth1) + 1) % 256
        assert nbirth2.seq == 0
        for d in range(DEVICES):  # the same alias for every metric across the kill
            assert _aliases(decode(find(second, f"DBIRTH/farm{d}")[0])) == _aliases(births1[d])
        # data after the birth decodes with the birth's aliases (as a host does)
        birth = decode(find(second, "DBIRTH/farm0")[0])
        data = decode(find(second, "DDATA/farm0")[0], birth=birth)
        assert data.metrics and all(m.name in _aliases(birth) for m in data.metrics)
        assert gw.stop() == 0
        # a clean stop publishes NDEATH itself, with the second session's bdSeq
        last = host.wait_for(lambda m: len(find(m[n_before:], "NDEATH")) >= 1, 30, "NDEATH")
        assert bd_seq(decode(find(last[n_before:], "NDEATH")[-1])) == bd_seq(nbirth2)
    finally:
        host.stop()
