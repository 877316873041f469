"""`saltgw run --http`: /healthz and Prometheus /metrics, scraped while it runs."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.broker import Mosquitto
from tests.support.configs import line_config
from tests.support.net import free_port, wait_port
from tests.support.procs import saltgw, stop

pytestmark = pytest.mark.e2e


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(name + labels + " ") or line.startswith(name + "_total" + labels + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}{labels} in:\n{text}")


def test_healthz_and_metrics_follow_the_line(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = line_config(tmp_path, mosquitto.port)
    sim_port = yaml.safe_load(cfg.read_text())["simulators"][0]["port"]
    http = free_port()
    log = tmp_path / "saltgw.log"
    gw = saltgw("run", str(cfg), "--http", f"127.0.0.1:{http}", log=log)
    sim = None
    try:
        wait_port(http)
        # the device is not there yet: not ready, and it says why (once it has started)
        deadline = time.monotonic() + 10
        while True:
            code, body = get(f"http://127.0.0.1:{http}/healthz")
            assert code == 503
            reasons = json.loads(body)["reasons"]
            if "gateway starting" not in reasons or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert any(r.startswith("device cw1:") for r in reasons), reasons
        sim = saltgw("sim", str(cfg), log=log)
        wait_port(sim_port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            code, body = get(f"http://127.0.0.1:{http}/healthz")
            if code == 200:
                break
            time.sleep(0.2)
        assert code == 200, body
        assert json.loads(body) == {"ready": True, "reasons": []}
        time.sleep(2)
        code, body = get(f"http://127.0.0.1:{http}/metrics")
        assert code == 200
        text = body.decode()
        accepted = metric(text, "saltgw_events_accepted")
        assert accepted > 0
        assert metric(text, "saltgw_mqtt_connected") == 1
        assert metric(text, "saltgw_device_state", '{device="cw1",state="online"}') == 1
        assert (
            metric(
                text,
                "saltgw_events_dropped",
                '{intentional="true",reason="journal_full_drop_oldest"}',
            )
            == 0
        )
        # the broker goes away: not ready, with the reason, and the backlog grows
        mosquitto.kill()
        time.sleep(2)
        code, body = get(f"http://127.0.0.1:{http}/healthz")
        assert code == 503
        assert any("MQTT broker" in r for r in json.loads(body)["reasons"])
        code, body = get(f"http://127.0.0.1:{http}/metrics")
        assert metric(body.decode(), "saltgw_journal_backlog") > 0
        assert metric(body.decode(), "saltgw_mqtt_connected") == 0
        assert get(f"http://127.0.0.1:{http}/nope")[0] == 404
    finally:
        stop(gw)
        if sim is not None:
            stop(sim)
    assert "Traceback" not in log.read_text()


def test_bad_http_address_is_a_clear_error(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = line_config(tmp_path, mosquitto.port)
    log = tmp_path / "saltgw.log"
    proc = saltgw("run", str(cfg), "--http", "localhost:notaport", log=log)
    assert proc.wait(30) == 2
    text = log.read_text()
    assert "--http expects HOST:PORT" in text
    assert "Traceback" not in text
