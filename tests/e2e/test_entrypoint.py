"""The container's entrypoint (docker/entrypoint.sh), run outside a container: the demo line's
simulators on free ports, a real mosquitto, the real gateway. It starts, takes its secrets
from files, becomes ready on /healthz (asked with ``saltgw health``, the image's HEALTHCHECK)
and stops cleanly on SIGTERM, as ``docker stop`` sends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.broker import Mosquitto
from tests.support.configs import demo_line_on_free_ports
from tests.support.net import free_port, wait_port
from tests.support.procs import ROOT, saltgw, stop

pytestmark = pytest.mark.e2e


def health(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "health", url, "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_entrypoint_starts_serves_healthz_and_stops_on_sigterm(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    line = demo_line_on_free_ports(tmp_path)
    sim_ports = [s["port"] for s in yaml.safe_load(line.read_text())["simulators"]]
    bin_dir = tmp_path / "bin"  # `saltgw` as the image has it on PATH: this checkout's
    bin_dir.mkdir()
    (bin_dir / "saltgw").write_text(f'#!/bin/sh\nexec {sys.executable} -m gateway "$@"\n')
    (bin_dir / "saltgw").chmod(0o755)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "saltgw_test_secret").write_text("from a file\n")
    http = free_port()
    url = f"http://127.0.0.1:{http}/healthz"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "SALTGW_CONFIG": str(line),
        "SALTGW_HTTP_HOST": "127.0.0.1",
        "SALTGW_HTTP_PORT": str(http),
        "SALTGW_SECRETS_DIR": str(secrets),
    }
    log = tmp_path / "saltgw.log"
    sim = saltgw("sim", str(line), log=tmp_path / "sim.log", cwd=tmp_path)
    gw = None
    try:
        for port in sim_ports:
            wait_port(port, timeout=60)
        with log.open("ab") as f:
            gw = subprocess.Popen(
                ["sh", str(ROOT / "docker" / "entrypoint.sh"), "run", "--broker", mosquitto.url],
                stdout=f,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,  # the container's /var/lib/saltgw: the journal lands here
                env=env,
            )
        wait_port(http, timeout=60)
        deadline = time.monotonic() + 90  # every device of the demo line online
        while (answer := health(url)).returncode != 0 and time.monotonic() < deadline:
            assert gw.poll() is None, log.read_text()[-3000:]
            time.sleep(1)
        assert answer.returncode == 0, answer.stdout + log.read_text()[-3000:]
        assert answer.stdout == "ready\n"
        # exec: the shell became saltgw, with the secret in its environment
        environ = Path(f"/proc/{gw.pid}/environ").read_bytes().split(b"\0")
        assert b"SALTGW_TEST_SECRET=from a file" in environ
        cmdline = Path(f"/proc/{gw.pid}/cmdline").read_bytes().split(b"\0")
        assert b"gateway" in cmdline and b"run" in cmdline
        assert stop(gw, timeout=40) == 0  # SIGTERM, as docker stop
        gw = None
    finally:
        if gw is not None:
            gw.send_signal(signal.SIGKILL)
            gw.wait(10)
        stop(sim)
    text = log.read_text()
    assert "stopped; journal holds" in text, text[-3000:]
    assert "Traceback" not in text
    assert (tmp_path / "var" / "demo-journal.db").exists()
    # not ready once it is gone, and the reason says so
    answer = health(url)
    assert answer.returncode == 1 and answer.stdout.startswith("not ready: cannot ask")
