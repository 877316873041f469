#!/usr/bin/env python3
"""Trace store → public snapshot (gateway/bridge/public.py): the first full build, a publish,
and a steady-state round, over 1,000,000 codes.

    python bench/snapshot_publish.py            # 1,000,000 codes
    python bench/snapshot_publish.py --quick    # 100,000 codes

The store is filled as bench/xml_export.py fills it (bags in batches of 100,000, cases of 20,
pallets of 40 cases, every pallet shipped to a wholesaler: every code gets a state change and a
sales entry, the worst case). Then, timed:

- ``snapshot_build_secs``: the first full build of the working copy from the store (every event
  read once); baseline: the bare copy of the same code rows into an empty snapshot table
  (``INSERT … SELECT`` from the attached store), what any build must at least do.
- ``snapshot_publish_secs``: one publish (backup API copy, secure drop of the writer's table,
  meta, fsync, rename); baseline: ``shutil.copyfile`` + fsync of the working copy.
- ``snapshot_round_secs``: a steady-state round after 1,000 more bags, a case of them and its
  outbound (update + publish), the cost the bridge pays every ``interval_secs``; baseline: the
  publish alone.

One JSON object per line: {"bench": ..., "value": ..., "unit": ..., "baseline": ..., ...}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import emit, row
from bench.xml_export import fill
from gateway.bridge.config import BridgeSection, PublicSnapshotSection
from gateway.bridge.public import SnapshotWriter, open_store
from gateway.bridge.schema import connect
from gateway.public_snapshot import SCHEMA_SQL

TZ = timezone(timedelta(hours=8))
BUILT = datetime(2026, 11, 23, 8, 0, 0, tzinfo=TZ)


def _more(store_path: Path, n: int) -> None:
    """``n`` more bags, one case of them, that case shipped (rows as TraceStore.ingest writes)."""
    db = connect(store_path)
    rid = int(db.execute("SELECT MAX(rid) FROM events").fetchone()[0])
    ts = "2026-11-23T09:00:00.000+08:00"
    batch = "20261123-L1-01"
    now = time.time()
    db.execute("BEGIN")

    def event(etype: str, b: str | None, weight: int) -> int:
        nonlocal rid
        rid += 1
        db.execute(
            "INSERT INTO events(rid, id, type, ts, gateway, seq, enterprise, site, line, device, "
            "batch, received, up, weight) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (rid, str(uuid.uuid4()), etype, ts, "gw-bench", rid, "8035", "daiyue", "L1", None, b,
             now, 1, weight),
        )  # fmt: skip
        return rid

    db.execute(
        "INSERT INTO batches(batch, enterprise, site, line, product, production_date, "
        "last_activity) VALUES (?,?,?,?,?,?,?)",
        (batch, "8035", "daiyue", "L1", "P400", "2026-11-23", now),
    )
    bags = [f"8035N{i:011d}Q7K2" for i in range(n)]
    for code in bags:
        r = event("pack.bag", batch, 1)
        db.execute(
            "INSERT INTO codes(rid, code, enterprise, batch, ts) VALUES (?,?,?,?,?)",
            (r, code, "8035", batch, ts),
        )
    r = event("pack.case", batch, 1 + n)
    db.executemany(
        "INSERT INTO relations VALUES (?,?,?,?,?,?,?)",
        [(r, k, "8035CNEW000001", c, "case", "pack", ts) for k, c in enumerate(bags)],
    )
    r = event("ship.outbound", None, 1)
    db.execute(
        "INSERT INTO outbound(rid, pos, order_no, ts, customer, customer_type, code) "
        "VALUES (?,?,?,?,?,?,?)",
        (r, 0, "SO-NEW", ts, "某某盐业批发公司", "wholesaler", "8035CNEW000001"),
    )
    db.execute("COMMIT")
    db.close()


def _baseline_build(store_path: Path, tmp: Path) -> float:
    out = tmp / "baseline.db"
    db = sqlite3.connect(out, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA_SQL)
    db.execute("ATTACH ? AS store", (f"{store_path.resolve().as_uri()}?mode=ro",))
    t0 = time.perf_counter()
    db.execute("BEGIN")
    db.execute(
        "INSERT INTO codes(code, batch, produced, state, state_date) "
        "SELECT code, batch, substr(ts, 1, 10), 'commissioned', substr(ts, 1, 10) "
        "FROM store.codes"
    )
    db.execute("COMMIT")
    secs = time.perf_counter() - t0
    db.close()
    return secs


def _baseline_copy(src: Path, tmp: Path) -> float:
    dst = tmp / "copy.db"
    t0 = time.perf_counter()
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - t0


def rows(n: int, workdir: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        tmp = Path(d)
        store_path = tmp / "trace.db"
        t0 = time.perf_counter()
        fill(store_path, n)
        fill_secs = time.perf_counter() - t0
        events = int(connect(store_path).execute("SELECT MAX(rid) FROM events").fetchone()[0])
        cfg = BridgeSection(
            store=store_path,
            products=[{"id": "P400", "name": "精制盐", "net_content": "400g"}],  # type: ignore[list-item]
            public=PublicSnapshotSection(path=tmp / "pub" / "snapshot.db"),
        )
        assert cfg.public is not None
        w = SnapshotWriter(cfg.public, cfg, enterprise="8035", source="bench", clock=lambda: BUILT)
        store = open_store(store_path)
        t0, c0 = time.perf_counter(), time.process_time()
        w.update(store)
        build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        codes = w.publish()
        publish = time.perf_counter() - t0
        shipped = (
            open_store(cfg.public.path)
            .execute("SELECT COUNT(*) FROM codes WHERE state='shipped'")
            .fetchone()[0]
        )
        w.work.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the whole copy in one file
        size_mb = cfg.public.path.stat().st_size / 2**20
        work_mb = cfg.public.work_file().stat().st_size / 2**20
        base_build = _baseline_build(store_path, tmp)
        base_copy = _baseline_copy(cfg.public.work_file(), tmp)
        _more(store_path, 1000)
        t0 = time.perf_counter()
        w.update(store)
        w.publish()
        round_secs = time.perf_counter() - t0
        w.close()
        store.close()
    common = {"codes": codes, "events": events, "load_avg_1m": round(os.getloadavg()[0], 2)}
    out.append(
        row(
            "snapshot_build_secs", round(build, 2), "s", round(base_build, 2),
            higher_is_better=False, cpu_seconds=round(build_cpu, 2), shipped=shipped,
            baseline_note="the code rows copied by one INSERT … SELECT, no states", **common,
        )
    )  # fmt: skip
    out.append(
        row(
            "snapshot_publish_secs", round(publish, 2), "s", round(base_copy, 2),
            higher_is_better=False, snapshot_mb=round(size_mb, 1), work_mb=round(work_mb, 1),
            baseline_note="shutil.copyfile + fsync of the working copy", **common,
        )
    )  # fmt: skip
    out.append(
        row(
            "snapshot_round_secs", round(round_secs, 2), "s", round(publish, 2),
            higher_is_better=False, new_codes=1000,
            baseline_note="the publish alone (first publish above)", **common,
        )
    )  # fmt: skip
    note = "set-up: the store filled in bulk, not measured above"
    out.append(row("snapshot_fill_secs", round(fill_secs, 1), "s", None, note=note, **common))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100,000 codes")
    ap.add_argument("--codes", type=int, help="number of bag codes (default 1,000,000)")
    ap.add_argument("--dir", help="where the temporary files go (default: system temp)")
    args = ap.parse_args()
    n = args.codes or (100_000 if args.quick else 1_000_000)
    for result in rows(n, args.dir):
        emit(result)


if __name__ == "__main__":
    main()
