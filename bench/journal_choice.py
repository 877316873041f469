#!/usr/bin/env python3
"""Measure the two candidate event journals for saltgw: TinyDB and SQLite (WAL).

Standalone on purpose (no imports from the project; TinyDB is needed only here:
``pip install tinydb``). Every result is printed as one JSON object per line:

    {"bench": "...", "records": N, "value": X, "unit": "...", ...extra fields}

What it measures (see docs/journal.md for the decision these numbers support):

0. Raw "append 4 KiB + fsync" latency of the filesystem: the floor under any durable commit.
a. TinyDB, default JSONStorage, one insert per accepted event, one growing file,
   checkpoints at 1k / 5k / 20k records; a tier is cut off after 60 s (3 s with --quick)
   and the record count actually reached is reported. For every size not reached, the
   per-insert rate AT that size is then measured on a file pre-filled to that size
   (bench "tinydb_insert_per_s_at_size", a bounded number of timed inserts).
b. TinyDB with CachingMiddleware(JSONStorage): insert rate, and a kill -9 crash test
   (a child inserts and, after each insert returns, appends the seq to an "ack" file
   with fsync; the parent SIGKILLs it and counts acknowledged records missing from the DB).
   The same crash test is also run on the default JSONStorage for comparison.
c. SQLite (stdlib sqlite3), journal_mode=WAL, synchronous=FULL and NORMAL, group
   commit of 1 / 10 / 100 / 1000 records per transaction: durable appends/s, and the
   same kill -9 crash test (the child acks only after COMMIT returns).
d. SQLite delete-after-ack: delete acknowledged rows by primary key in batches, rows/s.

Everything runs in a temporary directory that is removed at the end. Loops are bounded
by a record count and a time budget. Full run: about 2.5-3 minutes; ``--quick``: ~10 s.

Usage:
    python bench/journal_choice.py            # full run
    python bench/journal_choice.py --quick    # smoke run
    python bench/journal_choice.py --dir /var/lib/saltgw   # measure on another filesystem

Internal (used by the crash tests): ``--child KIND DB ACK`` runs the writer child.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

try:  # TinyDB is optional: without it the TinyDB benches report "skipped"
    import tinydb
    from tinydb import TinyDB
    from tinydb.middlewares import CachingMiddleware
    from tinydb.storages import JSONStorage
except ImportError:  # pragma: no cover - reported in the output
    tinydb = None  # type: ignore[assignment]

T0 = datetime(2024, 6, 17, 6, 0, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- records
def make_event(seq: int) -> dict[str, Any]:
    """An event shaped like the saltgw envelope, about 400 bytes of compact JSON."""
    value = 12.5 + ((seq * 7919) % 1000 - 500) / 1000.0
    return {
        "id": str(uuid.uuid4()),
        "gateway": "gw-hb-01",
        "seq": seq,
        "type": "quality.net_weight",
        "ts": (T0 + timedelta(milliseconds=250 * seq)).isoformat(timespec="milliseconds"),
        "enterprise": "salt-industry-group-co",
        "site": "huaian-packing-plant-02",
        "line": "line-07-small-bag-500g",
        "device": "checkweigher-cw-0712",
        "batch": "B20240617-L07-000123",
        "data": {
            "value": round(value, 3),
            "unit": "g",
            "limits": {"lower": 495.0, "upper": 515.0, "nominal": 500.0},
            "verdict": "ok" if abs(value - 12.5) < 0.4 else "reject",
            "sample": seq % 50,
        },
    }


def encode(ev: dict[str, Any]) -> str:
    return json.dumps(ev, ensure_ascii=False, separators=(",", ":"))


def emit(bench: str, records: int, value: float | None, unit: str, **extra: Any) -> None:
    obj: dict[str, Any] = {
        "bench": bench,
        "records": records,
        "value": None if value is None else round(value, 2),
        "unit": unit,
    }
    obj.update(extra)
    print(json.dumps(obj), flush=True)


def fs_type(path: str) -> str:
    """Filesystem type of ``path`` (longest matching mount point in /proc/mounts)."""
    best, kind = "", "unknown"
    try:
        real = os.path.realpath(path)
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                mnt = parts[1].replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, kind = mnt, parts[2]
    except OSError:
        pass
    return kind


# --------------------------------------------------------------------------- raw fsync
def bench_fsync(root: str, n: int) -> None:
    """Latency of append 4 KiB + fsync on this filesystem: the floor under any durable commit."""
    path = os.path.join(root, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    buf = os.urandom(4096)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        os.write(fd, buf)
        os.fsync(fd)
        lat.append(time.perf_counter() - t)
    os.close(fd)
    lat.sort()
    emit(
        "fsync_4k_per_s",
        n,
        n / sum(lat),
        "fsyncs/s",
        p50_ms=round(statistics.median(lat) * 1e3, 3),
        p99_ms=round(lat[min(n - 1, int(n * 0.99))] * 1e3, 3),
    )


# --------------------------------------------------------------------------- (a)/(b) TinyDB
def bench_tinydb_insert(
    root: str,
    caching: bool,
    tiers: list[int],
    tier_cap: float,
    probe_inserts: int = 50,
    probe_cap: float = 5.0,
) -> None:
    name = "tinydb_caching" if caching else "tinydb"
    path = os.path.join(root, f"{name}.json")
    db = (
        TinyDB(path, storage=CachingMiddleware(JSONStorage))  # type: ignore[no-untyped-call]
        if caching
        else TinyDB(path)
    )
    table = db.table("journal")
    n = 0
    prev = 0
    t_start = time.perf_counter()
    for tier in tiers:
        t_tier = time.perf_counter()
        lat: list[float] = []  # per-insert latency, seconds
        truncated = False
        while n < tier:
            ev = make_event(n + 1)
            t = time.perf_counter()
            table.insert(ev)
            lat.append(time.perf_counter() - t)
            n += 1
            if time.perf_counter() - t_tier > tier_cap:
                truncated = tier > n
                break
        elapsed = time.perf_counter() - t_tier
        done = n - prev
        tail = lat[-200:]
        extra: dict[str, Any] = {
            "tier": tier,
            "tier_inserted": done,
            "tier_elapsed_s": round(elapsed, 2),
            "cumulative_elapsed_s": round(time.perf_counter() - t_start, 2),
            "last200_insert_per_s": round(len(tail) / sum(tail), 1) if tail else None,
            "last200_p50_ms": round(statistics.median(tail) * 1e3, 3) if tail else None,
            "file_bytes": os.path.getsize(path),
        }
        if caching:
            extra["write_cache_size"] = CachingMiddleware.WRITE_CACHE_SIZE
            extra["durable_records"] = (
                n // CachingMiddleware.WRITE_CACHE_SIZE
            ) * CachingMiddleware.WRITE_CACHE_SIZE
        if truncated:
            extra["stopped_after_s"] = tier_cap
            extra["reached"] = n
        emit(f"{name}_insert_per_s", n, done / elapsed if elapsed else None, "records/s", **extra)
        prev = n
        if truncated:
            # Growing further would take minutes. Measure the per-insert cost AT each size not
            # reached instead: write a file that already holds `size` records (one json.dump,
            # not timed), then time a bounded number of single inserts into it.
            # (Only for the default storage: with CachingMiddleware a single insert is not
            # durable at all, so its per-insert cost at a size is not a journal number.)
            if not caching:
                for size in tiers[tiers.index(tier) :]:
                    probe_tinydb_at_size(root, size, probe_inserts, probe_cap)
            break
    db.close()


def probe_tinydb_at_size(root: str, size: int, inserts: int, cap: float) -> None:
    path = os.path.join(root, f"tinydb_probe_{size}.json")
    with open(path, "w", encoding="utf-8") as fh:  # same layout JSONStorage writes
        json.dump({"journal": {str(i): make_event(i) for i in range(1, size + 1)}}, fh)
    _fsync_path(path)
    db = TinyDB(path)
    table = db.table("journal")
    lat: list[float] = []
    t0 = time.perf_counter()
    while len(lat) < inserts and time.perf_counter() - t0 < cap:
        ev = make_event(size + len(lat) + 1)
        t = time.perf_counter()
        table.insert(ev)
        lat.append(time.perf_counter() - t)
    db.close()
    emit(
        "tinydb_insert_per_s_at_size",
        size + len(lat),
        len(lat) / sum(lat),
        "records/s",
        tier=size,
        prefilled=size,
        timed_inserts=len(lat),
        p50_ms=round(statistics.median(lat) * 1e3, 2),
        file_bytes=os.path.getsize(path),
    )


# --------------------------------------------------------------------------- crash test
def child_main(kind: str, db_path: str, ack_path: str) -> None:
    """Writer child: insert forever, appending acknowledged seqs to ack_path (fsync)."""
    ack_fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def ack(seqs: range) -> None:
        os.write(ack_fd, "".join(f"{s}\n" for s in seqs).encode())
        os.fsync(ack_fd)

    seq = 0
    if kind.startswith("tinydb"):
        if kind == "tinydb_caching":
            db = TinyDB(db_path, storage=CachingMiddleware(JSONStorage))  # type: ignore[no-untyped-call]
        else:
            db = TinyDB(db_path)
        table = db.table("journal")
        while True:  # bounded by the parent's SIGKILL (and the parent's own deadline)
            seq += 1
            table.insert(make_event(seq))
            ack(range(seq, seq + 1))
    else:  # sqlite_<sync>_b<batch>
        _, sync, b = kind.split("_")
        batch = int(b[1:])
        conn = open_sqlite(db_path, sync.upper())
        while True:
            first = seq + 1
            rows = []
            for _ in range(batch):
                seq += 1
                ev = make_event(seq)
                rows.append((seq, ev["id"], ev["type"], encode(ev)))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO journal(seq, id, type, payload) VALUES (?,?,?,?)", rows)
            conn.execute("COMMIT")
            ack(range(first, seq + 1))


def crash_test(root: str, kind: str, trial: int, kill_after: int, max_wait: float) -> None:
    d = os.path.join(root, f"crash_{kind}_{trial}")
    os.makedirs(d)
    db_path = os.path.join(d, "journal.json" if kind.startswith("tinydb") else "journal.db")
    ack_path = os.path.join(d, "acked.txt")
    open(ack_path, "w").close()
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--child", kind, db_path, ack_path]
    )
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < max_wait:
            if child.poll() is not None:
                break
            if _count_lines(ack_path) >= kill_after:
                break
            time.sleep(0.002)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        rc = child.wait()
    ran_s = time.monotonic() - t0

    with open(ack_path, "rb") as fh:
        data = fh.read()
    acked = {int(x) for x in data[: data.rfind(b"\n") + 1].split()}

    present: set[int] = set()
    readable = True
    err = None
    if kind.startswith("tinydb"):
        try:
            with open(db_path, encoding="utf-8") as fh:
                raw = fh.read()
            if raw:
                present = {int(r["seq"]) for r in json.loads(raw).get("journal", {}).values()}
        except (OSError, ValueError) as exc:
            readable, err = False, f"{type(exc).__name__}: {exc}"[:120]
    else:
        try:
            conn = sqlite3.connect(db_path)
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            present = {r[0] for r in conn.execute("SELECT seq FROM journal")}
            conn.close()
            if ok != "ok":
                readable, err = False, ok
        except sqlite3.Error as exc:
            readable, err = False, f"{type(exc).__name__}: {exc}"[:120]
    missing = acked - present
    extra: dict[str, Any] = {
        "trial": trial,
        "kill_after_acks": kill_after,
        "acked": len(acked),
        "present_in_db": len(present),
        "unacked_but_present": len(present - acked),  # written, not yet acked: harmless
        "db_readable": readable,
        "child_exit": rc,
        "ran_s": round(ran_s, 2),
    }
    if missing:
        extra["first_missing_seq"] = min(missing)
    if err:
        extra["error"] = err
    emit(f"{kind}_kill9_missing_acked", len(acked), len(missing), "records", **extra)


def _count_lines(path: str) -> int:
    with open(path, "rb") as fh:
        return fh.read().count(b"\n")


# --------------------------------------------------------------------------- (c)/(d) SQLite
SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq     INTEGER PRIMARY KEY,   -- per-gateway sequence: replay is ORDER BY seq
    id      TEXT NOT NULL,
    type    TEXT NOT NULL,
    payload TEXT NOT NULL          -- the event's JSON
)
"""


