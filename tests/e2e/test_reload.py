"""A map changed on a running line (gateway/reload.py), as deployed: `saltgw sim` with two
checkweighers, `saltgw run`, mosquitto and a subscriber.

One device's tags change (cw2 gains its `rejected` tag, so its rejected bags become
`pack.reject` events) and `saltgw reload` applies it: the `config.reload` event names cw2, its
new tag shows up, cw1 keeps its TCP connection (the same client port in /proc/net/tcp, no new
state message). An invalid edit is refused (SIGHUP, then `saltgw reload`) with its
FILE:LINE:COL, and the old map keeps running. Across it all the subscriber sees every seq
once: no gap, no duplicate id.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.broker import Mosquitto
from tests.support.configs import line_config
from tests.support.net import free_port, wait_port
from tests.support.procs import ROOT, saltgw, stop
from tests.support.subscriber import Collector

pytestmark = pytest.mark.e2e


def _two_checkweighers(tmp: Path, broker_port: int) -> tuple[Path, dict[str, Any]]:
    path = line_config(tmp, broker_port, rate_per_min=1200, underweight_ratio=0.3)
    cfg = yaml.safe_load(path.read_text())
    # a loaded machine must not time a device out: a reconnect would look like a restart
    cfg["devices"][0]["timeout_ms"] = 5000
    cw2 = dict(copy.deepcopy(cfg["devices"][0]), id="cw2")  # no YAML alias between the two
    cw2["connection"] = dict(cw2["connection"], port=free_port())
    cw2["tags"] = {k: v for k, v in cw2["tags"].items() if k != "rejected"}
    cfg["devices"].append(cw2)
    cfg["profiles"].append(dict(cfg["profiles"][0], device="cw2"))
    sim2 = dict(cfg["simulators"][0], id="cw2-sim", port=cw2["connection"]["port"], seed=8)
    cfg["simulators"].append(sim2)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, cfg


def _client_ports(server_port: int) -> set[int]:
    """Local ports of the established TCP connections to 127.0.0.1:``server_port``."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote, state = parts[1], parts[2], parts[3]
        if state == "01" and int(remote.split(":")[1], 16) == server_port:
            out.add(int(local.split(":")[1], 16))
    return out


def _reload(cfg: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "reload", str(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=90,
    )


def _of(events: list[dict[str, Any]], etype: str, device: str | None = None) -> list[Any]:
    return [e for e in events if e["type"] == etype and (device is None or e["device"] == device)]


def test_reload_changes_one_device_and_refuses_an_invalid_map(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    cfg_path, cfg = _two_checkweighers(tmp_path, mosquitto.port)
    log = tmp_path / "saltgw.log"
    sub = Collector(mosquitto.port, topic="salt/v1/8035/daiyue/L1/#").start()
    sim = saltgw("sim", str(cfg_path), log=log)
    gw = None
    try:
        p1, p2 = (s["port"] for s in cfg["simulators"])
        wait_port(p1)
        wait_port(p2)
        gw = saltgw("run", str(cfg_path), log=log)

        def weighings(device: str, n: int) -> Any:
            return lambda _: len(_of(sub.events(), "ccp.net_content", device)) >= n

        sub.wait_for(weighings("cw1", 3), 60, "weighings of cw1")
        sub.wait_for(weighings("cw2", 3), 30, "weighings of cw2")
        assert not _of(sub.events(), "pack.reject", "cw2")  # it has no rejected tag yet
        cw1_ports = _client_ports(p1)
        assert len(cw1_ports) == 1, cw1_ports

        # -- one device's tags change: `saltgw reload` ---------------------------------------
        cfg["devices"][1]["tags"]["rejected"] = dict(cfg["devices"][0]["tags"]["rejected"])
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        done = _reload(cfg_path)
        assert done.returncode == 0, done.stderr + log.read_text()[-3000:]
        assert "changed cw2" in done.stdout and "1 unchanged kept running" in done.stdout

        sub.wait_for(lambda _: _of(sub.events(), "config.reload"), 30, "config.reload")
        [event] = _of(sub.events(), "config.reload")
        assert event["data"]["changed"] == ["cw2"]
        assert event["data"]["added"] == event["data"]["removed"] == []
        assert event["data"]["file"] == str(cfg_path)
        assert event["data"]["by"].endswith("saltgw reload)")
        assert event["data"]["sha256"] != event["data"]["previous_sha256"]
        sub.wait_for(
            lambda _: any(e["seq"] > event["seq"] for e in _of(sub.events(), "pack.reject", "cw2")),
            60,
            "a pack.reject of cw2 (its new tag) after the reload",
        )
        sub.wait_for(
            lambda _: any(
                e["seq"] > event["seq"] for e in _of(sub.events(), "ccp.net_content", "cw1")
            ),
            30,
            "cw1 still weighing after the reload",
        )
        assert _client_ports(p1) == cw1_ports  # cw1's connection was not reopened

        # -- an invalid edit: refused, the old map keeps running --------------------------------
        text = cfg_path.read_text()
        bad = text.replace("type: float32", "type: in16", 1)
        assert bad != text
        cfg_path.write_text(bad)
        line = next(i for i, ln in enumerate(bad.splitlines(), 1) if "type: in16" in ln)
        assert gw.pid
        os.kill(gw.pid, signal.SIGHUP)
        sub.wait_for(lambda _: _of(sub.events(), "alarm.config"), 30, "alarm.config")
        [refused] = _of(sub.events(), "alarm.config")
        assert refused["data"]["by"] == "signal SIGHUP"
        assert refused["data"]["running_sha256"] == event["data"]["sha256"]
        assert any(e.startswith(f"{cfg_path}:{line}:") for e in refused["data"]["errors"]), refused
        assert f"{cfg_path}:{line}:" in log.read_text()  # logged with FILE:LINE:COL too
        done = _reload(cfg_path)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"{cfg_path}:{line}:" in done.stderr and "in16" in done.stderr
        for device in ("cw1", "cw2"):  # both still read, on the map that ran before
            sub.wait_for(
                lambda _, d=device: any(
                    e["seq"] > refused["seq"] for e in _of(sub.events(), "ccp.net_content", d)
                ),
                30,
                f"{device} weighing after the refused reload",
            )
        assert _client_ports(p1) == cw1_ports
        assert stop(gw) == 0, log.read_text()[-3000:]
        gw = None

        # -- what the subscriber saw -----------------------------------------------------------
        states = [m for m in sub.snapshot() if "/state/" in m.topic and m.payload]
        per_device = {
            d: [m for m in states if m.topic.endswith(f"/state/{d}")] for d in ("cw1", "cw2")
        }
        assert len(per_device["cw1"]) == 1, per_device["cw1"]  # online once: never restarted
        assert len(per_device["cw2"]) == 2, per_device["cw2"]  # online, restarted: online
        events = sub.events()
        ids = [e["id"] for e in events]
        seqs = sorted(e["seq"] for e in events)
        assert len(ids) == len(set(ids)), "an event was delivered twice"
        assert seqs == list(range(1, seqs[-1] + 1)), "a gap in seq"
    finally:
        if gw is not None:
            stop(gw)
        stop(sim)
        sub.stop()
