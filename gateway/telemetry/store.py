"""The telemetry store: reported tag values, durable, in order, until every output has them.

Constraints (docs/events.md, "Tag telemetry"; after Vector's disk buffer):

- Its own SQLite file (WAL, ``synchronous=FULL``), its own writer thread, group commit: a
  record committed survives ``kill -9`` and power loss. Nothing here shares a file, a lock or a
  thread with the traceability journal: a full, slow or failing telemetry store never delays
  or drops an event.
- Records get strictly increasing ids (``AUTOINCREMENT``: never reused, even once all were
  delivered). One cursor per output name, persisted in the file; a record is deleted once
  every output acknowledged it. Cursors of outputs no longer configured are removed at open
  (logged): they would otherwise hold every record for ever.
- Bounded by ``max_records`` (undelivered records) and ``max_age_secs`` (the read time of the
  oldest). Past either, ``when_full`` applies to the oldest records, each removal counted as
  intentional: ``coalesce`` folds them into one record per device holding the latest value of
  each tag (``TagRecord.coalesced`` says how many it stands for; its ``id`` and ``ts`` are
  those of the newest folded record, so order holds); ``drop_oldest`` deletes them. The count
  bound leaves 90 % of ``max_records`` after it acts (hysteresis); ``coalesce`` may keep up to
  one more record per device.
- Appending (:meth:`TelemetryStore.append`, from the asyncio loop) never blocks and never
  waits for the disk: records go to the writer through a bounded queue; when even that is full
  (the disk stalls) further records are folded in memory, one per device (latest value per
  tag), counted in ``stats.overflow_coalesced``, until the writer takes them.
- A commit that fails (disk full, I/O error) is logged, counted in ``stats.failures`` and
  retried every :data:`RETRY_SECS`; meanwhile appends fold in memory as above.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from drivers.base import TagValue
from gateway.telemetry.record import Quality, TagMeta, TagPoint, TagRecord

__all__ = ["StoreStats", "TelemetryStore", "WhenFull", "decode_points", "encode_points"]

log = logging.getLogger(__name__)

RETRY_SECS = 0.5  # a failed commit is tried again this often
AGE_CHECK_SECS = 1.0  # the age bound is checked at most this often
QUEUE_MAX = 10_000  # records waiting for the writer, at most, before folding in memory
LOW_WATER = 0.9  # the count bound leaves this share of max_records

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    device    TEXT NOT NULL,
    ts        TEXT NOT NULL,
    at        REAL NOT NULL,
    coalesced INTEGER NOT NULL DEFAULT 0,
    points    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    output TEXT PRIMARY KEY,
    acked  INTEGER NOT NULL
);
"""


class WhenFull(StrEnum):
    COALESCE = "coalesce"
    DROP_OLDEST = "drop_oldest"


@dataclass(slots=True)
class StoreStats:
    appended: int = 0  # records handed to append()
    committed: int = 0  # records durably written
    delivered: int = 0  # records deleted because every output acknowledged them
    coalesced: int = 0  # records folded into a newer one of their device (policy, intentional)
    dropped: int = 0  # records deleted unsent (drop_oldest, or no room to fold; intentional)
    overflow_coalesced: int = 0  # records folded in memory: the writer's queue was full
    failures: int = 0  # commits that failed (disk full, I/O error), retried
    stored: int = 0  # records in the file now (undelivered by at least one output)
    last_id: int = 0  # newest record id committed
    acked: dict[str, int] = field(default_factory=dict)  # output -> cursor (committed)


def encode_points(points: Mapping[str, TagPoint]) -> str:
    """``[{tag: value}, {tag: quality}]``, the second map for tags not ``good`` only."""
    values = {t: p.value for t, p in points.items()}
    quality = {t: str(p.quality) for t, p in points.items() if p.quality is not Quality.GOOD}
    return json.dumps([values, quality], ensure_ascii=False, separators=(",", ":"))


