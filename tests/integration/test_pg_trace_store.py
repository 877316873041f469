"""One enterprise trace store on PostgreSQL (docs/scaling.md): the schema's migrations, two
bridges' stores writing one database at once, and ``saltgw trace``/``verify`` across lines."""

from __future__ import annotations

import multiprocessing
import time
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gateway.bridge.backlog import read_backlog
from gateway.bridge.config import BridgeSection
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.pg import SCHEMA_REVISION, SchemaOutOfDate
from gateway.bridge.schema import PENDING_EVENTS_SQL
from gateway.bridge.store import TraceStore
from gateway.cli import main
from gateway.verify import verify_store
from tests.support.postgres import PgServer
from tests.support.stores import KEY, KEY_TEXT
from tests.support.trace_events import LineEvents, batch_events, payload

TZ = timezone(timedelta(hours=8))
PRODUCTS = [{"id": "P400", "name": "精制盐", "net_content": "400g"}]


def test_migrate_creates_the_schema_once_and_a_bridge_refuses_an_unmigrated_store(
    pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    pg_server.admin("CREATE DATABASE fresh_store")
    url = pg_server.url("fresh_store")
    with pytest.raises(SchemaOutOfDate, match="saltgw store migrate"):
        TraceStore(url, chain_key=KEY)
    assert main(["store", "migrate", "--store", url]) == 0
    assert f"migrated from nothing to revision {SCHEMA_REVISION}" in capsys.readouterr().out
    assert main(["store", "migrate", "--store", url]) == 0
    assert "nothing to do" in capsys.readouterr().out
    TraceStore(url, chain_key=KEY).close()
    assert main(["store", "migrate", "--store", "var/bridge.db"]) == 2
    assert "needs a PostgreSQL store" in capsys.readouterr().err


def test_a_postgresql_store_needs_its_chain_key_configured(pg_store: str) -> None:
    from gateway.bridge.integrity import store_chain_key
    from gateway.chain import ChainKeyError

    with pytest.raises(ChainKeyError, match="needs its chain key given"):
        TraceStore(pg_store)
    section = BridgeSection(store=pg_store, chain_key_env="SALTGW_TEST_UNSET_KEY")
    with pytest.raises(ChainKeyError, match="the same key on every bridge"):
        store_chain_key(section)


def _line(name: str, gateway: str, bags: int) -> list[tuple[str, bytes]]:
    f = LineEvents(line=name, gateway=gateway)
    plan = batch_events(f, f"20261122-{name}-01", bags, per_case=5, per_pallet=2)
    return [(f.topic(ev), payload(ev)) for ev in plan.events]


def _bridge(url: str, node: str, messages: list[tuple[str, bytes]], start: float) -> dict[str, Any]:
    """One bridge's store: ingest in groups of 4, building documents after each group."""
    store = TraceStore(url, chain_key=KEY, track_seq=False)
    cfg = BridgeSection(store=url, codes_per_document=7, products=PRODUCTS)  # type: ignore[arg-type]
    builder = DocumentBuilder(store.db, cfg, enterprise="8035", node=node, tz=TZ, validate=False)
    time.sleep(max(0.0, start - time.time()))  # both begin together
    numbers = []
    for i in range(0, len(messages), 4):
        store.ingest(messages[i : i + 4])
        numbers += [d.number for d in builder.build_ready(force=True)]
    store.close()
    s = store.stats
    return {"accepted": s.accepted, "duplicates": s.duplicates, "quarantined": s.quarantined,
            "numbers": numbers, "raced": builder.raced}  # fmt: skip


def test_two_bridges_write_one_store_at_once(pg_store: str, tmp_path: Path) -> None:
    """Two processes, each a bridge with its own connection: lines L1 and L2, and the other's
    last messages again (redelivered after a takeover). Every event is stored once, the hash
    chain verifies, every uploadable event is in exactly one document, numbers are unique."""
    l1 = _line("L1", "gw-l1", 36)
    l2 = _line("L2", "gw-l2", 36)
    a = l1 + l2[-12:]
    b = l2 + l1[-12:]
    ctx = multiprocessing.get_context("spawn")
    start = time.time() + 2.0
    with ctx.Pool(2) as pool:
        jobs = [pool.apply_async(_bridge, (pg_store, n, m, start)) for n, m in (("A", a), ("B", b))]
        results = [j.get(timeout=120) for j in jobs]
    sent = len(a) + len(b)
    unique = len(l1) + len(l2)
    assert sum(r["quarantined"] for r in results) == 0
    assert sum(r["accepted"] for r in results) == unique
    assert sum(r["accepted"] + r["duplicates"] for r in results) == sent

    store = TraceStore(pg_store, chain_key=KEY)
    db = store.db
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM events").fetchone() == (
        unique, unique
    )
    report = verify_store(pg_store, KEY)
    assert report.ok, report.line()
    assert report.checked == unique
    # the last documents of whichever bridge came last
    last = BridgeSection(store=pg_store, codes_per_document=7)
    DocumentBuilder(db, last, enterprise="8035", node="C", tz=TZ, validate=False).build_ready(
        force=True
    )
    assert db.execute(PENDING_EVENTS_SQL).fetchone()[0] == 0
    numbers = [n for (n,) in db.execute("SELECT number FROM documents")]
    assert len(numbers) == len(set(numbers))
    made = [n for r in results for n in r["numbers"]]
    assert len(made) == len(set(made)) and set(made) <= set(numbers)
    seqs = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert seqs == list(range(1, len(numbers) + 1))  # one day's sequence, across the bridges
    in_docs = db.execute(
        "SELECT e.rid, COUNT(d.id) FROM events e LEFT JOIN documents d "
        "ON e.rid BETWEEN d.first_rid AND d.last_rid WHERE e.up = 1 GROUP BY e.rid"
    ).fetchall()
    assert in_docs and all(n == 1 for _, n in in_docs), [r for r in in_docs if r[1] != 1]
    backlog = read_backlog(pg_store)  # /metrics of any bridge: the enterprise's outbox
    assert backlog is not None and backlog.events_waiting == 0
    assert backlog.count("pending") == len(numbers)
    lines = {r[0] for r in db.execute("SELECT DISTINCT line FROM events")}
    assert lines == {"L1", "L2"}
    store.close()


