"""Records from Excel workbooks (issue 18: "CSV/XLSX files exported by the systems plants use"):
real .xlsx files written with openpyxl, read by ``saltgw import``'s reader; errors name the
file, the sheet, the row and the column (and its cell). No network, no clock."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from gateway.records.file_import import read_records
from gateway.records.tables import column_letter
from tests.support.extras import run_blocked

TZ = timezone(timedelta(hours=8))
HEAD = ["sample", "batch", "sampled", "sampler", "method", "items", "verdict", "grade",
        "inspector", "reviewer", "approver"]  # fmt: skip
ROW = ["S-1", "B1", date(2026, 11, 22), "李", "GB 2721", "碘含量=25 mg/kg;氯化钠=99.1 g/100g=合格",
       "合格", "一级", "赵", "钱", "孙"]  # fmt: skip


def _book(path: Path, rows: list[list[Any]], title: str = "检验", at: str = "A1") -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    first = sheet[at].row
    for i, row in enumerate(rows):
        for j, value in enumerate(row, start=1):
            sheet.cell(row=first + i, column=j, value=value)
    book.create_sheet("说明").append(["导出说明"])
    book.save(path)
    return path


def test_column_letters() -> None:
    assert [column_letter(n) for n in (1, 6, 26, 27, 52, 703)] == ["A", "F", "Z", "AA", "AZ", "AAA"]


def test_a_workbook_reads_like_the_same_csv_and_gives_the_same_record_ids(tmp_path: Path) -> None:
    book = _book(tmp_path / "lab.xlsx", [["检验报告 2026-11"], [], HEAD, ROW], at="A2")
    csv = tmp_path / "lab.csv"
    csv.write_text(",".join(HEAD) + "\n" + ",".join(str(c) for c in ROW) + "\n")
    from_book, errors = read_records(book, "inspection", TZ)
    from_csv, csv_errors = read_records(csv, "inspection", TZ)
    assert errors == [] and csv_errors == []
    (rec,) = from_book
    assert rec.row == 5  # the sheet's own row: a title in row 2, row 3 empty, the header row 4
    assert rec.source == "xlsx:lab.xlsx[检验]:5"
    assert rec.record.sampled == date(2026, 11, 22)  # type: ignore[attr-defined]
    assert rec.record.items[1].verdict == "pass"  # type: ignore[attr-defined]
    assert rec.record_id == from_csv[0].record_id  # one record, whichever file brings it


def test_excel_cells_become_fields_a_time_in_the_lines_zone(tmp_path: Path) -> None:
    head = ["material", "supplier", "lot", "quantity", "unit", "received", "verdict"]
    rows = [head, ["原盐", "某盐矿", 20261120, 30.0, "t", datetime(2026, 11, 20), "pass"]]
    (rec,), errors = read_records(_book(tmp_path / "r.xlsx", rows), "material_receipt", TZ)
    assert errors == []
    assert rec.record.lot == "20261120" and rec.record.quantity == 30  # type: ignore[attr-defined]
    rows = [["batch", "decision", "by", "at"], ["B1", "released", "周", datetime(2026, 11, 22, 16)]]
    (rel,), errors = read_records(_book(tmp_path / "rel.xlsx", rows), "release", TZ)
    assert errors == [] and rel.record.at == "2026-11-22T16:00:00+08:00"  # type: ignore[attr-defined]


def test_errors_name_the_sheet_row_column_and_cell(tmp_path: Path) -> None:
    bad_verdict = [*ROW[:6], "maybe", *ROW[7:]]
    no_batch = [*ROW[:1], None, *ROW[2:]]
    wide = [*ROW, None, "extra"]
    bad_items = [*ROW[:5], "碘含量", *ROW[6:]]
    book = _book(tmp_path / "lab.xlsx", [HEAD, ROW, bad_verdict, no_batch, wide, bad_items])
    good, errors = read_records(book, "inspection", TZ, name="lab.xlsx")
    assert [g.row for g in good] == [2]
    assert [str(e) for e in errors] == [
        "lab.xlsx[检验]:3:7: error: column 'verdict' (cell G3): Input should be 'pass' or 'fail'",
        "lab.xlsx[检验]:4: error: row: give exactly one of batch (a product batch) and lot (a "
        "material lot)",
        "lab.xlsx[检验]:5:13: error: cell M5 is filled, right of the header's last column K",
        "lab.xlsx[检验]:6:6: error: column 'items' (cell F6): item '碘含量' is not 'item=result' "
        "or 'item=result=verdict'",
    ]


def test_header_errors_and_the_sheet_chosen(tmp_path: Path) -> None:
    book = _book(tmp_path / "rel.xlsx", [["batch", "decision", "by", "when"], ["B1", "x", "y"]])
    _, errors = read_records(book, "release", TZ, name="rel.xlsx")
    assert [str(e) for e in errors] == [
        "rel.xlsx[检验]:1:4: error: unknown column 'when' (columns of release: record_id, batch, "
        "decision, by, at, sample, retained_sample, reason)",
        "rel.xlsx[检验]:1: error: missing column 'at' (required for release)",
    ]
    _, errors = read_records(book, "release", TZ, name="rel.xlsx", sheet="说明")
    assert str(errors[0]).startswith("rel.xlsx[说明]:1:1: error: unknown column '导出说明'")
    _, errors = read_records(book, "release", TZ, name="rel.xlsx", sheet="Sheet9")
    assert [str(e) for e in errors] == ["rel.xlsx: error: no sheet 'Sheet9' (sheets: 检验, 说明)"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("lab.xlsx", b"batch,decision\n", "not an .xlsx workbook Excel can open (BadZipFile"),
        ("lab.xls", b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls) is not read"),
        ("lab.csv", b"PK\x03\x04rest", "a zip file (an .xlsx workbook?)"),
    ],
)
def test_files_that_are_not_what_they_say(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    good, errors = read_records(path, "release", TZ, name=name)
    assert good == [] and len(errors) == 1
    assert str(errors[0]).startswith(f"{name}: error: {message}"), errors[0]


def test_a_workbook_without_the_xlsx_extra_says_how_to_read_it(tmp_path: Path) -> None:
    book = _book(tmp_path / "rel.xlsx", [["batch", "decision", "by", "at"]])
    cfg = tmp_path / "line.yaml"
    cfg.write_text(
        "gateway: {id: gw-x, enterprise: '8035', site: s, line: L1}\n"
        f"journal: {{path: {tmp_path / 'j.db'}}}\n"
        "mqtt: {url: 'mqtt://127.0.0.1:1'}\n"
        "commands: {mode: open}\n"
    )
    done = run_blocked(tmp_path, "import", str(cfg), "release", str(book), "--check",
                       blocked=["openpyxl"])  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "needs the xlsx extra: pip install 'saltgw[xlsx]'" in done.stderr, done.stderr
