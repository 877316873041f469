"""The published public snapshot as the resolver holds it: reopened when replaced, one SQLite
connection per worker thread.

The bridge replaces the file atomically (``os.replace``), so a changed (inode, size, mtime) is a
new snapshot. A timer (:meth:`SnapshotHolder.check`, every ``reload_secs``) looks for one; no
request ever stats the file. A new file is opened and checked (:func:`open_snapshot`: schema
version, ``meta``) before it takes over; until then, and for good when it is broken (logged once
per file), the old one keeps answering. Each worker thread opens its own read-only connection
to the current snapshot the first time it needs one after a change; if that open fails or finds
another file (replaced again since the check) it borrows the checked connection of the current
snapshot (SQLite serialises its use) until the next check takes the new file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.public_snapshot import SnapshotError, open_snapshot
from gateway.resolver.lookup import SnapshotCache

__all__ = ["Snapshot", "SnapshotHolder"]

log = logging.getLogger(__name__)

FileKey = tuple[int, int, int, int]  # device, inode, size, mtime_ns


def _file_key(path: Path) -> FileKey | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One published file that opened fine."""

    path: Path
    key: FileKey
    built_at: str
    codes: int
    loaded_at: float  # the holder's clock
    generation: int
    shared: sqlite3.Connection = field(repr=False)
    cache: SnapshotCache = field(default_factory=SnapshotCache, repr=False)  # batch groups


class SnapshotHolder:
    """The current snapshot and the threads' connections to it."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._current: Snapshot | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._refused: FileKey | None = None  # a broken file, logged once
        self._missing_logged = False
        self._generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> Snapshot | None:
        return self._current

    def check(self) -> bool:
        """Take over a new snapshot file when there is one that opens fine; True if it did."""
        key = _file_key(self.path)
        cur = self._current
        if key is None:
            if not self._missing_logged:
                self._missing_logged = True
                if cur is None:
                    log.warning(
                        "no public snapshot at %s yet: answering 503 until the bridge publishes "
                        "one",
                        str(self.path),
                    )
                else:
                    log.warning(
                        "public snapshot %s disappeared: still answering from the one built at %s",
                        str(self.path),
                        cur.built_at,
                    )
            return False
        self._missing_logged = False
        if (cur is not None and cur.key == key) or key == self._refused:
            return False
        try:
            db = open_snapshot(self.path)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            codes = int(meta.get("codes") or db.execute("SELECT COUNT(*) FROM codes").fetchone()[0])
        except (SnapshotError, sqlite3.Error, ValueError) as exc:
            self._refused = key
            where = f"still answering from the one built at {cur.built_at}" if cur else "503"
            log.error("public snapshot %s not taken: %s (%s)", str(self.path), exc, where)
            return False
        with self._lock:
            self._generation += 1
            self._current = Snapshot(
                self.path,
                key,
                str(meta.get("built_at", "")),
                codes,
                self._clock(),
                self._generation,
                db,
            )
        log.info(
            "public snapshot %s built at %s: %d codes",
            str(self.path),
            self._current.built_at,
            codes,
        )
        return True

    def connection(self) -> tuple[Snapshot, sqlite3.Connection] | None:
        """This thread's connection to the current snapshot, or None when there is none."""
        cur = self._current
        if cur is None:
            return None
        local = self._local
        if getattr(local, "generation", None) == cur.generation:
            conn: sqlite3.Connection = local.conn
            return cur, conn
        old = getattr(local, "conn", None)
        if old is not None and old is not getattr(local, "shared", None):
            old.close()
        try:
            conn = open_snapshot(cur.path)
            built = conn.execute("SELECT value FROM meta WHERE key = 'built_at'").fetchone()
            if built is None or built[0] != cur.built_at:  # replaced again since the check
                conn.close()
                conn = cur.shared
        except (SnapshotError, sqlite3.Error):  # replaced by a broken file since the check
            conn = cur.shared
        local.generation, local.conn, local.shared = cur.generation, conn, cur.shared
        return cur, conn

    def start(self, interval_secs: float) -> None:
        """Check now, then every ``interval_secs`` in a daemon thread until :meth:`stop`."""
        self.check()

        def watch() -> None:
            while not self._stop.wait(interval_secs):
                try:
                    self.check()
                except Exception:  # never let the watcher die: the old snapshot stays
                    log.exception("checking the public snapshot failed")

        self._thread = threading.Thread(target=watch, name="snapshot-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
