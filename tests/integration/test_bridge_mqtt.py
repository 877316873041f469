"""Contract events published through a real mosquitto → bridges → documents: the codes and
bindings in the XML equal those published; garbage is quarantined; shared subscriptions split
the load; a bridge that was away receives what was published meanwhile (persistent session)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.bridge.reconcile import batch_report
from gateway.bridge.schema import PENDING_EVENTS_SQL
from gateway.bridge.service import Bridge
from tests.support.bridge_docs import facts_of
from tests.support.bridge_env import (
    DONE,
    Publisher,
    bridge_config,
    directory_bridges,
    outbox,
    q,
    wait,
)
from tests.support.broker import Mosquitto
from tests.support.trace_events import GARBAGE, LineEvents, batch_events, payload

pytestmark = pytest.mark.integration


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    p = Publisher(mosquitto.port)
    yield p
    p.close()


def test_codes_and_bindings_in_the_documents_equal_those_published(
    tmp_path: Path, mosquitto: Mosquitto, publisher: Publisher
) -> None:
    with directory_bridges(tmp_path, mosquitto.port) as bridges:
        f = LineEvents()
        plans = [batch_events(f, "20261122-L1-01", 70), batch_events(f, "20261122-L1-02", 30)]
        events = [e for p in plans for e in p.events]
        for i, ev in enumerate(events):
            publisher.publish(f.topic(ev), payload(ev))
            if i == 20:
                for g in GARBAGE:
                    publisher.publish(f"{f.prefix}/8035/daiyue/L1/event/pack/case", g)
        publisher.publish(f.topic(events[5]), payload(events[5]))  # a re-sent event: same id

        for profile, b in bridges.items():
            db = Path(b.bcfg.store)
            wait(lambda db=db: q(db, "SELECT COUNT(*) FROM events")[0][0] == len(events), 20,
                 f"{profile}: all events stored")  # fmt: skip
            wait(lambda db=db: q(db, "SELECT COUNT(*) FROM documents WHERE state != 'acked'")
                 == [(0,)] and q(db, PENDING_EVENTS_SQL)
                 == [(0,)], 20, f"{profile}: all documents acknowledged")  # fmt: skip
            assert q(db, "SELECT COUNT(*) FROM quarantine")[0][0] == len(GARBAGE)
            facts = facts_of(outbox(tmp_path / profile))
            assert facts.codes == [c for p in plans for c in p.bags], profile
            expected = [("pack", k, tuple(v)) for p in plans for k, v in p.cases.items()]
            expected += [("pack", k, tuple(v)) for p in plans for k, v in p.pallets.items()]
            expected += [("unpack", k, tuple(v)) for p in plans for k, v in p.unpacked.items()]
            assert sorted(facts.relations) == sorted(expected), profile
            assert facts.orders == {o: c for p in plans for o, c in p.orders.items()}
            assert len(facts.ccp) == sum(e["type"].startswith("ccp.") for e in events)
            wait(lambda db=db: q(db, DONE) == [(p.batch,) for p in plans], 10,
                 f"{profile}: the bridge reconciled both batches complete")  # fmt: skip
            with sqlite3.connect(db) as conn:
                for p in plans:
                    rep = batch_report(conn, p.batch)
                    assert rep is not None and rep.complete
                    assert rep.acknowledged == rep.commissioned == len(p.bags)


def test_shared_subscription_splits_the_load_and_every_bridge_knows_every_batch(
    tmp_path: Path, mosquitto: Mosquitto, publisher: Publisher
) -> None:
    bridges = [
        Bridge(
            bridge_config(tmp_path, mosquitto.port, f"s{i}", share_group="uploaders"),
            host="127.0.0.1",
            port=mosquitto.port,
        ).start()
        for i in range(2)
    ]
    try:
        wait(lambda: all(b.consumer and b.consumer.subscribed.is_set() for b in bridges), 10,
             "bridges connected")  # fmt: skip
        time.sleep(0.3)  # SUBACK
        f = LineEvents()
        plan = batch_events(f, "B-SHARED", 120, rework=False)
        for ev in plan.events:
            publisher.publish(f.topic(ev), payload(ev))
        dbs = [Path(b.bcfg.store) for b in bridges]

        def codes() -> list[set[str]]:
            return [{r[0] for r in q(db, "SELECT code FROM codes")} for db in dbs]

        wait(lambda: set.union(*codes()) == set(plan.bags), 20, "all codes stored once")
        split = codes()
        assert not split[0] & split[1], "a code went to both bridges"
        assert all(split), f"one bridge got nothing: {[len(s) for s in split]}"
        for db in dbs:  # batch topics are subscribed unshared: both know the batch's product
            assert q(db, "SELECT product FROM batches WHERE batch='B-SHARED'") == [("P400",)]
    finally:
        for b in bridges:
            b.stop()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_events_published_while_the_bridge_is_away_arrive_when_it_is_back(
    tmp_path: Path, mosquitto: Mosquitto, publisher: Publisher, protocol: str
) -> None:
    cfg = bridge_config(tmp_path, mosquitto.port, "away", session_expiry_secs=600)
    cfg.mqtt.protocol = protocol  # type: ignore[assignment]
    b = Bridge(cfg, host="127.0.0.1", port=mosquitto.port).start()
    wait(lambda: bool(b.consumer and b.consumer.subscribed.is_set()), 10, "bridge connected")
    time.sleep(0.3)
    b.stop()
    f = LineEvents()
    plan = batch_events(f, "B-AWAY", 25)
    for ev in plan.events:
        publisher.publish(f.topic(ev), payload(ev))
    b2 = Bridge(cfg, host="127.0.0.1", port=mosquitto.port).start()
    try:
        db = Path(cfg.bridge.store if cfg.bridge else "")
        wait(lambda: q(db, "SELECT COUNT(*) FROM codes")[0][0] == 25, 15, "queued events")
    finally:
        b2.stop()
