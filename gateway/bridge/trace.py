"""Trace and recall questions answered from the trace store (QB/T 5279-2018 5.1 追溯管理 and
召回管理: by code or by batch, its production, CCP and outbound records).

- :func:`trace_code`: a code's batch and product, case and pallet (now), commissioning, the
  document that carried it, the CCP records of its batch and its outbound records (of the code
  itself or of the case or pallet holding it).
- :func:`trace_batch`: a batch, its reconciliation, its materials (feedings, with the lots'
  receipts and inspections), its lab inspections and release, and each of its codes with where
  it went.
- :func:`trace_material`: recall by a material lot (5.1 召回管理): lot → feedings → batches →
  codes → cases and pallets → customers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateway.bridge.config import BridgeSection
from gateway.bridge.content import batch_of
from gateway.bridge.db import Db
from gateway.bridge.reconcile import batch_report
from gateway.bridge.schema import PUBLIC_INSPECTION_SQL, document_of

__all__ = [
    "BatchCode",
    "container_of",
    "lab_of_batch",
    "materials_of_batch",
    "trace_batch",
    "trace_code",
    "trace_material",
]


def container_of(db: Db, code: str) -> dict[str, str] | None:
    """The case or pallet holding ``code`` now (its latest relation as a child is a pack)."""
    row = db.execute(
        "SELECT parent, level, action, ts FROM relations WHERE child=? ORDER BY rid DESC LIMIT 1",
        (code,),
    ).fetchone()
    if row is None or row[2] != "pack":
        return None
    return {"code": row[0], "level": row[1], "packed": row[3]}


def _children(db: Db, parent: str) -> list[str]:
    inside: dict[str, None] = {}
    for child, action in db.execute(
        "SELECT child, action FROM relations WHERE parent=? ORDER BY rid, pos", (parent,)
    ):
        if action == "pack":
            inside[child] = None
        else:
            inside.pop(child, None)
    return list(inside)


def _batch_info(db: Db, batch: str, cfg: BridgeSection | None) -> dict[str, Any]:
    row = db.execute(
        "SELECT enterprise, site, line, product, production_date, shelf_life_days, inspection, "
        "started, ended FROM batches WHERE batch=?",
        (batch,),
    ).fetchone()
    if row is None:
        return {"batch": batch}
    keys = ("enterprise", "site", "line", "product", "production_date", "shelf_life_days",
            "inspection", "started", "ended")  # fmt: skip
    info: dict[str, Any] = {"batch": batch, **dict(zip(keys, row, strict=True))}
    p = cfg.product(info["product"]) if cfg is not None else None
    if p is not None:
        info["product_name"] = p.name
        info["net_content"] = p.net_content
        if info["shelf_life_days"] is None:
            info["shelf_life_days"] = p.shelf_life_days
    return info


def ccp_of_batch(db: Db, batch: str, limit: int | None) -> dict[str, Any]:
    """The batch's CCP counts and records, failed ones first (``limit`` None: all)."""
    total, fails = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN verdict='fail' THEN 1 ELSE 0 END), 0) "
        "FROM ccp WHERE batch=?",
        (batch,),
    ).fetchone()
    rows = db.execute(
        "SELECT type, ts, device, value, flag, unit, lo, hi, verdict FROM ccp WHERE batch=? "
        "ORDER BY verdict='pass', rid LIMIT ?",
        (batch, -1 if limit is None else limit),
    )
    keys = ("type", "ts", "device", "value", "flag", "unit", "lo", "hi", "verdict")
    records = []
    for r in rows:
        rec = dict(zip(keys, r, strict=True))
        rec["flag"] = None if rec["flag"] is None else bool(rec["flag"])
        records.append(rec)
    return {"total": total, "fail": fails, "records": records}


def _outbound(db: Db, codes: list[str]) -> list[dict[str, Any]]:
    marks = ",".join("?" * len(codes))
    rows = db.execute(
        "SELECT order_no, ts, customer, customer_type, code FROM outbound "
        f"WHERE code IN ({marks}) ORDER BY rid, pos",
        codes,
    )
    keys = ("order", "ts", "customer", "customer_type", "via")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _scans(db: Db, codes: list[str]) -> list[dict[str, Any]]:
    """Inbound (5.2) and recall (10.6) scans of these codes."""
    marks = ",".join("?" * len(codes))
    rows = db.execute(
        f"SELECT kind, ts, ref, party, code FROM scans WHERE code IN ({marks}) ORDER BY rid",
        codes,
    )
    keys = ("kind", "ts", "ref", "party", "via")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _reject(db: Db, code: str) -> dict[str, Any] | None:
    """The pack.reject that decommissioned ``code``, if any."""
    row = db.execute(
        "SELECT ts, reason, parent FROM rejects WHERE code=? ORDER BY rid LIMIT 1", (code,)
    ).fetchone()
    return None if row is None else {"ts": row[0], "reason": row[1], "case": row[2]}


