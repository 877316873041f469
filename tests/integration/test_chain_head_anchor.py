"""Issue 15: the journal's chain head is published retained on
``{prefix}/{enterprise}/{site}/gateway/{id}/chain`` (a real mosquitto), and what a late
subscriber gets there is the head ``saltgw verify`` prints, usable as ``--anchor``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config.models import MqttSection
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.mqtt import Forwarder, MqttLink
from gateway.topics import Topics
from gateway.verify import verify_journal
from tests.support.broker import Mosquitto
from tests.support.subscriber import Collector

pytestmark = pytest.mark.integration

TOPICS = Topics("salt/v1", "8035", "daiyue", "L1", "gw-anchor")
T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def test_the_retained_chain_head_matches_verify(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "j.db"
    journal = Journal(path, Origin("gw-anchor", "8035", "daiyue", "L1")).open()
    link = MqttLink(MqttSection(url=mosquitto.url, protocol="3.1.1"), TOPICS, "gw-anchor-test")
    fwd = Forwarder(journal, link, TOPICS, 100, backoff_min_secs=0.1)
    fwd.start()
    try:
        for i in range(0, 40, 8):  # several commits
            drafts = [EventDraft("ccp.net_content", T, {"value": v}) for v in range(i, i + 8)]
            journal.append(drafts).result(timeout=10)
        assert fwd.drain(10)
    finally:
        fwd.stop()  # publishes the last head before going offline
        journal.close()
    assert TOPICS.chain_head() == "salt/v1/8035/daiyue/gateway/gw-anchor/chain"
    late = Collector(mosquitto.port, topic=TOPICS.chain_head()).start()  # retained only
    try:
        late.wait_for(lambda m: len(m) >= 1, 10, "the retained chain head")
        (msg,) = late.snapshot()
    finally:
        late.stop()
    assert msg.retain
    body = msg.json()
    assert body["gateway"] == "gw-anchor" and body["alg"] == "hmac-sha256"
    rep = verify_journal(path)
    assert rep.ok, rep.line()
    assert rep.head == (40, bytes.fromhex(body["hash"])) and body["seq"] == 40
    # the published head as the anchor (its row was delivered and deleted: the head holds it)
    anchor = f"{body['seq']}:{body['hash']}"
    assert main(["verify", "--journal", str(path), "--anchor", anchor]) == 0
    assert "matches the anchor" in capsys.readouterr().out


def test_the_head_is_published_at_most_once_a_second(tmp_path: Path) -> None:
    """Rate limit without a broker: the control outbox keeps only the newest retained head."""
    journal = Journal(tmp_path / "j.db", Origin("gw-anchor", "8035", "daiyue", "L1")).open()
    link = MqttLink(MqttSection(url="mqtt://127.0.0.1:9", protocol="3.1.1"), TOPICS, "x")
    fwd = Forwarder(journal, link, TOPICS, 100)
    try:
        journal.append([EventDraft("ccp.net_content", T, {"value": 1})]).result(timeout=10)
        fwd._publish_head(now=100.0)
        journal.append([EventDraft("ccp.net_content", T, {"value": 2})]).result(timeout=10)
        fwd._publish_head(now=100.5)  # within the second: not yet
        (first,) = fwd.control.take()
        fwd._publish_head(now=101.1)
        (second,) = fwd.control.take()
    finally:
        journal.close()
    assert b'"seq": 1' in first[1] and b'"seq": 2' in second[1]
    assert first[0] == second[0] == TOPICS.chain_head() and first[2] and second[2]
