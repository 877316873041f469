"""A PUBACK that refuses the message (MQTT 5 reason code >= 0x80) is not a delivery
(gateway/refusals.py): the decision in MqttLink, the per-topic backoff of RetryQueue, and the
forwarder's bookkeeping (journal row kept, read again by seq, drain() not done) — no network:
the PUBACKs are paho ReasonCodes handed to the link's callback, as paho's loop does."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config.models import MqttSection
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.mqtt import Forwarder, MqttLink
from gateway.refusals import RetryQueue, is_refusal, reason_label
from gateway.topics import Topics

TOPICS = Topics("salt/v1", "8035", "daiyue", "L1", "gw-refuse")
BAG = TOPICS.event("pack.bag")
NET = TOPICS.event("ccp.net_content")
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def puback(code: int) -> ReasonCode:
    return ReasonCode(PacketTypes.PUBACK, identifier=code)  # type: ignore[no-untyped-call]


def _link(protocol: str = "5") -> MqttLink:
    # not connected: paho keeps each QoS 1 publish (NO_CONN) and gives it a mid
    return MqttLink(MqttSection(url="mqtt://127.0.0.1:1", protocol=protocol), TOPICS, "t-ref")  # type: ignore[arg-type]


def _answer(link: MqttLink, mid: int, code: int) -> None:
    link._on_publish(link.client, None, mid, puback(code), None)  # type: ignore[arg-type]


def _mid(link: MqttLink, seq: int | None) -> int:
    return next(m for m, s in link.pending.items() if s == seq)


# -- the reason codes ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "refused", "label"),
    [(0x00, False, "success"), (0x10, False, "no_matching_subscribers"),
     (0x80, True, "unspecified_error"), (0x83, True, "implementation_specific_error"),
     (0x87, True, "not_authorized"), (0x90, True, "topic_name_invalid"),
     (0x97, True, "quota_exceeded"), (0x99, True, "payload_format_invalid")],
)  # fmt: skip
def test_which_puback_codes_refuse(code: int, refused: bool, label: str) -> None:
    assert is_refusal(code) is refused
    assert reason_label(puback(code).getName()) == label


# -- the link's decision -------------------------------------------------------------------------
def test_a_refused_event_is_kept_an_accepted_one_acknowledged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.refusals")
    with Journal(tmp_path / "j.db", Origin("gw-refuse", "8035", "daiyue", "L1")) as journal:
        link = _link()
        fwd = Forwarder(journal, link, TOPICS, 10, backoff_min_secs=0.5)
        for seq, topic in [(1, BAG), (2, NET), (3, NET), (4, BAG)]:
            link.publish(topic, b"{}", seq=seq)
        _answer(link, _mid(link, 1), 0x10)  # no matching subscribers: a success
        _answer(link, _mid(link, 2), 0x87)
        _answer(link, _mid(link, 3), 0x87)
        _answer(link, _mid(link, 4), 0x00)
        assert link.take_acked() == [1, 4]
        assert fwd.retry.outstanding == {2, 3}
        assert fwd.refused_waiting == 2
        assert link.pending == {}
        assert link.stats.refused == {"not_authorized": 2}
        assert link.stats.acked == 2
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, "one ERROR per topic and reason, not one per event"
        assert NET in errors[0].getMessage() and "Not authorized" in errors[0].getMessage()

        link.publish(NET, b"{}", seq=5)  # another reason on the same topic: said too
        _answer(link, _mid(link, 5), 0x97)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 2 and "Quota exceeded" in errors[1].getMessage()
        assert link.stats.refused == {"not_authorized": 2, "quota_exceeded": 1}

        # the topic accepted again (a newer event): said once, and the waiting ones are due
        link.publish(NET, b"{}", seq=6)
        _answer(link, _mid(link, 6), 0x00)
        assert any("accepts" in r.getMessage() and r.levelno == logging.INFO
                   for r in caplog.records)  # fmt: skip
        assert fwd.retry.due(10) == [2, 3, 5]
        link.publish(NET, b"{}", seq=7)
        _answer(link, _mid(link, 7), 0x87)  # refused once more: a new ERROR
        assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 3


def test_a_refused_control_message_is_counted_not_kept(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", Origin("gw-refuse", "8035", "daiyue", "L1")) as journal:
        link = _link()
        fwd = Forwarder(journal, link, TOPICS, 10)
        link.publish(TOPICS.kpi(), b"{}", retain=True)  # seq None: not journaled
        _answer(link, _mid(link, None), 0x87)
        assert link.take_acked() == []
        assert fwd.refused_waiting == 0 and fwd.retry.waiting == 0
        assert link.stats.refused == {"not_authorized": 1}
        assert link.pending == {}


def test_without_a_forwarder_a_refused_message_is_done_with_as_before() -> None:
    """The UNS output's link (no on_refused): counted and logged, released as before."""
    link = _link()
    link.publish(TOPICS.tags("cw1"), b"{}", seq=9)
    _answer(link, _mid(link, 9), 0x87)
    assert link.take_acked() == [9]
    assert link.stats.refused == {"not_authorized": 1}


