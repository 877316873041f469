"""Storing records from MES and LIMS (``record.*`` events, docs/records.md) in the trace store:
one ``lab_records`` row per ``(kind, record_id)`` — a record journaled twice (a crash between
the gateway's journal and its record list) is kept once, the second event noted — and the
batch's release state and lab result in ``batches`` (table 3 row 3, table 6 row 23).

Table 6 row 23 (检验结果及产品等级) is public and uploaded only for a released batch
(:data:`gateway.bridge.schema.PUBLIC_INSPECTION_SQL`): the latest release record decides
(``released`` / ``held``), the latest inspection of the batch gives the result and grade.

Records are uploaded (issue 18: ``up`` = 1) in both profiles, each one record long (``weight``
1, plus the codes a non-conforming record names). The bridge checks a record's data with the
kind's pydantic model (gateway/records/models.py, the gateway checked it with the same): one that
breaks it is quarantined with the reason, so the documents never carry half a record. A record
stored again (same kind and record id) is kept with a note and not uploaded again.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from gateway.bridge.db import Db
from gateway.bridge.records import BadEvent, Parsed
from gateway.records.models import MODELS, names_codes, verdict_text

__all__ = ["check_lab_record", "duplicate_note", "lab_record"]

ADDED = ("issuer", "source")  # what the gateway adds to a record's fields (docs/records.md)


def check_lab_record(ev: Parsed) -> None:
    """Check a ``record.*`` event's data with its kind's model and mark it uploadable; other
    types are left alone. Raises :class:`BadEvent` naming the field."""
    if ev.group != "record":
        return
    kind = ev.type.split(".", 1)[1]
    model = MODELS.get(kind)
    if model is None:
        return
    fields = {k: v for k, v in ev.data.items() if k not in ADDED}
    where = f"{ev.type}: data"
    if not isinstance(fields.get("record_id"), str):
        raise BadEvent(f"{where}.record_id must be a non-empty string; got "
                       f"{fields.get('record_id')!r}"[:300])  # fmt: skip
    try:
        model.model_validate(fields)
    except ValidationError as exc:
        errs = [
            f"{where}.{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else
            f"{where}: {e['msg']}"
            for e in exc.errors()[:5]
        ]  # fmt: skip
        raise BadEvent("; ".join(errs)[:800]) from None
    codes = ev.data.get("codes") if names_codes(kind) else None
    ev.up, ev.weight = True, 1 + (len(codes) if isinstance(codes, list) else 0)


def duplicate_note(db: Db, ev: Parsed) -> str | None:
    """The note of a record whose kind and record id are already stored (not uploaded again),
    else None."""
    kind = ev.type.split(".", 1)[1]
    record_id = str(ev.data.get("record_id"))
    seen = db.execute(
        "SELECT rid FROM lab_records WHERE kind=? AND record_id=?", (kind, record_id)
    ).fetchone()
    if seen is None:
        return None
    return f"record {kind} {record_id!r} already stored (event rid {seen[0]}); not uploaded again"


def lab_record(db: Db, ev: Parsed, rid: int) -> None:
    """Store a record that is not a duplicate (:func:`duplicate_note` said None)."""
    d = ev.data
    kind = ev.type.split(".", 1)[1]
    record_id = str(d.get("record_id"))
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
