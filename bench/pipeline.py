"""The event pipeline's throughput: a simulated source → journal → MQTT QoS 1 → subscriber,
beside plain paho publishing the same payload, and a journal backlog draining after an outage.

    python bench/pipeline.py [--quick]

The subscriber is ``mosquitto_sub -q 1`` in its own process, so the figures are the
publishing side's, not a Python subscriber's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.report import emit, row
from gateway.config.models import config_model
from gateway.events import EventDraft
from gateway.runtime import Gateway
from tests.support.broker import Mosquitto

__all__ = ["drain_rows", "pipeline_rows"]

TARGET_EVENTS_PER_S = 10_000

PAYLOAD_DATA = {
    "value": 401.23,
    "unit": "g",
    "limits": {"lo": 388.0, "hi": None},
    "verdict": "pass",
    "nominal": 400.0,
    "count": 123456,
}


SEQ_RE = re.compile(rb'"seq":(\d+)')


class Counter:
    """The subscriber: mosquitto_sub (C) at QoS 1 in its own process, exiting after n messages,
    so that the measurement is of the publishing side, not of a Python subscriber."""

    def __init__(
        self, port: int, topic: str, n: int, out: Path, session: str | None = None
    ) -> None:
        """``session``: the client id of a persistent session made by :func:`make_session`
        (messages queued for it while it was away arrive too)."""
        self.out = out
        self.n = n
        client = ["-c", "-i", session] if session else ["-i", f"bench-sub-{time.time_ns()}"]
        with out.open("wb") as f:
            self.proc = subprocess.Popen(
                ["mosquitto_sub", "-p", str(port), "-t", topic, "-q", "1", "-C", str(n), *client],
                stdout=f,
            )
        time.sleep(0.5)  # connected and subscribed

    def result(self, timeout: float = 600) -> dict[str, Any]:
        """Wait (bounded) until the n messages came; raises TimeoutExpired otherwise."""
        self.proc.wait(timeout)
        end = time.monotonic()
        seqs = [int(m) for m in SEQ_RE.findall(self.out.read_bytes())]
        count = len(self.out.read_bytes().splitlines())
        return {"count": count, "last": end, "seqs_in_order": seqs == sorted(seqs)}


_RAW_MEASURED: dict[int, tuple[float, float]] = {}  # this run's raw paho figures, by n


def raw_paho_once(port: int, n: int, payload: bytes, workdir: Path) -> tuple[float, float]:
    """:func:`raw_paho`, measured once per run and size (the drain reuses the pipeline's)."""
    if n not in _RAW_MEASURED:
        _RAW_MEASURED[n] = raw_paho(port, n, payload, workdir)
    return _RAW_MEASURED[n]


def raw_paho(port: int, n: int, payload: bytes, workdir: Path) -> tuple[float, float]:
    """Plain paho at its fastest here: one thread publishing QoS 1 with a window of 1000
    unacknowledged and running the network loop itself (faster than paho's loop_start thread).
    Returns (rate until every PUBACK, rate until the subscriber has them all)."""
    counter = Counter(port, "raw/#", n, workdir / "raw.out")
    try:
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=paho.MQTTv5)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        acked = 0

        def on_publish(*_: Any) -> None:
            nonlocal acked
            acked += 1

        c.on_publish = on_publish
        c.connect("127.0.0.1", port)
        t0 = time.monotonic()
        sent = 0
        while acked < n:
            while sent < n and sent - acked < 1000:
                c.publish("raw/ccp/net_content", payload, qos=1)
                sent += 1
            c.loop(timeout=0.01)
        done = time.monotonic()
        res = counter.result()
        c.disconnect()
    finally:
        counter.proc.kill()
    if res["count"] < n:
        raise RuntimeError(f"raw paho: subscriber got {res['count']} of {n}")
    return n / (done - t0), n / (res["last"] - t0)


def pipeline(port: int, n: int, workdir: Path) -> tuple[float, dict[str, Any]]:
    cfg = _bench_config(port, workdir, n, "pipeline")
    counter = Counter(port, "salt/v1/8035/bench/L1/#", n, workdir / "pipeline.out")
    gw = Gateway(cfg)

    async def main() -> float:
        stop = asyncio.Event()
        run = asyncio.create_task(gw.run(stop))
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        await _feed(gw, n)  # a source handing in readings as they come, 200 at a time
        accepted = time.monotonic()
        res = await asyncio.to_thread(counter.result)
        stop.set()
        await run
        counter.proc.kill()
        stats["accept_events_per_s"] = round(n / (accepted - t0))
        stats["in_order"] = res["seqs_in_order"]
        if res["count"] < n:
            raise RuntimeError(f"pipeline: subscriber got {res['count']} of {n}")
        return float(n / (res["last"] - t0))

    stats: dict[str, Any] = {}
    rate = asyncio.run(main())
    return rate, stats


def _bench_config(port: int, workdir: Path, n: int, name: str) -> Any:
    return config_model().model_validate(
        {
            "gateway": {"id": "gw-bench", "enterprise": "8035", "site": "bench", "line": "L1"},
            "mqtt": {
                "url": f"mqtt://127.0.0.1:{port}",
                "protocol": "5",
                "inflight": 1000,
                "reconnect_min_secs": 0.1,
                "reconnect_max_secs": 0.2,
            },
            "journal": {"path": str(workdir / f"{name}.db"), "max_events": max(2 * n, 1000)},
        }
    )


