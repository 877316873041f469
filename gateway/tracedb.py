"""The line's traceability store: one SQLite file shared by the code index, the aggregation
state machine and the KPI counters (the scanner profiles of a line all open the same file).

Constraints:

- Nothing committed ahead of the journal (issue 13, docs/architecture.md): in ``saltgw run`` the
  store is *shared* with the journal (:meth:`Journal.share_transactions`, wired in
  gateway/runtime.py). The journal's writer ATTACHes this file to its own connection
  (:meth:`TraceDb.attach_to`); from then on every read and write of the store goes through that
  connection, and a write lands in the transaction it has open (``SAVEPOINT`` … ``RELEASE``
  inside it, so one operation still rolls back alone). The journal commits that transaction
  with the events, under :attr:`TraceDb.lock`, after taking in every append handed in; the
  runtime runs a reading's profiles *and* hands their events to the journal under the same
  lock. So a scan's trace rows (``code_seen``, ``agg_item``, …) and its event commit together
  or not at all: ``kill -9`` can never leave a code in the store whose ``pack.bag`` the journal
  does not hold (the old order did, and the genuine bag was then alarmed as a copied mark).
  SQLite commits the main database (the journal: WAL written and fsync'ed, ``synchronous=FULL``)
  before an attached one (checked with strace), and the store is attached with
  ``synchronous=NORMAL`` (its WAL is written at the commit, fsync'ed at checkpoints): ``kill -9``
  loses neither, and a power loss can only take the store's last transactions while the
  journal keeps their events, never the reverse. (Fsyncing the store too, under the lock the
  scan path waits on, cut the scan benchmark from ~850 to ~670 delivered scans/s.)
- Standing alone (tests, the CLI, a store used without a journal) it commits each operation
  itself, ``synchronous=NORMAL``; the journal may fsync its WAL before accepting events
  (:meth:`Journal.sync_before_commit`). So a bag's binding and the codes seen (duplicate
  detection, QB/T 5279 8.8) survive restarts.
- One connection per file and process (:func:`open_trace_db` caches it by resolved path),
  guarded by a lock: profiles run on the gateway's loop, but tests and the CLI may call in from
  other threads. Each component creates its own tables (``CREATE TABLE IF NOT EXISTS``).
- Every public operation of a component is one transaction (:meth:`TraceDb.transaction`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["TraceDb", "TraceDbDetached", "forget_trace_db", "open_trace_db"]

log = logging.getLogger(__name__)

SHARED_SCHEMA = "trace"  # the store's name on the journal's connection


class TraceDbDetached(RuntimeError):
    """The journal this store shared its transactions with has closed: nothing more is written
    (a write now would be committed without the events it causes)."""


class TraceDb:
    """A SQLite connection with a lock and the store's pragmas."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=10
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")  # + the journal's fsync: see above
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.own = self.conn  # this store's own connection (DDL; standing alone)
        self.lock = threading.RLock()
        self._depth = 0
        self._shared: sqlite3.Connection | None = None  # the journal's, while attached
        self._detached = False
        self._staged = 0  # operations written into the journal's open transaction

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One operation: ``BEGIN IMMEDIATE`` … ``COMMIT`` standing alone; while shared with
        the journal, ``SAVEPOINT`` … ``RELEASE`` inside its open transaction (the journal
        commits it with the events). Rolled back on an exception; re-entrant."""
        with self.lock:
            if self._detached:
                raise TraceDbDetached(f"trace store {self.path}: the journal has closed")
            outer = self._depth == 0
            shared = self._shared is not None
            if outer:
                if not shared:
                    self.conn.execute("BEGIN IMMEDIATE")
                else:
                    if not self.conn.in_transaction:
                        self.conn.execute("BEGIN IMMEDIATE")
                    self.conn.execute("SAVEPOINT trace_op")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._depth -= 1
                if outer and shared:
                    self.conn.execute("ROLLBACK TO trace_op")
                    self.conn.execute("RELEASE trace_op")
                elif outer:
                    self.conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer and shared:
                self.conn.execute("RELEASE trace_op")
                self._staged += 1
            elif outer:
                self.conn.execute("COMMIT")

    def script(self, sql: str) -> None:
        """DDL (``CREATE TABLE IF NOT EXISTS``), on the store's own connection: components
        create their tables when the line is bound, before the journal opens."""
        with self.lock:
            if self._shared is not None:
                raise RuntimeError(f"trace store {self.path}: schema changes after attach_to()")
            self.own.executescript(sql)

    # -- shared with the journal (gateway.journal.SharedStore) --------------------------------
    @property
    def staged(self) -> int:
        """Operations written since the journal last committed (0 standing alone)."""
        return self._staged

    def attach_to(self, conn: sqlite3.Connection) -> None:
        """The journal's writer, on its connection at open: from now on this store is read and
        written through ``conn``, inside the journal's transactions."""
        if str(self.path) == ":memory:":
            raise ValueError("an in-memory trace store cannot be shared with the journal")
        with self.lock:
            conn.execute(f"ATTACH DATABASE ? AS {SHARED_SCHEMA}", (str(self.path),))
            conn.execute(f"PRAGMA {SHARED_SCHEMA}.journal_mode=WAL")
            conn.execute(f"PRAGMA {SHARED_SCHEMA}.synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._shared = self.conn = conn
            self._staged = 0
            self._detached = False

    def detach(self) -> None:
        """The journal closes its connection: writes are refused from now on (they could no
        longer commit with their events); reads go to the store's own connection again."""
        with self.lock:
            if self._staged:
                log.warning(
                    "trace store %s: %d operations not committed when the journal closed",
                    self.path,
                    self._staged,
                )
            self._shared = None
            self.conn = self.own
            self._staged = 0
            self._detached = True

    def committed(self) -> None:
        self._staged = 0

    def rolled_back(self) -> None:
        """The journal's commit failed and rolled back (disk full, I/O error): the store's
        writes since the last commit are gone with it. Their events are retried by the journal
        and may yet be accepted; the codes they commissioned are then unknown to this store (a
        re-read would be commissioned again rather than alarmed), which is the safe side."""
        if self._staged:
            log.error(
                "trace store %s: %d operations rolled back with a failed journal commit",
                self.path,
                self._staged,
            )
        self._staged = 0

    def close(self) -> None:
        with self.lock:
            self.own.close()


_OPEN: dict[str, TraceDb] = {}
_OPEN_LOCK = threading.Lock()


def open_trace_db(path: Path | str) -> TraceDb:
    """The process-wide :class:`TraceDb` for ``path`` (opened on first use); ``:memory:``
    gives a new private store each time (tests)."""
    if str(path) == ":memory:":
        return TraceDb(Path(":memory:"))
    key = str(Path(path).resolve())
    with _OPEN_LOCK:
        db = _OPEN.get(key)
        if db is None:
            db = _OPEN[key] = TraceDb(Path(path))
        return db


def forget_trace_db(path: Path | str) -> None:
    """Close and forget the cached store for ``path`` (tests simulating a restart)."""
    key = str(Path(path).resolve())
    with _OPEN_LOCK:
        db = _OPEN.pop(key, None)
    if db is not None:
        db.close()
