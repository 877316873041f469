"""`saltgw run --http`: /healthz and Prometheus /metrics, scraped while it runs."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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


def with_bridge_and_scan_kpi(cfg: Path) -> None:
    """The test line plus a bridge writing an outbox directory and the scan-KPI profile on
    the checkweigher's counter: every family of /metrics has something to say."""
    doc = yaml.safe_load(cfg.read_text())
    tmp = cfg.parent
    doc["bridge"] = {
        "store": str(tmp / "bridge.db"),
        "max_delay_secs": 1,
        "upload": {"type": "directory", "path": str(tmp / "outbox"), "ack": "on_write"},
    }
    doc["profiles"].append(
        {
            "profile": "scan_kpi",
            "device": "cw1",
            "tags": {"count": "count"},
            "store": str(tmp / "trace.db"),
            "window_secs": 5,
        }
    )
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))


def wait_health(url: str, code: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got, body = get(url)
        if got == code or time.monotonic() > deadline:
            assert got == code, body
            return dict(json.loads(body))
        time.sleep(0.2)


def wait_metric(url: str, name: str, labels: str = "", *, above: float, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = get(url)[1].decode()
        try:
            if metric(text, name, labels) > above or time.monotonic() > deadline:
                return text
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)


def test_healthz_and_metrics_follow_the_line(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = line_config(tmp_path, mosquitto.port)
    with_bridge_and_scan_kpi(cfg)
    sim_port = yaml.safe_load(cfg.read_text())["simulators"][0]["port"]
    http = free_port()
    base = f"http://127.0.0.1:{http}"
    log = tmp_path / "saltgw.log"
    gw = saltgw("run", str(cfg), "--http", f"127.0.0.1:{http}", log=log)
    sim = None
    try:
        wait_port(http)
        # the device is not there yet: not ready, and it says why (once it has started)
        deadline = time.monotonic() + 10
        while True:
            code, body = get(f"{base}/healthz")
            assert code == 503
            reasons = json.loads(body)["reasons"]
            if "gateway starting" not in reasons or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert any(r.startswith("device cw1:") for r in reasons), reasons
        sim = saltgw("sim", str(cfg), log=log)
        wait_port(sim_port)
        assert wait_health(f"{base}/healthz", 200, 30) == {"ready": True, "reasons": []}
        # documents are built (max_delay_secs 1) and written to the outbox
        text = wait_metric(
            f"{base}/metrics", "saltgw_bridge_documents_uploaded", above=0, timeout=30
        )
        accepted = metric(text, "saltgw_events_accepted")
        assert accepted > 0
        assert metric(text, "saltgw_mqtt_connected") == 1
        assert metric(text, "saltgw_mqtt_reconnects") == 0
        assert metric(text, "saltgw_device_state", '{device="cw1",state="online"}') == 1
        assert metric(text, "saltgw_device_reconnects", '{device="cw1"}') == 0
        for labels in (
            '{intentional="true",reason="journal_full_drop_oldest"}',
            '{intentional="false",reason="profile_error"}',
            '{intentional="true",reason="bridge_duplicate_id"}',
            '{intentional="false",reason="bridge_invalid_payload"}',
        ):
            assert metric(text, "saltgw_events_dropped", labels) == 0, labels
        assert metric(text, "saltgw_bridge_up") == 1
        assert metric(text, "saltgw_bridge_connected") == 1
        assert 0 < metric(text, "saltgw_bridge_events_ingested") <= accepted
        assert metric(text, "saltgw_bridge_documents_built") >= 1
        assert metric(text, "saltgw_bridge_documents", '{state="acked"}') >= 1
        assert metric(text, "saltgw_bridge_documents", '{state="quarantined"}') == 0
        assert metric(text, "saltgw_bridge_upload_backlog") >= 0
        assert metric(text, "saltgw_bridge_upload_oldest_age_seconds") >= 0
        assert metric(text, "saltgw_bridge_events_waiting") >= 0
        assert metric(text, "saltgw_bridge_upload_retries", '{outcome="failed"}') == 0
        assert metric(text, "saltgw_scan_counts", '{metric="produced"}') > 0
        # no codes are scanned on this line: the scan rate is known, and 0
        text = wait_metric(
            f"{base}/metrics",
            "saltgw_scan_rate",
            '{device="cw1",window_seconds="5"}',
            above=-1,
            timeout=15,
        )
        assert metric(text, "saltgw_scan_rate", '{device="cw1",window_seconds="5"}') == 0
        assert len(list((tmp_path / "outbox").glob("*.xml"))) >= 1
        # the broker goes away: not ready, with the reasons, and the backlog grows
        mosquitto.kill()
        reasons = wait_health(f"{base}/healthz", 503, 10)["reasons"]
        assert any("MQTT broker" in r for r in reasons), reasons
        deadline = time.monotonic() + 10
        while not any(r.startswith("bridge: not connected") for r in reasons):
            assert time.monotonic() < deadline, reasons
            time.sleep(0.2)
            reasons = json.loads(get(f"{base}/healthz")[1])["reasons"]
        text = wait_metric(f"{base}/metrics", "saltgw_journal_backlog", above=0, timeout=10)
        assert metric(text, "saltgw_mqtt_connected") == 0
        assert metric(text, "saltgw_bridge_connected") == 0
        assert metric(text, "saltgw_journal_oldest_age_seconds") > 0
        assert get(f"{base}/nope")[0] == 404
        # it comes back: ready again, the reconnect counted, the backlog delivered
        mosquitto.start()
        assert wait_health(f"{base}/healthz", 200, 30)["ready"] is True
        text = get(f"{base}/metrics")[1].decode()
        assert metric(text, "saltgw_mqtt_reconnects") >= 1
        assert metric(text, "saltgw_mqtt_disconnects") >= 1
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
