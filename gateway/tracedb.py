"""The line's traceability store: one SQLite file shared by the code index, the aggregation
state machine and the KPI counters (the scanner profiles of a line all open the same file).

Constraints:

- WAL mode, ``synchronous=NORMAL``, made durable by the journal: a committed scan survives
  ``kill -9`` at once (its WAL frames are written), and power loss once the events it produced
  are accepted — the journal fsyncs this store's WAL before every commit of its own
  (:meth:`Journal.sync_before_commit`, wired in gateway/runtime.py), so no accepted event ever
  refers to a scan the store could forget. One fsync per group of scans instead of one per scan
  took the scan path from 960 to ~1,300 scans/s (docs/performance.md). So a bag's binding and
  the codes seen (duplicate detection, QB/T 5279 8.8) survive restarts.
- One connection per file and process (:func:`open_trace_db` caches it by resolved path),
  guarded by a lock: profiles run on the gateway's loop, but tests and the CLI may call in from
  other threads. Each component creates its own tables (``CREATE TABLE IF NOT EXISTS``).
- Every public operation of a component is one transaction (:meth:`TraceDb.transaction`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["TraceDb", "forget_trace_db", "open_trace_db"]


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
        self.lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on an exception); re-entrant."""
        with self.lock:
            outer = self._depth == 0
            if outer:
                self.conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self.conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self.conn.execute("COMMIT")

    def script(self, sql: str) -> None:
        with self.lock:
            self.conn.executescript(sql)

    def close(self) -> None:
        with self.lock:
            self.conn.close()


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
