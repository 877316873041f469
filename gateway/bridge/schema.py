"""The trace store's tables (SQLite, WAL, ``synchronous=FULL``; on PostgreSQL the same tables,
versioned by alembic: gateway/bridge/migrations).

``events.rid`` is the ingest order; ``pos`` orders the rows of one event (children, codes).
Every record to upload belongs to one event; documents are built over the oldest events not yet
in a document, so a document holds exactly the uploadable events with ``rid`` in
``[first_rid, last_rid]`` and the typed tables are read by ``rid`` range (``relations`` and
``outbound`` are clustered on ``(rid, pos)``: a range is one contiguous read).

- ``events``: every accepted event (de-duplicated by ``id``); ``up`` = 1 when it carries records
  to upload, ``weight`` = codes it carries (chunking). ``rid`` never goes back (AUTOINCREMENT):
  the events with ``rid`` ≤ ``meta.built_rid`` are in documents, the others wait. An event's
  document is the one whose range holds its ``rid`` (:func:`document_of`); no event row is
  rewritten when a document is built (measured: that update cost 3 s per million codes).
- ``codes``: commissioned codes with enterprise and batch (QB/T 5279 table 3, 6.3).
- ``relations``: bag→case→pallet packing and unpacking, one row per child (table 2 分装信息).
- ``ccp``: critical control point records (table 2 关键控制点的信息).
- ``outbound``: outbound records, one row per code (table 4 销售出库信息).
- ``batches``: a batch's product, production date, shelf life, inspection (tables 3, 6), shift
  (班组) and person in charge (负责人) (table 2 row 2).
- ``feedings``: materials fed into the line (table 2 row 1 投料信息).
- ``rejects``: bags taken off the line (table 3 row 3 不合格产品处置记录); a rejected bag that was
  in a case also gets a ``relations`` row with action ``remove`` (it left the case), and its
  ``codes`` row gets ``rejected`` (the code is decommissioned).
- ``scans``: inbound (5.2 入库扫描) and recall (10.6 召回扫码登记) scans, one row per event, with
  the batch of the code scanned.
- ``moved_bags``: the bags an outbound or inbound scan of a case or pallet counts for
  (``bag_codes`` of ``ship.outbound`` / ``ship.inbound``; docs/wholesale.md), one row per bag,
  with the code scanned and the bag's batch when the store knows it; uploaded with the scan.
- ``lab_records``: records from MES and LIMS (``record.*``, docs/records.md): material
  receipts (table 1), lab inspections (table 2 row 3), release decisions and non-conforming
  product handling (table 3 row 3); one row per ``(kind, record_id)``, the record as ``body``.
- ``quarantine``: messages that were not valid events: topic, reason, ``kind`` (its category,
  :data:`gateway.bridge.records.KINDS`), the payload's ``size`` and its first
  :data:`QUARANTINE_PAYLOAD_BYTES` bytes.
- ``documents`` / ``attempts``: the outbox and every delivery attempt with its outcome;
  ``documents.checked = 0`` marks one built without a schema check (``bridge.epcis_check: off``).
- ``seq_ranges`` / ``seq_gaps``: every gateway's ``seq`` received, as ranges, and the holes
  between them with when each was first seen and alarmed (:mod:`.gaps`), written in the
  transaction that stores the events.
- ``pruned``: the hash-chain links of records removed by retention, with the retention dates
  that allowed it under an HMAC (:mod:`.integrity`).
- ``access_log``: every trace query, who asked and the outcome (:mod:`.access`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.bridge.db import Db

__all__ = [
    "PENDING_EVENTS_SQL",
    "PUBLIC_INSPECTION_SQL",
    "QUARANTINE_PAYLOAD_BYTES",
    "SCHEMA",
    "built_rid",
    "connect",
    "document_of",
    "top_rid",
]

QUARANTINE_PAYLOAD_BYTES = 64 * 1024  # what is kept of a quarantined payload

BUILT_RID = "COALESCE((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'built_rid'), 0)"
PENDING_EVENTS_SQL = f"SELECT COUNT(*) FROM events WHERE up = 1 AND rid > {BUILT_RID}"

# Table 6 row 23 of a ``batches`` row as it may be shown or uploaded: only for a batch released
# by a release record (record.release), the lab's result (else the batch events' `inspection`);
# a held or unreleased batch has none, so it is never shown as 合格 (docs/records.md)
PUBLIC_INSPECTION_SQL = (
    "CASE WHEN release = 'released' THEN COALESCE(lab_result, inspection) END"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    rid        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    ts         TEXT NOT NULL,
    gateway    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    enterprise TEXT NOT NULL,
    site       TEXT NOT NULL,
    line       TEXT NOT NULL,
    device     TEXT,
    batch      TEXT,
    received   REAL NOT NULL,
    up         INTEGER NOT NULL,
    weight     INTEGER NOT NULL,
    note       TEXT,
    payload    BLOB,
    prev       BLOB,
    chain      BLOB
);
CREATE INDEX IF NOT EXISTS events_batch ON events(batch) WHERE up = 1;

CREATE TABLE IF NOT EXISTS codes (
    rid        INTEGER PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    enterprise TEXT NOT NULL,
    batch      TEXT,
    ts         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS codes_batch ON codes(batch);

CREATE TABLE IF NOT EXISTS relations (
    rid    INTEGER NOT NULL,
    pos    INTEGER NOT NULL,
    parent TEXT NOT NULL,
    child  TEXT NOT NULL,
    level  TEXT NOT NULL,
    action TEXT NOT NULL,
    ts     TEXT NOT NULL,
    PRIMARY KEY (rid, pos)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS relations_child ON relations(child);
CREATE INDEX IF NOT EXISTS relations_parent ON relations(parent);

CREATE TABLE IF NOT EXISTS ccp (
    rid     INTEGER PRIMARY KEY,
    type    TEXT NOT NULL,
    ts      TEXT NOT NULL,
    device  TEXT,
    batch   TEXT,
    value   REAL,
    flag    INTEGER,
    unit    TEXT,
    lo      REAL,
    hi      REAL,
    verdict TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ccp_batch ON ccp(batch);

CREATE TABLE IF NOT EXISTS outbound (
    rid           INTEGER NOT NULL,
    pos           INTEGER NOT NULL,
    order_no      TEXT NOT NULL,
    ts            TEXT NOT NULL,
    customer      TEXT NOT NULL,
    customer_type TEXT,
    code          TEXT NOT NULL,
    PRIMARY KEY (rid, pos)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbound_code ON outbound(code);

CREATE TABLE IF NOT EXISTS batches (
    batch           TEXT PRIMARY KEY,
    enterprise      TEXT NOT NULL,
    site            TEXT NOT NULL,
    line            TEXT NOT NULL,
    product         TEXT,
    production_date TEXT,
    shelf_life_days INTEGER,
    inspection      TEXT,
    started         TEXT,
    ended           TEXT,
    last_activity   REAL NOT NULL,
    alarmed         REAL,
    completed       REAL
);

CREATE TABLE IF NOT EXISTS feedings (
    rid      INTEGER PRIMARY KEY,
    ts       TEXT NOT NULL,
    device   TEXT,
    batch    TEXT,
    material TEXT NOT NULL,
    lot      TEXT,
    quantity REAL NOT NULL,
    unit     TEXT NOT NULL,
    point    TEXT,
    operator TEXT,
    count    INTEGER
);
CREATE INDEX IF NOT EXISTS feedings_batch ON feedings(batch);

CREATE TABLE IF NOT EXISTS rejects (
    rid          INTEGER PRIMARY KEY,
    ts           TEXT NOT NULL,
    device       TEXT,
    batch        TEXT,
    reason       TEXT NOT NULL,
    code         TEXT,
    parent       TEXT,
    commissioned INTEGER,
    value        REAL,
    unit         TEXT,
    count        INTEGER,
    detection    INTEGER
);
CREATE INDEX IF NOT EXISTS rejects_batch ON rejects(batch);

CREATE TABLE IF NOT EXISTS scans (
    rid    INTEGER PRIMARY KEY,
    kind   TEXT NOT NULL,
    ts     TEXT NOT NULL,
    device TEXT,
    batch  TEXT,
    code   TEXT NOT NULL,
    level  TEXT,
    ref    TEXT,
    party  TEXT,
    bags   INTEGER
);
CREATE INDEX IF NOT EXISTS scans_batch ON scans(batch);
CREATE INDEX IF NOT EXISTS scans_code ON scans(code);

CREATE TABLE IF NOT EXISTS moved_bags (
    rid     INTEGER NOT NULL,
    pos     INTEGER NOT NULL,
    scanned TEXT NOT NULL,
    code    TEXT NOT NULL,
    batch   TEXT,
    PRIMARY KEY (rid, pos)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS moved_bags_code ON moved_bags(code);

CREATE TABLE IF NOT EXISTS lab_records (
    rid       INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL,
    record_id TEXT NOT NULL,
    ts        TEXT NOT NULL,
    batch     TEXT,
    lot       TEXT,
    material  TEXT,
    verdict   TEXT,
    grade     TEXT,
    decision  TEXT,
    at        TEXT,
    body      TEXT NOT NULL,
    UNIQUE (kind, record_id)
);
CREATE INDEX IF NOT EXISTS lab_records_batch ON lab_records(batch);
CREATE INDEX IF NOT EXISTS lab_records_lot ON lab_records(lot);

CREATE TABLE IF NOT EXISTS quarantine (
    qid      INTEGER PRIMARY KEY,
    received REAL NOT NULL,
    topic    TEXT NOT NULL,
    payload  BLOB NOT NULL,
    reason   TEXT NOT NULL,
    kind     TEXT,
    size     INTEGER
);

CREATE TABLE IF NOT EXISTS documents (
    id         INTEGER PRIMARY KEY,
    number     TEXT NOT NULL UNIQUE,
    profile    TEXT NOT NULL,
    encoding   TEXT NOT NULL,
    created    REAL NOT NULL,
    first_rid  INTEGER NOT NULL,
    last_rid   INTEGER NOT NULL,
    codes      INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    body       BLOB NOT NULL,
    state      TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_try   REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    receipt    TEXT,
    acked      REAL,
    checked    INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS documents_state ON documents(state, id);
CREATE INDEX IF NOT EXISTS documents_range ON documents(first_rid);

CREATE TABLE IF NOT EXISTS attempts (
    number  TEXT NOT NULL,
    at      REAL NOT NULL,
    outcome TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX IF NOT EXISTS attempts_number ON attempts(number);

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS access_log (
    id      INTEGER PRIMARY KEY,
    at      REAL NOT NULL,
    user    TEXT NOT NULL,
    host    TEXT NOT NULL,
    pid     INTEGER NOT NULL,
    query   TEXT NOT NULL,
    subject TEXT,
    outcome TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS seq_ranges (
    gateway    TEXT NOT NULL,
    lo         INTEGER NOT NULL,
    hi         INTEGER NOT NULL,
    enterprise TEXT NOT NULL,
    site       TEXT NOT NULL,
    PRIMARY KEY (gateway, lo)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS seq_gaps (
    gateway  TEXT NOT NULL,
    lo       INTEGER NOT NULL,
    hi       INTEGER NOT NULL,
    since    REAL NOT NULL,
    alarmed  REAL,
    requests INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (gateway, lo)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS pruned (
    rid   INTEGER PRIMARY KEY,
    prev  BLOB NOT NULL,
    chain BLOB NOT NULL
);
"""


