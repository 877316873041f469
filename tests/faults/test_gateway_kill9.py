"""Scenario 1: ``saltgw run`` killed with SIGKILL at random points, twenty times, at a high event
rate; then one clean run drains the journal. A subscriber must hold every seq from 1 to the
journal's last, each with one id (re-sent events keep theirs), and the journal must be intact.

Most kills land 0.3-1.5 s after the restarted gateway accepted its first new event (events
flowing, rows in flight to the broker); every fourth lands blind, anywhere in start-up
(imports, journal open, broker connect). ``SALTGW_FAULT_SEED`` picks other random points.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import yaml

from tests.support.broker import Mosquitto
from tests.support.configs import line_config
from tests.support.delivery import (
    assert_gapless_unique,
    journal_backlog,
    journal_integrity,
    journal_last_seq,
    wait_delivered,
    wait_until,
)
from tests.support.gateway_proc import GatewayProc
from tests.support.net import wait_port
from tests.support.procs import saltgw, stop
from tests.support.subscriber import Collector

KILLS = 20
LINE = "salt/v1/8035/daiyue/L1"


def test_kill9_at_random_points_loses_nothing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    seed = int(os.environ.get("SALTGW_FAULT_SEED", "20261122"))
    rng = random.Random(seed)
    cfg = line_config(
        tmp_path, mosquitto.port, rate_per_min=6000, poll_interval_ms=20, underweight_ratio=0.3
    )
    sim_port = yaml.safe_load(cfg.read_text())["simulators"][0]["port"]
    journal = tmp_path / "journal.db"
    log = tmp_path / "saltgw.log"
    sub = Collector(mosquitto.port, topic=f"{LINE}/#").start()
    sim = saltgw("sim", str(cfg), log=tmp_path / "sim.log")
    gw = GatewayProc(cfg, log)
    kills: list[tuple[str, int, int]] = []  # (where, last_seq before, last_seq after)
    try:
        wait_port(sim_port, 30)
        for i in range(KILLS):
            before = journal_last_seq(journal)
            gw.start()
            if i % 4 == 3:
                where = "start-up"
                time.sleep(rng.uniform(0.05, 2.5))
            else:
                where = "running"
                wait_until(
                    lambda b=before: journal_last_seq(journal) > b,  # type: ignore[misc]
                    60,
                    f"run {i + 1} to accept events (seed {seed})",
                )
                time.sleep(rng.uniform(0.3, 1.5))
            gw.kill9()
            kills.append((where, before, journal_last_seq(journal)))
        assert journal_integrity(journal) == "ok"

        # one clean run: it catches up, then SIGTERM drains what is in flight
        gw.start().wait_serving()
        caught_up_to = journal_last_seq(journal)
        wait_delivered(sub.events, caught_up_to, 90)
        assert gw.stop() == 0, gw.log_text()[-3000:]
        last = journal_last_seq(journal)
        events = wait_delivered(sub.events, last, 60)
    finally:
        if gw.running():
            gw.kill9()
        stop(sim)
        sub.stop()

    running_kills = [k for k in kills if k[0] == "running"]
    assert len(kills) == KILLS
    assert all(after > before for _, before, after in running_kills), kills
    assert last > 500, f"too few events for a kill test ({last}); kills: {kills}"
    assert_gapless_unique(events, last)
    assert journal_backlog(journal) == 0, "a clean stop left undelivered rows"
    assert journal_integrity(journal) == "ok"
    text = gw.log_text()
    assert "Traceback" not in text, text[-3000:]
    resent = len(events) - last
    print(f"seed {seed}: {KILLS} kills, {last} events, {resent} re-sent (same id); {kills}")
