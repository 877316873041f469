"""CSV export of the query records (with their feedback) and complaints, for quality staff
(QB/T 5279 table 5, 10.4.2). UTF-8 with a byte-order mark, so that spreadsheet programs
common in China open the Chinese text correctly; times in the resolver's time zone."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from gateway.resolver.querylog import QueryLog

__all__ = ["COMPLAINT_COLUMNS", "QUERY_COLUMNS", "export_csv", "since_ms"]

QUERY_COLUMNS = (
    "time",
    "code",
    "channel",
    "place",
    "count",
    "verdict",
    "reason",
    "matches",
    "comment",
    "query_id",
)
COMPLAINT_COLUMNS = (
    "time",
    "code",
    "place",
    "content",
    "contact",
    "channel",
    "client_net",
    "complaint_id",
)


def since_ms(day: date | None, tz: ZoneInfo) -> int:
    """The start of ``day`` in ``tz`` as ms since the epoch; 0 for everything."""
    if day is None:
        return 0
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


def _time(ts_ms: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz).isoformat(timespec="seconds")


def export_csv(log: QueryLog, what: str, out: TextIO, tz: ZoneInfo, since: int = 0) -> int:
    """Write ``what`` ("queries" or "complaints") from ``since`` (ms) as CSV; rows written."""
    writer = csv.writer(out, lineterminator="\r\n")
    n = 0
    if what == "queries":
        writer.writerow(QUERY_COLUMNS)
        for rec, matches, comment in log.queries_since(since):
            fb = "" if matches is None else ("yes" if matches else "no")
            writer.writerow(
                (
                    _time(rec.ts_ms, tz),
                    rec.code,
                    rec.channel,
                    rec.place,
                    rec.count,
                    rec.verdict,
                    rec.reason or "",
                    fb,
                    comment or "",
                    rec.qid,
                )
            )
            n += 1
    elif what == "complaints":
        writer.writerow(COMPLAINT_COLUMNS)
        for c in log.complaints_since(since):
            writer.writerow(
                (
                    _time(c.ts_ms, tz),
                    c.code or "",
                    c.place,
                    c.content,
                    c.contact or "",
                    c.channel,
                    c.client_net,
                    c.cid,
                )
            )
            n += 1
    else:
        raise ValueError(f"nothing to export called {what!r} (queries, complaints)")
    return n


def export_file(log: QueryLog, what: str, path: Path, tz: ZoneInfo, since: int = 0) -> int:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        return export_csv(log, what, f, tz, since)
