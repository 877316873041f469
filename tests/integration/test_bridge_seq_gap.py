"""Events the broker drops reach the trace store all the same: a real mosquitto that queues at
most 10 messages per session, a gateway's journal and forwarder (keeping delivered events for
replay) and the bridge. While the bridge is away the line publishes a batch; the broker keeps 10
for the bridge and drops the rest, though the gateway got its PUBACKs. Back, the bridge sees the
seq gap, raises alarm.seq_gap, asks the gateway to replay, and ends with every seq of the batch;
the alarm is cleared, the batch's reconciliation has no missing seq and the platform documents
hold every bag. No event follows the lost ones: the gateway's seq mark shows the gap at the tail.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.bridge.reconcile import batch_report
from gateway.bridge.service import Bridge
from gateway.bridge.xmlcheck import check_document
from gateway.config.models import MqttSection
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.mqtt import Forwarder, MqttLink
from gateway.signing import EnvelopeSigner, event_key
from gateway.topics import Topics
from tests.support.bridge_docs import facts_of
from tests.support.bridge_env import bridge_config, wait
from tests.support.broker import Mosquitto, mosquitto_available
from tests.support.trace_events import _complete

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _drafts(batch: str, first: int, n: int) -> list[EventDraft]:
    out = []
    for i in range(first, first + n):
        data, device = _complete("pack.bag", {"code": f"8035GAP{i:05d}"}, None)
        out.append(EventDraft("pack.bag", T0 + timedelta(seconds=i), data, device=device,
                              batch=batch))  # fmt: skip
    return out


def test_events_dropped_by_the_broker_are_replayed_into_the_store(tmp_path: Path) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    broker = Mosquitto(tmp_path / "mosquitto", extra_conf="max_queued_messages 10\n")
    broker.start()
    cfg = bridge_config(tmp_path, broker.port, "gap", seq_gap_grace_secs=0.5)
    topics = Topics("salt/v1", "8035", "daiyue", "L1", "gw-gap")
    journal = Journal(
        tmp_path / "journal.db", Origin("gw-gap", "8035", "daiyue", "L1"),
        keep_delivered_secs=3600, keep_delivered_events=10_000,
        signer=EnvelopeSigner("gw-gap", event_key(cfg)),  # the bridge's own gateway: its key
    ).open()  # fmt: skip
    link = MqttLink(MqttSection(url=broker.url), topics, "gw-gap-test")
    fwd = Forwarder(journal, link, topics, 100, backoff_min_secs=0.1)
    alarms: list[tuple[str, dict[str, Any]]] = []

    def sink(data: dict[str, Any], event_type: str = "alarm.upload") -> None:
        alarms.append((event_type, data))

    bridge = Bridge(cfg, host="127.0.0.1", port=broker.port, alarm=sink).start()
    fwd.start()
    store = cfg.bridge.store if cfg.bridge else Path()
    try:
        wait(lambda: bridge.listening(), 15, "the bridge subscribed")
        journal.append(_drafts("B1", 0, 5)).result(10)
        wait(lambda: journal.stats.delivered == 5, 15, "the first events delivered")
        wait(lambda: bridge.ingest_stats.accepted == 5, 15, "the first events stored")
        bridge.stop()  # away: its persistent session stays on the broker

        journal.append(_drafts("B1", 5, 60)).result(10)
        wait(lambda: journal.stats.delivered == 65, 15, "the batch acknowledged by the broker")
        assert journal.stats.backlog == 0  # the gateway has nothing left to send on its own

        # the line has gone quiet: no later event shows the bridge that some never came; the
        # gateway's retained seq mark (Topics.seq_mark) does
        bridge = Bridge(cfg, host="127.0.0.1", port=broker.port, alarm=sink).start()

        def seqs() -> list[int]:
            with sqlite3.connect(store) as db:
                return [r[0] for r in db.execute("SELECT seq FROM events ORDER BY seq")]

        wait(lambda: seqs() == list(range(1, 66)), 60, "every seq of the batch in the store")
        wait(lambda: "filled" in [d["state"] for t, d in alarms if t == "alarm.seq_gap"], 15,
             "the gap alarm cleared")  # fmt: skip
        states = [d["state"] for t, d in alarms if t == "alarm.seq_gap"]
        assert states[0] == "missing" and states[-1] == "filled", alarms
        first = next(d for t, d in alarms if t == "alarm.seq_gap")
        assert first["gateway"] == "gw-gap" and first["missing"] > 0
        assert fwd.replayer.replayed >= first["missing"]
        with sqlite3.connect(store) as db:
            rep = batch_report(db, "B1")
            assert rep is not None and rep.missing_seq == 0 and rep.commissioned == 65
            assert db.execute("SELECT COUNT(*) FROM seq_gaps").fetchone()[0] == 0

        def uploaded_codes() -> list[str]:
            with sqlite3.connect(store) as db:
                bodies = [bytes(b) for (b,) in db.execute("SELECT body FROM documents")]
            return sorted(facts_of(bodies).codes)

        # the platform documents hold every record of the batch, each valid
        want = sorted(f"8035GAP{i:05d}" for i in range(65))
        wait(lambda: uploaded_codes() == want, 30, "every bag of the batch in a document")
        with sqlite3.connect(store) as db:
            for (body,) in db.execute("SELECT body FROM documents"):
                assert check_document(bytes(body)).valid
    finally:
        bridge.stop()
        fwd.stop()
        journal.close()
        broker.kill()
