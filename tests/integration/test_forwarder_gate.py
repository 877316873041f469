"""The forwarder publishes journal rows only while its gate is open (the in-process bridge's
subscription stands, gateway/runtime.py); rows wait in the journal meanwhile, nothing is lost,
and retained control messages (device states) are not held back."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config.models import MqttSection
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.mqtt import Forwarder, MqttLink
from gateway.topics import Topics
from tests.support.broker import Mosquitto
from tests.support.subscriber import Collector

pytestmark = pytest.mark.integration

TOPICS = Topics("salt/v1", "8035", "daiyue", "L1", "gw-gate")


def test_rows_wait_while_the_gate_is_closed_then_all_go_in_order(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    sub = Collector(mosquitto.port, topic="salt/v1/8035/daiyue/L1/#").start()
    open_ = threading.Event()
    journal = Journal(tmp_path / "j.db", Origin("gw-gate", "8035", "daiyue", "L1")).open()
    link = MqttLink(MqttSection(url=mosquitto.url, protocol="3.1.1"), TOPICS, "gw-gate-test")
    fwd = Forwarder(journal, link, TOPICS, 100, backoff_min_secs=0.1)
    fwd.gate = open_.is_set
    fwd.start()
    try:
        t = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
        journal.append([EventDraft("ccp.net_content", t, {"value": i}) for i in range(50)]).result(
            timeout=10
        )
        fwd.publish_control(TOPICS.state("cw1"), b'{"device":"cw1","state":"online"}', retain=True)
        sub.wait_for(lambda m: any("/state/" in x.topic for x in m), 10, "the state message")
        time.sleep(1.0)  # the link is up: only the gate holds the rows back
        assert link.connected.is_set()
        assert sub.events() == []
        assert journal.stats.backlog == 50
        open_.set()
        sub.wait_for(lambda m: len(sub.events()) >= 50, 10, "every row after the gate opened")
        assert [e["seq"] for e in sub.events()] == list(range(1, 51))
    finally:
        fwd.stop()
        journal.close()
        sub.stop()
