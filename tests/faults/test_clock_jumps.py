"""Scenario 5: the wall clock jumps hours forward and back while the gateway runs.

The demo line's Modbus CCP devices (checkweigher, metal detector, magnet rod and sieve panel,
iodine doser, all simulated, in process) and a ``scan_kpi`` profile run in process with the wall
clock patched (:mod:`tests.support.wallclock`): +3 h, then -6 h (3 h behind the truth), then
back. In every phase: events keep flowing in seq order with unique ids (uuid7 monotonic even
when the clock goes back), the CCP profiles keep giving verdicts (readings are not taken for
hours old), the periodic jobs keep their pace (KPI messages, the sieve's missed-check alarm),
and nothing spins (CPU well under one core).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from firmware_sim.runner import start_simulators, stop_simulators
from gateway.config.loader import load_config
from gateway.runtime import Gateway
from tests.support.broker import Mosquitto
from tests.support.delivery import assert_gapless_unique, wait_delivered
from tests.support.loop import BackgroundLoop
from tests.support.net import free_port
from tests.support.subscriber import Collector, Received
from tests.support.wallclock import shifted_wall_clock

DEMO = Path(__file__).parents[2] / "mappings" / "demo-line.yaml"
LINE = "salt/v1/8035/daiyue/L1"
PHASES = [("true time", timedelta(0)), ("+3 h", timedelta(hours=3)),
          ("-6 h", timedelta(hours=-6)), ("back", timedelta(hours=3))]  # fmt: skip
PHASE_SECS = 6.0
DEVICES = ("cw1", "md1", "panel1", "io1")
FAST_SIMS: dict[str, dict[str, Any]] = {
    "cw1-sim": {"dropout_every_s": None, "dropout_for_s": None, "rate_per_min": 300},
    "md1-sim": {"detection_every_s": 0.9, "verification_every_s": 1.3, "seed": 5},
    "panel1-sim": {"rod_every_s": 0.8, "sieve_every_s": None, "tear_every_s": None, "seed": 5},
    "io1-sim": {"sample_every_s": 1.0, "drift_every_s": None, "drift_for_s": None, "seed": 5},
}


def _config(tmp: Path, broker_port: int) -> Path:
    cfg = yaml.safe_load(DEMO.read_text())
    cfg["mqtt"].update(url=f"mqtt://127.0.0.1:{broker_port}", reconnect_min_secs=0.2)
    cfg["journal"]["path"] = str(tmp / "journal.db")
    cfg["devices"] = [d for d in cfg["devices"] if d["driver"] == "modbus"]
    ports = {d["connection"]["port"]: free_port() for d in cfg["devices"]}
    for dev in cfg["devices"]:
        dev["connection"]["port"] = ports[dev["connection"]["port"]]
    ids = {d["id"] for d in cfg["devices"]}
    cfg["profiles"] = [p for p in cfg["profiles"] if p["device"] in ids]
    for prof in cfg["profiles"]:
        if prof["profile"] == "iodine" and prof.get("source", "dosing") == "dosing":
            prof["record_interval_s"] = 1
        if prof["profile"] == "metal_detector":
            prof["reject_confirm_s"] = 1
        if prof["profile"] == "sieve":  # no screen checks at all: a missed check every 3 s
            prof["inspection_interval_min"] = 0.05
        if prof["profile"] == "scan_kpi":
            prof.update(store=str(tmp / "trace.db"), publish_secs=1, window_secs=5)
    cfg["simulators"] = [s for s in cfg["simulators"] if s["port"] in ports]
    for sim in cfg["simulators"]:
        sim["port"] = ports[sim["port"]]
        sim.update({k: v for k, v in FAST_SIMS.get(sim["id"], {}).items()})
        for key in [k for k, v in sim.items() if v is None]:
            del sim[key]
    path = tmp / "line.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


async def _event() -> asyncio.Event:
    return asyncio.Event()


def _phase_stats(msgs: list[Received]) -> dict[str, Any]:
    events = [m.json() for m in msgs if "/event/" in m.topic or "/alarm/" in m.topic]
    ccp = [e for e in events if e["type"].startswith("ccp.")]
    return {
        "events": len(events),
        "kpi": sum(1 for m in msgs if m.topic == f"{LINE}/kpi"),
        "ccp": {d: sum(1 for e in ccp if e["device"] == d) for d in DEVICES},
        "sieve_missed": sum(
            1
            for e in events
            if e["type"] == "alarm.ccp" and e["data"].get("check") == "inspection"
            and e["device"] == "panel1"
        ),
        "stale": _still_stale(events),
    }  # fmt: skip


def _still_stale(events: list[dict[str, Any]]) -> dict[str, str]:
    """Devices whose last stale alarm in these events was not followed by ``values_ok``: a jump
    may make the one reading (or sample) in flight look hours old, once; it must not last."""
    stale: dict[str, str] = {}
    for e in events:
        if e["type"] == "alarm.device" and e["data"].get("state") == "stale":
            stale[e["device"]] = e["data"].get("detail", "")
        elif e["type"] == "alarm.device" and e["data"].get("state") == "values_ok":
            stale.pop(e["device"], None)
    return stale


def test_wall_clock_jumps(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = load_config(_config(tmp_path, mosquitto.port))
    sub = Collector(mosquitto.port, topic=f"{LINE}/#").start()
    phases: list[tuple[str, dict[str, Any], float]] = []
    try:
        with shifted_wall_clock() as clock, BackgroundLoop() as bg:
            sims = bg.run(start_simulators(cfg.simulators))
            gw = Gateway(cfg)
            stop = bg.run(_event())
            done: concurrent.futures.Future[int] = asyncio.run_coroutine_threadsafe(
                gw.run(stop), bg.loop
            )
            try:
                sub.wait_for(lambda m: _phase_stats(m)["kpi"] >= 1, 60, "the line running")
                for name, jump in PHASES:
                    clock.jump(jump)
                    mark = len(sub.snapshot())
                    cpu, t0 = time.process_time(), time.monotonic()
                    time.sleep(PHASE_SECS)
                    share = (time.process_time() - cpu) / (time.monotonic() - t0)
                    phases.append((name, _phase_stats(sub.snapshot()[mark:]), round(share, 2)))
            finally:
                bg.loop.call_soon_threadsafe(stop.set)
                assert done.result(60) == 0
                bg.run(stop_simulators(sims))
            last = gw.journal.stats.last_seq
        events = wait_delivered(sub.events, last, 60)
    finally:
        sub.stop()

    report = "\n".join(f"{n}: {s} cpu {c}" for n, s, c in phases)
    print(report)
    assert_gapless_unique(events, last)
    by_seq = {e["seq"]: e["id"] for e in events}
    ids = [uuid.UUID(by_seq[s]).int for s in sorted(by_seq)]
    problems = []
    backwards = sum(1 for a, b in itertools.pairwise(ids) if b <= a)
    if backwards:
        problems.append(f"{backwards} ids not increasing with seq (uuid7 across jumps)")
    for name, st, cpu in phases:
        checks = {
            "events keep flowing": st["ccp"]["cw1"] >= 5,
            "CCP verdicts": all(st["ccp"][d] >= 1 for d in ("md1", "panel1", "io1")),
            "readings not taken for hours old (beyond one in flight)": not st["stale"],
            "the KPI tick keeps its pace": st["kpi"] >= PHASE_SECS / 2,
            "the missed-check watch keeps its pace": st["sieve_missed"] >= 1,
            "nothing spins": cpu < 0.9,
        }
        problems += [f"phase {name}: {what}" for what, ok in checks.items() if not ok]
    assert not problems, "\n".join(problems) + "\n" + report
