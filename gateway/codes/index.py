"""The persistent index of every traceability code ever seen on the line, per stage.

QB/T 5279-2018 6.1 gives each product one unique code and 8.8 forbids transferring or copying
the mark, so the second sighting of a code at the same stage (a copied or reprinted label at the
bag scanner, a case label printed twice) is a duplicate. A code seen at *different* stages (the
bag scanner, then the outbound scanner) is normal and not a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.tracedb import TraceDb

__all__ = ["CodeIndex", "Sighting"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS code_seen (
    code         TEXT NOT NULL,
    stage        TEXT NOT NULL,
    first_ts     TEXT NOT NULL,
    first_device TEXT,
    last_ts      TEXT NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (code, stage)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Sighting:
    """A code's record after this sighting: ``count`` 1 means first seen now."""

    code: str
    stage: str
    count: int
    first_ts: str
    first_device: str | None

    @property
    def duplicate(self) -> bool:
        return self.count > 1


class CodeIndex:
    def __init__(self, db: TraceDb) -> None:
        self.db = db
        db.script(SCHEMA)

    def see(self, code: str, stage: str, ts: datetime, device: str | None) -> Sighting:
        """Record a sighting and return the code's record (``count`` includes this one)."""
        stamp = ts.isoformat(timespec="milliseconds")
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO code_seen VALUES (?, ?, ?, ?, ?, 1) "
                "ON CONFLICT (code, stage) DO UPDATE SET count = count + 1, last_ts = ?",
                (code, stage, stamp, device, stamp, stamp),
            )
            row = c.execute(
                "SELECT count, first_ts, first_device FROM code_seen WHERE code = ? AND stage = ?",
                (code, stage),
            ).fetchone()
        return Sighting(code, stage, int(row[0]), str(row[1]), row[2])

    def lookup(self, code: str, stage: str) -> Sighting | None:
        with self.db.lock:
            row = self.db.conn.execute(
                "SELECT count, first_ts, first_device FROM code_seen WHERE code = ? AND stage = ?",
                (code, stage),
            ).fetchone()
        return None if row is None else Sighting(code, stage, int(row[0]), str(row[1]), row[2])

    def count(self) -> int:
        with self.db.lock:
            return int(self.db.conn.execute("SELECT count(*) FROM code_seen").fetchone()[0])
