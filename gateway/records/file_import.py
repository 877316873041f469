"""Records from a file exported by a LIMS or MES: CSV or XLSX (``saltgw import``;
docs/records.md; the files themselves are read by ``tables.py``).

- The header row names the columns: the record's field names (gateway/records/models.py), in
  any order; an unknown column or a missing required one is an error at the header's row.
  Title rows above the header (a report's heading) are skipped (``tables.py``).
- An empty cell is an absent field. ``items`` (inspection) is ``item=result`` or
  ``item=result=verdict`` separated by ``;``; ``codes`` (nonconforming) is codes separated by
  spaces, ``,`` or ``;``. A time without a UTC offset (``2026-11-22 16:00``, or an Excel
  date-and-time cell) is in the line's time zone (``gateway.timezone``).
- Every error names the file, the row (the file's line number of the record in a CSV, the
  sheet's row in a workbook) and the column (1-based; its letter too in a workbook) as
  ``FILE:ROW:COL: error: column 'verdict': …`` (``FILE[SHEET]:ROW:COL`` for a workbook).
- ``record_id``: the column when present and filled, else ``csv-`` and a hash of the kind and
  the row's checked content, so the same row imported again is the same record (the gateway
  journals it once), whether it comes from the CSV or the workbook.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.records.models import MODELS, Record
from gateway.records.parse import error_parts
from gateway.records.tables import RowError, TableError, column_letter, open_table

__all__ = ["FileRecord", "RowError", "read_records"]

_SPLIT_CODES = re.compile(r"[\s,;]+")
_TIME_FIELDS = ("at",)
MAX_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class FileRecord:
    row: int
    record: Record
    record_id: str
    source: str  # csv:{file name}:{row} or xlsx:{file name}[{sheet}]:{row}


def _items(text: str) -> list[dict[str, str]]:
    out = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        bits = [b.strip() for b in part.split("=")]
        if len(bits) not in (2, 3) or not bits[0] or not bits[1]:
            raise ValueError(f"item {part[:40]!r} is not 'item=result' or 'item=result=verdict'")
        item: dict[str, str] = {"item": bits[0], "result": bits[1]}
        if len(bits) == 3:
            item["verdict"] = bits[2]
        out.append(item)
    return out


def _with_tz(text: str, tz: tzinfo) -> str:
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        return text  # the model says what is wrong
    return (t if t.tzinfo is not None else t.replace(tzinfo=tz)).isoformat()


def record_hash(kind: str, record: Record) -> str:
    body = record.model_dump(mode="json", exclude={"record_id"})
    text = json.dumps([kind, body], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "csv-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def read_records(
    path: Path, kind: str, tz: tzinfo, name: str | None = None, sheet: str | None = None
) -> tuple[list[FileRecord], list[RowError]]:
    """The good records and every error of the file (errors in row order)."""
    model = MODELS[kind]
    fields = model.model_fields
    try:
        table = open_table(path, name or str(path), fields.keys(), sheet)
    except TableError as exc:
        return [], [exc.error]
    xlsx, file = table.kind == "xlsx", table.label
    columns = [h.strip() for h in table.header]
    head = table.header_row
    errors: list[RowError] = []
    for i, col in enumerate(columns, 1):
        if not col:
            errors.append(RowError(file, head, i, "a column without a name"))
        elif col not in fields:
            errors.append(RowError(file, head, i, f"unknown column {col!r} (columns of {kind}: "
                                   f"{', '.join(fields)})"))  # fmt: skip
        elif columns.index(col) != i - 1:
            errors.append(RowError(file, head, i, f"column {col!r} appears twice"))
    required = [n for n, f in fields.items() if f.is_required()]
    for n in required:
        if n not in columns:
            errors.append(RowError(file, head, None, f"missing column {n!r} (required for {kind})"))
    if errors:
        return [], errors
    where = {c: i for i, c in enumerate(columns, 1)}
    good: list[FileRecord] = []
    base = Path(name or str(path)).name
    rows = iter(table.rows)
    while True:
        try:
            row, cells = next(rows)
        except StopIteration:
            break
        except TableError as exc:
            errors.append(RowError(file, exc.error.row, None, exc.error.message))
            break
        if not any(c.strip() for c in cells):
            continue  # blank line
        if len(good) + len(errors) >= MAX_ROWS:
            errors.append(RowError(file, row, None, f"more than {MAX_ROWS} rows: split the file"))
            break
        if xlsx and len(cells) > len(columns):  # a sheet's row ends at its last filled cell
            last, past = column_letter(len(columns)), column_letter(len(cells))
            msg = f"cell {past}{row} is filled, right of the header's last column {last}"
            errors.append(RowError(file, row, len(cells), msg))
            continue
        if not xlsx and len(cells) != len(columns):
            msg = f"{len(cells)} cells, the header has {len(columns)}"
            errors.append(RowError(file, row, None, msg))
            continue
        obj: dict[str, Any] = {}
        bad = False
        for col, cell in zip(columns, cells, strict=False):
            value = cell.strip()
            if not value:
                continue
            try:
                if col == "items":
                    obj[col] = _items(value)
                elif col == "codes":
                    obj[col] = [c for c in _SPLIT_CODES.split(value) if c]
                elif col in _TIME_FIELDS:
                    obj[col] = _with_tz(value, tz)
                else:
                    obj[col] = value
            except ValueError as exc:
                errors.append(RowError(file, row, where[col], _column(col, where[col], row, xlsx)
                                       + f": {exc}"))  # fmt: skip
                bad = True
        if bad:
            continue
        try:
            record = model.model_validate(obj)
        except ValidationError as exc:
            for loc, msg in error_parts(exc):
                col = loc.split(".", 1)[0]
                at = where.get(col)
                what = _column(col, at, row, xlsx) if at is not None else "row"
                detail = f" ({loc})" if "." in loc else ""
                text_msg = f"{what}{detail}: {'empty' if msg == 'missing' else msg}"
                errors.append(RowError(file, row, at, text_msg))
            continue
        rid = record.record_id or record_hash(kind, record)
        source = f"xlsx:{base}[{table.sheet}]:{row}" if xlsx else f"csv:{base}:{row}"
        good.append(FileRecord(row, record, rid, source))
    return good, errors


def _column(col: str, at: int | None, row: int, xlsx: bool) -> str:
    """How an error names a column: ``column 'verdict'``, with its cell in a workbook."""
    if xlsx and at is not None:
        return f"column {col!r} (cell {column_letter(at)}{row})"
    return f"column {col!r}"
