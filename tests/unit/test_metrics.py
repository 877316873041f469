"""/metrics and /healthz of a gateway that is built but not running: scan rate from the KPI
profile, drops by reason, the bridge's counters and outbox, and the bridge in the health
reasons (the same collector runs under ``saltgw run --http``, tests/e2e/test_http.py)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from gateway.bridge.backlog import read_backlog
from gateway.bridge.schema import connect
from gateway.bridge.service import Bridge
from gateway.bridge.store import IngestStats
from gateway.bridge.upload import UploadStats
from gateway.config.loader import load_config
from gateway.failover import BrokerRotation
from gateway.http import health
from gateway.metrics import GatewayCollector
from gateway.profiles.scan_kpi import ScanKpiProfile
from gateway.runtime import Gateway
from tests.support.configs import demo_line_on_free_ports


@pytest.fixture
def gw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gateway:
    monkeypatch.chdir(tmp_path)  # the demo line's stores are relative: var/…
    return Gateway(load_config(demo_line_on_free_ports(tmp_path)))


def scrape(gw: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(GatewayCollector(gw))
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_gateway_not_started_has_every_family(gw: Gateway) -> None:
    m = scrape(gw)
    assert m[("saltgw_events_accepted_total", ())] == 0
    assert m[("saltgw_journal_oldest_age_seconds", ())] == 0  # journal not open: no error
    assert m[("saltgw_mqtt_reconnects_total", ())] == 0
    assert m[("saltgw_mqtt_connect_failures_total", ())] == 0
    drops = {k[1]: v for k, v in m.items() if k[0] == "saltgw_events_dropped_total"}
    assert drops == {
        (("intentional", "true"), ("reason", "journal_full_drop_oldest")): 0,
        (("intentional", "false"), ("reason", "profile_error")): 0,
    }
    assert ("saltgw_scan_counts_total", (("metric", "produced"),)) in m
    assert not any(k[0] == "saltgw_scan_rate" for k in m)  # unknown yet: absent, not 0
    assert not any(k[0].startswith("saltgw_bridge_") for k in m)


def test_refused_publishes_by_reason_and_the_events_waiting(gw: Gateway) -> None:
    """A PUBACK refusal (MQTT 5 reason code) is counted by reason; the refused events that
    wait in the journal show as a gauge (gateway/refusals.py)."""
    m = scrape(gw)
    assert not any(k[0] == "saltgw_mqtt_publish_refused_total" for k in m)
    assert m[("saltgw_mqtt_refused_waiting", ())] == 0
    gw.link.stats.refused.update({"not_authorized": 3, "quota_exceeded": 1})
    gw.forwarder.retry.refused(7, "salt/v1/t")
    gw.forwarder.retry.refused(8, "salt/v1/t")
    m = scrape(gw)
    assert m[("saltgw_mqtt_publish_refused_total", (("reason", "not_authorized"),))] == 3
    assert m[("saltgw_mqtt_publish_refused_total", (("reason", "quota_exceeded"),))] == 1
    assert m[("saltgw_mqtt_refused_waiting", ())] == 2


def test_the_broker_endpoint_in_use_and_its_switches(tmp_path: Path) -> None:
    """/metrics names the endpoint of mqtt.urls the session is on (all 0 while disconnected)."""
    cfg = load_config(demo_line_on_free_ports(tmp_path))
    urls = ["mqtt://127.0.0.1:18831", "mqtt://127.0.0.1:18832"]
    gw = Gateway(cfg, broker_url=",".join(urls))  # --broker takes a list too

    def in_use() -> dict[str, float]:
        return {
            dict(k[1])["broker"]: v
            for k, v in scrape(gw).items()
            if k[0] == "saltgw_mqtt_broker_in_use"
        }

    rot = gw.link.rotation
    assert in_use() == {"127.0.0.1:18831": 0, "127.0.0.1:18832": 0}
    rot.connected()
    assert in_use() == {"127.0.0.1:18831": 1, "127.0.0.1:18832": 0}
    rot.lost()
    assert in_use() == {"127.0.0.1:18831": 0, "127.0.0.1:18832": 0}
    rot.connected()
    assert in_use() == {"127.0.0.1:18831": 0, "127.0.0.1:18832": 1}
    m = scrape(gw)
    assert m[("saltgw_mqtt_broker_switches_total", ())] == 1
    key = ("saltgw_mqtt_broker_in_use", (("broker", "127.0.0.1:18832"), ("endpoint", "2")))
    assert m[key] == 1


def test_scan_rate_comes_from_the_kpi_profile(gw: Gateway) -> None:
    kpi = next(p for ps in gw.profiles.values() for p in ps if isinstance(p, ScanKpiProfile))
    now = datetime.now(gw.tz)
    kpi.calc.sample(now - timedelta(seconds=10))
    kpi.calc.counters.add({"produced": 40, "valid": 38, "noread": 2}, ts=now, batch=None)
    kpi.calc.sample(now)
    gw.profile_failures = 3
    m = scrape(gw)
    window = f"{kpi.cfg.window_secs:g}"
    assert m[("saltgw_scan_rate", (("device", kpi.device), ("window_seconds", window)))] == 0.95
    assert m[("saltgw_scan_counts_total", (("metric", "produced"),))] == 40
    assert m[("saltgw_scan_counts_total", (("metric", "noread"),))] == 2
    assert (
        m[
            (
                "saltgw_events_dropped_total",
                (("intentional", "false"), ("reason", "profile_error")),
            )
        ]
        == 3
    )


def outbox(path: Path) -> Path:
    """A trace store whose outbox holds documents in every state."""
    db = connect(path)
    now = time.time()
    rows = [
        ("pending", now - 120),
        ("pending", now - 60),
        ("sent", now - 30),
        ("acked", now - 600),
        ("acked", now - 500),
        ("quarantined", now - 400),
    ]
    for i, (state, created) in enumerate(rows, 1):
        db.execute(
            "INSERT INTO documents(number, profile, encoding, created, first_rid, last_rid, "
            "codes, sha256, body, state) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (f"D{i}", "platform", "xml", created, i, i, 1, "x", b"<x/>", state),
        )
    db.close()
    return path


def test_outbox_backlog_reads_states_and_the_oldest_unacknowledged(tmp_path: Path) -> None:
    assert read_backlog(tmp_path / "none.db") is None
    assert not (tmp_path / "none.db").exists()  # reading never creates a store
    b = read_backlog(outbox(tmp_path / "bridge.db"))
    assert b is not None
    assert b.documents == {"pending": 2, "sent": 1, "acked": 2, "quarantined": 1}
    assert b.unacked == 3
    assert 119 < b.oldest_unacked_secs < 180
    assert b.events_waiting == 0


def fake_bridge(store: Path, *, alive: bool = True, connected: bool = True) -> Any:
    conn = threading.Event()
    if connected:
        conn.set()
    subscribed = threading.Event()
    subscribed.set()
    stats = IngestStats(accepted=9, duplicates=2, quarantined=1, conflicts=1)
    stats.by_kind["too_deep"] = 1
    consumer = SimpleNamespace(  # an EventSource (gateway/bridge/source.py)
        broker_kind="MQTT broker",
        host="127.0.0.1",
        port=1883,
        connected=conn,
        subscribed=subscribed,
        refused={},
        received=12,
        store=SimpleNamespace(stats=stats),
    )
    uploader = SimpleNamespace(stats=UploadStats(acked=2, failed=3, unavailable=4, quarantined=1))
    bridge = SimpleNamespace(
        alive=lambda: alive,
        consumer=consumer,
        uploader=uploader,
        documents_built=6,
        bcfg=SimpleNamespace(store=store),
        restarts={"bridge-ingest": 2},
        failing={} if alive else {"bridge-ingest": "RuntimeError: boom"},
        _threads=[] if alive else [threading.Thread(name="bridge-ingest")],  # never started
        _stop=threading.Event(),
        rotation=BrokerRotation(["mqtt://127.0.0.1:1883"], 0.5, 10),
    )
    bridge.problems = lambda: Bridge.problems(bridge)  # the real method on this state
    return bridge


def test_bridge_counters_and_outbox(gw: Gateway, tmp_path: Path) -> None:
    gw.bridge = fake_bridge(outbox(tmp_path / "bridge.db"))
    m = scrape(gw)
    assert m[("saltgw_bridge_up", ())] == 1
    assert m[("saltgw_bridge_connected", ())] == 1
    assert m[("saltgw_bridge_messages_received_total", ())] == 12
    assert m[("saltgw_bridge_events_ingested_total", ())] == 9
    assert m[("saltgw_bridge_documents_built_total", ())] == 6
    assert m[("saltgw_bridge_documents_uploaded_total", ())] == 2
    assert m[("saltgw_bridge_upload_retries_total", (("outcome", "failed"),))] == 3
    assert m[("saltgw_bridge_upload_retries_total", (("outcome", "unavailable"),))] == 4
    assert m[("saltgw_bridge_documents_quarantined_on_upload_total", ())] == 1
    assert m[("saltgw_bridge_documents", (("state", "quarantined"),))] == 1
    assert m[("saltgw_bridge_documents", (("state", "pending"),))] == 2
    assert m[("saltgw_bridge_upload_backlog", ())] == 3
    assert m[("saltgw_bridge_upload_oldest_age_seconds", ())] > 119
    assert m[("saltgw_bridge_events_waiting", ())] == 0
    assert m[("saltgw_bridge_quarantined_messages_total", (("reason", "too_deep"),))] == 1
    assert m[("saltgw_bridge_quarantined_messages_total", (("reason", "schema"),))] == 0
    assert m[("saltgw_bridge_thread_restarts_total", (("thread", "bridge-ingest"),))] == 2
    in_use = (("broker", "127.0.0.1:1883"), ("endpoint", "1"))
    assert m[("saltgw_bridge_broker_in_use", in_use)] == 0  # no session yet
    assert m[("saltgw_bridge_broker_switches_total", ())] == 0
    drops = {
        dict(k[1])["reason"]: (dict(k[1])["intentional"], v)
        for k, v in m.items()
        if k[0] == "saltgw_events_dropped_total"
    }
    assert drops["bridge_duplicate_id"] == ("true", 2)
    assert drops["bridge_code_commissioned_twice"] == ("true", 1)
    assert drops["bridge_invalid_payload"] == ("false", 1)


def test_health_names_the_bridge(gw: Gateway, tmp_path: Path) -> None:
    ok, reasons = health(gw)
    assert not ok and "gateway starting" in reasons
    assert not any(r.startswith("bridge") for r in reasons)
    gw.bridge = fake_bridge(tmp_path / "b.db", connected=False)
    assert "bridge: not connected to the MQTT broker 127.0.0.1:1883" in health(gw)[1]
    gw.bridge = fake_bridge(tmp_path / "b.db", alive=False)
    assert (
        "bridge: thread bridge-ingest has stopped (RuntimeError: boom); the gateway is stopping"
        in health(gw)[1]
    )
    gw.bridge = fake_bridge(tmp_path / "b.db")
    assert not any(r.startswith("bridge") for r in health(gw)[1])
    gw.bridge.consumer.subscribed.clear()
    gw.bridge.consumer.refused = {"salt/v1/x/event/#": "Not authorized"}
    assert (
        "bridge subscription to 'salt/v1/x/event/#' refused by the broker: Not authorized "
        "(events wait in the gateway's journal; asked again with backoff)" in health(gw)[1]
    )


def test_telemetry_counts_come_from_its_store_and_a_stalled_output_shows_on_healthz(
    gw: Gateway,
) -> None:
    """The demo line has telemetry: its store's counters, removals by reason (intentional)."""
    from datetime import UTC, datetime

    from drivers.base import Reading

    t = gw.telemetry
    assert t is not None
    m = scrape(gw)
    assert m[("saltgw_telemetry_records_appended_total", ())] == 0
    assert m[("saltgw_telemetry_output_up", (("output", "uns"),))] == 0  # not started
    t.store.max_records = 10
    t.store.open()
    try:
        ts = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
        for i in range(12):  # every weighing a new count: one record each
            t.on_reading(Reading("cw1", ts, {"count": i, "weight_g": 400.0}))
        t.on_offline("cw1", ts)
        assert t.store.flush(5)
        m = scrape(gw)
        assert m[("saltgw_telemetry_records_appended_total", ())] == 13
        removed = {
            k[1]: v for k, v in m.items() if k[0] == "saltgw_telemetry_records_removed_total"
        }
        # how many folds depends on how the writer batched the commits; not the sum
        coalesced = removed[(("intentional", "true"), ("reason", "coalesced"))]
        backlog = m[("saltgw_telemetry_backlog", ())]
        assert coalesced > 0 and coalesced + backlog == 13 and backlog <= 10
        assert removed[(("intentional", "true"), ("reason", "dropped_oldest"))] == 0
        assert m[("saltgw_telemetry_store_failures_total", ())] == 0
        _, reasons = health(gw)
        assert "telemetry output uns: thread not running" in reasons
    finally:
        t.store.close()
