"""The trace store's hash chain (see :mod:`gateway.chain`): what one event's record is, and how
it is linked when stored and when purged.

A record is everything the store says about one event: its ``events`` row (without ``prev`` /
``chain``) and its rows in the typed tables (``codes``, ``relations``, ``ccp``, ``outbound``),
serialised canonically by :func:`row_body`. Each event row holds ``prev`` and
``chain = link(prev, row_body)``; ``meta.chain_head`` holds ``"rid:hex"`` of the newest link.
Retention (11.1) removes whole records and keeps their links in ``pruned`` (rid, prev, chain),
so the chain stays checkable across purges.
"""

from __future__ import annotations

import json
import sqlite3

from gateway.chain import GENESIS, link

__all__ = ["EVENT_COLUMNS", "head", "prune", "row_body", "seal"]

EVENT_COLUMNS = (
    "rid, id, type, ts, gateway, seq, enterprise, site, line, device, batch, received, up, "
    "weight, note, payload"
)
_TYPED = {
    "codes": "code, enterprise, batch, ts",
    "relations": "pos, parent, child, level, action, ts",
    "ccp": "type, ts, device, batch, value, flag, unit, lo, hi, verdict",
    "outbound": "pos, order_no, ts, customer, customer_type, code",
}


def _plain(v: object) -> object:
    return v.hex() if isinstance(v, bytes) else v


def row_body(db: sqlite3.Connection, rid: int) -> bytes | None:
    """The canonical bytes of event ``rid``'s record, or None when there is no such event."""
    row = db.execute(f"SELECT {EVENT_COLUMNS} FROM events WHERE rid=?", (rid,)).fetchone()
    if row is None:
        return None
    parts: list[object] = [[_plain(v) for v in row]]
    for table, cols in _TYPED.items():
        order = " ORDER BY pos" if "pos" in cols else ""
        rows = db.execute(f"SELECT {cols} FROM {table} WHERE rid=?{order}", (rid,)).fetchall()
        parts.append([[_plain(v) for v in r] for r in rows])
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()


def head(db: sqlite3.Connection) -> tuple[int, bytes]:
    """(rid, chain) of the newest linked record; (0, GENESIS) for a store without one."""
    row = db.execute("SELECT value FROM meta WHERE key='chain_head'").fetchone()
    if row is None:
        return 0, GENESIS
    rid, _, hexed = str(row[0]).partition(":")
    return int(rid), bytes.fromhex(hexed)


def seal(db: sqlite3.Connection, rids: list[int]) -> None:
    """Link the just-stored events ``rids`` (ascending) after the head; inside the ingest
    transaction."""
    if not rids:
        return
    _, tip = head(db)
    for rid in rids:
        body = row_body(db, rid)
        assert body is not None
        prev, tip = tip, link(tip, body)
        db.execute("UPDATE events SET prev=?, chain=? WHERE rid=?", (prev, tip, rid))
    db.execute(
        "INSERT INTO meta(key, value) VALUES ('chain_head', ?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (f"{rids[-1]}:{tip.hex()}",),
    )


def prune(db: sqlite3.Connection, rid_query: str, arg: object) -> None:
    """Keep the links of the events selected by ``rid_query`` before retention deletes them."""
    db.execute(
        f"INSERT OR IGNORE INTO pruned(rid, prev, chain) SELECT rid, prev, chain FROM events "
        f"WHERE chain IS NOT NULL AND rid IN ({rid_query})",
        (arg,),
    )
