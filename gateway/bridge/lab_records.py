"""Storing records from MES and LIMS (``record.*`` events, docs/records.md) in the trace store:
one ``lab_records`` row per ``(kind, record_id)`` — a record journaled twice (a crash between
the gateway's journal and its record list) is kept once, the second event noted — and the
batch's release state and lab result in ``batches`` (table 3 row 3, table 6 row 23).

Table 6 row 23 (检验结果及产品等级) is public and uploaded only for a released batch
(:data:`gateway.bridge.schema.PUBLIC_INSPECTION_SQL`): the latest release record decides
(``released`` / ``held``), the latest inspection of the batch gives the result and grade.
"""

from __future__ import annotations

import json
import sqlite3

from gateway.bridge.records import Parsed
from gateway.records.models import verdict_text

__all__ = ["lab_record"]


def lab_record(db: sqlite3.Connection, ev: Parsed, rid: int) -> None:
    d = ev.data
    kind = ev.type.split(".", 1)[1]
    record_id = str(d.get("record_id"))
    seen = db.execute(
        "SELECT rid FROM lab_records WHERE kind=? AND record_id=?", (kind, record_id)
    ).fetchone()
    if seen is not None:
        db.execute(
            "UPDATE events SET note=? WHERE rid=?",
            (f"record {kind} {record_id!r} already stored (event rid {seen[0]})", rid),
        )
        return
    db.execute(
        "INSERT INTO lab_records(rid, kind, record_id, ts, batch, lot, material, verdict, grade, "
        "decision, at, body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            rid, kind, record_id, ev.ts, d.get("batch"), d.get("lot"), d.get("material"),
            d.get("verdict"), d.get("grade"), d.get("decision"), d.get("at"),
            json.dumps(d, ensure_ascii=False, sort_keys=True),
        ),
    )  # fmt: skip
    batch = d.get("batch")
    if kind == "inspection" and isinstance(batch, str):
        db.execute(
            "UPDATE batches SET lab_result=? WHERE batch=?",
            (verdict_text(d.get("verdict"), d.get("grade")), batch),
        )
    elif kind == "release" and isinstance(batch, str):
        db.execute(
            "UPDATE batches SET release=?, released_at=? WHERE batch=?",
            (d.get("decision"), d.get("at"), batch),
        )
