"""The aggregation tables in the line's trace store (gateway/tracedb.py).

``agg_item``: every bag, case and pallet code the line knows, with its live parent::

    level   bag | case | pallet
    status  bag: commissioned | rejected;  case, pallet: open | closed | unpacked
    parent  the live case (of a bag) or pallet (of a case); NULL when free

A case or pallet is *live* while ``open`` (short, children bound, waiting for an operator to
close it as partial or rework it) or ``closed``; ``unpacked`` frees its children (rework).
A child has at most one parent by construction (one column), and the state machine only sets it
when the parent is live, so no bag is ever in two live cases. A rejected bag has no parent: the
reject takes it out of its case (the case keeps its status and holds one bag fewer).

``agg_pending``: the slots that reached a scanner and wait for their parent's label, in order:
bag slots (a code, or NULL for a bag whose code was not read) for the case packer, case slots
for the pallet builder.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from gateway.tracedb import TraceDb

__all__ = ["Item", "Slot", "create_tables", "get_item", "get_items"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS agg_item (
    code           TEXT PRIMARY KEY,
    level          TEXT NOT NULL,
    status         TEXT NOT NULL,
    batch          TEXT,
    sku            TEXT,
    parent         TEXT,
    expected       INTEGER,
    partial_reason TEXT,
    line           TEXT,
    ts             TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS agg_item_parent ON agg_item (parent);
CREATE TABLE IF NOT EXISTS agg_pending (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    line  TEXT NOT NULL,
    level TEXT NOT NULL,
    code  TEXT,
    sku   TEXT,
    batch TEXT,
    ts    TEXT NOT NULL
);
"""

LIVE = ("open", "closed")


@dataclass(frozen=True, slots=True)
class Item:
    code: str
    level: str
    status: str
    batch: str | None
    sku: str | None
    parent: str | None
    expected: int | None
    partial_reason: str | None
    line: str | None
    ts: str

    @property
    def live(self) -> bool:
        return self.level != "bag" and self.status in LIVE


@dataclass(frozen=True, slots=True)
class Slot:
    id: int
    code: str | None
    sku: str | None
    batch: str | None
    ts: str


def create_tables(db: TraceDb) -> None:
    db.script(SCHEMA)


_COLUMNS = "code, level, status, batch, sku, parent, expected, partial_reason, line, ts"


def _item(row: sqlite3.Row | tuple[object, ...] | None) -> Item | None:
    if row is None:
        return None
    return Item(*row)  # type: ignore[arg-type]


def get_item(c: sqlite3.Connection, code: str) -> Item | None:
    return _item(c.execute(f"SELECT {_COLUMNS} FROM agg_item WHERE code = ?", (code,)).fetchone())


def get_items(c: sqlite3.Connection, codes: list[str]) -> dict[str, Item]:
    out: dict[str, Item] = {}
    for i in range(0, len(codes), 500):
        part = codes[i : i + 500]
        marks = ",".join("?" * len(part))
        for row in c.execute(f"SELECT {_COLUMNS} FROM agg_item WHERE code IN ({marks})", part):
            item = _item(row)
            assert item is not None
            out[item.code] = item
    return out


def children_of(c: sqlite3.Connection, parent: str) -> list[str]:
    rows = c.execute("SELECT code FROM agg_item WHERE parent = ? ORDER BY ts, code", (parent,))
    return [str(r[0]) for r in rows]
