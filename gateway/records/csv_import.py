"""Records from a CSV file exported by a LIMS or MES (``saltgw import``; docs/records.md).

- UTF-8, with or without a byte-order mark (Excel and most LIMS write one). The first row names
  the columns: the record's field names (gateway/records/models.py), in any order; an unknown
  column or a missing required one is an error at row 1.
- An empty cell is an absent field. ``items`` (inspection) is ``item=result`` or
  ``item=result=verdict`` separated by ``;``; ``codes`` (nonconforming) is codes separated by
  spaces, ``,`` or ``;``. A time without a UTC offset (``2026-11-22 16:00``) is in the line's
  time zone (``gateway.timezone``).
- Every error names the file, the row (the file's line number of the record; the header is
  row 1) and the column (1-based) as ``FILE:ROW:COL: error: column 'verdict': …``.
- ``record_id``: the column when present and filled, else ``csv-`` and a hash of the kind and
  the row's checked content, so the same row imported again is the same record (the gateway
  journals it once).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.records.models import MODELS, Record
from gateway.records.parse import error_parts

__all__ = ["CsvRecord", "RowError", "read_csv"]

_SPLIT_CODES = re.compile(r"[\s,;]+")
_TIME_FIELDS = ("at",)
MAX_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class RowError:
    file: str
    row: int
    col: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.row}" + (f":{self.col}" if self.col is not None else "")
        return f"{where}: error: {self.message}"


@dataclass(frozen=True, slots=True)
class CsvRecord:
    row: int
    record: Record
    record_id: str
    source: str  # csv:{file name}:{row}


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


def read_csv(
    path: Path, kind: str, tz: tzinfo, name: str | None = None
) -> tuple[list[CsvRecord], list[RowError]]:
    """The good records and every error of the file (errors sorted by row)."""
    model = MODELS[kind]
    file = name or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [], [RowError(file, 0, None, f"cannot read: {exc.strerror or exc}")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = raw[: exc.start].count(b"\n") + 1
        return [], [RowError(file, row, None, f"not UTF-8 (byte {exc.start}): save as UTF-8")]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], [RowError(file, 1, None, "empty file: the first row must name the columns")]
    except csv.Error as exc:
        return [], [RowError(file, 1, None, f"not CSV: {exc}")]
    fields = model.model_fields
    columns = [h.strip() for h in header]
    errors: list[RowError] = []
    for i, col in enumerate(columns, 1):
        if col not in fields:
            errors.append(RowError(file, 1, i, f"unknown column {col!r} (columns of {kind}: "
                                   f"{', '.join(fields)})"))  # fmt: skip
        elif columns.index(col) != i - 1:
            errors.append(RowError(file, 1, i, f"column {col!r} appears twice"))
    required = [n for n, f in fields.items() if f.is_required()]
    for n in required:
        if n not in columns:
            errors.append(RowError(file, 1, None, f"missing column {n!r} (required for {kind})"))
    if errors:
        return [], errors
    where = {c: i for i, c in enumerate(columns, 1)}
    good: list[CsvRecord] = []
    base = Path(file).name
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(file, reader.line_num, None, f"not CSV: {exc}"))
            break
        row = reader.line_num
        if not any(c.strip() for c in cells):
            continue  # blank line
        if len(good) + len(errors) >= MAX_ROWS:
            errors.append(RowError(file, row, None, f"more than {MAX_ROWS} rows: split the file"))
            break
        if len(cells) != len(columns):
            msg = f"{len(cells)} cells, the header has {len(columns)}"
            errors.append(RowError(file, row, None, msg))
            continue
        obj: dict[str, Any] = {}
        bad = False
        for col, cell in zip(columns, cells, strict=True):
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
                errors.append(RowError(file, row, where[col], f"column {col!r}: {exc}"))
                bad = True
        if bad:
            continue
        try:
            record = model.model_validate(obj)
        except ValidationError as exc:
            for loc, msg in error_parts(exc):
                col = loc.split(".", 1)[0]
                at = where.get(col)
                what = f"column {col!r}" if at is not None else "row"
                detail = f" ({loc})" if "." in loc else ""
                text_msg = f"{what}{detail}: {'empty' if msg == 'missing' else msg}"
                errors.append(RowError(file, row, at, text_msg))
            continue
        rid = record.record_id or record_hash(kind, record)
        good.append(CsvRecord(row, record, rid, f"csv:{base}:{row}"))
    return good, errors
