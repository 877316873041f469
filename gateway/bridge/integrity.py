"""The trace store's hash chain (see :mod:`gateway.chain`): what one event's record is, and how
it is linked when stored and when purged.

A record is everything the store says about one event: its ``events`` row (without ``prev`` /
``chain``) and its rows in the typed tables (``codes``, ``relations``, ``ccp``, ``outbound``),
serialised canonically by :func:`row_body`. Each event row holds ``prev`` and
``chain = HMAC-SHA-256(key, prev || row_body)``; ``meta.chain_head`` holds ``"rid:hex"`` of the
newest link and ``meta.chain_alg`` the marker (:class:`gateway.chain.Marker`: from which rid on
the links are keyed, bound to the key). Retention (11.1) removes whole records and keeps their
links in ``pruned`` (rid, prev, chain) with why it could (:func:`prune`: the date the retention
span counts from, the date kept until, the day purged) under an HMAC, so the chain stays
checkable across purges and a record removed by hand cannot pass for a purged one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.bridge.db import Db, describe, is_url
from gateway.chain import GENESIS, ChainKeyError, Marker, chain_key, configured_chain_key, link

if TYPE_CHECKING:
    from gateway.bridge.config import BridgeSection

__all__ = [
    "CHAIN",
    "EVENT_COLUMNS",
    "check_marker",
    "head",
    "marker",
    "prune",
    "pruned_mac",
    "row_bodies",
    "row_body",
    "seal",
    "set_marker",
    "store_chain_key",
]

CHAIN = "trace store"  # the chain's name in its marker
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


def row_body(db: Db, rid: int) -> bytes | None:
    """The canonical bytes of event ``rid``'s record, or None when there is no such event."""
    return row_bodies(db, rid, rid).get(rid)


def row_bodies(db: Db, lo: int, hi: int) -> dict[int, bytes]:
    """rid → the canonical bytes (:func:`row_body`) of every event with ``lo <= rid <= hi``,
    in one query per table: sealing a group or verifying a page is a handful of round trips to
    a PostgreSQL store, not five per event."""
    events = db.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE rid BETWEEN ? AND ? ORDER BY rid", (lo, hi)
    ).fetchall()
    parts: dict[int, list[object]] = {int(r[0]): [[_plain(v) for v in r]] for r in events}
    for table, cols in _TYPED.items():
        order = "rid, pos" if "pos" in cols else "rid"  # codes and ccp: one row per event
        typed: dict[int, list[object]] = {rid: [] for rid in parts}
        rows = db.execute(
            f"SELECT rid, {cols} FROM {table} WHERE rid BETWEEN ? AND ? ORDER BY {order}",
            (lo, hi),
        ).fetchall()
        for r in rows:
            if (got := typed.get(int(r[0]))) is not None:
                got.append([_plain(v) for v in r[1:]])
        for rid, got_rows in typed.items():
            parts[rid].append(got_rows)
    return {
        rid: json.dumps(p, ensure_ascii=False, separators=(",", ":")).encode()
        for rid, p in parts.items()
    }


def head(db: Db) -> tuple[int, bytes]:
    """(rid, chain) of the newest linked record; (0, GENESIS) for a store without one."""
    row = db.execute("SELECT value FROM meta WHERE key='chain_head'").fetchone()
    if row is None:
        return 0, GENESIS
    rid, _, hexed = str(row[0]).partition(":")
    return int(rid), bytes.fromhex(hexed)


def store_chain_key(section: BridgeSection, store: Path | str | None = None) -> bytes:
    """The trace store's chain key: ``chain_key_env``, else ``chain_key_file``, else
    ``{store}.chain-key`` beside it (generated when missing). A PostgreSQL store has no "beside":
    its key must be configured (the same on every bridge that writes it)."""
    where = store if store is not None else section.store
    what = "trace store chain key"
    if is_url(where):
        key = configured_chain_key(section.chain_key_env, section.chain_key_file, what)
        if key is None:
            raise ChainKeyError(
                f"trace store {describe(where)}: a PostgreSQL store needs bridge.chain_key_env "
                "(set) or bridge.chain_key_file, the same key on every bridge writing it"
            )
        return key
    return chain_key(Path(where), section.chain_key_env, section.chain_key_file, what)


