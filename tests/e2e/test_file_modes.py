"""Issue 15: what saltgw writes is its owner's only, whatever the umask it was started with.
Old main left the journal, the trace store (with SQLite's -wal/-shm) and the outbox documents
world-readable under the usual umask 022 outside systemd."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_http import with_bridge_and_scan_kpi
from tests.support.broker import Mosquitto
from tests.support.configs import line_config
from tests.support.net import wait_port
from tests.support.procs import saltgw, stop

pytestmark = pytest.mark.e2e


def test_files_are_0600_and_directories_0700_under_umask_022(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    state = tmp_path / "state"  # created by saltgw
    cfg = line_config(tmp_path, mosquitto.port)
    with_bridge_and_scan_kpi(cfg)
    doc = yaml.safe_load(cfg.read_text())
    doc["journal"]["path"] = str(state / "journal.db")
    doc["bridge"]["store"] = str(state / "bridge.db")
    doc["bridge"]["upload"]["path"] = str(state / "outbox")
    doc["profiles"][-1]["store"] = str(state / "trace.db")
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    sim_port = doc["simulators"][0]["port"]
    log = tmp_path / "saltgw.log"
    old = os.umask(0o022)  # the children inherit it, as from a login shell
    try:
        sim = saltgw("sim", str(cfg), log=tmp_path / "sim.log")
        gw = saltgw("run", str(cfg), log=log)
    finally:
        os.umask(old)
    try:
        wait_port(sim_port, timeout=30)
        deadline = time.monotonic() + 60
        while not list((state / "outbox").glob("*.xml")):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            assert gw.poll() is None, log.read_text()[-3000:]
            time.sleep(0.3)
        modes = {
            p.relative_to(state).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in [state, *state.rglob("*")]
        }
    finally:
        stop(gw)
        stop(sim)
    assert {"journal.db", "journal.db-wal", "bridge.db", "bridge.db-wal", "trace.db"} <= set(
        modes
    ), modes
    assert any(name.startswith("outbox/") and name.endswith(".xml") for name in modes)
    for name, mode in modes.items():
        is_dir = (state / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))
