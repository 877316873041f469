"""A code's public information (table 6) from the snapshot: one query by primary key.

The SELECT is built once from :data:`gateway.public_snapshot.TABLE6` (each field's
``table.column``), so a field added there is looked up here without another list to keep.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from gateway.public_snapshot import TABLE6

__all__ = ["CodeRecord", "EnterpriseContact", "find_code", "find_enterprise"]

_ALIAS = {"codes": "c", "batches": "b", "products": "p", "enterprises": "e"}
_SALES = {25, 26}  # JSON lists of {date, party_type, party}

_COLUMNS = ", ".join(f"{_ALIAS[f.column.split('.')[0]]}.{f.column.split('.')[1]}" for f in TABLE6)
CODE_SQL = (
    f"SELECT c.state, c.state_date, COALESCE(b.enterprise, substr(c.code, 1, 4)), {_COLUMNS} "
    "FROM codes c "
    "LEFT JOIN batches b ON b.batch = c.batch "
    "LEFT JOIN products p ON p.product = b.product "
    "LEFT JOIN enterprises e ON e.enterprise = COALESCE(b.enterprise, substr(c.code, 1, 4)) "
    "WHERE c.code = ?"
)
ENTERPRISE_SQL = "SELECT name, phone, website FROM enterprises WHERE enterprise = ?"


@dataclass(frozen=True, slots=True)
class EnterpriseContact:
    """Who a consumer can ask about a code of this enterprise (#8, #10, #11)."""

    enterprise: str
    name: str | None
    phone: str | None
    website: str | None


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """A code found in the snapshot: its state and its table 6 fields by number (None: the
    snapshot has no value; #25/#26 are lists of sales entries)."""

    code: str
    state: str
    state_date: str
    enterprise: str
    fields: dict[int, Any]


def _sales(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def find_code(db: sqlite3.Connection, code: str) -> CodeRecord | None:
    row = db.execute(CODE_SQL, (code,)).fetchone()
    if row is None:
        return None
    state, state_date, enterprise, *values = row
    fields: dict[int, Any] = {}
    for f, value in zip(TABLE6, values, strict=True):
        fields[f.no] = _sales(value) if f.no in _SALES else value
    return CodeRecord(code, state, state_date, enterprise, fields)


def find_enterprise(db: sqlite3.Connection, enterprise: str) -> EnterpriseContact | None:
    row = db.execute(ENTERPRISE_SQL, (enterprise,)).fetchone()
    return EnterpriseContact(enterprise, *row) if row else None