def marker(db: Db, key: str = "chain_alg") -> Marker | None:
    """The store's marker (``meta.chain_alg``; the access log's is ``access_alg``), None before
    the first keyed record; ValueError when the row is not a marker."""
    row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else Marker.parse(str(row[0]))


def check_marker(db: Db, key: bytes, path: Path | str) -> None:
    """Refuse a store whose records were keyed with another key (:class:`ChainKeyError`)."""
    for meta_key, chain in (("chain_alg", CHAIN), ("access_alg", "access log")):
        try:
            mark = marker(db, meta_key)
        except ValueError:
            mark = Marker("?", 0, b"")
        if mark is not None and not mark.valid(key, chain):
            where = describe(path)
            name = Path(path).name if not is_url(path) else "(none: a URL's)"
            raise ChainKeyError(
                f"trace store {where}: its {chain} chain was written with another key (or "
                f"meta.{meta_key} was edited): put the store's key back (bridge.chain_key_env / "
                f"chain_key_file, or the generated {name}.chain-key); run saltgw verify"
            )


def set_marker(db: Db, key: bytes, meta_key: str, chain: str, first: int) -> None:
    """Write the marker when there is none: records from ``first`` on are keyed."""
    db.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
        (meta_key, Marker.make(key, chain, first).text()),
    )


def seal(db: Db, rids: list[int], key: bytes) -> None:
    """Link the just-stored events ``rids`` (ascending) after the head; inside the ingest
    transaction."""
    if not rids:
        return
    set_marker(db, key, "chain_alg", CHAIN, rids[0])
    _, tip = head(db)
    bodies = row_bodies(db, rids[0], rids[-1])
    links = []
    for rid in rids:
        prev, tip = tip, link(tip, bodies[rid], key)
        links.append((prev, tip, rid))
    db.executemany("UPDATE events SET prev=?, chain=? WHERE rid=?", links)
    db.execute(
        "INSERT INTO meta(key, value) VALUES ('chain_head', ?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (f"{rids[-1]}:{tip.hex()}",),
    )


def pruned_mac(
    key: bytes, rid: int, chain: bytes, since: str, kept_until: str, pruned_on: str
) -> bytes:
    """What binds a purged record's links to the retention dates that allowed the purge."""
    msg = f"saltgw pruned\n{rid}\n{chain.hex()}\n{since}\n{kept_until}\n{pruned_on}".encode()
    return hmac.new(key, msg, hashlib.sha256).digest()


def prune(
    db: Db,
    rid_query: str,
    arg: object,
    *,
    key: bytes,
    today: date,
    rule: Callable[[str], tuple[date, date]],
) -> None:
    """Keep the links of the events selected by ``rid_query`` before retention deletes them,
    with ``rule(event ts) -> (since, kept_until)``: the date the record's retention span
    counts from and the last day it had to be kept (gateway/bridge/retention.py)."""
    rows = db.execute(
        f"SELECT rid, prev, chain, ts FROM events WHERE chain IS NOT NULL AND rid IN ({rid_query})",
        (arg,),
    ).fetchall()
    on = today.isoformat()
    out = []
    for rid, prev, chain, ts in rows:
        since, until = (d.isoformat() for d in rule(str(ts)))
        mac = pruned_mac(key, rid, bytes(chain), since, until, on)
        out.append((rid, prev, chain, since, until, on, mac))
    db.executemany(
        "INSERT INTO pruned(rid, prev, chain, since, kept_until, pruned_on, mac) "
        "VALUES (?,?,?,?,?,?,?) ON CONFLICT(rid) DO NOTHING",
        out,
    )
