"""The broker link through an outage of any length and a hung broker, on a real mosquitto
(issue 13): control messages (states, KPIs) published while the broker is away are coalesced per
topic, so memory stays bounded and the forwarder thread survives (paho's own queue was unlimited
and failed after 65,535 messages, killing the thread, ~3.8 days into an outage); a broker that
stops acknowledging is reported within seconds, not a keep-alive later."""

from __future__ import annotations

import json
import logging
import os
import signal
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
from tests.support.net import free_port
from tests.support.subscriber import Collector

pytestmark = pytest.mark.integration

TOPICS = Topics("salt/v1", "8035", "daiyue", "L1", "gw-outage")
WEEK_SECS = 7 * 24 * 3600
KPI_EVERY_SECS = 5
DEVICES = [f"dev{i}" for i in range(12)]


def _forwarder(tmp: Path, port: int, **kw: float) -> tuple[Journal, MqttLink, Forwarder]:
    journal = Journal(tmp / "j.db", Origin("gw-outage", "8035", "daiyue", "L1")).open()
    link = MqttLink(
        MqttSection(url=f"mqtt://127.0.0.1:{port}", protocol="3.1.1"), TOPICS, "gw-outage-t"
    )
    fwd = Forwarder(journal, link, TOPICS, 100, backoff_min_secs=0.05, backoff_max_secs=0.2, **kw)
    return journal, link, fwd


def test_a_week_long_outage_keeps_one_message_per_topic_and_delivers_the_latest(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    port = free_port()  # the broker is away for the whole "week"
    mosquitto.kill()
    journal, link, fwd = _forwarder(tmp_path, port)
    listening = threading.Event()  # rows wait until the late subscriber stands (retained don't)
    fwd.gate = listening.is_set
    fwd.start()
    published = 0
    t0 = datetime(2026, 11, 22, tzinfo=UTC)
    try:
        # a week of a line's control traffic, in accelerated time: the KPI every 5 s, every
        # device changing state every minute, a few command responses
        for t in range(0, WEEK_SECS, KPI_EVERY_SECS):
            fwd.publish_control(TOPICS.kpi(), json.dumps({"t": t}).encode(), retain=True)
            published += 1
            if t % 60 == 0:
                for d in DEVICES:
                    state = {"device": d, "state": "offline" if t % 120 else "online", "t": t}
                    fwd.publish_control(TOPICS.state(d), json.dumps(state).encode(), retain=True)
                    published += 1
        for i in range(3):
            fwd.publish_control(f"{TOPICS.commands()[:-2]}/cw1/response", b"r%d" % i, retain=False)
        journal.append([EventDraft("ccp.net_content", t0, {"value": i}) for i in range(20)])
        assert published > 65_535 * 3  # well past paho's message-id space
        assert len(fwd.control) == 1 + len(DEVICES) + 3  # one per topic, plus the responses
        assert link.stats.control_coalesced == published - 1 - len(DEVICES)
        assert fwd.alive(), "the forwarder thread died during the outage"

        broker = Mosquitto(tmp_path / "late-broker", port=port)
        sub = Collector(port, topic="salt/v1/8035/daiyue/L1/#")
        broker.start()
        try:
            sub.start()
            listening.set()
            sub.wait_for(lambda m: len(sub.events()) >= 20, 20, "the journaled events")
            retained = {
                m.topic: m.json()
                for m in sub.snapshot()
                if m.topic.endswith("kpi") or "/state/" in m.topic
            }
            last_t = WEEK_SECS - KPI_EVERY_SECS
            assert retained[TOPICS.kpi()] == {"t": last_t}
            for d in DEVICES:  # the latest state of each device, not an older one
                assert retained[TOPICS.state(d)]["t"] == last_t - last_t % 60
            assert [e["seq"] for e in sub.events()] == list(range(1, 21))
            assert len(fwd.control) == 0
        finally:
            sub.stop()
            fwd.stop()
            broker.kill()
    finally:
        fwd.stop()
        journal.close()


def test_a_hung_broker_is_reported_within_seconds_and_recovers(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    journal, link, fwd = _forwarder(tmp_path, mosquitto.port, ack_timeout_secs=1.0)
    fwd.start()
    t0 = datetime(2026, 11, 22, tzinfo=UTC)
    assert mosquitto.proc is not None
    pid = mosquitto.proc.pid
    try:
        deadline = time.monotonic() + 10
        while not link.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.connected.is_set()
        os.kill(pid, signal.SIGSTOP)  # hung: TCP still accepted by the kernel, nothing answers
        try:
            caplog.set_level(logging.INFO, logger="gateway.mqtt")
            journal.append([EventDraft("ccp.net_content", t0, {"value": i}) for i in range(10)])
            started = time.monotonic()

            def said_stalled() -> bool:
                return any("no PUBACK" in r.getMessage() for r in caplog.records)

            # wait for the forwarder's own log line, not just the state: resuming the broker
            # before the IO thread looked would (rightly) leave nothing to report
            while not said_stalled() and time.monotonic() - started < 10:
                time.sleep(0.05)
            noticed = time.monotonic() - started
            why = fwd.stalled()
            assert why is not None and "no PUBACK" in why, "a hung broker went unnoticed"
            assert said_stalled(), "the stall was never logged"
            assert noticed < 5, f"noticed only after {noticed:.1f} s"  # keepalive is 30 s
            assert link.connected.is_set()  # the TCP session itself looks fine
        finally:
            os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while (fwd.stalled() is not None or journal.stats.backlog) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fwd.stalled() is None and journal.stats.backlog == 0
        said = [r.getMessage() for r in caplog.records if r.name == "gateway.mqtt"]
        assert any("no PUBACK" in s for s in said) and any("acknowledges again" in s for s in said)
    finally:
        fwd.stop()
        journal.close()


def test_a_broker_restart_is_logged_as_what_it_is(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.mqtt")
    journal, link, fwd = _forwarder(tmp_path, mosquitto.port)
    fwd.start()
    try:
        for _ in range(3):
            deadline = time.monotonic() + 10
            while not link.connected.is_set() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert link.connected.is_set()
            mosquitto.stop()
            mosquitto.start()
        deadline = time.monotonic() + 10
        while link.stats.connects < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        said = [r.getMessage() for r in caplog.records if r.name == "gateway.mqtt"]
        closed = [s for s in said if "disconnected from MQTT broker" in s]
        assert len(closed) == 3, said
        assert all("broker stopped or restarted" in s for s in closed), closed
        assert not any("Unspecified error" in s for s in said), said
        assert sum("connected to MQTT broker" in s and "dis" not in s for s in said) == 4
        connects = [r for r in caplog.records if "connected" in r.msg]
        assert all(getattr(r, "state_change", False) for r in connects)
    finally:
        fwd.stop()
        journal.close()
