"""One output's view of the telemetry store (:class:`gateway.telemetry.record.TelemetryFeed`).

Each output has its own cursor, persisted in the store's file: :meth:`StoreFeed.read` returns
the records after it (again, until acknowledged: at-least-once), :meth:`StoreFeed.ack` moves it.
An output that keeps many records in flight (the UNS output) reads further with
:meth:`StoreFeed.read_after`, which is not part of the Protocol: it saves reading again what
it is still waiting for acknowledgements of.

A feed reads on a connection of its own (WAL: readers never wait for the writer), opened by the
first call, from whichever thread the output runs on.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

from gateway.telemetry.record import TagMeta, TagRecord
from gateway.telemetry.store import TelemetryStore, record_from_row

__all__ = ["StoreFeed"]

SELECT = "SELECT id, device, ts, coalesced, points FROM records WHERE id > ? ORDER BY id LIMIT ?"


class StoreFeed:
    def __init__(self, store: TelemetryStore, name: str) -> None:
        if name not in store.outputs:
            raise ValueError(f"telemetry output {name!r} is not one of the store's outputs "
                             f"({', '.join(store.outputs) or 'none'})")  # fmt: skip
        self.store = store
        self.name = name
        self._acked = store.stats.acked[name]
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def cursor(self) -> int:
        """The highest record id this output acknowledged."""
        return self._acked

    def metas(self) -> Sequence[TagMeta]:
        return self.store.metas

    def read(self, limit: int) -> Sequence[TagRecord]:
        return self.read_after(self._acked, limit)

    def read_after(self, after: int, limit: int) -> Sequence[TagRecord]:
        """Up to ``limit`` records with an id above ``max(after, cursor)``, oldest first."""
        with self._lock:
            if self._db is None:
                self._db = sqlite3.connect(self.store.path, check_same_thread=False)
            rows = self._db.execute(SELECT, (max(after, self._acked), limit)).fetchall()
        return [record_from_row(r) for r in rows]

    def ack(self, upto: int) -> None:
        if upto > self._acked:
            self._acked = upto
            self.store.ack(self.name, upto)

    def wait(self, timeout: float) -> bool:
        return self.store.wait_committed(self._acked, timeout)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
