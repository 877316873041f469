"""The rows of a file a LIMS or MES exported: CSV (UTF-8) or an Excel workbook (.xlsx, the
``xlsx`` extra: openpyxl), as text cells with the row numbers the file itself shows.

- CSV: UTF-8 with or without a byte-order mark; row numbers are the file's line numbers (a
  quoted cell may span lines: the row is where the record ends, as ``csv`` counts).
- XLSX: the first sheet, or the one named; cell values as Excel stores them (a formula's last
  computed value, a date or date-and-time cell as ``YYYY-MM-DDTHH:MM:SS`` without an offset, a
  whole number without ``.0``); row numbers and columns are the sheet's
  (row 3, column 6 is cell F3).

The header is the first row that names one of the expected columns (``names``), so title rows
above it (a report's heading, an export date) are skipped; where no row among the first
:data:`HEADER_SEARCH_ROWS` does, it is the first row that is not empty (and its unknown columns
are what the caller reports).

Whatever cannot be read is a :class:`RowError` naming the file, and the row where known.
"""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from collections.abc import Collection, Generator, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

__all__ = ["XLSX_SUFFIXES", "RowError", "Table", "TableError", "column_letter", "open_table"]

XLSX_SUFFIXES = (".xlsx", ".xlsm")
MAX_XLSX_BYTES = 50 * 1024 * 1024  # a LIMS export of 100,000 rows is a few MB
HEADER_SEARCH_ROWS = 20


@dataclass(frozen=True, slots=True)
class RowError:
    """An error at a row of a file (row 0: the whole file), and a column where known."""

    file: str
    row: int
    col: int | None
    message: str

    def __str__(self) -> str:
        if not self.row:  # the whole file
            return f"{self.file}: error: {self.message}"
        where = f"{self.file}:{self.row}" + (f":{self.col}" if self.col is not None else "")
        return f"{where}: error: {self.message}"


class TableError(Exception):
    """The file cannot be read as a table; ``error`` says where and why."""

    def __init__(self, error: RowError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(slots=True)
class Table:
    """A file's header (row ``header_row``) and its following rows, read lazily; reading a row
    may raise :class:`TableError` (a CSV quoting error half-way)."""

    kind: str  # csv | xlsx
    label: str  # how errors name it: the file's name, and [sheet] for a workbook
    header: list[str]
    header_row: int
    rows: Iterator[tuple[int, list[str]]]
    sheet: str | None = None  # the workbook's sheet read


def column_letter(col: int) -> str:
    """Excel's name of a 1-based column: 1 -> A, 27 -> AA."""
    name = ""
    while col > 0:
        col, rest = divmod(col - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def open_table(path: Path, name: str, names: Collection[str], sheet: str | None = None) -> Table:
    """The table in ``path`` (CSV, or XLSX by its suffix) whose header names some of ``names``;
    ``name`` is how errors call the file."""
    if path.suffix.lower() in XLSX_SUFFIXES:
        return _xlsx(path, name, names, sheet)
    if path.suffix.lower() == ".xls":
        raise TableError(RowError(name, 0, None, "an Excel 97-2003 workbook (.xls) is not read: "
                                  "save it as .xlsx or as CSV UTF-8"))  # fmt: skip
    if sheet is not None:
        raise TableError(RowError(name, 0, None, "--sheet is for .xlsx workbooks only"))
    return _csv(path, name, names)


def _find_header(
    rows: Iterator[tuple[int, list[str]]], names: Collection[str]
) -> tuple[int, list[str], list[tuple[int, list[str]]]] | None:
    """(row, header, rows read past it to give back) or None for a table without a row."""
    seen: list[tuple[int, list[str]]] = []
    for number, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        seen.append((number, cells))
        if any(c.strip() in names for c in cells):
            return number, cells, []
        if len(seen) >= HEADER_SEARCH_ROWS:
            break
    if not seen:
        return None
    (number, cells), rest = seen[0], seen[1:]
    return number, cells, rest


def _csv(path: Path, name: str, names: Collection[str]) -> Table:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TableError(RowError(name, 0, None, f"cannot read: {exc.strerror or exc}")) from None
    if raw.startswith(b"PK\x03\x04"):
        raise TableError(RowError(name, 0, None, "a zip file (an .xlsx workbook?): name it "
                                  ".xlsx, or save the sheet as CSV UTF-8"))  # fmt: skip
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = raw[: exc.start].count(b"\n") + 1
        msg = f"not UTF-8 (byte {exc.start}): save as UTF-8"
        raise TableError(RowError(name, row, None, msg)) from None
    reader = csv.reader(io.StringIO(text, newline=""))

    def rows() -> Iterator[tuple[int, list[str]]]:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise TableError(RowError(name, reader.line_num, None, f"not CSV: {exc}")) from None
            yield reader.line_num, cells

    lines = rows()
    found = _find_header(lines, names)
    if found is None:
        raise TableError(RowError(name, 1, None, "empty file: a row must name the columns"))
    number, header, rest = found
    return Table("csv", name, header, number, itertools.chain(rest, lines))


def _xlsx(path: Path, name: str, names: Collection[str], sheet: str | None) -> Table:
    try:
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException
    except ImportError:
        msg = "reading .xlsx needs the xlsx extra: pip install 'saltgw[xlsx]' (or save the sheet "
        raise TableError(RowError(name, 0, None, msg + "as CSV UTF-8)")) from None
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TableError(RowError(name, 0, None, f"cannot read: {exc.strerror or exc}")) from None
    if size > MAX_XLSX_BYTES:
        raise TableError(RowError(name, 0, None, f"{size} bytes: more than "
                                  f"{MAX_XLSX_BYTES // 2**20} MB, split the file"))  # fmt: skip
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        msg = f"not an .xlsx workbook Excel can open ({type(exc).__name__}: {exc})"
        raise TableError(RowError(name, 0, None, msg)) from None
    try:
        sheets = book.sheetnames
        if sheet is not None and sheet not in sheets:
            raise TableError(RowError(name, 0, None, f"no sheet {sheet!r} (sheets: "
                                      f"{', '.join(sheets)})"))  # fmt: skip
        ws = book[sheet] if sheet is not None else book.worksheets[0]
        label = f"{name}[{ws.title}]"
        raw_rows = ws.iter_rows(values_only=True)
    except TableError:
        book.close()
        raise
    except Exception as exc:  # a damaged sheet: openpyxl's errors are not one class
        book.close()
        raise TableError(RowError(name, 0, None, f"cannot read the workbook: "
                                  f"{type(exc).__name__}: {exc}")) from None  # fmt: skip

    def rows() -> Generator[tuple[int, list[str]], None, None]:
        try:
            for number, values in enumerate(raw_rows, start=1):
                yield number, _trim([_cell(v) for v in values])
        except TableError:
            raise
        except Exception as exc:
            raise TableError(RowError(label, 0, None, f"cannot read the sheet: "
                                      f"{type(exc).__name__}: {exc}")) from None  # fmt: skip
        finally:
            book.close()

    cells = rows()
    try:
        found = _find_header(cells, names)
    except TableError:
        cells.close()
        raise
    if found is None:
        cells.close()
        raise TableError(RowError(label, 1, None, "empty sheet: a row must name the columns"))
    number, header, rest = found
    return Table("xlsx", label, header, number, itertools.chain(rest, cells), ws.title)


def _trim(cells: list[str]) -> list[str]:
    """Without the empty cells at the end of a row (a sheet's rows are as wide as its widest)."""
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | time):  # a date cell is a datetime at midnight:
        return value.isoformat()  # date fields take 2026-11-22T00:00:00 as that day
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)
