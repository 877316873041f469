"""Golden cases for the traceability code parser/validator (code_cases/cases.yaml) and the
Annex A table and code index."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.codes import CodeIndex, TraceCodeRules, annex_a, check_code, enterprise_name
from gateway.tracedb import TraceDb

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "code_cases" / "cases.yaml").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_code_case(case: dict[str, Any]) -> None:
    rules = TraceCodeRules(**case.get("rules", {}))
    got = check_code(case["payload"], rules, case.get("enterprise", "8035"))
    expect = case["expect"]
    assert got.code == expect["code"]
    assert got.valid is expect["valid"]
    assert got.error == expect.get("error")
    assert got.reason == expect.get("reason")
    assert got.resolver == expect.get("resolver")
    assert got.raw == case["payload"]


def test_annex_a_has_every_row_of_table_a1() -> None:
    table = annex_a()
    assert len(table) == 139
    assert sorted(e.seq for e in table.values()) == list(range(1, 140))
    assert enterprise_name("8035") == "山东岱岳制盐有限公司"
    assert table["8035"].certificate == "SD-035" and table["8035"].province == "山东"
    assert table["9040"].province == "浙江"
    assert enterprise_name("8199") is None
    # rule A.1 holds for every row: SD- → 8, DZ- → 9, then the certificate's last 3 digits
    for e in table.values():
        assert e.code == {"SD": "8", "DZ": "9"}[e.certificate[:2]] + e.certificate[-3:]


def test_code_index_counts_sightings_per_stage_and_survives_reopening(tmp_path: Path) -> None:
    ts = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    db = TraceDb(tmp_path / "trace.db")
    index = CodeIndex(db)
    first = index.see("8035ABCDEFGH12", "bag", ts, "scan1")
    assert (first.count, first.duplicate, first.first_device) == (1, False, "scan1")
    assert not index.see("8035ABCDEFGH12", "outbound", ts, "scan9").duplicate
    db.close()
    index = CodeIndex(TraceDb(tmp_path / "trace.db"))
    again = index.see("8035ABCDEFGH12", "bag", ts, "scan2")
    assert again.duplicate and again.count == 2 and again.first_device == "scan1"
    assert again.first_ts == "2026-11-22T02:00:00.000+00:00"
