"""One line's traceability state, shared by every profile of the line: the code index, the
aggregation state machine, shipping scans and the KPI counters, all in one trace store.

Profiles of the same line that name the same store file get the same :class:`TraceLine` object
(cached per file and line), so the bag scanner's slots reach the case packer and every profile's
counts reach the KPI calculator.
"""

from __future__ import annotations

import threading
from pathlib import Path

from gateway.aggregation import Aggregator, Shipping
from gateway.codes import CodeIndex
from gateway.kpi import KpiCounters
from gateway.tracedb import TraceDb, forget_trace_db, open_trace_db

__all__ = ["TraceLine", "close_trace_lines", "open_trace_line"]


class TraceLine:
    def __init__(self, db: TraceDb, line: str) -> None:
        self.db = db
        self.line = line
        self.codes = CodeIndex(db)
        self.agg = Aggregator(db, line)
        self.shipping = Shipping(db, self.agg)
        self.counters = KpiCounters(db, line)


_LINES: dict[tuple[str, str], TraceLine] = {}
_LOCK = threading.Lock()


def open_trace_line(path: Path | str, line: str) -> TraceLine:
    """The process-wide :class:`TraceLine` of ``line`` in the store at ``path``."""
    key = (str(Path(path).resolve()), line)
    with _LOCK:
        found = _LINES.get(key)
        if found is None:
            found = _LINES[key] = TraceLine(open_trace_db(path), line)
        return found


def close_trace_lines(path: Path | str) -> None:
    """Forget every line of the store at ``path`` and close it (a restart, in tests)."""
    resolved = str(Path(path).resolve())
    with _LOCK:
        for key in [k for k in _LINES if k[0] == resolved]:
            del _LINES[key]
    forget_trace_db(path)
