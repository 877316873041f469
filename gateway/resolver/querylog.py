"""The resolver's own store: query records, their feedback and complaints (QB/T 5279 table 5
#2 投诉信息, #3 追溯查询记录; 10.4.2). One SQLite file (``resolver.query_log``), never the
snapshot; every replica on one host may share it.

Constraints, written here first:

- **Query records are written off the request path.** A lookup puts its record on a queue;
  one writer thread inserts what has queued in one transaction every ``flush_secs`` (0.2 s) or
  500 records, in WAL mode with ``synchronous=NORMAL`` (no fsync per commit). A process crash
  loses the records still queued (at most ``flush_secs`` worth); a power cut may also lose the
  last commits before a WAL checkpoint. The queue is bounded (``max_pending``): past it a
  record is dropped, counted and logged — an answer to a consumer never waits for the disk.
- **Feedback** (意见反馈: "does the bag match?") goes through the same queue into its own table,
  keyed by the query's id, so a consumer's answer that reaches another replica, or arrives
  before the record's batch is committed, is still kept; exports join it to the record.
- **Complaints are written at once** (one commit each, ``synchronous=FULL``): the consumer is
  told it was received only once it is on disk.
- **Counts are shared by the processes on the file.** ``code_counts`` holds each code's number
  of queries (次数), updated in the writer's transactions; a lookup adds its own process's
  records still queued. Two replicas answering the same code in the same 0.2 s may each count
  the other's query a moment late: counts are exact once committed, approximate by the queued
  records of other processes. Replicas on different hosts keep separate files (see
  docs/resolver.md).
"""

from __future__ import annotations

