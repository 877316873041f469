"""``saltgw run`` with a bridge: killed with SIGKILL twice while the line publishes, it loses
nothing: every code published ends up in exactly one document in the outbox. ``saltgw demo
--outbox DIR`` writes valid platform XML there."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from gateway.bridge.schema import PENDING_EVENTS_SQL
from tests.support.bridge_docs import facts_of
from tests.support.bridge_env import Publisher, known_gateway, wait
from tests.support.broker import Mosquitto
from tests.support.demo import start_demo
from tests.support.procs import ROOT, kill9, saltgw, stop
from tests.support.trace_events import LineEvents, batch_events, payload

pytestmark = pytest.mark.e2e

STARTED = "bridge gwe2e: store"
DEMO_SECS = 14  # bounds the demo run; it is stopped once its outbox holds a document


def test_bridge_killed_mid_way_loses_nothing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    outbox = tmp_path / "outbox"
    store = tmp_path / "bridge.db"
    cfg = tmp_path / "bridge.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "gateway": {"id": "gw-e2e", "enterprise": "8035", "site": "daiyue", "line": "L1"},
                "mqtt": {"url": mosquitto.url, "reconnect_min_secs": 0.2, "reconnect_max_secs": 1},
                "journal": {"path": str(tmp_path / "journal.db")},
                "bridge": {
                    "store": str(store),
                    "gateways": [known_gateway(tmp_path)],  # the test line's gateway
                    "codes_per_document": 50,
                    "max_delay_secs": 0.2,
                    "upload": {"type": "directory", "path": str(outbox), "ack": "on_write"},
                },
            }
        )
    )
    log = tmp_path / "saltgw.log"
    f = LineEvents()
    plans = [batch_events(f, f"B{i}", 300, rework=False) for i in range(4)]
    events = [e for p in plans for e in p.events]
    proc = saltgw("run", str(cfg), log=log)
    wait(lambda: store.exists(), 15, "the bridge's store")
    time.sleep(0.5)  # its session and subscriptions exist from now on

    pub = Publisher(mosquitto.port)
    sent = threading.Event()

    def line() -> None:
        for i, ev in enumerate(events):
            pub.publish(f.topic(ev), payload(ev))
            if i % 50 == 0:
                time.sleep(0.02)
        sent.set()

    t = threading.Thread(target=line, daemon=True)
    t.start()
    try:
        for n, at in ((1, 0.4), (2, 0.5)):
            wait(lambda n=n: log.read_text().count(STARTED) == n, 15, f"bridge start {n}")
            time.sleep(at)  # mid-way: events arriving, documents being built and written
            kill9(proc)
            time.sleep(0.3)
            proc = saltgw("run", str(cfg), log=log)
        assert sent.wait(30), "the publisher did not finish"

        def delivered() -> bool:
            if not store.exists():
                return False
            with sqlite3.connect(store) as db:
                left = db.execute(
                    "SELECT (SELECT COUNT(*) FROM events), "
                    f"({PENDING_EVENTS_SQL}), "
                    "(SELECT COUNT(*) FROM documents WHERE state != 'acked')"
                ).fetchone()
            return bool(left == (len(events), 0, 0))

        wait(delivered, 30, "every event stored and delivered")
    finally:
        pub.close()
        rc = stop(proc)
    assert rc == 0, log.read_text()[-3000:]
    assert log.read_text().count(STARTED) == 3  # started three times
    facts = facts_of([p.read_bytes() for p in sorted(outbox.glob("*.xml"))])
    bags = [c for p in plans for c in p.bags]
    assert sorted(facts.codes) == sorted(bags)  # each code in exactly one document
    assert len(facts.numbers) == len(set(facts.numbers))
    expected = [("pack", k, tuple(v)) for p in plans for k, v in p.cases.items()]
    expected += [("pack", k, tuple(v)) for p in plans for k, v in p.pallets.items()]
    assert sorted(facts.relations) == sorted(expected)
    assert not list(outbox.glob(".*.tmp")), "a temporary file was left behind"


def test_demo_writes_valid_platform_xml_to_the_outbox(tmp_path: Path) -> None:
    """The demo runs until its outbox holds a document (Ctrl-C then; DEMO_SECS at most)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    outbox = tmp_path / "outbox"
    demo = start_demo(tmp_path, ("--duration", str(DEMO_SECS), "--outbox", str(outbox)), env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and demo.proc.poll() is None:
            if any(outbox.glob("*.xml")):
                demo.proc.send_signal(signal.SIGINT)  # the demo's Ctrl-C: a clean stop
                break
            time.sleep(0.25)
        code = demo.proc.wait(timeout=60)
    finally:
        demo.stop()
    assert code == 0, demo.stderr.read_text()[-2000:]
    summary = json.loads(demo.out.join(10)[-1].removeprefix("summary: "))
    bridge = summary["bridge"]
    assert bridge["upload_to"] == str(outbox) and bridge["store"]["quarantined"] == 0
    files = sorted(outbox.glob("*.xml"))
    assert files and len(files) == bridge["upload"]["acked"]
    check = subprocess.run(
        [sys.executable, "-m", "gateway", "xml", "validate", *map(str, files)],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("valid (saltgw platform XML v1; schema ") == len(files)
    facts = facts_of([f.read_bytes() for f in files])
    assert len(facts.codes) == len(set(facts.codes)) > 0
    assert summary["events_by_type"].get("pack.bag", 0) >= len(facts.codes)
