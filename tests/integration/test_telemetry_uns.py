"""Tag telemetry end to end (issue 14): checkweigher simulator (Modbus TCP) → gateway → real
mosquitto → a subscriber. By exception and deadband, quality on device loss, retained last
values, and the store's full policy through a broker outage without losing an event."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from firmware_sim.runner import start_simulators, stop_simulators
from gateway.config.loader import load_config
from gateway.runtime import Gateway
from tests.support.broker import Mosquitto
from tests.support.configs import line_config
from tests.support.loop import BackgroundLoop
from tests.support.subscriber import Collector, Received

pytestmark = pytest.mark.integration

LINE = "salt/v1/8035/daiyue/L1"


class Line:
    def __init__(self, bg: BackgroundLoop, gw: Gateway, sims: dict[str, Any]) -> None:
        self.bg, self.gw, self.sims = bg, gw, sims

    def stop_device(self) -> None:
        self.bg.run(stop_simulators(self.sims))
        self.sims = {}


def _config(tmp: Path, port: int, telemetry: dict[str, Any], device: dict[str, Any]) -> Path:
    path = line_config(tmp, port, rate_per_min=1200, poll_interval_ms=20)
    cfg = yaml.safe_load(path.read_text())
    cfg["telemetry"] = {"store": str(tmp / "telemetry.db"), **telemetry}
    cfg["devices"][0]["telemetry"] = device
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Any]:
    """Start a line from a config; stop it at the end of the test."""
    started: list[tuple[BackgroundLoop, Gateway, Any, concurrent.futures.Future[int], Line]] = []

    def start(path: Path) -> Line:
        cfg = load_config(path)
        bg = BackgroundLoop().__enter__()
        sims = bg.run(start_simulators(cfg.simulators))
        gw = Gateway(cfg)
        stop = bg.run(_event())
        done = asyncio.run_coroutine_threadsafe(gw.run(stop), bg.loop)
        line = Line(bg, gw, sims)
        started.append((bg, gw, stop, done, line))
        return line

    yield start
    for bg, _, stop, done, line in started:
        bg.loop.call_soon_threadsafe(stop.set)
        done.result(30)
        bg.run(stop_simulators(line.sims))
        bg.__exit__()


async def _event() -> asyncio.Event:
    return asyncio.Event()


def _records(msgs: list[Received]) -> list[dict[str, Any]]:
    """Per-record messages of cw1, de-duplicated by id (at-least-once), in id order."""
    seen: dict[int, dict[str, Any]] = {}
    for m in msgs:
        if m.topic == f"{LINE}/tags/cw1":
            body = m.json()
            seen.setdefault(body["id"], body)
    return [seen[i] for i in sorted(seen)]


def test_by_exception_with_deadband_retained_last_values_and_stale_on_device_loss(
    tmp_path: Path, mosquitto: Mosquitto, running: Any
) -> None:
    sub = Collector(mosquitto.port, topic=f"{LINE}/#").start()
    path = _config(
        tmp_path,
        mosquitto.port,
        {"retained_interval_ms": 200},
        # the weight moves by far less than 5 kg: reported once, then only with its quality
        {"tags": ["count", "weight_g"], "overrides": {"weight_g": {"deadband": 5000, "unit": "g"}},
         "max_interval_secs": 0},
    )  # fmt: skip
    try:
        line = running(path)
        msgs = sub.wait_for(lambda m: len(_records(m)) >= 15, 8, "15 telemetry records")
        readings = line.gw.supervisors[0].stats.readings
        recs = _records(msgs)
        # by exception: a record only when the count moved (polls: 50/s, weighings: 20/s)
        assert len(recs) < readings
        counts = [r["values"]["count"] for r in recs]
        assert counts == sorted(set(counts)), "a count reported twice, or out of order"
        assert "weight_g" in recs[0]["values"]
        assert all("weight_g" not in r["values"] for r in recs[1:])  # within the deadband
        assert all(set(r["values"]) <= {"count", "weight_g"} for r in recs)  # rejected: not chosen
        assert recs[0]["ts"].endswith("+08:00") and "quality" not in recs[0]

        # retained last values: a subscriber arriving now gets them at once
        late = Collector(mosquitto.port, topic=f"{LINE}/tag/#").start()
        try:
            got = late.wait_for(lambda m: len({x.topic for x in m}) >= 2, 5, "retained values")
        finally:
            late.stop()
        last = {m.topic: m.json() for m in got if m.retain}
        assert last[f"{LINE}/tag/cw1/weight_g"]["unit"] == "g"
        assert last[f"{LINE}/tag/cw1/weight_g"]["quality"] == "good"
        # the latest value of a record at most retained_interval_ms old, not an older one
        count = last[f"{LINE}/tag/cw1/count"]
        reported = {r["values"]["count"]: r["ts"] for r in _records(sub.snapshot())}
        assert count["value"] in reported and count["ts"] == reported[count["value"]]
        assert count["value"] >= counts[-1] - 10  # 200 ms at 20 weighings/s, with margin
        # the weight was reported once (deadband): its retained value is that one (0.0 when
        # the first poll came before the first weighing, as on a loaded machine)
        assert last[f"{LINE}/tag/cw1/weight_g"]["value"] == recs[0]["values"]["weight_g"]
        assert 0 <= recs[0]["values"]["weight_g"] < 2000

        # device loss: every chosen tag stale, with its last good value
        line.stop_device()
        msgs = sub.wait_for(
            lambda m: any(r.get("quality") for r in _records(m)), 10, "a stale record"
        )
        stale = next(r for r in _records(msgs) if r.get("quality"))
        before = [r for r in _records(msgs) if r["id"] < stale["id"]]
        assert stale["quality"] == {"count": "stale", "weight_g": "stale"}
        assert stale["values"]["count"] == before[-1]["values"]["count"]
        assert 0 < stale["values"]["weight_g"] < 2000  # the last good one, not reported since
        msgs = sub.wait_for(
            lambda m: any(
                x.topic == f"{LINE}/tag/cw1/count" and x.json()["quality"] == "stale" for x in m
            ),
            5,
            "the retained count stale",
        )
        retained = [x.json() for x in msgs if x.topic == f"{LINE}/tag/cw1/count"]
        assert retained[-1] == {
            "value": stale["values"]["count"],
            "ts": stale["ts"],
            "quality": "stale",
            "unit": None,
        }
    finally:
        sub.stop()


def test_full_policy_through_a_broker_outage_keeps_every_event(
    tmp_path: Path, mosquitto: Mosquitto, running: Any
) -> None:
    sub = Collector(mosquitto.port, topic=f"{LINE}/#").start()
    max_records = 20
    path = _config(
        tmp_path,
        mosquitto.port,
        {"max_records": max_records, "when_full": "coalesce", "retained_interval_ms": 0},
        {"tags": "all", "max_interval_secs": 0},
    )
    try:
        line = running(path)
        store = line.gw.telemetry.store
        sub.wait_for(lambda m: len(_records(m)) >= 5, 8, "records before the outage")
        mosquitto.stop()
        sub_down_at = store.stats.last_id
        deadline = time.monotonic() + 8  # 20 records/s: the bound is passed within ~1.5 s
        while store.stats.coalesced < 2 * max_records and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.stats.coalesced >= 2 * max_records, store.stats
        assert store.stats.stored <= max_records + 1  # + one per device
        mosquitto.start()
        msgs = sub.wait_for(
            lambda m: bool(_records(m)) and _records(m)[-1]["id"] > sub_down_at + 10,
            30,
            "records after the outage",
        )
        # the subscriber's view: ids increase; the outage's oldest records arrive folded into
        # one per device (latest value of each tag, "coalesced": how many it stands for) …
        recs = _records(msgs)
        folded = [r for r in recs if r.get("coalesced")]
        assert folded and all(r["coalesced"] >= 2 for r in folded)
        assert set(folded[0]["values"]) == {"count", "weight_g", "rejected"}
        counts = [r["values"]["count"] for r in recs if "count" in r["values"]]
        assert counts == sorted(counts)  # nothing older arrives after something newer
        removed = store.stats.coalesced + store.stats.dropped
        assert store.stats.dropped == 0 and removed >= 2 * max_records
        # … and not one traceability event is lost: every weighing, seq gapless
        line.stop_device()
        cw = line.sims
        assert cw == {}
        j = line.gw.journal
        deadline = time.monotonic() + 30
        while j.stats.backlog and time.monotonic() < deadline:
            time.sleep(0.05)
        assert j.stats.backlog == 0

        def missing(msgs: list[Received]) -> list[int]:
            return sorted(set(range(1, j.stats.last_seq + 1)) - {e["seq"] for e in _events(msgs)})

        try:
            events = sub.wait_for(lambda m: not missing(m), 30, "every event")
        except AssertionError as exc:  # name them: lost by the gateway, the broker, or here?
            raise AssertionError(f"{exc}; seqs missing: {missing(sub.snapshot())}") from None
        # every weighing is recorded or counted as missed, never silently absent. Counts may
        # skip: the simulator weighs by the clock and, after its event loop stalled (on a
        # loaded machine), makes the overdue weighings in one burst (CheckweigherSim._produce);
        # only the last of a burst reaches the registers, so no poll can see the others, and
        # the profile reports them in the next event's "missed" (gateway/profiles/checkweigher
        # .py). With 2 CPU burners on 2 cores 13 of 36 runs skipped 1-5 counts, each gap the next
        # event's "missed"; asserting gapless counts made this test fail in those runs. An
        # event lost by the gateway leaves a gap no "missed" explains (or a seq gap, above).
        weighings: dict[int, dict[str, Any]] = {}  # count -> data, at-least-once: same id
        ids: dict[int, str] = {}
        for e in _events(events):
            if e["type"] == "ccp.net_content":
                count = e["data"]["count"]
                assert ids.setdefault(count, e["id"]) == e["id"], f"two events of weighing {count}"
                weighings[count] = e["data"]
        counts = sorted(weighings)
        gaps = {b: b - a - 1 for a, b in itertools.pairwise(counts)}
        assert {c: weighings[c].get("missed", 0) for c in counts[1:]} == gaps
        assert len(counts) >= 20
    finally:
        sub.stop()


def _events(msgs: list[Received]) -> list[dict[str, Any]]:
    return [m.json() for m in msgs if "/event/" in m.topic or "/alarm/" in m.topic]


def test_a_publish_failing_as_the_connection_drops_does_not_pin_the_store_cursor(
    tmp_path: Path, mosquitto: Mosquitto, running: Any
) -> None:
    """A publish that raises (MqttLink.publish did on MQTT_ERR_CONN_LOST, a socket dying under
    it, until it learnt that paho keeps such a message) must not pin the store. Seen in
    bench/telemetry_outage.py: the record's hold was never released, the store's cursor stayed
    below it for ever and the backlog never drained after the broker came back. Here the
    failure is injected once on a record and once on a retained value."""
    sub = Collector(mosquitto.port, topic=f"{LINE}/tags/cw1").start()
    path = _config(tmp_path, mosquitto.port, {"retained_interval_ms": 0},
                   {"tags": "all", "max_interval_secs": 0})  # fmt: skip
    try:
        line = running(path)
        sub.wait_for(lambda m: len(_records(m)) >= 3, 8, "records before the failures")
        uns = line.gw.telemetry.outputs[0]
        link = uns.link
        real = link.publish
        failed: dict[str, int] = {}

        def publish(topic: str, payload: bytes, *, retain: bool = False,
                    seq: int | None = None) -> None:  # fmt: skip
            kind = "retained" if retain else "record"
            if kind in failed:
                real(topic, payload, retain=retain, seq=seq)
                return
            failed[kind] = seq or 0
            link.client.publish(topic, payload, qos=1, retain=retain)  # paho keeps it
            raise RuntimeError(f"publish to {topic!r} refused by paho: 7")

        link.publish = publish  # type: ignore[method-assign]
        store = line.gw.telemetry.store
        deadline = time.monotonic() + 10
        while len(failed) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(failed) == {"record", "retained"}, failed
        # the cursor passes both failed records, and the store empties as before
        upto = max(failed.values())
        while uns.stats.acked_upto <= upto and time.monotonic() < deadline + 5:
            time.sleep(0.05)
        assert uns.stats.acked_upto > upto, (uns.stats, failed)
        msgs = sub.wait_for(lambda m: failed["record"] in {r["id"] for r in _records(m)}, 5,
                            "the failed record, sent again")  # fmt: skip
        assert failed["record"] in {r["id"] for r in _records(msgs)}
        assert store.backlog < 50, store.backlog  # 20 records/s: a stuck cursor grows it
    finally:
        sub.stop()