def _document(db: Db, rid: int) -> dict[str, Any] | None:
    doc = document_of(db, rid)
    return None if doc is None else {"number": doc[1], "state": doc[2], "receipt": doc[3]}


def trace_code(
    db: Db,
    code: str,
    cfg: BridgeSection | None = None,
    ccp_limit: int | None = 20,
) -> dict[str, Any] | None:
    """Everything the store knows about ``code``; None when it knows nothing."""
    bag = db.execute(
        "SELECT c.rid, c.enterprise, c.batch, c.ts, e.id FROM codes c "
        "JOIN events e ON e.rid = c.rid WHERE c.code=?",
        (code,),
    ).fetchone()
    children = _children(db, code)
    case = container_of(db, code)
    if bag is None and not children and case is None:
        as_parent = db.execute("SELECT 1 FROM relations WHERE parent=? LIMIT 1", (code,))
        in_outbound = db.execute("SELECT 1 FROM outbound WHERE code=? LIMIT 1", (code,))
        scanned = db.execute("SELECT 1 FROM scans WHERE code=? LIMIT 1", (code,))
        if (
            as_parent.fetchone() is None
            and in_outbound.fetchone() is None
            and scanned.fetchone() is None
        ):
            return None
    out: dict[str, Any] = {"code": code}
    if bag is not None:
        rid, enterprise, batch, ts, ev_id = bag
        out.update(kind="bag", enterprise=enterprise, batch=batch, commissioned=ts, event=ev_id)
        out["document"] = _document(db, rid)
        out["rejected"] = _reject(db, code)
    else:
        level = db.execute(
            "SELECT level FROM relations WHERE parent=? ORDER BY rid DESC LIMIT 1", (code,)
        ).fetchone()
        out.update(kind=level[0] if level else "unknown", batch=batch_of(db, code))
        out["children"] = children
    pallet = container_of(db, case["code"]) if case is not None else None
    if case is not None and case["level"] == "pallet":  # a case inside a pallet
        case, pallet = None, case
    out["case"], out["pallet"] = case, pallet
    if out.get("batch"):
        out["batch_info"] = _batch_info(db, out["batch"], cfg)
        out["ccp"] = ccp_of_batch(db, out["batch"], ccp_limit)
    holders = [code] + [h["code"] for h in (case, pallet) if h is not None]
    out["outbound"] = _outbound(db, holders)
    out["scans"] = _scans(db, holders)
    return out


@dataclass(frozen=True, slots=True)
class BatchCode:
    code: str
    commissioned: str
    case: str | None
    pallet: str | None
    outbound: list[dict[str, Any]]
    document: str | None
    state: str | None  # of the document


def trace_batch(
    db: Db, batch: str, cfg: BridgeSection | None = None
) -> tuple[dict[str, Any], Iterator[BatchCode]] | None:
    """A batch's header (info, reconciliation, CCP summary) and its codes, lazily."""
    rep = batch_report(db, batch)
    if rep is None:
        return None
    head = {
        "batch_info": _batch_info(db, batch, cfg),
        "reconciliation": rep.as_dict(),
        "ccp": ccp_of_batch(db, batch, 0),
        "materials": materials_of_batch(db, batch),
        "lab": lab_of_batch(db, batch),
    }

    def codes() -> Iterator[BatchCode]:
        cur = db.execute("SELECT rid, code, ts FROM codes WHERE batch=? ORDER BY rid", (batch,))
        for rid, code, ts in cur.fetchall():
            doc = document_of(db, rid)
            number, state = (doc[1], doc[2]) if doc else (None, None)
            case = container_of(db, code)
            pallet = container_of(db, case["code"]) if case is not None else None
            if case is not None and case["level"] == "pallet":
                case, pallet = None, case
            holders = [code] + [h["code"] for h in (case, pallet) if h is not None]
            yield BatchCode(
                code,
                ts,
                case["code"] if case else None,
                pallet["code"] if pallet else None,
                _outbound(db, holders),
                number,
                state,
            )

    return head, codes()


