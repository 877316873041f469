"""Put producers' EPCIS documents (:mod:`gateway.wholesale.epcis_read`) into the line's trace
store, so that the inbound and outbound scanners expand a case or pallet to its bags
(gateway/aggregation/shipping.py), as they do for what the line packed itself.

Constraints:

- **All or nothing**: the documents of one import are applied in one transaction; a conflict
  (a code known as a bag packed as a case, a child packed into a second container while the
  first still holds it, QB/T 5279-2018 8.4) is an error naming the file, line and element, and
  nothing is imported.
- **Idempotent**: a document is known by the SHA-256 of its bytes (``epcis_import``); importing
  it again changes nothing and says so. Applying is an upsert besides, so two documents that
  overlap (the same pallet in a shipment's document and in the day's) agree.
- **Order**: documents are applied oldest first (``creationDate``, then number), events in
  document order, so a case unpacked and packed again ends where the producer left it.
- **Late documents**: a case or pallet scanned before its documents arrived was recorded
  unexpanded (``level`` unknown, one row in ``ship_scan``). When its aggregation is imported,
  that row is replaced by its bags (a bag already recorded in that direction is counted as a
  duplicate) and each such scan is reported: its upload, already made, listed it unexpanded.
- The imported items are ``agg_item`` rows with ``line`` NULL (not packed on a line):
  bags ``commissioned`` (or ``rejected`` when decommissioned), cases and pallets ``closed``
  (``unpacked`` once emptied).
- Written through the store's own connection (WAL, ``BEGIN IMMEDIATE``, a busy timeout), so an
  import may run beside the running gateway, which reads the store on every scan.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gateway.aggregation.store import LIVE, children_of, get_item
from gateway.traceline import TraceLine
from gateway.wholesale.epcis_read import DocError, Packing, ProducerDocument

__all__ = ["ImportSummary", "LateScan", "import_documents"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS epcis_import (
    sha256     TEXT PRIMARY KEY,
    file       TEXT NOT NULL,
    number     TEXT,
    enterprise TEXT,
    created    TEXT,
    imported   TEXT NOT NULL,
    bags       INTEGER NOT NULL,
    packings   INTEGER NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class LateScan:
    """A case or pallet scanned before its aggregation was known, expanded now."""

    code: str
    direction: str
    ref: str | None
    party: str | None
    ts: str
    bags: int
    duplicates: int  # bags already recorded in that direction by another scan


@dataclass
class ImportSummary:
    imported: list[ProducerDocument] = field(default_factory=list)
    already: list[tuple[ProducerDocument, str]] = field(default_factory=list)  # (doc, when)
    bags: int = 0
    packings: int = 0
    late: list[LateScan] = field(default_factory=list)


class _Conflict(Exception):
    def __init__(self, error: DocError) -> None:
        super().__init__(str(error))
        self.error = error


def import_documents(
    line: TraceLine, docs: Sequence[ProducerDocument], now: datetime
) -> tuple[ImportSummary, list[DocError]]:
    """Apply ``docs`` to the line's trace store; (what was done, errors: then nothing was)."""
    line.db.script(SCHEMA)
    summary = ImportSummary()
    ordered = sorted(docs, key=lambda d: (d.created or "", d.number or "", d.file))
    stamp = now.isoformat(timespec="milliseconds")
    try:
        with line.db.transaction() as c:
            for doc in ordered:
                row = c.execute(
                    "SELECT imported FROM epcis_import WHERE sha256 = ?", (doc.sha256,)
                ).fetchone()
                if row is not None:
                    summary.already.append((doc, str(row[0])))
                    continue
                _apply(c, doc, stamp)
                c.execute(
                    "INSERT INTO epcis_import VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc.sha256, doc.file, doc.number, doc.enterprise, doc.created, stamp,
                     len(doc.bags), len(doc.packings)),
                )  # fmt: skip
                summary.imported.append(doc)
                summary.bags += len(doc.bags)
                summary.packings += len(doc.packings)
            if summary.imported:
                summary.late = _expand_late(c, line)
    except _Conflict as exc:
        return ImportSummary(), [exc.error]
    return summary, []


