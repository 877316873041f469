"""Records from MES and LIMS (issue 18): the models, their event schemas, the MQTT message
check and the CSV reader's errors by file, row and column. No network, no clock."""

from __future__ import annotations

import json
import typing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gateway.command_auth import RecordKind
from gateway.event_schemas import validate_event
from gateway.event_schemas.compiled import check_event
from gateway.records.file_import import read_records
from gateway.records.models import KINDS, MODELS
from gateway.records.parse import RecordRefused, parse_record
from gateway.records.router import record_draft

TZ = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 22, 15, 0, tzinfo=TZ)

MINIMAL: dict[str, dict[str, Any]] = {
    "return": {"codes": ["8035ABCDEF123456"], "party": "泰安市盐业公司", "reason": "包装破损",
               "disposition": "destroy", "by": "吴", "at": "2026-12-05T10:00:00+08:00"},
    "material_receipt": {"material": "原盐", "supplier": "某盐矿", "lot": "L-1", "quantity": 30,
                         "unit": "t", "received": "2026-11-20", "verdict": "合格"},
    "inspection": {"sample": "S-1", "lot": "L-1", "sampled": "2026-11-21", "sampler": "李",
                   "method": "GB/T 5462", "items": [{"item": "氯化钠", "result": "97.2 g/100g"}],
                   "verdict": "pass", "inspector": "赵", "reviewer": "钱", "approver": "孙"},
    "release": {"batch": "B1", "decision": "released", "by": "周",
                "at": "2026-11-22T16:00:00+08:00"},
    "nonconforming": {"batch": "B1", "reason": "封口不良", "disposition": "destroy", "by": "吴",
                      "at": "2026-11-22T17:00:00+08:00"},
}  # fmt: skip


def test_the_grant_literal_lists_every_record_kind() -> None:
    assert sorted(typing.get_args(RecordKind)) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_a_minimal_record_makes_an_event_its_schema_accepts(kind: str) -> None:
    """Optional fields are null in the event (every item's verdict too): the bridge must not
    quarantine what the gateway accepted."""
    record = MODELS[kind].model_validate(MINIMAL[kind])
    d = record_draft(kind, record, "R-1", None, "mqtt", NOW)
    ev = {"id": "0190b8a0-0000-7000-8000-000000000001", "gateway": "gw-1", "seq": 1,
          "type": d.type, "ts": NOW.isoformat(timespec="milliseconds"), "enterprise": "8035",
          "site": "s", "line": "L1", "device": d.device, "batch": d.batch,
          "data": d.data}  # fmt: skip
    assert check_event(ev) == ([], True)
    validate_event(json.loads(json.dumps(ev)), strict=True)
    assert d.batch == MINIMAL[kind].get("batch")  # never the line's running batch


def test_verdicts_in_chinese_and_the_rules_between_fields() -> None:
    r = MODELS["material_receipt"].model_validate(MINIMAL["material_receipt"])
    assert r.verdict == "fail" or r.verdict == "pass"  # type: ignore[attr-defined]
    assert r.verdict == "pass"  # type: ignore[attr-defined]
    both = {**MINIMAL["inspection"], "batch": "B1"}
    with pytest.raises(ValueError, match="exactly one of batch"):
        MODELS["inspection"].model_validate(both)
    with pytest.raises(ValueError, match="held batch needs a reason"):
        MODELS["release"].model_validate({**MINIMAL["release"], "decision": "held"})
    with pytest.raises(ValueError, match="no UTC offset"):
        MODELS["release"].model_validate({**MINIMAL["release"], "at": "2026-11-22T16:00:00"})


def test_a_message_is_refused_naming_the_field() -> None:
    ok = json.dumps({"id": "m1", **MINIMAL["release"]}).encode()
    obj, rec = parse_record("release", ok)
    assert obj["id"] == "m1" and rec.batch_of() == "B1"
    cases = {
        b"[1]": "must be a JSON object",
        b"{": "payload is not JSON",
        json.dumps(MINIMAL["release"]).encode(): "field 'id'",
        json.dumps({"id": "m", **MINIMAL["release"], "decison": "x"}).encode():
            "unknown field 'decison'",
        json.dumps({"id": "m", **MINIMAL["release"], "decision": "ok"}).encode():
            "field 'decision': Input should be 'released' or 'held'",
        json.dumps({"id": "m", **{k: v for k, v in MINIMAL["release"].items() if k != "by"}})
        .encode(): "release: missing field 'by'",
    }  # fmt: skip
    for payload, reason in cases.items():
        with pytest.raises(RecordRefused, match=reason.replace("(", r"\(")):
            parse_record("release", payload)
    with pytest.raises(RecordRefused, match="unknown record kind 'recipe'"):
        parse_record("recipe", ok)