# -- records from MES and LIMS, and recall by material (5.1 召回管理; docs/records.md) ----------
def _records(db: Db, where: str, *args: object) -> list[dict[str, Any]]:
    rows = db.execute(
        f"SELECT kind, ts, body FROM lab_records WHERE {where} ORDER BY rid", args
    ).fetchall()
    return [{"kind": k, "ts": ts, **json.loads(body)} for k, ts, body in rows]


def lab_of_batch(db: Db, batch: str) -> dict[str, Any]:
    """The batch's lab inspections, release decisions, non-conforming and return handling, and
    what is public as table 6 row 23 (None until released)."""
    recs = _records(db, "batch=?", batch)
    row = db.execute(
        f"SELECT release, released_at, {PUBLIC_INSPECTION_SQL} FROM batches WHERE batch=?",
        (batch,),
    ).fetchone()
    release, at, public = row if row is not None else (None, None, None)
    return {
        "inspections": [r for r in recs if r["kind"] == "inspection"],
        "releases": [r for r in recs if r["kind"] == "release"],
        "nonconforming": [r for r in recs if r["kind"] == "nonconforming"],
        "returns": [r for r in recs if r["kind"] == "return"],
        "release": release,
        "released_at": at,
        "public_inspection": public,
    }


def materials_of_batch(db: Db, batch: str) -> list[dict[str, Any]]:
    """The materials fed into the batch (table 2 row 1), each lot with its receipts (table 1)
    and lab inspections."""
    out = []
    for material, lot, qty, unit, n, first, last in db.execute(
        "SELECT material, lot, SUM(quantity), unit, COUNT(*), MIN(ts), MAX(ts) FROM feedings "
        "WHERE batch=? GROUP BY material, lot, unit ORDER BY MIN(rid)",
        (batch,),
    ).fetchall():
        recs = _records(db, "lot=?", lot) if lot is not None else []
        out.append({
            "material": material, "lot": lot, "quantity": qty, "unit": unit, "feedings": n,
            "first": first, "last": last,
            "receipts": [r for r in recs if r["kind"] == "material_receipt"],
            "inspections": [r for r in recs if r["kind"] == "inspection"],
        })  # fmt: skip
    return out


def trace_material(db: Db, lot: str) -> dict[str, Any] | None:
    """Recall by a material lot: its receipts and inspections, the feedings that used it, the
    batches they went into, every code of those batches with its case and pallet, and the
    customers they were shipped to. None when the store knows nothing of the lot."""
    recs = _records(db, "lot=?", lot)
    feedings = db.execute(
        "SELECT ts, device, batch, material, quantity, unit, point, operator FROM feedings "
        "WHERE lot=? ORDER BY rid",
        (lot,),
    ).fetchall()
    if not recs and not feedings:
        return None
    keys = ("ts", "device", "batch", "material", "quantity", "unit", "point", "operator")
    feeds = [dict(zip(keys, r, strict=True)) for r in feedings]
    batches = list(dict.fromkeys(f["batch"] for f in feeds if f["batch"] is not None))
    out_batches = []
    customers: dict[str, dict[str, Any]] = {}
    for batch in batches:
        codes, cases, pallets = [], set(), set()
        for (code,) in db.execute(
            "SELECT code FROM codes WHERE batch=? ORDER BY rid", (batch,)
        ).fetchall():
            case = container_of(db, code)
            pallet = container_of(db, case["code"]) if case is not None else None
            if case is not None and case["level"] == "pallet":
                case, pallet = None, case
            holders = [code] + [h["code"] for h in (case, pallet) if h is not None]
            if case is not None:
                cases.add(case["code"])
            if pallet is not None:
                pallets.add(pallet["code"])
            shipped = _outbound(db, holders)
            for o in shipped:
                c = customers.setdefault(
                    o["customer"],
                    {"customer": o["customer"], "customer_type": o["customer_type"],
                     "orders": set(), "codes": 0},
                )  # fmt: skip
                c["orders"].add(o["order"])
                c["codes"] += 1
            codes.append({
                "code": code, "case": case["code"] if case else None,
                "pallet": pallet["code"] if pallet else None,
                "customers": sorted({o["customer"] for o in shipped}),
            })  # fmt: skip
        out_batches.append({
            "batch": batch, "codes": codes, "cases": sorted(cases), "pallets": sorted(pallets),
            "lab": lab_of_batch(db, batch),
        })  # fmt: skip
    return {
        "lot": lot,
        "receipts": [r for r in recs if r["kind"] == "material_receipt"],
        "inspections": [r for r in recs if r["kind"] == "inspection"],
        "feedings": feeds,
        "batches": out_batches,
        "customers": [{**c, "orders": sorted(c["orders"])} for _, c in sorted(customers.items())],
    }