def test_trace_and_verify_span_every_line_of_the_store(
    pg_store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines of two plants in one store: ``saltgw trace --store URL`` answers for both, and
    ``saltgw verify`` finds an edit."""
    monkeypatch.setenv("SALTGW_STORE_CHAIN_KEY", KEY_TEXT)
    store = TraceStore(pg_store, chain_key=KEY)
    f1 = LineEvents(site="daiyue", line="L1", gateway="gw-a")
    f2 = LineEvents(site="laiwu", line="L3", gateway="gw-b")
    p1 = batch_events(f1, "20261122-L1-01", 10, per_case=5, per_pallet=2)
    p2 = batch_events(f2, "20261122-L3-01", 10, per_case=5, per_pallet=2)
    got = store.ingest([("t", payload(e)) for e in p1.events + p2.events])
    assert got.quarantined == 0 and got.accepted == len(p1.events) + len(p2.events)
    store.close()
    for plan, line in ((p1, "L1"), (p2, "L3")):
        assert main(["trace", plan.bags[0], "--store", pg_store]) == 0
        out = capsys.readouterr().out
        assert f"batch {plan.batch}" in out and f"line {line}" in out
        assert main(["trace", "--batch", plan.batch, "--store", pg_store]) == 0
        assert out.count(plan.bags[0]) >= 1 and plan.bags[9] in capsys.readouterr().out
    assert main(["verify", "--store", pg_store]) == 0
    assert "intact" in capsys.readouterr().out.lower()
    store = TraceStore(pg_store, chain_key=KEY)
    store.db.execute("UPDATE events SET note = 'edited' WHERE rid = 5")
    store.close()
    assert main(["verify", "--store", pg_store]) == 1
    assert "BROKEN" in capsys.readouterr().out
