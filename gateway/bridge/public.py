"""The bridge's side of the public snapshot (QB/T 5279-2018 9, 11.4: 对外查询服务器与企业内部
信息系统应分离): a working copy kept up to date from the trace store, published atomically for
the resolver (:mod:`gateway.public_snapshot` defines what it holds; the resolver never reads the
trace store).

Constraints:

- **Incremental.** The working database (``{path}.work``, WAL) remembers the last trace store
  event applied (``events.rid``, in its private ``writer`` table, committed with the rows it
  produced); each round reads only newer events (:mod:`.public_apply`), at most
  :data:`CHUNK_EVENTS` per transaction. A store whose ``rid`` counter is below that mark is
  another store: the working copy is rebuilt from it.
- **Read-only on the store.** The writer opens the trace store read-only (:func:`open_store`);
  nothing it does can change a record.
- **Category fields from the config.** ``products`` (``bridge.products``) and ``enterprises``
  (``bridge.enterprise_info`` for the gateway's enterprise code) are rewritten when the writer
  starts.
- **Batches** (#6, #7, #16, #23): production date and shelf life (the batch's days, else its
  product's, as ``"1095 天"``) from the store; the inspection result and grade (#23) only once
  a release record (table 3 row 3 产品放行记录, ``record.release``) released the batch: the
  lab's result (``record.inspection``), else the batch events' ``inspection``. A held or
  unreleased batch shows none, and a release changed to ``held`` takes it back
  (:data:`gateway.bridge.schema.PUBLIC_INSPECTION_SQL`, docs/records.md).
- **#6 per bag** is the bag's commissioning date as the line's clock wrote it (the date part of
  the event's ``ts``, in the line's time zone): table 6 makes #6 an item (单品) field, and a
  batch can run past midnight; the batch's own ``production_date`` stays in ``batches``.
- **Retention.** A batch the trace store has purged (11.1: kept until shelf life + 1 year) goes
  from the snapshot with its codes; codes without a batch go when the store no longer has them
  (checked when ``pruned`` grew). Nothing else is ever removed.
- **Publish** (:mod:`.public_publish`) only when something changed, at most every
  ``interval_secs``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.bridge.config import BridgeSection, PublicSnapshotSection
from gateway.bridge.db import Db, is_url, open_db
from gateway.bridge.public_apply import apply_range, batches_of_range, chunked
from gateway.bridge.public_publish import PRIVATE_TABLE, publish, remove_stale
from gateway.bridge.schema import PUBLIC_INSPECTION_SQL, top_rid
from gateway.public_snapshot import SCHEMA_SQL

__all__ = ["CHUNK_EVENTS", "SnapshotStats", "SnapshotWriter", "open_store"]

log = logging.getLogger(__name__)

CHUNK_EVENTS = 200_000  # events applied per transaction of the working copy
PURGE_CHECK_SECS = 60.0  # how often a running writer looks for batches retention purged
_WATERMARK = "trace_store_rid"

ENTERPRISE_COLUMNS = (
    "name", "address", "phone", "website", "licence_no", "licence_valid", "credit_rating",
)  # fmt: skip
PRODUCT_COLUMNS = (
    "name", "net_content", "standard", "category", "process", "origin", "raw_salt_source",
    "usage", "tips", "ingredients", "storage", "nutrition", "special_groups",
)  # fmt: skip


def open_store(path: Path | str) -> Db:
    """A read-only connection to the trace store (raises when it does not exist): a SQLite file
    or a PostgreSQL store (gateway/bridge/db.py)."""
    if is_url(path):
        return open_db(path, readonly=True)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no trace store at {p}")
    db = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                         check_same_thread=False, timeout=30)  # fmt: skip
    db.execute("PRAGMA query_only=1")
    return db


def shelf_life_text(days: int | None) -> str | None:
    return None if days is None else f"{days} 天"


@dataclass(slots=True)
class SnapshotStats:
    """What ``/metrics`` shows (kept across restarts of the writer)."""

    codes: int = 0  # in the last published snapshot
    published_at: float | None = None  # wall time of the last publish
    publishes: int = 0
    failures: int = 0
    events_read: int = 0


class SnapshotWriter:
    """One working copy; used by one thread. ``clock`` gives ``built_at`` (aware)."""

    def __init__(
        self,
        cfg: PublicSnapshotSection,
        bridge: BridgeSection,
        *,
        enterprise: str,
        source: str,
        clock: Callable[[], datetime],
        stats: SnapshotStats | None = None,
    ) -> None:
        self.cfg, self.bridge = cfg, bridge
        self.enterprise, self.source, self.clock = enterprise, source, clock
        self.stats = stats or SnapshotStats()
        self.path = cfg.path
        work = cfg.work_file()
        work.parent.mkdir(parents=True, exist_ok=True)
        self.work = sqlite3.connect(work, isolation_level=None, check_same_thread=False,
                                    timeout=30)  # fmt: skip
        self.work.execute("PRAGMA journal_mode=WAL")
        self.work.execute("PRAGMA synchronous=NORMAL")  # the store is the record; this a copy
        self.work.execute("PRAGMA cache_size=-65536")  # 64 MiB: a first build touches every row
        self.work.executescript(SCHEMA_SQL)
        self.work.execute(
            f"CREATE TABLE IF NOT EXISTS {PRIVATE_TABLE} (key TEXT PRIMARY KEY, value INTEGER)"
        )
        self.dirty = True  # publish once after a start: the file may be older than the copy
        self.behind = False  # the last update stopped before the store's newest event
        self.last_publish: float | None = None  # monotonic
        self._pruned: int | None = None
        self._purge_check: float | None = None  # monotonic
        remove_stale(self.path)
        self._config_tables()

    def close(self) -> None:
        self.work.close()

    # -- config tables ---------------------------------------------------------------------------
    def _config_tables(self) -> None:
        w = self.work
        info = self.bridge.enterprise_info
        with _txn(w):
            w.execute("DELETE FROM products")
            w.executemany(
                f"INSERT INTO products(product, {', '.join(PRODUCT_COLUMNS)}) "
                f"VALUES (?{', ?' * len(PRODUCT_COLUMNS)})",
                [(p.id, *(getattr(p, c) for c in PRODUCT_COLUMNS)) for p in self.bridge.products],
            )
            w.execute("DELETE FROM enterprises WHERE enterprise = ?", (self.enterprise,))
            values = [getattr(info, c) if info else None for c in ENTERPRISE_COLUMNS]
            w.execute(
                f"INSERT INTO enterprises(enterprise, {', '.join(ENTERPRISE_COLUMNS)}) "
                f"VALUES (?{', ?' * len(ENTERPRISE_COLUMNS)})",
                (self.enterprise, *values),
            )

    # -- update ----------------------------------------------------------------------------------
    def watermark(self) -> int:
        row = self.work.execute(
            f"SELECT value FROM {PRIVATE_TABLE} WHERE key = ?", (_WATERMARK,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def update(
        self, store: Db, *, max_chunks: int | None = None, purges: bool = True
    ) -> int:
        """Apply the store's events newer than the watermark; returns how many event ids were
        covered. ``max_chunks`` bounds the work of one call (None: until caught up);
        ``purges``: also remove what retention purged from the store."""
        done = 0
        chunks = 0
        while max_chunks is None or chunks < max_chunks:
            n = self._chunk(store)
            if n == 0:
                break
            done += n
            chunks += 1
        if purges:
            self._follow_purges(store)
        self.stats.events_read += done
        return done

    def _chunk(self, store: Db) -> int:
        w = self.work
        store.execute("BEGIN")  # one consistent view of the store for the chunk
        try:
            top = top_rid(store)
            with _txn(w):  # the watermark is read under the write lock: one writer at a time
                mark = self.watermark()
                if top < mark:
                    log.warning(
                        "public snapshot: the trace store's events end at %d, the working "
                        "copy's at %d: another store; rebuilding",
                        top, mark,
                    )  # fmt: skip
                    w.execute("DELETE FROM codes")
                    w.execute("DELETE FROM batches")
                    mark = 0
                    self.dirty = True
                if top <= mark:
                    self.behind = False
                    return 0
                hi = min(top, mark + CHUNK_EVENTS)
                self.behind = hi < top
                res = apply_range(w, store, mark, hi)
                self._batches(store, batches_of_range(store, mark, hi))
                w.execute(
                    f"INSERT OR REPLACE INTO {PRIVATE_TABLE}(key, value) VALUES (?, ?)",
                    (_WATERMARK, hi),
                )
        finally:
            store.execute("COMMIT")
        if res.commissioned or res.changed:
            self.dirty = True
        return hi - mark

    def _batches(self, store: Db, names: set[str]) -> None:
        w = self.work
        for part in chunked(names):
            marks = ",".join("?" * len(part))
            rows = store.execute(
                "SELECT batch, enterprise, product, production_date, shelf_life_days, "
                f"{PUBLIC_INSPECTION_SQL} FROM batches WHERE batch IN ({marks})",
                part,
            ).fetchall()
            out = []
            for batch, ent, product, made, days, released in rows:
                info = self.bridge.product(product)
                life = days if days is not None else (info.shelf_life_days if info else None)
                out.append((batch, ent, product, made, shelf_life_text(life), released))
                w.execute("INSERT OR IGNORE INTO enterprises(enterprise) VALUES (?)", (ent,))
            for r in out:
                cur = w.execute(
                    "INSERT INTO batches(batch, enterprise, product, production_date, shelf_life, "
                    "inspection) VALUES (?,?,?,?,?,?) ON CONFLICT(batch) DO UPDATE SET "
                    "enterprise=excluded.enterprise, product=excluded.product, "
                    "production_date=excluded.production_date, shelf_life=excluded.shelf_life, "
                    "inspection=excluded.inspection WHERE (enterprise, product, production_date, "
                    "shelf_life, inspection) IS NOT (excluded.enterprise, excluded.product, "
                    "excluded.production_date, excluded.shelf_life, excluded.inspection)",
                    r,
                )
                if cur.rowcount:
                    self.dirty = True

    def _follow_purges(self, store: Db) -> None:
        """Remove what retention purged from the store (batches, then codes without one)."""
        w = self.work
        kept = {r[0] for r in store.execute("SELECT batch FROM batches")}
        gone = [b for (b,) in w.execute("SELECT batch FROM batches") if b not in kept]
        pruned = int(store.execute("SELECT COUNT(*) FROM pruned").fetchone()[0])
        check_loose = pruned != self._pruned
        if not gone and not check_loose:
            return
        with _txn(w):
            for part in chunked(gone):
                marks = ",".join("?" * len(part))
                w.execute(f"DELETE FROM codes WHERE batch IN ({marks})", part)
                w.execute(f"DELETE FROM batches WHERE batch IN ({marks})", part)
            removed = len(gone)
            if check_loose:
                loose = [r[0] for r in w.execute("SELECT code FROM codes WHERE batch IS NULL")]
                for part in chunked(loose):
                    marks = ",".join("?" * len(part))
                    have = {r[0] for r in store.execute(
                        f"SELECT code FROM codes WHERE code IN ({marks})", part)}  # fmt: skip
                    lost = [c for c in part if c not in have]
                    w.executemany("DELETE FROM codes WHERE code = ?", ((c,) for c in lost))
                    removed += len(lost)
        self._pruned = pruned
        if removed:
            self.dirty = True
            log.info("public snapshot: %d purged batches and loose codes removed", removed)

    # -- publish ---------------------------------------------------------------------------------
    def publish(self) -> int:
        """Publish the working copy now; returns the number of codes."""
        codes = publish(self.work, self.path, built_at=self.clock(), source=self.source)
        self.dirty = False
        self.stats.codes = codes
        self.stats.published_at = time.time()
        self.stats.publishes += 1
        return codes

    def run_once(self, store: Db, now: float) -> bool:
        """One round: update (one chunk), then publish when caught up with the store, something
        changed and the last publish is ``interval_secs`` old (``now``: monotonic): a
        snapshot is never published half-way through a backlog. Returns True when it
        published."""
        check = self._purge_check is None or now - self._purge_check >= PURGE_CHECK_SECS
        if check:
            self._purge_check = now
        self.update(store, max_chunks=1, purges=check)
        due = self.last_publish is None or now - self.last_publish >= self.cfg.interval_secs
        if not (self.dirty and due) or self.behind:
            return False
        self.publish()
        self.last_publish = now
        return True


class _txn:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:
            self.db.execute("ROLLBACK")
