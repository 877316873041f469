"""Publishing the public snapshot: a copy of the working database, replaced atomically.

Steps (a reader never sees half a snapshot; a crash at any step leaves the previous one):

1. copy the working database beside the target (``.{name}.{pid}.tmp``) with SQLite's backup
   API (a consistent copy, page by page);
2. in the copy: rollback journal instead of WAL (a reader opens one file, read-only, on any
   host), the writer's own table dropped with ``secure_delete`` (its bytes zeroed, not left in
   free pages), ``meta`` set (schema version, built_at, source, codes);
3. ``fsync`` the copy, make it readable by all (it is public information: table 6), ``os.replace``
   it onto the target and ``fsync`` the directory.

A reader that has the previous file open keeps reading it (its inode lives on until closed).
Copies left by a crash are removed by :func:`remove_stale`.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from pathlib import Path

from gateway.public_snapshot import SCHEMA_VERSION

__all__ = ["PRIVATE_TABLE", "publish", "remove_stale"]

PRIVATE_TABLE = "writer"  # the working database's own state (never published)
FILE_MODE = 0o644


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale(path: Path) -> int:
    """Remove copies a crashed publish left beside ``path``; returns how many."""
    n = 0
    for p in path.parent.glob(f".{path.name}.*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(work: sqlite3.Connection, path: Path, *, built_at: datetime, source: str) -> int:
    """Publish ``work`` at ``path``; returns the number of codes published. ``built_at`` must be
    timezone-aware (RFC 3339 with its offset)."""
    if built_at.utcoffset() is None:
        raise ValueError("built_at must carry its UTC offset")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    tmp.unlink(missing_ok=True)
    try:
        dst = sqlite3.connect(tmp, isolation_level=None)
        try:
            work.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            dst.execute("PRAGMA secure_delete=ON")
            dst.execute("BEGIN IMMEDIATE")
            dst.execute(f"DROP TABLE IF EXISTS {PRIVATE_TABLE}")
            codes = int(dst.execute("SELECT COUNT(*) FROM codes").fetchone()[0])
            meta = {
                "schema_version": str(SCHEMA_VERSION),
                "built_at": built_at.isoformat(timespec="seconds"),
                "source": source,
                "codes": str(codes),
            }
            dst.execute("DELETE FROM meta")
            dst.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", meta.items())
            dst.execute("COMMIT")
        finally:
            dst.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return codes
