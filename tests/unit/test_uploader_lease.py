"""One uploader at a time on a shared trace store (gateway/bridge/lease.py), on both engines:
the second bridge's uploader stands by while the first holds the lease and sends nothing; the
lease is freed by a release and by the death (SIGKILL) of the process that held it, and the
standby then sends the rest — every document sent once."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta, timezone

from gateway.bridge.config import BridgeSection, UploadRetrySection
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.lease import uploader_lease
from gateway.bridge.upload import Uploader
from tests.support.procs import ROOT
from tests.support.stores import StoreAt
from tests.support.trace_events import LineEvents, batch_events, payload
from tests.unit.test_bridge_delivery import Scripted

TZ = timezone(timedelta(hours=8))
FAST = UploadRetrySection(max_attempts=3, backoff_min_secs=0.001, backoff_max_secs=0.002)

HOLDER = """
import sys, time
from gateway.bridge.db import open_db
from gateway.bridge.lease import uploader_lease
store = sys.argv[1]
db = open_db(store)
assert uploader_lease(db, store).held()
print("held", flush=True)
time.sleep(120)
"""


def _documents(store_at: StoreAt) -> int:
    store = store_at()
    plan = batch_events(LineEvents(), "B1", 30)
    store.ingest([("t", payload(e)) for e in plan.events])
    bcfg = BridgeSection(store=store_at.location, codes_per_document=10)  # type: ignore[arg-type]
    DocumentBuilder(store.db, bcfg, enterprise="8035", node="n1", tz=TZ).build_ready(force=True)
    n = store.db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    store.close()
    return int(n)


def _uploader(store_at: StoreAt, transport: Scripted) -> Uploader:
    db = store_at().db
    lease = uploader_lease(db, store_at.location)
    return Uploader(db, transport, FAST, threading.Event(), lease=lease)


def test_one_uploader_sends_while_the_other_stands_by_then_takes_over(store_at: StoreAt) -> None:
    n_docs = _documents(store_at)
    assert n_docs >= 3
    a, b = Scripted([]), Scripted([])
    first, second = _uploader(store_at, a), _uploader(store_at, b)
    assert first.run_once() == n_docs
    assert second.run_once() == 0 and not second.uploading  # standing by
    # more documents while the first still holds the lease: still only the first sends
    store = store_at()
    plan = batch_events(LineEvents(seq=1000), "B2", 10)
    store.ingest([("t", payload(e)) for e in plan.events])
    bcfg = BridgeSection(store=store_at.location, codes_per_document=10)  # type: ignore[arg-type]
    DocumentBuilder(store.db, bcfg, enterprise="8035", node="n1", tz=TZ).build_ready(force=True)
    total = store.db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    assert second.run_once() == 0 and b.sent == []
    assert first.lease is not None
    first.lease.release()  # the first bridge stops
    assert second.run_once() == total - n_docs and second.uploading
    assert sorted(a.sent + b.sent) == sorted(
        r[0] for r in store.db.execute("SELECT number FROM documents")
    )  # every document sent once, by one of them
    assert not set(a.sent) & set(b.sent)
    store.close()


def test_the_lease_of_a_killed_bridge_is_free_at_once(store_at: StoreAt) -> None:
    store_at().close()  # created and migrated
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store_at.location)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        db = store_at().db
        lease = uploader_lease(db, store_at.location)
        assert not lease.held()
        holder.kill()  # SIGKILL: no release, no clean close
        holder.wait(10)
        # the OS (flock) or PostgreSQL (the backend of a closed connection) frees it; for
        # PostgreSQL the backend may need a moment to notice the closed socket
        for _ in range(200):
            if lease.held():
                break
            threading.Event().wait(0.05)
        assert lease.held()
        lease.release()
        db.close()
    finally:
        holder.kill()
        holder.wait(10)
