"""Hostile imports (``saltgw import``): any CSV bytes and any workbook cells give records or
errors naming a row of the file, never an exception, and a record only from a row that holds
every required field."""

from __future__ import annotations

import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import openpyxl
from hypothesis import given
from hypothesis import strategies as st

from gateway.records.file_import import read_records
from gateway.records.models import KINDS, MODELS
from tests.fuzz.hypothesis_settings import fuzz_settings

TZ = timezone(timedelta(hours=8))

_fields = sorted({name for model in MODELS.values() for name in model.model_fields})
_cell = st.one_of(
    st.none(),
    st.sampled_from(_fields),
    st.text(max_size=30),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.dates(min_value=date(1900, 3, 1), max_value=date(2100, 1, 1)),
    st.datetimes(min_value=datetime(1900, 3, 1), max_value=datetime(2100, 1, 1)),
)
_illegal = str.maketrans({c: " " for c in map(chr, range(32)) if c not in "\t\n\r"})


def _check(good: list, errors: list, rows: int) -> None:  # type: ignore[type-arg]
    for err in errors:
        assert 0 <= err.row <= rows + 1 and str(err).count(": error: ") >= 1, err
    seen = [g.row for g in good]
    assert seen == sorted(set(seen))


@fuzz_settings(150)
@given(st.sampled_from(KINDS), st.binary(max_size=600))
def test_any_csv_bytes_give_records_or_located_errors(kind: str, raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.csv"
        path.write_bytes(raw)
        good, errors = read_records(path, kind, TZ)
    _check(good, errors, raw.count(b"\n") + raw.count(b"\r"))


@fuzz_settings(60)
@given(st.sampled_from(KINDS), st.lists(st.lists(_cell, max_size=8), max_size=6))
def test_any_workbook_cells_give_records_or_located_errors(
    kind: str, rows: list[list[object]]
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:  # openpyxl refuses control characters in cells: Excel cannot hold them
        sheet.append([v.translate(_illegal) if isinstance(v, str) else v for v in row])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.xlsx"
        book.save(path)
        good, errors = read_records(path, kind, TZ)
    _check(good, errors, len(rows))
    for rec in good:
        assert MODELS[kind].model_validate(rec.record.model_dump()) == rec.record