def test_mqtt_311_pubacks_carry_no_code() -> None:
    """3.1.1: paho reports every PUBACK as a success; nothing is refused."""
    link = _link("3.1.1")
    link.publish(BAG, b"{}", seq=1)
    _answer(link, _mid(link, 1), 0x00)  # what paho's 3.1.1 decoder hands over
    assert link.take_acked() == [1]
    assert link.stats.refused == {}


# -- the backoff -------------------------------------------------------------------------------
def test_backoff_per_topic_one_probe_each_time_doubling_to_the_cap() -> None:
    clock = Clock()
    q = RetryQueue(0.5, 4.0, clock=clock)
    for seq in (3, 1, 2):
        q.refused(seq, NET)
    q.refused(10, BAG)
    assert q.due(100) == []  # the first wait: min_secs
    clock.now += 0.49
    assert q.due(100) == []
    clock.now += 0.01
    assert sorted(q.due(100)) == [1, 10]  # one probe per topic, its lowest seq
    waits = []
    for _ in range(5):  # each probe refused again: 1, 2, 4, 4, 4 s
        q.refused(1, NET)
        t = clock.now
        assert q.due(100) == []
        nxt = q.next_due()
        assert nxt is not None
        waits.append(nxt - t)
        clock.now = nxt
        assert q.due(100) == [1]
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert q.outstanding == {1, 2, 3, 10}


def test_an_accepted_topic_sends_all_its_waiting_at_once_within_the_window() -> None:
    clock = Clock()
    q = RetryQueue(0.5, 60.0, clock=clock)
    for seq in range(1, 8):
        q.refused(seq, NET)
    q.refused(20, BAG)
    q.accepted(NET)  # a newer event on the topic went through
    assert q.due(3) == [1, 2, 3]  # the in-flight window's room
    assert q.due(10) == [4, 5, 6, 7]  # BAG still waits for its backoff
    q.delivered([1, 2, 3, 4, 5, 6, 7])
    assert q.outstanding == {20}
    q.refused(6, NET)  # refused again after the acceptance: backoff from min again
    assert q.due(10) == []
    clock.now += 0.5
    assert sorted(q.due(10)) == [6, 20]
    q.forget(20)
    assert q.outstanding == {6}


# -- the forwarder: the row stays in the journal, is read again by seq, drain() waits -------------
def test_the_forwarder_sends_a_refused_row_again_from_the_journal(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db", Origin("gw-refuse", "8035", "daiyue", "L1")) as journal:
        drafts = [EventDraft("ccp.net_content", T0, {"value": i}) for i in range(3)]
        journal.append(drafts).result(timeout=10)
        link = _link()
        fwd = Forwarder(journal, link, TOPICS, 10, backoff_min_secs=0.5)
        clock = Clock()
        fwd.retry.clock = clock
        reader = journal.reader()
        try:
            rows = reader.after(0, 10)
            for row in rows:
                link.publish(NET, row.payload, seq=row.seq)
            fwd._cursor = 3
            _answer(link, _mid(link, 1), 0x00)
            _answer(link, _mid(link, 2), 0x87)
            _answer(link, _mid(link, 3), 0x87)
            fwd._flush_acks()
            deadline = time.monotonic() + 10
            while journal.stats.backlog != 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert journal.stats.backlog == 2  # seqs 2 and 3 stay, undelivered
            assert [r.seq for r in reader.after(0, 10)] == [2, 3]
            assert fwd.drain(0.1) is False  # not everything was sent: they wait
            assert fwd._resend(reader, 10) is False  # their backoff is not over
            clock.now += 0.5
            assert fwd._resend(reader, 10) is True  # one probe: the lowest seq
            (mid,) = link.pending
            assert link.pending[mid] == 2
            assert link.client._out_messages[mid].payload == rows[1].payload  # same bytes, id
            assert fwd.drain(0.1) is False  # sent again, not yet acknowledged
            _answer(link, mid, 0x00)  # accepted: the topic's other waiting rows go at once
            assert fwd._resend(reader, 10) is True
            (mid,) = link.pending
            assert link.pending[mid] == 3
            _answer(link, mid, 0x00)
            fwd._flush_acks()
            assert fwd.drain(10) is True
            assert fwd.refused_waiting == 0
            deadline = time.monotonic() + 10  # the deletes are the journal writer's
            while journal.stats.backlog != 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert journal.stats.backlog == 0
        finally:
            reader.close()


def test_a_refused_row_dropped_meanwhile_is_forgotten(tmp_path: Path) -> None:
    """``when_full: drop_oldest`` deleted it (counted as a drop there): nothing to send."""
    with Journal(tmp_path / "j.db", Origin("gw-refuse", "8035", "daiyue", "L1")) as journal:
        link = _link()
        fwd = Forwarder(journal, link, TOPICS, 10, backoff_min_secs=0.5)
        clock = Clock()
        fwd.retry.clock = clock
        fwd.retry.refused(41, NET)  # no such row in the journal
        clock.now += 1
        reader = journal.reader()
        try:
            assert fwd._resend(reader, 10) is False
        finally:
            reader.close()
        assert fwd.refused_waiting == 0 and link.pending == {}