def _csv(tmp: Path, text: str, bom: bool = False, name: str = "lab.csv") -> Path:
    p = tmp / name
    p.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return p


HEAD = "sample,batch,sampled,sampler,method,items,verdict,grade,inspector,reviewer,approver\n"
GOOD = "S-1,B1,2026-11-22,李,GB 2721,碘含量=25 mg/kg;氯化钠=99.1 g/100g=合格,合格,一级,赵,钱,孙\n"


def test_csv_with_a_bom_reads_and_ids_are_stable_across_files(tmp_path: Path) -> None:
    a, errors = read_records(_csv(tmp_path, HEAD + GOOD + "\n", bom=True), "inspection", TZ)
    assert errors == [] and len(a) == 1
    rec = a[0].record
    assert rec.items[1].verdict == "pass" and rec.grade == "一级"  # type: ignore[attr-defined]
    b, _ = read_records(_csv(tmp_path, HEAD + GOOD, name="again.csv"), "inspection", TZ)
    assert a[0].record_id == b[0].record_id and a[0].record_id.startswith("csv-")
    assert (a[0].source, b[0].source) == ("csv:lab.csv:2", "csv:again.csv:2")
    with_id, _ = read_records(
        _csv(tmp_path, "record_id," + HEAD + "LIMS-9," + GOOD), "inspection", TZ
    )
    assert with_id[0].record_id == "LIMS-9"


def test_csv_errors_name_file_row_and_column(tmp_path: Path) -> None:
    bad = (
        HEAD + GOOD
        + "S-2,B2,2026-11-2x,李,GB 2721,碘含量=25,maybe,,赵,钱,孙\n"  # row 3: cols 3 and 7
        + "S-3,,2026-11-22,李,GB 2721,碘含量=25,pass,,赵,钱,孙\n"  # row 4: neither batch nor lot
        + "S-4,B4,2026-11-22,李,GB 2721,碘含量,pass,,赵,钱,孙\n"  # row 5: col 6
        + "S-5,B5\n"  # row 6: short
    )  # fmt: skip
    path = _csv(tmp_path, bad)
    good, errors = read_records(path, "inspection", TZ)
    assert [g.row for g in good] == [2]
    lines = [str(e) for e in errors]
    assert lines[0].startswith(f"{path}:3:3: error: column 'sampled': ")
    assert lines[1] == f"{path}:3:7: error: column 'verdict': Input should be 'pass' or 'fail'"
    assert lines[2] == (f"{path}:4: error: row: give exactly one of batch (a product batch) and "
                        "lot (a material lot)")  # fmt: skip
    assert lines[3].startswith(f"{path}:5:6: error: column 'items': item '碘含量' is not")
    assert lines[4] == f"{path}:6: error: 2 cells, the header has 11"
    assert len(lines) == 5


def test_csv_header_errors_and_times_in_the_lines_zone(tmp_path: Path) -> None:
    _, errors = read_records(_csv(tmp_path, "batch,decision,by,when\nB1,released,周,x\n"),
                         "release", TZ)  # fmt: skip
    text = [str(e) for e in errors]
    assert text[0].endswith(
        ":1:4: error: unknown column 'when' (columns of release: record_id, batch, decision, by, "
        "at, sample, retained_sample, reason)"
    )
    assert text[1].endswith(":1: error: missing column 'at' (required for release)")
    good, errors = read_records(
        _csv(tmp_path, "batch,decision,by,at\nB1,released,周,2026-11-22 16:00\n"), "release", TZ
    )
    assert errors == [] and good[0].record.at == "2026-11-22T16:00:00+08:00"  # type: ignore[attr-defined]
    p = tmp_path / "latin1.csv"
    p.write_bytes("batch,decision,by,at\nB1,released,Jos\xe9,x\n".encode("latin-1"))
    _, errors = read_records(p, "release", TZ)
    assert str(errors[0]) == f"{p}:2: error: not UTF-8 (byte 36): save as UTF-8"
