"""The saltgw commands as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.broker import Mosquitto
from tests.support.configs import line_config
from tests.support.net import wait_port
from tests.support.procs import ROOT, saltgw, stop
from tests.support.subscriber import Collector

pytestmark = pytest.mark.e2e


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def test_schema_is_json_schema_of_the_config() -> None:
    proc = run_cli("schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"gateway", "mqtt", "journal", "devices", "profiles", "simulators"} <= set(
        schema["properties"]
    )
    assert schema["additionalProperties"] is False


def test_every_command_has_help() -> None:
    for verb in ("run", "validate", "schema", "sim", "demo", "health"):
        proc = run_cli(verb, "--help")
        assert proc.returncode == 0, verb
        assert "usage: saltgw" in proc.stdout


def test_run_with_a_broken_map_exits_non_zero_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway: {id: gw, enterprise: '1234', site: s, line: L1}\nmqtt: {prot: 5}\n")
    proc = run_cli("run", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:1:" in proc.stderr and f"{bad}:2:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sigterm_stops_cleanly_with_status_offline(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = line_config(tmp_path, mosquitto.port)
    log = tmp_path / "saltgw.log"
    status = "salt/v1/8035/daiyue/gateway/gw-test-1/status"
    sub = Collector(mosquitto.port, topic=status).start()
    sim = saltgw("sim", str(cfg), log=log)
    try:
        wait_port(yaml.safe_load(cfg.read_text())["simulators"][0]["port"])
        gw = saltgw("run", str(cfg), log=log)
        sub.wait_for(lambda m: [x.payload for x in m][-1:] == [b"online"], 20, "status online")
        time.sleep(1)
        assert stop(gw) == 0
        sub.wait_for(lambda m: [x.payload for x in m][-1:] == [b"offline"], 10, "status offline")
    finally:
        stop(sim)
        sub.stop()
    text = log.read_text()
    assert "stopped; journal holds 0 undelivered events" in text
    assert "Traceback" not in text


def test_sim_and_demo_on_a_taken_port_say_so_without_traceback(tmp_path: Path) -> None:
    import re
    import socket

    from tests.support.configs import demo_line_on_free_ports

    cfg = demo_line_on_free_ports(tmp_path)
    port = int(re.findall(r"port: (\d+)", cfg.read_text())[0])  # the checkweigher's
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        for verb in (["sim", str(cfg)], ["demo", "--config", str(cfg), "--duration", "5"]):
            proc = run_cli(*verb, timeout=60)
            assert proc.returncode == 2, proc.stderr[-2000:]
            assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
            assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_output_piped_into_a_reader_that_leaves_early_is_not_an_error() -> None:
    # the reader closes its end at once; 150 kB of reference cannot fit in the pipe
    proc = subprocess.run(
        f"{sys.executable} -m gateway.cli schema --events --markdown | (exec 0<&-; sleep 1)",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
