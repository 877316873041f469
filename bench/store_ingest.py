"""Trace store ingest and verify on both engines (issue 20: one enterprise store on PostgreSQL).

    python bench/store_ingest.py [--bags 2000] [--group 200]

The same signed events of whole batches (tests/support/trace_events.py: bags, net-content
checks, cases, pallets, an unpack, a shipment) go into a fresh SQLite store and a fresh
PostgreSQL store (Debian's postgresql, a throwaway cluster on 127.0.0.1) through
``TraceStore.ingest`` in groups of ``--group`` (a bridge's commit group), then ``saltgw
verify``'s walk reads each store back. Rows: events/s ingested and records/s verified, each
PostgreSQL figure beside the SQLite one of the same run (the baseline), and the statements sent
per event (``executemany`` counts once: psycopg pipelines it). PostgreSQL pays a round trip per
statement that SQLite, in-process, does not: statements per event is the figure to watch.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import emit, error_row, row
from gateway.bridge.store import TraceStore
from gateway.verify import verify_store
from tests.support.postgres import pg_bindir, running_postgres
from tests.support.trace_events import LineEvents, batch_events, payload

KEY = b"bench-store-chain-key-0123456789abcdef"


class Counted:
    """The store's connection, counting the statements sent through it."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.statements = 0

    def execute(self, *a: Any) -> Any:
        self.statements += 1
        return self._db.execute(*a)

    def executemany(self, *a: Any) -> Any:
        self.statements += 1
        return self._db.executemany(*a)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def messages(bags: int) -> list[tuple[str, bytes]]:
    f = LineEvents()
    out: list[tuple[str, bytes]] = []
    for i in range(max(1, bags // 400)):
        plan = batch_events(f, f"B{i:03d}", min(400, bags))
        out += [(f.topic(e), payload(e)) for e in plan.events]
    return out


def one_engine(location: Path | str, msgs: list[tuple[str, bytes]], group: int) -> dict[str, Any]:
    store = TraceStore(location, chain_key=KEY)
    counted = Counted(store.db)
    store.db = counted  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        for i in range(0, len(msgs), group):
            store.ingest(msgs[i : i + group])
        ingest_secs = time.perf_counter() - t0
        assert store.stats.accepted == len(msgs), store.stats
    finally:
        store.close()
    t0 = time.perf_counter()
    rep = verify_store(location, KEY)
    verify_secs = time.perf_counter() - t0
    assert rep.ok, rep.line()
    return {
        "ingest_per_s": len(msgs) / ingest_secs,
        "verify_per_s": rep.checked / verify_secs,
        "statements_per_event": counted.statements / len(msgs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bags", type=int, default=2000)
    ap.add_argument("--group", type=int, default=200)
    args = ap.parse_args()
    msgs = messages(args.bags)
    tmp = Path(tempfile.mkdtemp(prefix="saltgw-bench-store-"))
    try:
        lite = one_engine(tmp / "trace.db", msgs, args.group)
        extra = {"events": len(msgs), "group": args.group}
        emit(row("store_ingest_sqlite", lite["ingest_per_s"], "events/s", None, digits=1,
                 statements_per_event=round(lite["statements_per_event"], 2), **extra))  # fmt: skip
        emit(row("store_verify_sqlite", lite["verify_per_s"], "records/s", None, digits=1,
                 **extra))  # fmt: skip
        bindir = pg_bindir()
        if bindir is None:
            emit(error_row("store_ingest_postgresql", RuntimeError("postgresql not installed")))
            return 0
        with running_postgres(tmp / "pg", bindir) as pg:
            got = one_engine(pg.new_database(), msgs, args.group)
        emit(row("store_ingest_postgresql", got["ingest_per_s"], "events/s",
                 lite["ingest_per_s"], digits=3,
                 statements_per_event=round(got["statements_per_event"], 2), **extra))  # fmt: skip
        emit(row("store_verify_postgresql", got["verify_per_s"], "records/s",
                 lite["verify_per_s"], digits=3, **extra))  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
