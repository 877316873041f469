"""Scan and packing counters of a line, persistent in the trace store by minute and batch.

Every profile of the line adds to the same counters (they share the trace store), so the KPI
calculator sees the bag scanner's reads, the case packer's bindings and the bag counter of
another device together. Rows are ``(line, batch, minute, metric) → n``: a shift's or a day's
figures are a sum over its minutes, a batch's over its rows. In-memory totals since start feed
the live window (``KpiCounters.live``).

Metrics (README of gateway/kpi)::

    produced        bags produced (the PLC's or checkweigher's bag counter)
    frames          bag scanner triggers: frames with code(s) + no-reads
    read            codes read at the bag scanner (every code of every frame)
    noread          bag scanner no-reads
    valid           codes commissioned (valid, first seen)
    duplicate       codes seen before at the bag scanner (QB/T 5279 8.8)
    invalid         codes that fail QB/T 5279 6.2 / Annex A
    garbage         frames rejected as garbage (binary, overlong, wrong framing)
    case_attempts   case labels handled (bound, short, refused or unlabeled)
    case_rft        cases bound full at the first attempt (right first time)
    pallet_attempts, pallet_rft   the same for pallets
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from gateway.tracedb import TraceDb

__all__ = ["METRICS", "KpiCounters", "minute_of"]

METRICS = (
    "produced",
    "frames",
    "read",
    "noread",
    "valid",
    "duplicate",
    "invalid",
    "garbage",
    "case_attempts",
    "case_rft",
    "pallet_attempts",
    "pallet_rft",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kpi_count (
    line   TEXT NOT NULL,
    batch  TEXT NOT NULL,
    minute INTEGER NOT NULL,
    metric TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (line, batch, minute, metric)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kpi_count_minute ON kpi_count (line, minute);
"""


def minute_of(ts: datetime) -> int:
    """Minutes since the Unix epoch (the row key)."""
    return int(ts.timestamp() // 60)


class KpiCounters:
    def __init__(self, db: TraceDb, line: str) -> None:
        self.db = db
        self.line = line
        self.live: Counter[str] = Counter()  # since this process started
        db.script(SCHEMA)

    def add(self, counts: Mapping[str, int], *, ts: datetime, batch: str | None) -> None:
        """Add ``counts`` (metric → n) at time ``ts`` in ``batch``."""
        rows = [(m, n) for m, n in counts.items() if n]
        if not rows:
            return
        for m, _ in rows:
            if m not in METRICS:
                raise ValueError(f"unknown KPI metric {m!r}")
        minute = minute_of(ts)
        with self.db.transaction() as c:
            c.executemany(
                "INSERT INTO kpi_count VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                "(line, batch, minute, metric) DO UPDATE SET n = n + excluded.n",
                [(self.line, batch or "", minute, m, n) for m, n in rows],
            )
        self.live.update(dict(rows))

    def totals(self, *, since: datetime | None = None, batch: str | None = None) -> dict[str, int]:
        """Sums per metric from ``since`` (a minute boundary) and/or of one ``batch``."""
        sql = "SELECT metric, SUM(n) FROM kpi_count WHERE line = ?"
        args: list[object] = [self.line]
        if since is not None:
            sql += " AND minute >= ?"
            args.append(minute_of(since))
        if batch is not None:
            sql += " AND batch = ?"
            args.append(batch)
        with self.db.lock:
            rows = self.db.conn.execute(sql + " GROUP BY metric", args).fetchall()
        out = dict.fromkeys(METRICS, 0)
        out.update({str(m): int(n) for m, n in rows})
        return out
