"""Upload to a fake platform over HTTP that is down, refuses the token, answers garbage, 500s and
time-outs, loses replies after storing, goes down again and comes back: every document arrives
exactly once as the platform can tell (document numbers), receipts are recorded, and
reconciliation reports the batches complete. A rejected document is quarantined and its batch
raises alarm.upload."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.bridge.schema import PENDING_EVENTS_SQL
from gateway.bridge.service import Bridge
from tests.support.bridge_docs import facts_of
from tests.support.bridge_env import DONE, Publisher, bridge_config, q, wait
from tests.support.broker import Mosquitto
from tests.support.platform import FakePlatform
from tests.support.trace_events import LineEvents, batch_events, payload

pytestmark = pytest.mark.integration

TOKEN_ENV = "SALTGW_TEST_PLATFORM_TOKEN"


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    p = Publisher(mosquitto.port)
    yield p
    p.close()


def http_upload(platform: FakePlatform, **retry: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "url": platform.url,
        "token_env": TOKEN_ENV,
        "timeout_secs": 0.5,
        "retry": {"max_attempts": 30, "backoff_min_secs": 0.05, "backoff_max_secs": 0.2, **retry},
    }


def outcomes(db: Path) -> list[tuple[str, str]]:
    return [(o, d or "") for o, d in q(db, "SELECT outcome, detail FROM attempts ORDER BY rowid")]


def test_every_document_delivered_exactly_once_through_a_chaotic_platform(
    tmp_path: Path, mosquitto: Mosquitto, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = FakePlatform(token="s3cret")
    platform.script = ["garbage", "500", "store_then_garbage", "timeout", "500", "503"]
    platform.script += ["garbage", "store_then_garbage"]
    monkeypatch.setenv(TOKEN_ENV, "wrong")
    cfg = bridge_config(
        tmp_path,
        mosquitto.port,
        "chaos",
        codes_per_document=30,
        gzip_base64=True,
        upload=http_upload(platform),
    )
    bridge = Bridge(cfg, host="127.0.0.1", port=mosquitto.port).start()
    db = Path(cfg.bridge.store if cfg.bridge else "")
    try:
        wait(lambda: bool(bridge.consumer and bridge.consumer.subscribed.is_set()), 10, "connect")
        f = LineEvents()
        plans = [batch_events(f, "20261122-L1-01", 120), batch_events(f, "20261122-L1-02", 40)]
        for ev in plans[0].events:
            publisher.publish(f.topic(ev), payload(ev))

        # 1. the platform is down: documents wait, attempts are recorded, nothing is counted
        wait(lambda: any(o == "unavailable" for o, _ in outcomes(db)), 10, "refused attempts")
        assert q(db, "SELECT MAX(attempts) FROM documents") == [(0,)]
        # 2. it comes back with a token the bridge does not have: 401, still not counted
        platform.start()
        wait(lambda: any("HTTP 401" in d for _, d in outcomes(db)), 10, "a 401")
        monkeypatch.setenv(TOKEN_ENV, "s3cret")
        # 3. garbage, 500s, a time-out, lost replies … then documents go through
        wait(lambda: q(db, "SELECT COUNT(*) FROM documents WHERE state='acked'")[0][0] >= 3, 20,
             "first acknowledgements")  # fmt: skip
        # 4. down again while the next batch is packed, then back for good
        platform.stop()
        seen = len(outcomes(db))
        for ev in plans[1].events:
            publisher.publish(f.topic(ev), payload(ev))
        wait(lambda: any(o == "unavailable" for o, _ in outcomes(db)[seen:]), 10, "down again")
        platform.start()
        wait(lambda: q(db, PENDING_EVENTS_SQL) == [(0,)]
             and q(db, "SELECT COUNT(*) FROM documents WHERE state != 'acked'") == [(0,)], 30,
             "every document acknowledged")  # fmt: skip
        wait(lambda: q(db, DONE) == [(p.batch,) for p in plans], 10, "batches complete")
    finally:
        bridge.stop()
        platform.stop()

    docs = dict(q(db, "SELECT number, receipt FROM documents"))
    assert len(docs) >= 8
    # exactly once as the platform sees it: each number stored once, none missing, none extra
    assert set(platform.stored) == set(docs)
    assert set(platform.new_count.values()) == {1}
    assert {n: s.receipt for n, s in platform.stored.items()} == docs  # receipts recorded
    posts = Counter(n for n, _ in platform.posts)
    lost = [n for n, what in platform.posts if what == "store_then_garbage"]
    assert len(lost) == 2 and all(posts[n] >= 2 for n in lost)  # re-sent, answered duplicate
    dup = {n for (n,) in q(db, "SELECT number FROM attempts WHERE outcome='duplicate'")}
    assert dup == set(lost)
    details = " | ".join(d for o, d in outcomes(db) if o == "failed")
    for reason in ("garbage reply", "HTTP 500", "no reply within 0.5 s"):
        assert reason in details, details
    assert q(db, "SELECT COUNT(*) FROM documents WHERE state='quarantined'") == [(0,)]
    # what the platform holds is what the line published
    facts = facts_of([s.xml for s in sorted(platform.stored.values(), key=lambda s: s.number)])
    assert facts.codes == [c for p in plans for c in p.bags]
    expected = [("pack", k, tuple(v)) for p in plans for k, v in p.cases.items()]
    expected += [("pack", k, tuple(v)) for p in plans for k, v in p.pallets.items()]
    expected += [("unpack", k, tuple(v)) for p in plans for k, v in p.unpacked.items()]
    assert sorted(facts.relations) == sorted(expected)


def test_a_rejected_document_is_quarantined_and_its_batch_raises_alarm_upload(
    tmp_path: Path, mosquitto: Mosquitto, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = FakePlatform(script=["reject"]).start()
    alarms: list[dict[str, Any]] = []
    cfg = bridge_config(
        tmp_path,
        mosquitto.port,
        "reject",
        codes_per_document=20,
        upload=http_upload(platform),
        reconcile={"interval_secs": 0.1, "incomplete_alarm_secs": 0.5},
    )
    bridge = Bridge(cfg, host="127.0.0.1", port=mosquitto.port, alarm=alarms.append).start()
    db = Path(cfg.bridge.store if cfg.bridge else "")
    try:
        wait(lambda: bool(bridge.consumer and bridge.consumer.subscribed.is_set()), 10, "connect")
        f = LineEvents()
        plan = batch_events(f, "B-REJ", 30)
        for ev in plan.events:
            publisher.publish(f.topic(ev), payload(ev))
        wait(lambda: q(db, "SELECT COUNT(*) FROM documents WHERE state='pending'") == [(0,)]
             and q(db, PENDING_EVENTS_SQL) == [(0,)], 15,
             "all documents settled")  # fmt: skip
        wait(lambda: bool(alarms), 10, "alarm.upload")
    finally:
        bridge.stop()
        platform.stop()
    [(number, err)] = q(db, "SELECT number, last_error FROM documents WHERE state='quarantined'")
    assert "unknown enterprise" in err
    assert number not in platform.stored and len(platform.stored) >= 2
    alarm = alarms[0]
    assert alarm["state"] == "incomplete" and alarm["batch"] == "B-REJ"
    assert 0 < alarm["acknowledged"] < alarm["commissioned"] == 30
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT alarmed IS NOT NULL FROM batches").fetchone() == (1,)