import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Complaint", "QueryLog", "QueryRecord", "Recent", "new_id"]

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    id      INTEGER PRIMARY KEY,
    qid     TEXT NOT NULL UNIQUE,   -- the query's public id (feedback names it)
    ts_ms   INTEGER NOT NULL,       -- 查询时间, ms since the epoch (UTC)
    code    TEXT NOT NULL,
    channel TEXT NOT NULL,          -- 查询渠道: scan | typed | api
    place   TEXT NOT NULL,          -- 地点: the client's network (IPv4 /24, IPv6 /48)
    count   INTEGER NOT NULL,       -- 次数: queries of this code so far, this one included
    verdict TEXT NOT NULL,
    reason  TEXT
);
-- covering for recent() (the copy rule's window: its places and channels read from the index
-- alone, no table row per query); replaced queries_code_ts (code, ts_ms), dropped where found
DROP INDEX IF EXISTS queries_code_ts;
CREATE INDEX IF NOT EXISTS queries_code_recent ON queries (code, ts_ms, channel, place);
CREATE INDEX IF NOT EXISTS queries_ts ON queries (ts_ms);
CREATE TABLE IF NOT EXISTS code_counts (
    code TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feedback (
    id      INTEGER PRIMARY KEY,
    qid     TEXT NOT NULL,
    ts_ms   INTEGER NOT NULL,
    matches INTEGER NOT NULL,       -- 1: the bag matches what the page shows, 0: it does not
    comment TEXT
);
CREATE INDEX IF NOT EXISTS feedback_qid ON feedback (qid);
CREATE TABLE IF NOT EXISTS complaints (
    id          INTEGER PRIMARY KEY,
    cid         TEXT NOT NULL UNIQUE,
    ts_ms       INTEGER NOT NULL,   -- 投诉时间 (received)
    code        TEXT,
    place       TEXT NOT NULL,      -- 地点, as the consumer wrote it
    content     TEXT NOT NULL,      -- 投诉内容
    contact     TEXT,               -- optional (表5 #1 消费者信息, given by choice)
    channel     TEXT NOT NULL,      -- form | api
    client_net  TEXT NOT NULL       -- the client's network, as for queries
);
CREATE INDEX IF NOT EXISTS complaints_ts ON complaints (ts_ms);
"""


def new_id() -> str:
    """A public id for a query or complaint: 16 random bytes, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class QueryRecord:
    qid: str
    ts_ms: int
    code: str
    channel: str
    place: str
    count: int
    verdict: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Complaint:
    cid: str
    ts_ms: int
    code: str | None
    place: str
    content: str
    contact: str | None
    channel: str
    client_net: str


@dataclass(frozen=True, slots=True)
class Recent:
    """A code's queries: ``total`` so far (before this one), and within the copy rule's window
    the queries counted (at most the cap read) and their places."""

    total: int
    in_window: int
    places: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Feedback:
    qid: str
    ts_ms: int
    matches: bool
    comment: str | None


class QueryLog:
    """The store, its writer thread and per-thread read connections."""

    def __init__(
        self,
        path: Path,
        clock: Callable[[], float] = time.time,
        flush_secs: float = 0.2,
        max_pending: int = 100_000,
    ) -> None:
        self.path = path
        self.clock = clock
        self.flush_secs = flush_secs
        self.max_pending = max_pending
        self.dropped = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)
        self._queue: queue.Queue[QueryRecord | _Feedback | None] = queue.Queue(max_pending)
        self._pending: dict[str, list[QueryRecord]] = {}  # queued, not yet committed
        self._commits_started = 0  # a read that overlapped a commit is read again
        self._commits_done = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._recent_sql: dict[int, str] = {}
        self._writer = threading.Thread(target=self._write_loop, name="query-log", daemon=True)
        self._writer.start()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _reader(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- lookups -------------------------------------------------------------------------------
    def recent(self, code: str, since_ms: int, channels: Sequence[str], cap: int) -> Recent:
        """How often ``code`` was queried: in total, and within the window since ``since_ms``
        on ``channels`` (at most ``cap`` of them are read: enough to decide the rule)."""
        db = self._reader()
        sql = self._recent_sql.get(len(channels))
        if sql is None:  # one statement: one read transaction, a consistent view of both
            marks = ",".join(f"?{i + 4}" for i in range(len(channels)))
            sql = self._recent_sql[len(channels)] = (
                "SELECT n, NULL FROM code_counts WHERE code = ?1 UNION ALL "
                "SELECT NULL, place FROM (SELECT place FROM queries WHERE code = ?1 "
                f"AND ts_ms >= ?2 AND channel IN ({marks}) ORDER BY ts_ms DESC LIMIT ?3)"
            )
        for _attempt in range(3):  # until no commit of this process overlapped the read
            with self._lock:
                queued = list(self._pending.get(code, ()))
                started, done = self._commits_started, self._commits_done
            rows = db.execute(sql, (code, since_ms, cap, *channels)).fetchall()
            with self._lock:
                if started == done == self._commits_started == self._commits_done:
                    break
        stored = 0
        places: list[str] = []
        for n, place in rows:
            if n is not None:
                stored = n
            else:
                places.append(place)
        places += [q.place for q in queued if q.ts_ms >= since_ms and q.channel in channels]
        total = stored + len(queued)
        return Recent(total=total, in_window=len(places), places=frozenset(places))

    # -- writes --------------------------------------------------------------------------------
    def record(self, rec: QueryRecord) -> None:
        """Queue a query record; never blocks (a full queue drops it, counted)."""
        with self._lock:
            self._pending.setdefault(rec.code, []).append(rec)
        try:
            self._queue.put_nowait(rec)
        except queue.Full:
            with self._lock:
                self._forget([rec])
            self.dropped += 1
            log.warning(
                "query log %s: queue full, query record dropped (%d so far)",
                str(self.path),
                self.dropped,
            )

    def feedback(self, qid: str, matches: bool, comment: str | None = None) -> None:
        try:
            self._queue.put_nowait(_Feedback(qid, self.now_ms(), matches, comment))
        except queue.Full:
            self.dropped += 1
            log.warning(
                "query log %s: queue full, feedback dropped (%d so far)",
                str(self.path),
                self.dropped,
            )

    def complain(self, c: Complaint) -> None:
        """Store a complaint now (committed and synced before this returns)."""
        db = self._reader()
        db.execute("PRAGMA synchronous=FULL")
        try:
            db.execute(
                "INSERT INTO complaints (cid, ts_ms, code, place, content, contact, channel, "
                "client_net) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (c.cid, c.ts_ms, c.code, c.place, c.content, c.contact, c.channel, c.client_net),
            )
        finally:
            db.execute("PRAGMA synchronous=NORMAL")

    def _forget(self, recs: Sequence[QueryRecord]) -> None:
        for rec in recs:
            queued = self._pending.get(rec.code)
            if queued:
                try:
                    queued.remove(rec)
                except ValueError:
                    pass
                if not queued:
                    del self._pending[rec.code]

    def _write_loop(self) -> None:
        db = self._connect()
        stopping = False
        while not stopping:
            batch: list[QueryRecord | _Feedback] = []
            try:
                item = self._queue.get(timeout=self.flush_secs)
            except queue.Empty:
                continue
            deadline = time.monotonic() + self.flush_secs
            while True:
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                if len(batch) >= 500:
                    break
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if batch:
                self._commit(db, batch)
        db.close()

    def _commit(self, db: sqlite3.Connection, batch: list[QueryRecord | _Feedback]) -> None:
        recs = [b for b in batch if isinstance(b, QueryRecord)]
        notes = [b for b in batch if isinstance(b, _Feedback)]
        counts: dict[str, int] = {}
        for r in recs:
            counts[r.code] = counts.get(r.code, 0) + 1
        with self._lock:
            self._commits_started += 1
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR IGNORE INTO queries (qid, ts_ms, code, channel, place, count, "
                "verdict, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.qid, r.ts_ms, r.code, r.channel, r.place, r.count, r.verdict, r.reason)
                    for r in recs
                ],
            )
            db.executemany(
                "INSERT INTO code_counts (code, n) VALUES (?, ?) "
                "ON CONFLICT (code) DO UPDATE SET n = n + excluded.n",
                list(counts.items()),
            )
            db.executemany(
                "INSERT INTO feedback (qid, ts_ms, matches, comment) VALUES (?, ?, ?, ?)",
                [(f.qid, f.ts_ms, int(f.matches), f.comment) for f in notes],
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self.dropped += len(batch)
            log.error("query log %s: %d records not written: %s", str(self.path), len(batch), exc)
        finally:
            with self._lock:
                self._forget(recs)
                self._commits_done += 1

    def close(self) -> None:
        """Write what is queued and stop the writer."""
        self._queue.put(None)
        self._writer.join(timeout=30)

    # -- export --------------------------------------------------------------------------------
    def queries_since(self, since_ms: int) -> Iterator[tuple[QueryRecord, int | None, str | None]]:
        """Query records from ``since_ms`` on, oldest first, with their latest feedback
        (1/0/None) and its comment."""
        db = self._reader()
        for row in db.execute(
            "SELECT q.qid, q.ts_ms, q.code, q.channel, q.place, q.count, q.verdict, q.reason, "
            "(SELECT f.matches FROM feedback f WHERE f.qid = q.qid ORDER BY f.id DESC LIMIT 1), "
            "(SELECT f.comment FROM feedback f WHERE f.qid = q.qid ORDER BY f.id DESC LIMIT 1) "
            "FROM queries q WHERE q.ts_ms >= ? ORDER BY q.ts_ms, q.id",
            (since_ms,),
        ):
            yield QueryRecord(*row[:8]), row[8], row[9]

    def complaints_since(self, since_ms: int) -> Iterator[Complaint]:
        db = self._reader()
        for row in db.execute(
            "SELECT cid, ts_ms, code, place, content, contact, channel, client_net "
            "FROM complaints WHERE ts_ms >= ? ORDER BY ts_ms, id",
            (since_ms,),
        ):
            yield Complaint(*row)
