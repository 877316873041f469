"""Which records the gateway has journaled, by kind and ``record_id``: a small SQLite file
beside the journal (``var/journal.db`` → ``var/journal-records.db``, table ``journaled``), so
that a record sent again — a re-import, a retry after a lost response, a restart — is
acknowledged as a duplicate and never journaled twice.

A row is written after the journal committed the record's event. A crash between the two leaves
the event journaled without its row: the record sent again is journaled a second time, and the
bridge keeps one (it stores a ``record_id`` once, gateway/bridge/store.py)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

__all__ = ["JournaledRecords", "records_path_for"]


def records_path_for(journal: Path) -> Path:
    """``var/journal.db`` → ``var/journal-records.db``."""
    return journal.with_name(f"{journal.stem}-records.db")


class JournaledRecords:
    def __init__(self, path: Path | None) -> None:
        target = ":memory:" if path is None else str(path)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS journaled (kind TEXT NOT NULL, record_id TEXT NOT NULL, "
            "seq INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (kind, record_id)) WITHOUT ROWID"
        )

    def seq_of(self, kind: str, record_id: str) -> int | None:
        """The journal seq of the event that carried this record, if it was journaled."""
        with self._lock:
            row = self.db.execute(
                "SELECT seq FROM journaled WHERE kind=? AND record_id=?", (kind, record_id)
            ).fetchone()
        return None if row is None else int(row[0])

    def add(self, kind: str, record_id: str, seq: int, at: float) -> None:
        with self._lock:
            self.db.execute(
                "INSERT OR IGNORE INTO journaled(kind, record_id, seq, at) VALUES (?,?,?,?)",
                (kind, record_id, seq, at),
            )

    def close(self) -> None:
        with self._lock:
            self.db.close()