async def _feed(gw: Gateway, n: int, batch: int = 200, per_s: float | None = None) -> None:
    """Hand ``n`` events in, ``batch`` at a time, as fast as accepted or at ``per_s``."""
    pending = []
    t0 = time.monotonic()
    for i in range(0, n, batch):
        now = datetime.now(UTC)
        drafts = [
            EventDraft("ccp.net_content", now, PAYLOAD_DATA, device="cw1")
            for _ in range(min(batch, n - i))
        ]
        pending.append(asyncio.ensure_future(gw.accept(drafts)))
        if len(pending) >= 20:
            await pending.pop(0)
        if per_s:
            await asyncio.sleep(max(0.0, t0 + (i + batch) / per_s - time.monotonic()))
    await asyncio.gather(*pending)


def make_session(port: int, topic: str) -> str:
    """A persistent QoS 1 subscription (clean session off) that the broker keeps, with the
    messages queued for it, while nobody is connected; returns its client id."""
    session = f"bench-drain-{time.time_ns()}"
    subprocess.run(
        ["mosquitto_sub", "-p", str(port), "-t", topic, "-q", "1", "-c", "-i", session, "-E"],
        check=True,
        timeout=30,
    )
    return session


def backlog_drain(n: int, workdir: Path) -> tuple[float, dict[str, Any]]:
    """``n`` events journaled while the broker is down; then it comes up and the backlog
    drains while live events keep arriving (1,000/s). Rate = all events / drain time."""
    live = 5_000
    broker = Mosquitto(workdir / "mosquitto-drain")
    gw = Gateway(_bench_config(broker.port, workdir, n + live, "drain"))
    extra: dict[str, Any] = {}

    # The subscriber's session exists before the gateway can reach the broker, so that it
    # misses nothing however fast the gateway reconnects (a race the bench once lost).
    topic = "salt/v1/8035/bench/L1/#"
    broker.start()
    session = make_session(broker.port, topic)
    broker.stop()  # SIGTERM: mosquitto saves the session (persistence)

    async def main() -> float:
        stop = asyncio.Event()
        run = asyncio.create_task(gw.run(stop))
        await _feed(gw, n)  # the broker is down: everything stays in the journal
        extra["backlog_before"] = gw.journal.stats.backlog
        broker.start()
        counter = Counter(broker.port, topic, n + live, workdir / "drain.out", session=session)
        try:
            await asyncio.to_thread(gw.link.connected.wait, 30)
            t0 = time.monotonic()
            feeder = asyncio.create_task(_feed(gw, live, batch=50, per_s=1000))
            res = await asyncio.to_thread(counter.result, max(120.0, (n + live) / 1000))
            await feeder
        finally:
            counter.proc.kill()
            stop.set()
            await run
            broker.kill()
        extra["in_order"] = res["seqs_in_order"]
        extra["live_events"] = live
        if res["count"] < n + live:
            raise RuntimeError(f"drain: subscriber got {res['count']} of {n + live}")
        return float((n + live) / (res["last"] - t0))

    return asyncio.run(main()), extra


SAMPLE = json.dumps(
    {
        "id": "01a201aa-7295-7983-85c3-3ad1a0abdea8",
        "gateway": "gw",
        "seq": 1,
        "type": "ccp.net_content",
        "ts": "2026-11-22T13:11:17.396+08:00",
        "enterprise": "8035",
        "site": "bench",
        "line": "L1",
        "device": "cw1",
        "batch": None,
        "data": PAYLOAD_DATA,
    }
).encode()
BASELINE_NAME = "raw paho QoS1 publish → subscriber"


def pipeline_rows(quick: bool) -> list[dict[str, Any]]:
    """Raw paho, then the gateway's pipeline, on one broker: one result line."""
    n = 20_000 if quick else 100_000
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            base_acked, base = raw_paho_once(broker.port, n, SAMPLE, Path(tmp))
            rate, extra = pipeline(broker.port, n, Path(tmp))
        finally:
            broker.kill()
    return [
        row(
            "pipeline_events_per_s",
            round(rate),
            "events/s",
            round(base),
            target=TARGET_EVENTS_PER_S,
            baseline_name=BASELINE_NAME,
            raw_paho_puback_per_s=round(base_acked),
            events=n,
            payload_bytes=len(SAMPLE),
            cpus=os.cpu_count(),
            **extra,
        )
    ]


def drain_rows(quick: bool) -> list[dict[str, Any]]:
    """A backlog journaled while the broker is down drains once it is up, beside raw paho on
    the same kind of broker: one result line."""
    n = 100_000 if quick else 1_000_000
    raw_n = 20_000 if quick else 100_000
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        if raw_n not in _RAW_MEASURED:
            broker = Mosquitto(Path(tmp) / "mosquitto-raw")
            broker.start()
            try:
                raw_paho_once(broker.port, raw_n, SAMPLE, Path(tmp))
            finally:
                broker.kill()
        base = _RAW_MEASURED[raw_n][1]
        drain, extra = backlog_drain(n, Path(tmp))
    return [
        row(
            "backlog_drain_events_per_s",
            round(drain),
            "events/s",
            round(base),
            baseline_name=BASELINE_NAME,
            baseline_messages=raw_n,
            events=n,
            **extra,
        )
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20k events, 100k backlog")
    args = ap.parse_args()
    for result in [*pipeline_rows(args.quick), *drain_rows(args.quick)]:
        emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
