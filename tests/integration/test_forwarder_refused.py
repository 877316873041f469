"""A broker that refuses events in its PUBACK loses none of them (gateway/refusals.py).

A real mosquitto whose ACL denies the gateway publishing one event type's topic: on MQTT 5 it
answers each such publish with PUBACK 0x87 (not authorized). The events stay in the journal,
undelivered, reach no subscriber, are sent again with backoff and refused again; one ERROR says
so. Then the ACL allows the topic (SIGHUP): every seq reaches a subscriber and the bridge's
store (late, out of order: stored, not quarantined), none lost, none with two ids. On MQTT 3.1.1
the broker's PUBACK carries no code: the same denial looks like a delivery, as before.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.bridge.service import Bridge
from gateway.config.models import MqttSection
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.mqtt import Forwarder, MqttLink
from gateway.signing import EnvelopeSigner, event_key
from gateway.topics import Topics
from tests.support.bridge_env import bridge_config, wait
from tests.support.broker import Mosquitto, mosquitto_available
from tests.support.delivery import journal_backlog
from tests.support.subscriber import Collector
from tests.support.trace_events import _complete

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
TOPICS = Topics("salt/v1", "8035", "daiyue", "L1", "gw-refuse")
DENIED = TOPICS.event("ccp.net_content")
ALLOW_ALL = "topic readwrite #\n"
DENY_NET = f"topic readwrite #\ntopic deny {DENIED}\n"


def _drafts(n: int) -> list[EventDraft]:
    """Alternately a bag (allowed) and a net-content check (denied at first)."""
    out = []
    for i in range(n):
        etype, data = ("pack.bag", {"code": f"8035REF{i:05d}"}) if i % 2 == 0 else (
            "ccp.net_content", {})  # fmt: skip
        body, device = _complete(etype, data, None)
        out.append(EventDraft(etype, T0 + timedelta(seconds=i), body, device=device, batch="B1"))
    return out


def _broker(tmp_path: Path, acl: str) -> tuple[Mosquitto, Path]:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    acl_file = tmp_path / "acl"
    acl_file.write_text(acl)
    # the deployed limit (docker/mosquitto.conf): mosquitto 2.0.11 with the test broker's
    # ``max_queued_messages 0`` drops the connection right after a PUBACK 0x87 instead
    broker = Mosquitto(tmp_path / "mosquitto", acl_file=acl_file,
                       extra_conf="max_queued_messages 1000000\n")  # fmt: skip
    broker.start()
    return broker, acl_file


def _seq_ids(sub: Collector) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for e in sub.events():
        out.setdefault(e["seq"], set()).add(e["id"])
    return out


def test_events_refused_by_the_broker_wait_in_the_journal_then_all_arrive(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.refusals")
    broker, acl_file = _broker(tmp_path, DENY_NET)
    cfg = bridge_config(tmp_path, broker.port, "refuse", seq_gap_grace_secs=0.5)
    journal_path = tmp_path / "journal.db"
    journal = Journal(
        journal_path, Origin("gw-refuse", "8035", "daiyue", "L1"),
        signer=EnvelopeSigner("gw-refuse", event_key(cfg)),  # the bridge's own gateway: its key
    ).open()  # fmt: skip
    link = MqttLink(MqttSection(url=broker.url, protocol="5"), TOPICS, "gw-refuse-test")
    fwd = Forwarder(journal, link, TOPICS, 100, backoff_min_secs=0.1, refused_retry_max_secs=0.8)
    alarms: list[tuple[str, dict[str, Any]]] = []

    def sink(data: dict[str, Any], event_type: str = "alarm.upload") -> None:
        alarms.append((event_type, data))

    sub = Collector(broker.port, topic="salt/v1/8035/daiyue/L1/#").start()
    bridge = Bridge(cfg, host="127.0.0.1", port=broker.port, alarm=sink).start()
    store = cfg.bridge.store if cfg.bridge else Path()
    fwd.start()
    n = 20
    denied = n // 2
    try:
        wait(lambda: bridge.listening(), 15, "the bridge subscribed")
        journal.append(_drafts(n)).result(10)
        wait(lambda: journal.stats.delivered == n - denied, 15, "the allowed events delivered")
        # each denied event refused, then sent again (backoff) and refused again
        wait(lambda: link.stats.refused.get("not_authorized", 0) > denied, 15,
             "the denied events refused, and refused again when sent again")  # fmt: skip
        assert journal_backlog(journal_path) == denied  # on disk, undelivered
        assert journal.stats.backlog == denied
        assert fwd.refused_waiting == denied
        assert not fwd.drain(0.3), "drain() must not report refused events as sent"
        wait(lambda: bridge.ingest_stats.accepted == n - denied, 15, "the allowed events stored")
        got = sub.events()
        assert {e["type"] for e in got} == {"pack.bag"}, "a denied event reached a subscriber"
        assert sorted(e["seq"] for e in got) == list(range(1, n + 1, 2))
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]  # once, not per refusal
        assert DENIED in errors[0].getMessage() and "Not authorized" in errors[0].getMessage()
        assert set(link.stats.refused) == {"not_authorized"}

        acl_file.write_text(ALLOW_ALL)
        broker.reload()
        wait(lambda: set(_seq_ids(sub)) == set(range(1, n + 1)), 30,
             "every seq at the subscriber after the ACL allowed the topic")  # fmt: skip
        ids = _seq_ids(sub)
        assert all(len(v) == 1 for v in ids.values()), ids  # re-sent with the same id
        assert len(set().union(*ids.values())) == n
        assert fwd.drain(15), "everything acknowledged once the broker accepts the topic"
        assert fwd.refused_waiting == 0
        wait(lambda: journal.stats.backlog == 0, 10, "the journal empty")
        assert any("accepts" in r.getMessage() for r in caplog.records)

        def stored() -> list[int]:
            with sqlite3.connect(store) as db:
                return [r[0] for r in db.execute("SELECT seq FROM events ORDER BY seq")]

        wait(lambda: stored() == list(range(1, n + 1)), 30, "every seq in the bridge's store")
        assert bridge.ingest_stats.quarantined == 0
        with sqlite3.connect(store) as db:
            assert db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] == 0
        # a gap alarm raised while the topic was refused is cleared now that it is filled
        states = [d["state"] for t, d in alarms if t == "alarm.seq_gap"]
        if states:
            wait(lambda: [d["state"] for t, d in alarms if t == "alarm.seq_gap"][-1] == "filled",
                 15, "the gap alarm cleared")  # fmt: skip
    finally:
        bridge.stop()
        fwd.stop()
        journal.close()
        sub.stop()
        broker.kill()


def test_on_mqtt_311_a_denied_publish_is_acknowledged_as_before(tmp_path: Path) -> None:
    """MQTT 3.1.1 has no reason code in PUBACK: the broker's denial cannot be told from a
    delivery; the forwarder acknowledges the rows, as it always did (docs/architecture.md)."""
    broker, _ = _broker(tmp_path, DENY_NET)
    journal = Journal(tmp_path / "journal.db", Origin("gw-refuse", "8035", "daiyue", "L1")).open()
    link = MqttLink(MqttSection(url=broker.url, protocol="3.1.1"), TOPICS, "gw-refuse-311")
    fwd = Forwarder(journal, link, TOPICS, 100, backoff_min_secs=0.1)
    sub = Collector(broker.port, topic="salt/v1/8035/daiyue/L1/#").start()
    fwd.start()
    n = 10
    try:
        journal.append(_drafts(n)).result(10)
        assert fwd.drain(15)
        wait(lambda: journal.stats.delivered == n, 10, "every row acknowledged")
        assert link.stats.refused == {} and fwd.refused_waiting == 0
        wait(lambda: len(sub.events()) == n // 2, 10, "the allowed events")
        assert {e["type"] for e in sub.events()} == {"pack.bag"}
    finally:
        fwd.stop()
        journal.close()
        sub.stop()
        broker.kill()
