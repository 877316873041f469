"""A code's public information (table 6) from the snapshot: one query by primary key on
``codes``, the rest (its batch, product and enterprise) from a per-snapshot cache.

A published snapshot is immutable (it is replaced, never written), so what a batch row joins to
(batch → product, enterprise) is read once per snapshot generation and kept in a
:class:`SnapshotCache` (bounded: cleared when it holds :data:`CACHE_ENTRIES` groups); a lookup
then reads only the code's own row. The SELECTs are built once from
:data:`gateway.public_snapshot.TABLE6` (each field's ``table.column``), so a field added there
is looked up here without another list to keep.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from gateway.public_snapshot import TABLE6

__all__ = [
    "CACHE_ENTRIES",
    "CodeRecord",
    "EnterpriseContact",
    "Group",
    "SnapshotCache",
    "find_code",
    "find_enterprise",
]

_ALIAS = {"codes": "c", "batches": "b", "products": "p", "enterprises": "e"}
_SALES = {25, 26}  # JSON lists of {date, party_type, party}
CACHE_ENTRIES = 4096
"""Batch groups and enterprises a snapshot's cache holds at most (then it starts again)."""

_CODE_FIELDS = tuple(f for f in TABLE6 if f.column.startswith("codes."))
_GROUP_FIELDS = tuple(f for f in TABLE6 if not f.column.startswith("codes."))


def _col(f: Any) -> str:
    table, column = f.column.split(".")
    return f"{_ALIAS[table]}.{column}"


CODE_SQL = (
    f"SELECT c.state, c.state_date, c.batch, {', '.join(_col(f) for f in _CODE_FIELDS)} "
    "FROM codes c WHERE c.code = ?"
)
GROUP_SQL = (
    # ?1: the code's batch (may be NULL or absent), ?2: the code's first four characters
    f"SELECT COALESCE(b.enterprise, ?2), {', '.join(_col(f) for f in _GROUP_FIELDS)} "
    "FROM (SELECT 1) "
    "LEFT JOIN batches b ON b.batch = ?1 "
    "LEFT JOIN products p ON p.product = b.product "
    "LEFT JOIN enterprises e ON e.enterprise = COALESCE(b.enterprise, ?2)"
)
ENTERPRISE_SQL = "SELECT name, phone, website FROM enterprises WHERE enterprise = ?"


@dataclass(frozen=True, slots=True)
class EnterpriseContact:
    """Who a consumer can ask about a code of this enterprise (#8, #10, #11)."""

    enterprise: str
    name: str | None
    phone: str | None
    website: str | None


@dataclass(eq=False, slots=True)
class Group:
    """What every code of one batch shares: its enterprise and the table 6 fields of its batch,
    product and enterprise by number; ``memo`` keeps what pages and the API derive from them
    (rendered once per group and snapshot)."""

    enterprise: str
    fields: dict[int, Any]
    memo: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """A code found in the snapshot: its state and its table 6 fields by number (None: the
    snapshot has no value; #25/#26 are lists of sales entries)."""

    code: str
    state: str
    state_date: str
    enterprise: str
    fields: dict[int, Any]
    group: Group | None = field(default=None, compare=False, repr=False)


class SnapshotCache:
    """One snapshot generation's batch groups and enterprise contacts (thread-safe enough: a
    race computes an entry twice, both equal)."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self._groups: dict[tuple[str | None, str], Group] = {}
        self._contacts: dict[str, EnterpriseContact | None] = {}

    def group(self, db: sqlite3.Connection, batch: str | None, prefix: str) -> Group:
        key = (batch, prefix)
        got = self._groups.get(key)
        if got is None:
            enterprise, *values = db.execute(GROUP_SQL, (batch, prefix)).fetchone()
            got = Group(enterprise, {f.no: v for f, v in zip(_GROUP_FIELDS, values, strict=True)})
            if len(self._groups) >= self.entries:
                self._groups.clear()
            self._groups[key] = got
        return got

    def contact(self, db: sqlite3.Connection, enterprise: str) -> EnterpriseContact | None:
        try:
            return self._contacts[enterprise]
        except KeyError:
            pass
        row = db.execute(ENTERPRISE_SQL, (enterprise,)).fetchone()
        got = EnterpriseContact(enterprise, *row) if row else None
        if len(self._contacts) >= self.entries:
            self._contacts.clear()
        self._contacts[enterprise] = got
        return got


def _sales(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def find_code(
    db: sqlite3.Connection, code: str, cache: SnapshotCache | None = None
) -> CodeRecord | None:
    row = db.execute(CODE_SQL, (code,)).fetchone()
    if row is None:
        return None
    state, state_date, batch, *values = row
    group = (cache or SnapshotCache()).group(db, batch, code[:4])
    fields = dict(group.fields)
    for f, value in zip(_CODE_FIELDS, values, strict=True):
        fields[f.no] = _sales(value) if f.no in _SALES else value
    return CodeRecord(code, state, state_date, group.enterprise, fields, group)


def find_enterprise(
    db: sqlite3.Connection, enterprise: str, cache: SnapshotCache | None = None
) -> EnterpriseContact | None:
    return (cache or SnapshotCache()).contact(db, enterprise)