def open_sqlite(path: str, sync: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    assert mode == "wal", mode
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.execute(SCHEMA)
    return conn


def prefill(conn: sqlite3.Connection, n: int, start: int = 1) -> None:
    """Fast, non-durable fill (not timed)."""
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO journal(seq, id, type, payload) VALUES (?,?,?,?)",
        (
            (s, ev["id"], ev["type"], encode(ev))
            for s in range(start, start + n)
            for ev in (make_event(s),)
        ),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _fsync_path(conn.execute("PRAGMA database_list").fetchone()[2])  # settle writeback first


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_sqlite_append(
    root: str, sync: str, batch: int, max_records: int, cap: float, prefilled: int = 0
) -> None:
    path = os.path.join(root, f"sqlite_{sync}_{batch}_{prefilled}.db")
    conn = open_sqlite(path, sync)
    if prefilled:
        prefill(conn, prefilled)
    conn.execute(f"PRAGMA synchronous={sync}")
    seq = prefilled
    commit_lat: list[float] = []
    t_start = time.perf_counter()
    n = 0
    while n < max_records and time.perf_counter() - t_start < cap:
        t = time.perf_counter()
        rows = []
        for _ in range(batch):  # encoding is part of the cost: TinyDB serialises too
            seq += 1
            ev = make_event(seq)
            rows.append((seq, ev["id"], ev["type"], encode(ev)))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO journal(seq, id, type, payload) VALUES (?,?,?,?)", rows)
        conn.execute("COMMIT")  # returns after the WAL fsync (FULL) -> the batch may be acked
        commit_lat.append(time.perf_counter() - t)
        n += batch
    elapsed = time.perf_counter() - t_start
    conn.close()
    commit_lat.sort()
    p99 = commit_lat[min(len(commit_lat) - 1, int(len(commit_lat) * 0.99))]
    bench = f"sqlite_wal_{sync.lower()}_b{batch}_append_per_s"
    if prefilled:
        bench = f"sqlite_wal_{sync.lower()}_b{batch}_prefilled{prefilled // 1000}k_append_per_s"
    emit(
        bench,
        n,
        n / elapsed,
        "records/s",
        batch=batch,
        synchronous=sync,
        commits=len(commit_lat),
        commits_per_s=round(len(commit_lat) / elapsed, 1),
        commit_p50_ms=round(statistics.median(commit_lat) * 1e3, 3),
        commit_p99_ms=round(p99 * 1e3, 3),
        elapsed_s=round(elapsed, 2),
        prefilled=prefilled,
        stopped_by="time" if n < max_records else "records",
    )


def bench_sqlite_delete(root: str, batch: int, rows: int, cap: float) -> None:
    path = os.path.join(root, f"sqlite_delete_{batch}.db")
    conn = open_sqlite(path, "FULL")
    prefill(conn, rows)
    conn.execute("PRAGMA synchronous=FULL")
    seq = 0
    deleted = 0
    lat: list[float] = []
    t_start = time.perf_counter()
    while seq < rows and time.perf_counter() - t_start < cap:
        keys = [(s,) for s in range(seq + 1, min(rows, seq + batch) + 1)]
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.executemany("DELETE FROM journal WHERE seq = ?", keys)
        conn.execute("COMMIT")
        lat.append(time.perf_counter() - t)
        deleted += cur.rowcount
        seq += len(keys)
    elapsed = time.perf_counter() - t_start
    left = conn.execute("SELECT count(*) FROM journal").fetchone()[0]
    conn.close()
    emit(
        f"sqlite_wal_full_delete_b{batch}_per_s",
        deleted,
        deleted / elapsed,
        "rows/s",
        batch=batch,
        synchronous="FULL",
        prefilled=rows,
        rows_left=left,
        commit_p50_ms=round(statistics.median(lat) * 1e3, 3),
        elapsed_s=round(elapsed, 2),
        stopped_by="time" if seq < rows else "rows",
    )


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run, < 30 s")
    ap.add_argument("--dir", default=None, help="parent directory for the temporary files")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "DB", "ACK"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        child_main(*args.child)
        return

    q = args.quick
    tiers = [1000, 5000, 20000] if not q else [500, 1000, 2000]
    tier_cap = 60.0 if not q else 3.0
    sq_cap = 3.0 if not q else 0.6
    sq_max = 20000 if not q else 2000
    crash_trials = 3 if not q else 1
    root = tempfile.mkdtemp(prefix="journal_choice_", dir=args.dir)
    t_all = time.perf_counter()
    try:
        sample = encode(make_event(1))
        emit(
            "env",
            0,
            None,
            "",
            python=platform.python_version(),
            nproc=os.cpu_count(),
            sqlite=sqlite3.sqlite_version,
            tinydb=getattr(tinydb, "__version__", None),
            machine=platform.machine(),
            kernel=platform.release(),
            tmpdir=root,
            fs=fs_type(root),
            event_json_bytes=len(sample.encode()),
            mode="quick" if q else "full",
        )

        bench_fsync(root, 500 if not q else 100)

        # ---- (a) TinyDB default storage, one insert per accepted event
        if tinydb is None:
            emit("tinydb_insert_per_s", 0, None, "records/s", skipped="pip install tinydb")
        else:
            bench_tinydb_insert(
                root,
                caching=False,
                tiers=tiers,
                tier_cap=tier_cap,
                probe_inserts=50 if not q else 10,
                probe_cap=5.0 if not q else 1.0,
            )
            # ---- (b) TinyDB + CachingMiddleware: rate, then kill -9
            bench_tinydb_insert(root, caching=True, tiers=tiers, tier_cap=tier_cap)
            kills = [1500, 2500, 3700][:crash_trials] if not q else [1500]
            for i, k in enumerate(kills):
                crash_test(root, "tinydb_caching", i + 1, k, max_wait=15.0 if not q else 5.0)
            # default JSONStorage under kill -9 (fsyncs every insert; small file, so quick)
            for i, k in enumerate([150, 300][: max(1, crash_trials - 1)]):
                crash_test(root, "tinydb_default", i + 1, k, max_wait=10.0 if not q else 3.0)

        # ---- (c) SQLite WAL, group commit
        for sync in ("FULL", "NORMAL"):
            for batch in (1, 10, 100, 1000):
                bench_sqlite_append(root, sync, batch, sq_max, sq_cap)
        # does it slow down when the journal already holds many events? (TinyDB does)
        bench_sqlite_append(
            root, "FULL", 100, sq_max, sq_cap, prefilled=100_000 if not q else 20_000
        )
        bench_sqlite_append(root, "FULL", 1, sq_max, sq_cap, prefilled=100_000 if not q else 20_000)
        # kill -9 while committing: acknowledged == committed, so nothing may be missing
        kills = [537, 1234, 2718][:crash_trials]
        for kind in ("sqlite_full_b1", "sqlite_full_b100", "sqlite_normal_b100"):
            for i, k in enumerate(kills):
                crash_test(root, kind, i + 1, k, max_wait=6.0 if not q else 2.0)

        # ---- (d) delete after PUBACK, by primary key, in batches (synchronous=FULL)
        for batch in (1, 10, 100, 1000):
            bench_sqlite_delete(root, batch, 20000 if not q else 5000, sq_cap)

        emit("total_runtime_s", 0, time.perf_counter() - t_all, "s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