def decode_points(text: str) -> dict[str, TagPoint]:
    values, quality = json.loads(text)
    good = Quality.GOOD
    return {
        t: TagPoint(v, Quality(quality[t]) if t in quality else good) for t, v in values.items()
    }


@dataclass(slots=True)
class _Pending:
    device: str
    ts: datetime
    points: dict[str, TagPoint]
    folded: int = 0  # records folded into this one in memory


class TelemetryStore:
    """The store; :meth:`feed` gives each output its cursor view (gateway/telemetry/feed.py)."""

    def __init__(
        self,
        path: Path,
        metas: Sequence[TagMeta],
        outputs: Iterable[str],
        *,
        max_records: int = 200_000,
        max_age_secs: float | None = 3600.0,
        when_full: WhenFull = WhenFull.COALESCE,
        queue_max: int = QUEUE_MAX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.metas = list(metas)
        self.outputs = tuple(dict.fromkeys(outputs))
        self.max_records = max_records
        self.max_age_secs = max_age_secs
        self.when_full = when_full
        self.queue_max = queue_max
        self.clock = clock
        self.stats = StoreStats()
        self.failing: str | None = None  # why the last commit failed, until one succeeds
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[_Pending] = deque()
        self._overflow: dict[str, _Pending] = {}  # device -> folded records, newer than queue
        self._acks: dict[str, int] = {}  # output -> cursor to persist
        self._barriers: list[threading.Event] = []
        self._stop = False
        self._committed = threading.Condition()  # notified after each commit (feeds wait)
        self._thread: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None
        self._next_age_check = 0.0

    # -- life cycle ------------------------------------------------------------------------------
    def open(self) -> TelemetryStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        self._db = db
        self._load_cursors(db)
        self._thread = threading.Thread(target=self._run, name="telemetry-store", daemon=True)
        self._thread.start()
        return self

    def _load_cursors(self, db: sqlite3.Connection) -> None:
        rows = dict(db.execute("SELECT output, acked FROM cursors").fetchall())
        first = db.execute("SELECT min(id), max(id), count(*) FROM records").fetchone()
        seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        start = (first[0] - 1) if first[0] is not None else (seq[0] if seq else 0)
        db.execute("BEGIN IMMEDIATE")
        for name in rows.keys() - set(self.outputs):
            log.warning("telemetry store %s: output %r is no longer configured; its cursor is "
                        "removed", self.path, name)  # fmt: skip
            db.execute("DELETE FROM cursors WHERE output = ?", (name,))
        for name in self.outputs:
            if name not in rows:
                rows[name] = start  # a new output gets every record still stored
                db.execute("INSERT INTO cursors VALUES (?, ?)", (name, start))
            self.stats.acked[name] = rows[name]
        db.execute("COMMIT")
        self.stats.last_id = max(first[1] or 0, seq[0] if seq else 0)
        self.stats.stored = first[2] - self._delete_acked(db, self.stats.acked)
        log.info(
            "telemetry store %s: %d undelivered records, outputs %s",
            self.path, self.stats.stored, ", ".join(self.outputs) or "none",
        )  # fmt: skip

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Commit what was appended (up to ``timeout`` s), stop the writer, close the file."""
        with self._wake:
            self._stop = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._db is not None and not self.alive():
            self._db.close()
            self._db = None

    # -- any thread ------------------------------------------------------------------------------
    def append(self, device: str, ts: datetime, points: Mapping[str, TagPoint]) -> None:
        """Hand one record to the writer; never blocks (see the module's constraints)."""
        if not points:
            return
        with self._wake:
            self.stats.appended += 1
            if self._overflow or len(self._queue) >= self.queue_max:
                self.stats.overflow_coalesced += 1
                have = self._overflow.get(device)
                if have is None:
                    self._overflow[device] = _Pending(device, ts, dict(points))
                else:
                    have.points.update(points)
                    have.ts = ts
                    have.folded += 1
            else:
                self._queue.append(_Pending(device, ts, dict(points)))
            self._wake.notify()

    def ack(self, output: str, upto: int) -> None:
        with self._wake:
            if upto > self._acks.get(output, -1):
                self._acks[output] = upto
                self._wake.notify()

    def flush(self, timeout: float) -> bool:
        """Wait until everything appended before this call is committed (True), or timeout."""
        done = threading.Event()
        with self._wake:
            self._barriers.append(done)
            self._wake.notify()
        return done.wait(timeout)

    def wait_committed(self, after: int, timeout: float) -> bool:
        """Block until a record newer than ``after`` is committed, or ``timeout`` s."""
        with self._committed:
            if self.stats.last_id > after:
                return True
            self._committed.wait(timeout)
            return self.stats.last_id > after

    @property
    def backlog(self) -> int:
        """Records not yet delivered by every output: stored, plus those waiting to be."""
        return self.stats.stored + len(self._queue) + len(self._overflow)

    # -- the writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        assert self._db is not None
        db = self._db
        batch: list[_Pending] = []
        acks: dict[str, int] = {}
        barriers: list[threading.Event] = []
        try:
            while True:
                with self._wake:
                    if not (self._queue or self._overflow or self._acks or self._barriers
                            or self._stop or batch or acks):  # fmt: skip
                        self._wake.wait(AGE_CHECK_SECS)
                    batch.extend(self._queue)
                    self._queue.clear()
                    batch.extend(self._overflow.values())  # newer than everything queued
                    self._overflow.clear()
                    for k, v in self._acks.items():
                        acks[k] = max(v, acks.get(k, -1))
                    self._acks.clear()
                    barriers += self._barriers
                    self._barriers.clear()
                    stopping = self._stop
                try:
                    self._commit(db, batch, acks)
                    batch, acks = [], {}
                    for b in barriers:
                        b.set()
                    barriers = []
                except sqlite3.Error as exc:
                    self._failed(db, exc, len(batch))
                    if stopping:
                        break
                    time.sleep(RETRY_SECS)
                    continue
                if stopping:
                    break
        except Exception:
            log.exception("telemetry store writer stopped by an unexpected error")
            raise

    def _failed(self, db: sqlite3.Connection, exc: sqlite3.Error, n: int) -> None:
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        self.stats.failures += 1
        if self.failing is None:
            log.error("telemetry store %s: commit failed (%s); %d records kept in memory and "
                      "retried", self.path, exc, n)  # fmt: skip
        self.failing = str(exc)

    def _commit(self, db: sqlite3.Connection, batch: list[_Pending], acks: dict[str, int]) -> None:
        now = self.clock()
        age_due = self.max_age_secs is not None and now >= self._next_age_check
        if not batch and not acks and not age_due:
            return
        db.execute("BEGIN IMMEDIATE")
        rows = [
            (p.device, p.ts.isoformat(timespec="milliseconds"), p.ts.timestamp(),
             p.folded + 1 if p.folded else 0, encode_points(p.points))
            for p in batch
        ]  # fmt: skip
        db.executemany(
            "INSERT INTO records (device, ts, at, coalesced, points) VALUES (?, ?, ?, ?, ?)", rows
        )
        acked = dict(self.stats.acked)
        for output, upto in acks.items():
            db.execute("UPDATE cursors SET acked = max(acked, ?) WHERE output = ?", (upto, output))
            if output in acked:
                acked[output] = max(acked[output], upto)
        stored = self.stats.stored + len(rows)
        delivered = self._delete_acked(db, acked) if acks or not self.outputs else 0
        removed = self._enforce(db, stored - delivered, now if age_due else None)
        seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        db.execute("COMMIT")
        if age_due:
            self._next_age_check = now + AGE_CHECK_SECS
        if self.failing is not None:
            log.info("telemetry store %s: commits succeed again", self.path)
            self.failing = None
        self.stats.committed += len(rows)
        self.stats.delivered += delivered
        self.stats.stored = stored - delivered - removed.total
        self.stats.coalesced += removed.coalesced
        self.stats.dropped += removed.dropped
        self.stats.acked = acked
        if rows:
            with self._committed:
                self.stats.last_id = seq[0] if seq else self.stats.last_id
                self._committed.notify_all()

    def _delete_acked(self, db: sqlite3.Connection, acked: Mapping[str, int]) -> int:
        """Delete what every output acknowledged; returns how many records."""
        # nobody reads: nothing to keep
        upto = min((acked[o] for o in self.outputs), default=2**62)
        return int(db.execute("DELETE FROM records WHERE id <= ?", (upto,)).rowcount)

    # -- the full / age policy (inside the writer's transaction) --------------------------------
    def _enforce(self, db: sqlite3.Connection, stored: int, now: float | None) -> _Removed:
        removed = _Removed()
        if now is not None and self.max_age_secs is not None:
            cutoff = now - self.max_age_secs
            old = db.execute(
                "SELECT id, device, ts, at, coalesced, points FROM records WHERE at < ? "
                "ORDER BY id",
                (cutoff,),
            ).fetchall()
            if old:
                self._remove(db, old, removed, len(old))
        excess = stored - removed.total - self.max_records
        if excess > 0:
            goal = stored - removed.total - int(self.max_records * LOW_WATER)
            oldest = db.execute(
                "SELECT id, device, ts, at, coalesced, points FROM records ORDER BY id LIMIT ?",
                (goal + 1,),
            ).fetchall()
            freed = self._remove(db, oldest, removed, goal)
            if freed < excess:  # every one of the oldest from another device: nothing to fold
                self._drop(db, excess - freed, removed)
        if removed.total:
            log.warning(
                "telemetry store %s: %s %d records (%s); %d stored",
                self.path, self.when_full, removed.total,
                "older than max_age_secs or past max_records", stored - removed.total,
            )  # fmt: skip
        return removed

    def _remove(self, db: sqlite3.Connection, rows: list[Any], removed: _Removed, goal: int) -> int:
        if self.when_full is WhenFull.DROP_OLDEST:
            ids = [r[0] for r in rows[:goal]]
            db.executemany("DELETE FROM records WHERE id = ?", [(i,) for i in ids])
            removed.dropped += len(ids)
            return len(ids)
        return _fold(db, rows, removed)

    def _drop(self, db: sqlite3.Connection, n: int, removed: _Removed) -> None:
        cur = db.execute(
            "DELETE FROM records WHERE id IN (SELECT id FROM records ORDER BY id LIMIT ?)", (n,)
        )
        removed.dropped += cur.rowcount


@dataclass(slots=True)
class _Removed:
    coalesced: int = 0
    dropped: int = 0

    @property
    def total(self) -> int:
        return self.coalesced + self.dropped


def _fold(db: sqlite3.Connection, rows: list[Any], removed: _Removed) -> int:
    """Fold ``rows`` (oldest first) into one record per device: the newest one of each device
    takes the latest value of every tag of the others, which are deleted. Returns how many."""
    by_device: dict[str, list[Any]] = {}
    for r in rows:
        by_device.setdefault(r[1], []).append(r)
    freed = 0
    for group in by_device.values():
        if len(group) < 2:
            continue
        values: dict[str, TagValue | None] = {}
        quality: dict[str, str] = {}
        count = 0
        for r in group:
            v, q = json.loads(r[5])
            values.update(v)
            for t in v:
                quality.pop(t, None)
            quality.update(q)
            count += max(1, r[4])
        newest = group[-1]
        points = json.dumps([values, quality], ensure_ascii=False, separators=(",", ":"))
        db.execute(
            "UPDATE records SET points = ?, coalesced = ? WHERE id = ?", (points, count, newest[0])
        )
        db.executemany("DELETE FROM records WHERE id = ?", [(r[0],) for r in group[:-1]])
        freed += len(group) - 1
    removed.coalesced += freed
    return freed


def record_from_row(row: Sequence[Any]) -> TagRecord:
    """A ``records`` row (id, device, ts, coalesced, points) as a :class:`TagRecord`."""
    return TagRecord(
        row[0], row[1], datetime.fromisoformat(row[2]), decode_points(row[4]), coalesced=row[3]
    )
