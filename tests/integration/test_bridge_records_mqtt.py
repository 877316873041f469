"""Every record kind through a real mosquitto → bridges (both profiles) → outbox directory:
feedings, rejects (a rejected bag decommissioned and taken out of its case), inbound and recall
scans arrive in the documents, every document valid, and the batch reconciles complete only once
every kind is acknowledged."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.bridge.reconcile import batch_report
from gateway.bridge.trace import container_of
from gateway.bridge.xmlcheck import check_document
from tests.support.bridge_docs import GS1_XSD, facts_of
from tests.support.bridge_env import (
    DONE,
    Publisher,
    directory_bridges,
    outbox,
    q,
    wait,
)
from tests.support.broker import Mosquitto
from tests.support.trace_events import LineEvents, batch_events, line_records, payload

pytestmark = pytest.mark.integration
BATCH = "20261122-L1-07"


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    p = Publisher(mosquitto.port)
    yield p
    p.close()


def test_every_record_kind_reaches_the_outbox_and_the_batch_completes(
    tmp_path: Path, mosquitto: Mosquitto, publisher: Publisher
) -> None:
    if not GS1_XSD.is_file():
        pytest.skip(f"GS1 EPCIS 2.0 XSD not at {GS1_XSD}")
    with directory_bridges(tmp_path, mosquitto.port) as bridges:
        f = LineEvents()
        plan = batch_events(f, BATCH, 45, with_end=False)
        extra = line_records(f, plan)
        extra.events.append(f.make("batch.end", {"batch": BATCH}, BATCH))
        events = plan.events + extra.events
        for ev in events:
            publisher.publish(f.topic(ev), payload(ev))

        for profile, b in bridges.items():
            db = Path(b.bcfg.store)
            wait(lambda db=db: q(db, "SELECT COUNT(*) FROM events")[0][0] == len(events), 20,
                 f"{profile}: all events stored")  # fmt: skip
            wait(lambda db=db: q(db, DONE) == [(BATCH,)], 20,
                 f"{profile}: the batch reconciled complete")  # fmt: skip
            bodies = outbox(tmp_path / profile)
            for body in bodies:
                result = check_document(body, GS1_XSD.resolve())
                assert result.valid, (profile, result.errors)
            facts = facts_of(bodies)
            assert facts.rejects == extra.rejects, profile
            assert facts.decommissioned == extra.decommissioned, profile
            removed = [r for r in facts.relations if r[0] == "remove"]
            assert removed == [("remove", case, (c,)) for _, c, case in extra.rejects if case]
            assert [fd["material"] for fd in facts.feedings] == [
                d["material"] for d in extra.feedings
            ]
            assert facts.inbound == extra.inbound and facts.recalls == extra.recalls, profile
            with sqlite3.connect(db) as conn:
                rep = batch_report(conn, BATCH)
                assert rep is not None and rep.complete, rep
                assert {k: c.acknowledged for k, c in rep.kinds.items()} == {
                    k: c.produced for k, c in rep.kinds.items()
                }
                assert rep.kinds["rejects"].produced == 4
                for _, code, _case in extra.rejects:
                    if code is not None:
                        assert container_of(conn, code) is None
