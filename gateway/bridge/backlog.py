"""What waits in a trace store's outbox, read on a connection of its own (for ``/metrics`` and
the demo's view, from any thread).

- Documents by state (``pending``, ``sent``, ``acked``, ``quarantined``): counted on the
  ``documents_state`` index, never touching the bodies.
- The age of the oldest document not yet acknowledged (``pending`` or ``sent``).
- Uploadable events not yet in a document (those after ``meta.built_rid``: few).
- Documents built without a schema check (``bridge.epcis_check: off``).

Nothing is written and no file is created: a store that does not exist yet reads as ``None``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.bridge.db import Db, describe, is_url, open_db
from gateway.bridge.schema import PENDING_EVENTS_SQL

__all__ = ["DOCUMENT_STATES", "OutboxBacklog", "read_backlog"]

log = logging.getLogger(__name__)

DOCUMENT_STATES = ("pending", "sent", "acked", "quarantined")


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    documents: dict[str, int] = field(default_factory=dict)  # state → documents
    oldest_unacked_secs: float = 0.0  # 0 when every document was acknowledged
    events_waiting: int = 0  # uploadable events not in a document yet
    unchecked: int = 0  # documents built without a schema check (bridge.epcis_check: off)

    def count(self, state: str) -> int:
        return self.documents.get(state, 0)

    @property
    def unacked(self) -> int:
        """Documents still to deliver or waiting for their receipt."""
        return self.count("pending") + self.count("sent")


def read_backlog(path: Path | str, *, now: float | None = None) -> OutboxBacklog | None:
    """The outbox of the store at ``path`` (a PostgreSQL store's: the whole enterprise's);
    None when there is no store (yet) or it cannot be read (logged)."""
    db: Db
    try:
        if is_url(path):
            db = open_db(path, readonly=True)
        elif not Path(path).is_file():
            return None
        else:
            db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=rw", uri=True, timeout=5)
    except sqlite3.Error as exc:
        log.warning("cannot read the outbox of %s: %s", describe(path), exc)
        return None
    try:
        states = {str(s): int(n) for s, n in db.execute(_BY_STATE)}
        oldest = db.execute(_OLDEST).fetchone()[0]
        waiting = int(db.execute(PENDING_EVENTS_SQL).fetchone()[0])
        unchecked = int(db.execute(_UNCHECKED).fetchone()[0])
    except sqlite3.Error as exc:  # e.g. the bridge is creating the tables right now
        log.warning("cannot read the outbox of %s: %s", describe(path), exc)
        return None
    finally:
        db.close()
    now = time.time() if now is None else now
    age = max(0.0, now - float(oldest)) if oldest is not None else 0.0
    states = {**dict.fromkeys(DOCUMENT_STATES, 0), **states}
    return OutboxBacklog(states, age, waiting, unchecked)


_BY_STATE = "SELECT state, COUNT(*) FROM documents GROUP BY state"
_UNCHECKED = "SELECT COUNT(*) FROM documents WHERE checked = 0"
_OLDEST = "SELECT MIN(created) FROM documents WHERE state IN ('pending', 'sent')"
