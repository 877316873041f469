"""saltgw benchmarks: one JSON object per line, each measured beside its baseline in the same
run: {"bench": ..., "value": ..., "unit": ..., "baseline": ..., "ratio": ...}.

    python bench/run.py [--quick]

Needs mosquitto (the README's test set-up installs it).
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

from gateway.config.models import config_model
from gateway.events import EventDraft
from gateway.runtime import Gateway
from tests.support.broker import Mosquitto

PAYLOAD_DATA = {
    "value": 401.23,
    "unit": "g",
    "limits": {"lo": 388.0, "hi": None},
    "verdict": "pass",
    "nominal": 400.0,
    "count": 123456,
}


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


SEQ_RE = re.compile(rb'"seq":(\d+)')


class Counter:
    """The subscriber: mosquitto_sub (C) at QoS 1 in its own process, exiting after n messages,
    so that the measurement is of the publishing side, not of a Python subscriber."""

    def __init__(self, port: int, topic: str, n: int, out: Path) -> None:
        self.out = out
        self.n = n
        with out.open("wb") as f:
            self.proc = subprocess.Popen(
                [
                    "mosquitto_sub",
                    "-p",
                    str(port),
                    "-t",
                    topic,
                    "-q",
                    "1",
                    "-C",
                    str(n),
                    "-i",
                    f"bench-sub-{time.time_ns()}",
                ],
                stdout=f,
            )
        time.sleep(0.5)  # connected and subscribed

    def result(self, timeout: float = 600) -> dict[str, Any]:
        self.proc.wait(timeout)
        end = time.monotonic()
        seqs = [int(m) for m in SEQ_RE.findall(self.out.read_bytes())]
        count = len(self.out.read_bytes().splitlines())
        return {"count": count, "last": end, "seqs_in_order": seqs == sorted(seqs)}


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


def backlog_drain(n: int, workdir: Path) -> tuple[float, dict[str, Any]]:
    """``n`` events journaled while the broker is down; then it comes up and the backlog
    drains while live events keep arriving (1,000/s). Rate = all events / drain time."""
    live = 5_000
    broker = Mosquitto(workdir / "mosquitto-drain")
    gw = Gateway(_bench_config(broker.port, workdir, n + live, "drain"))
    extra: dict[str, Any] = {}

    async def main() -> float:
        stop = asyncio.Event()
        run = asyncio.create_task(gw.run(stop))
        await _feed(gw, n)  # the broker is down: everything stays in the journal
        extra["backlog_before"] = gw.journal.stats.backlog
        broker.start()
        counter = Counter(broker.port, "salt/v1/8035/bench/L1/#", n + live, workdir / "drain.out")
        try:
            await asyncio.to_thread(gw.link.connected.wait, 30)
            t0 = time.monotonic()
            feeder = asyncio.create_task(_feed(gw, live, batch=50, per_s=1000))
            res = await asyncio.to_thread(counter.result)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller runs (CI-sized)")
    args = ap.parse_args()
    n = 20_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            sample = json.dumps(
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
            base_acked, base = raw_paho(broker.port, n, sample, Path(tmp))
            rate, extra = pipeline(broker.port, n, Path(tmp))
        finally:
            broker.kill()
    emit(
        {
            "bench": "pipeline_events_per_s",
            "value": round(rate),
            "unit": "events/s",
            "baseline": round(base),
            "baseline_name": "raw paho QoS1 publish → subscriber",
            "raw_paho_puback_per_s": round(base_acked),
            "ratio": round(rate / base, 3),
            "events": n,
            "payload_bytes": len(sample),
            "cpus": os.cpu_count(),
            **extra,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        drain_n = 100_000 if args.quick else 1_000_000
        drain, extra = backlog_drain(drain_n, Path(tmp))
    emit(
        {
            "bench": "backlog_drain_events_per_s",
            "value": round(drain),
            "unit": "events/s",
            "baseline": round(base),
            "baseline_name": "raw paho QoS1 publish → subscriber",
            "ratio": round(drain / base, 3),
            "events": drain_n,
            **extra,
        }
    )


if __name__ == "__main__":
    main()
