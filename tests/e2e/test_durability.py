"""End to end, as deployed: `saltgw sim` + `saltgw run` + mosquitto + a subscriber.

The gateway is killed with SIGKILL at random moments and restarted, and the broker is stopped
for a while; the subscriber must see every seq with no gap (duplicates allowed, same id).
"""

from __future__ import annotations

import random
import sqlite3
import time
from itertools import pairwise
from pathlib import Path

import pytest

from gateway.verify import verify_journal
from tests.support.broker import Mosquitto
from tests.support.configs import line_config
from tests.support.net import wait_port
from tests.support.procs import kill9, saltgw, stop
from tests.support.subscriber import Collector

pytestmark = pytest.mark.e2e


def _last_seq(journal: Path) -> int:
    db = sqlite3.connect(journal)
    try:
        row = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
        return int(row[0]) if row else 0
    finally:
        db.close()


def test_kill_9_and_broker_outage_lose_no_accepted_event(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    rng = random.Random(20261122)
    cfg = line_config(
        tmp_path, mosquitto.port, rate_per_min=3000, poll_interval_ms=20, underweight_ratio=0.2
    )
    log = tmp_path / "saltgw.log"
    sub = Collector(mosquitto.port, topic="salt/v1/8035/daiyue/L1/#").start()
    sim = saltgw("sim", str(cfg), log=log)
    try:
        import yaml

        wait_port(yaml.safe_load(cfg.read_text())["simulators"][0]["port"])
        kills = 0
        for i in range(8):  # kill -9 at random points
            gw = saltgw("run", str(cfg), log=log)
            time.sleep(rng.uniform(0.8, 2.5))
            if i == 4:  # a broker outage while the gateway runs
                mosquitto.stop()
                time.sleep(rng.uniform(2, 4))
                mosquitto.start()
                time.sleep(1)
            kill9(gw)
            kills += 1
            chain = verify_journal(tmp_path / "journal.db")  # a kill never leaves a broken link
            assert chain.ok, chain.line()
        gw = saltgw("run", str(cfg), log=log)
        time.sleep(3)
        assert stop(gw) == 0, log.read_text()[-3000:]
        last = _last_seq(tmp_path / "journal.db")
        assert last > 100, f"too few events accepted ({last}); log:\n{log.read_text()[-2000:]}"

        def complete(_: object) -> bool:
            return {e["seq"] for e in sub.events()} >= set(range(1, last + 1))

        try:
            sub.wait_for(complete, 30, f"every seq 1..{last}")
        except AssertionError:
            seen = {e["seq"] for e in sub.events()}
            missing = sorted(set(range(1, last + 1)) - seen)
            raise AssertionError(f"{len(missing)} seqs never delivered: {missing[:50]}") from None
    finally:
        stop(sim)
        sub.stop()
    events = sub.events()
    by_seq: dict[int, str] = {}
    for ev in events:
        assert by_seq.setdefault(ev["seq"], ev["id"]) == ev["id"], f"seq {ev['seq']} with two ids"
    assert sorted(by_seq) == list(range(1, last + 1))
    # every weighing is accounted for across the kills: each restart resumes from the counter of
    # the last accepted weighing (the journal's cursor), so the gaps are reported as `missed`
    weighings: dict[int, int] = {}
    for ev in {e["id"]: e for e in events}.values():
        if ev["type"] == "ccp.net_content" or (
            ev["type"] == "alarm.device" and "count" in ev["data"]
        ):
            weighings[ev["data"]["count"]] = ev["data"].get("missed", 0)
    counts = sorted(weighings)
    assert len(counts) > 50
    holes = [(a, b) for a, b in pairwise(counts) if b - weighings[b] != a + 1]
    assert not holes, f"weighings neither recorded nor counted as missed: {holes[:10]}"
    assert len({ev["id"] for ev in events}) == last
    assert kills == 8
    assert "Traceback" not in log.read_text()
