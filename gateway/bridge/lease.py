"""Which bridge uploads a shared trace store's documents: one at a time (docs/scaling.md).

Several bridges may write one store (PostgreSQL, or one SQLite file on one host). Each builds
documents (numbering is serialised by the store), but the outbox goes out in number order, so
one uploader at a time sends it: the bridge holding the store's *uploader lease*. The lease is
a lock the operating system or the database releases when its holder dies, so a killed bridge
hands the outbox on without a time-out to wait out or a stale row to clean up:

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on the uploader's connection;
  a connection that was lost and reopened holds nothing, which the next check sees
  (``pg_locks`` of this backend).
- SQLite: ``flock`` on ``{store}.uploader.lock`` beside the store.

A bridge without the lease stands by and checks again every round; a document a dying holder
was sending may be sent again by the next one, which the platform answers ``duplicate`` (it
knows the number): exactly once as the platform sees it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from pathlib import Path
from typing import Protocol

from gateway.bridge.db import Db

__all__ = ["FileLease", "Lease", "PgLease", "uploader_lease"]

log = logging.getLogger(__name__)

# pg_try_advisory_lock(int4, int4) of the uploader lease: "saltgw" as an int4, then "UPLD"
LEASE_CLASS, LEASE_OBJ = 0x73616C74, 0x55504C44


class Lease(Protocol):
    def held(self) -> bool:
        """Whether this process holds the lease, taking it when it is free."""
        ...

    def release(self) -> None: ...


class FileLease:
    """``flock`` on a file beside a SQLite store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def held(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


class PgLease:
    """A session advisory lock on the uploader's PostgreSQL connection."""

    def __init__(self, db: Db) -> None:
        self.db = db

    def held(self) -> bool:
        mine = self.db.execute(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND classid = ? AND objid = ? AND objsubid = 2",
            (LEASE_CLASS, LEASE_OBJ),
        ).fetchone()[0]
        if mine:
            return True
        row = self.db.execute("SELECT pg_try_advisory_lock(?, ?)", (LEASE_CLASS, LEASE_OBJ))
        return bool(row.fetchone()[0])

    def release(self) -> None:
        try:
            self.db.execute("SELECT pg_advisory_unlock_all()")
        except sqlite3.Error:  # the connection is gone: so is the lock
            pass


def uploader_lease(db: Db, store: Path | str) -> Lease:
    """The uploader lease of the store ``store`` whose connection ``db`` is."""
    if isinstance(db, sqlite3.Connection):
        return FileLease(Path(f"{store}.uploader.lock"))
    return PgLease(db)