def _apply(c: sqlite3.Connection, doc: ProducerDocument, stamp: str) -> None:
    for code, batch in doc.bags.items():
        known = get_item(c, code)
        if known is not None and known.level != "bag":
            raise _Conflict(
                DocError(doc.file, 0, "ObjectEvent/epcList/epc",
                         f"{code} is commissioned as a bag but already known as a "
                         f"{known.level}")
            )  # fmt: skip
        c.execute(
            "INSERT INTO agg_item (code, level, status, batch, ts) "
            "VALUES (?, 'bag', 'commissioned', ?, ?) "
            "ON CONFLICT (code) DO UPDATE SET batch = COALESCE(agg_item.batch, excluded.batch)",
            (code, batch, stamp),
        )
    for p in doc.packings:
        if p.action == "pack":
            _pack(c, doc, p, stamp)
        else:
            _unpack(c, p)
    for code in doc.decommissioned:
        c.execute(
            "UPDATE agg_item SET status = 'rejected', parent = NULL "
            "WHERE code = ? AND level = 'bag'",
            (code,),
        )


def _pack(c: sqlite3.Connection, doc: ProducerDocument, p: Packing, stamp: str) -> None:
    where = "AggregationEvent/parentID"
    known = get_item(c, p.parent)
    level = p.level or (known.level if known is not None else None) or _level_from(c, p)
    if known is None:
        c.execute(
            "INSERT INTO agg_item (code, level, status, ts) VALUES (?, ?, 'closed', ?)",
            (p.parent, level, p.ts or stamp),
        )
    elif known.level != level:
        raise _Conflict(
            DocError(doc.file, p.line, where,
                     f"{p.parent} is packed as a {level} but already known as a {known.level}")
        )  # fmt: skip
    elif known.status not in LIVE:
        c.execute("UPDATE agg_item SET status = 'closed' WHERE code = ?", (p.parent,))
    child_level = "bag" if level == "case" else "case"
    for child in p.children:
        item = get_item(c, child)
        if item is None:
            status = "commissioned" if child_level == "bag" else "closed"
            c.execute(
                "INSERT INTO agg_item (code, level, status, parent, ts) VALUES (?, ?, ?, ?, ?)",
                (child, child_level, status, p.parent, p.ts or stamp),
            )
            continue
        if item.code == p.parent or (item.level == "pallet"):
            raise _Conflict(
                DocError(doc.file, p.line, "AggregationEvent/childEPCs/epc",
                         f"{child} is a {item.level}: it cannot go into {level} {p.parent}")
            )  # fmt: skip
        if item.parent not in (None, p.parent):
            holder = get_item(c, item.parent)
            if holder is not None and holder.live:
                raise _Conflict(
                    DocError(doc.file, p.line, "AggregationEvent/childEPCs/epc",
                             f"{child} is packed into {p.parent} but is still in "
                             f"{holder.level} {holder.code} (QB/T 5279-2018 8.4: one "
                             "container at a time; is an unpacking document missing?)")
                )  # fmt: skip
        c.execute("UPDATE agg_item SET parent = ? WHERE code = ?", (p.parent, child))


def _level_from(c: sqlite3.Connection, p: Packing) -> str:
    """A container's level when the document does not say: a pallet holds cases."""
    for child in p.children:
        item = get_item(c, child)
        if item is not None and item.level == "case":
            return "pallet"
    return "case"


def _unpack(c: sqlite3.Connection, p: Packing) -> None:
    kids = p.children or children_of(c, p.parent)
    for child in kids:
        c.execute(
            "UPDATE agg_item SET parent = NULL WHERE code = ? AND parent = ?", (child, p.parent)
        )
        if p.action == "remove":
            c.execute(
                "UPDATE agg_item SET status = 'rejected' WHERE code = ? AND level = 'bag'",
                (child,),
            )
    if p.action == "unpack" and not children_of(c, p.parent):
        c.execute(
            "UPDATE agg_item SET status = 'unpacked' WHERE code = ? AND level != 'bag'",
            (p.parent,),
        )


def _expand_late(c: sqlite3.Connection, line: TraceLine) -> list[LateScan]:
    rows = c.execute(
        "SELECT s.code, s.direction, s.ref, s.party, s.device, s.ts FROM ship_scan s "
        "JOIN agg_item a ON a.code = s.code WHERE a.level != 'bag' ORDER BY s.ts"
    ).fetchall()
    out = []
    for code, direction, ref, party, device, ts in rows:
        bags = line.agg.bags_under(code)  # the same connection: sees this transaction
        dup = 0
        for bag in bags:
            seen = c.execute(
                "SELECT 1 FROM ship_scan WHERE code = ? AND direction = ?", (bag, direction)
            ).fetchone()
            if seen is not None:
                dup += 1
                continue
            c.execute(
                "INSERT INTO ship_scan VALUES (?, ?, ?, ?, ?, ?, ?)",
                (bag, direction, code, ref, party, device, ts),
            )
        c.execute("DELETE FROM ship_scan WHERE code = ? AND direction = ?", (code, direction))
        out.append(LateScan(code, direction, ref, party, ts, len(bags), dup))
    return out
