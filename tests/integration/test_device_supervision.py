"""A Modbus device that accepts TCP but never answers a read properly must not flood the line
with ``alarm.device``: the gateway (in process) against raw-socket devices on 127.0.0.1, the
events counted as a real mosquitto subscriber receives them (issue 13).

Before the supervision rework such a device flapped online -> fault on every reconnect with a
fixed delay: 18 ``alarm.device`` events in 5 s."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config.loader import load_config
from gateway.runtime import Gateway
from tests.support.broker import Mosquitto
from tests.support.loop import BackgroundLoop
from tests.support.subscriber import Collector

pytestmark = pytest.mark.integration

WATCH_SECS = 5.0


class BrokenModbus:
    """A raw asyncio Modbus TCP server. ``mode``:

    * ``garbage`` — answers every request with bytes that are no Modbus frame;
    * ``exception`` — answers every request with exception 4 (server device failure);
    * ``good_once`` — answers the first request of each connection properly (count, weight),
      then exception 4: a device that flaps online/fault on every connection.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readexactly(7)
                tid, _proto, length, unit = struct.unpack(">HHHB", head)
                pdu = await reader.readexactly(length - 1)
                self.requests += 1
                fc = pdu[0]
                if self.mode == "garbage":
                    writer.write(b"\x13\x37garbage\xff\xfe" * 3)
                elif self.mode == "good_once" and served == 0 and fc == 3:
                    _, count = struct.unpack(">HH", pdu[1:5])
                    regs = [0, 7, *struct.unpack(">HH", struct.pack(">f", 401.5))][:count]
                    regs += [0] * (count - len(regs))
                    body = bytes([3, 2 * count]) + struct.pack(f">{count}H", *regs)
                    writer.write(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)
                else:
                    body = bytes([fc | 0x80, 4])
                    writer.write(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)
                served += 1
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _config(tmp: Path, broker_port: int, device_port: int) -> Path:
    cfg: dict[str, Any] = {
        "gateway": {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "mqtt": {"url": f"mqtt://127.0.0.1:{broker_port}"},
        "journal": {"path": str(tmp / "journal.db")},
        "devices": [
            {
                "id": "cw1",
                "driver": "modbus",
                "connection": {"type": "tcp", "host": "127.0.0.1", "port": device_port},
                "poll_interval_ms": 50,
                "timeout_ms": 300,
                "byte_order": "big",
                "word_order": "big",
                "tags": {
                    "count": {"table": "holding_register", "address": 0, "type": "uint32"},
                    "weight_g": {"table": "holding_register", "address": 2, "type": "float32"},
                },
            }
        ],
    }
    path = tmp / "line.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


async def _make_event() -> asyncio.Event:
    return asyncio.Event()


@contextlib.contextmanager
def running(tmp: Path, broker: Mosquitto, mode: str) -> Iterator[tuple[Gateway, BrokenModbus]]:
    with BackgroundLoop() as bg:
        device = BrokenModbus(mode)
        bg.run(device.start())
        gw = Gateway(load_config(_config(tmp, broker.port, device.port)))
        stop = bg.run(_make_event())
        done: concurrent.futures.Future[int] = asyncio.run_coroutine_threadsafe(
            gw.run(stop), bg.loop
        )
        try:
            yield gw, device
        finally:
            bg.loop.call_soon_threadsafe(stop.set)
            done.result(30)
            bg.run(device.stop())


def _device_alarms(sub: Collector) -> list[dict[str, Any]]:
    return [e["data"] for e in sub.events() if e["type"] == "alarm.device"]


def _states(sub: Collector) -> list[str]:
    return [
        json.loads(m.payload)["state"]
        for m in sub.snapshot()
        if m.topic.endswith("/state/cw1") and m.payload
    ]


@pytest.mark.parametrize("mode", ["garbage", "exception"])
def test_a_device_failing_every_read_raises_one_alarm_not_a_flood(
    tmp_path: Path, mosquitto: Mosquitto, mode: str
) -> None:
    sub = Collector(mosquitto.port).start()
    try:
        with running(tmp_path, mosquitto, mode) as (gw, device):
            time.sleep(WATCH_SECS)
            (sup,) = gw.supervisors
            state = sup.state
            connections, requests = device.connections, device.requests
        sub.wait_for(lambda _: len(_device_alarms(sub)) >= 1, 10, "an alarm.device")
        time.sleep(0.5)  # what else was accepted reaches the subscriber
        alarms = _device_alarms(sub)
    finally:
        sub.stop()
    want = "offline" if mode == "garbage" else "fault"
    assert state is not None and str(state.state) == want, state
    # the device was tried again and again (backoff growing: 0.5, 1, 2, 4 s + jitter) …
    assert 3 <= connections <= 6, connections
    assert requests >= connections
    # … but it was never online, and said so once
    assert [a["state"] for a in alarms] == [want], alarms
    assert alarms[0]["previous"] is None
    assert "online" not in _states(sub)
    assert sup.stats.readings == 0


def test_a_flapping_device_raises_a_bounded_number_of_alarms(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """One good read per connection, then a fault: the device really is online for a moment
    on each connection (its backoff starts over each time), so it flaps about twice a second.
    Alarms: at most 6 at once (then one per 30 s); the state topic follows every change."""
    sub = Collector(mosquitto.port).start()
    try:
        with running(tmp_path, mosquitto, "good_once") as (gw, device):
            time.sleep(WATCH_SECS)
            (sup,) = gw.supervisors
            flaps = device.connections
            readings = sup.stats.readings
            suppressed = sup.stats.alarms_suppressed
        time.sleep(1.0)
        alarms = _device_alarms(sub)
        states = _states(sub)
    finally:
        sub.stop()
    assert flaps >= 5 and readings >= 5, (flaps, readings)
    assert states.count("online") >= 5 and states.count("fault") >= 5, states
    assert 1 <= len(alarms) <= 6, alarms
    assert suppressed >= 2 * flaps - 1 - 6 - 1