def connect(path: Path | str, *, create: bool = True) -> sqlite3.Connection:
    """A connection with the store's pragmas (one per thread). ``create=False`` refuses a
    missing file (the CLI must not invent an empty store)."""
    p = Path(path)
    if not create and not p.exists():
        raise FileNotFoundError(f"no trace store at {p}")
    p.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(p, isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    have = {r[1] for r in db.execute("PRAGMA table_info(events)")}
    for col in ("prev", "chain"):  # stores written before the hash chain existed
        if col not in have:
            db.execute(f"ALTER TABLE events ADD COLUMN {col} BLOB")
    _add_columns(db)
    return db


# columns added to existing tables after stores were written: (table, column, type)
ADDED_COLUMNS = (
    ("batches", "shift", "TEXT"),  # table 2 row 2 班组
    ("batches", "person_in_charge", "TEXT"),  # table 2 row 2 负责人
    # table 3 row 3 产品放行记录: 'released' / 'held' and when (record.release); the lab's
    # result and grade (record.inspection) as table 6 row 23 writes it
    ("batches", "release", "TEXT"),
    ("batches", "released_at", "TEXT"),
    ("batches", "lab_result", "TEXT"),
    ("codes", "rejected", "TEXT"),  # time of the pack.reject that decommissioned the code
    ("outbound", "batch", "TEXT"),  # the batch of the code shipped (reconciliation per batch)
    ("documents", "checked", "INTEGER NOT NULL DEFAULT 1"),  # 0: built unchecked (epcis_check)
    ("quarantine", "kind", "TEXT"),  # the category of a bad message (records.KINDS)
    ("quarantine", "size", "INTEGER"),  # its size in bytes (the payload kept is capped)
    # why retention purged a record (integrity.prune): the date its span counts from, the date
    # it was kept until, the day it was purged, and an HMAC of these and its links
    ("pruned", "since", "TEXT"),
    ("pruned", "kept_until", "TEXT"),
    ("pruned", "pruned_on", "TEXT"),
    ("pruned", "mac", "BLOB"),
)


def _add_columns(db: sqlite3.Connection) -> None:
    for table, col, typ in ADDED_COLUMNS:
        if col not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {col} {typ}")
    db.execute("CREATE INDEX IF NOT EXISTS outbound_batch ON outbound(batch)")


def top_rid(db: Db) -> int:
    """The highest event ``rid`` given so far (0: none), in the caller's view of the store.
    SQLite: its AUTOINCREMENT counter (also past events purged before the chain kept their
    links). PostgreSQL: the highest committed rid of ``events`` and ``pruned`` (the identity's
    own counter runs ahead of what is committed: writers hold rids until they commit, and rids
    commit in order under the write lock)."""
    if isinstance(db, sqlite3.Connection):
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return 0 if row is None else int(row[0])
    row = db.execute(
        "SELECT MAX(rid) FROM (SELECT MAX(rid) AS rid FROM events "
        "UNION ALL SELECT MAX(rid) FROM pruned) AS t"
    ).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def built_rid(db: Db) -> int:
    """The last event ``rid`` already in a document."""
    return int(db.execute(f"SELECT {BUILT_RID}").fetchone()[0])


def document_of(db: Db, rid: int) -> tuple[int, str, str, str | None] | None:
    """(id, number, state, receipt) of the document holding event ``rid``, if any."""
    row = db.execute(
        "SELECT id, number, state, receipt, last_rid FROM documents WHERE first_rid <= ? "
        "ORDER BY first_rid DESC LIMIT 1",
        (rid,),
    ).fetchone()
    if row is None or row[4] < rid:
        return None
    return int(row[0]), str(row[1]), str(row[2]), row[3]
