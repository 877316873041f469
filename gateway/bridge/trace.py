"""Trace and recall questions answered from the trace store (QB/T 5279-2018 5.1 追溯管理 and
召回管理: by code or by batch, its production, CCP and outbound records).

- :func:`trace_code`: a code's batch and product, case and pallet (now), commissioning, the
  document that carried it, the CCP records of its batch and its outbound records (of the code
  itself or of the case or pallet holding it).
- :func:`trace_batch`: a batch, its reconciliation, and each of its codes with where it went.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateway.bridge.config import BridgeSection
from gateway.bridge.content import batch_of
from gateway.bridge.reconcile import batch_report
from gateway.bridge.schema import document_of

__all__ = ["BatchCode", "container_of", "trace_batch", "trace_code"]


def container_of(db: sqlite3.Connection, code: str) -> dict[str, str] | None:
    """The case or pallet holding ``code`` now (its latest relation as a child is a pack)."""
    row = db.execute(
        "SELECT parent, level, action, ts FROM relations WHERE child=? ORDER BY rid DESC LIMIT 1",
        (code,),
    ).fetchone()
    if row is None or row[2] != "pack":
        return None
    return {"code": row[0], "level": row[1], "packed": row[3]}


def _children(db: sqlite3.Connection, parent: str) -> list[str]:
    inside: dict[str, None] = {}
    for child, action in db.execute(
        "SELECT child, action FROM relations WHERE parent=? ORDER BY rid, pos", (parent,)
    ):
        if action == "pack":
            inside[child] = None
        else:
            inside.pop(child, None)
    return list(inside)


def _batch_info(db: sqlite3.Connection, batch: str, cfg: BridgeSection | None) -> dict[str, Any]:
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


def ccp_of_batch(db: sqlite3.Connection, batch: str, limit: int | None) -> dict[str, Any]:
    """The batch's CCP counts and records, failed ones first (``limit`` None: all)."""
    total, fails = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(verdict='fail'), 0) FROM ccp WHERE batch=?", (batch,)
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


def _outbound(db: sqlite3.Connection, codes: list[str]) -> list[dict[str, Any]]:
    marks = ",".join("?" * len(codes))
    rows = db.execute(
        "SELECT order_no, ts, customer, customer_type, code FROM outbound "
        f"WHERE code IN ({marks}) ORDER BY rid, pos",
        codes,
    )
    keys = ("order", "ts", "customer", "customer_type", "via")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _scans(db: sqlite3.Connection, codes: list[str]) -> list[dict[str, Any]]:
    """Inbound (5.2) and recall (10.6) scans of these codes."""
    marks = ",".join("?" * len(codes))
    rows = db.execute(
        f"SELECT kind, ts, ref, party, code FROM scans WHERE code IN ({marks}) ORDER BY rid",
        codes,
    )
    keys = ("kind", "ts", "ref", "party", "via")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _reject(db: sqlite3.Connection, code: str) -> dict[str, Any] | None:
    """The pack.reject that decommissioned ``code``, if any."""
    row = db.execute(
        "SELECT ts, reason, parent FROM rejects WHERE code=? ORDER BY rid LIMIT 1", (code,)
    ).fetchone()
    return None if row is None else {"ts": row[0], "reason": row[1], "case": row[2]}


def _document(db: sqlite3.Connection, rid: int) -> dict[str, Any] | None:
    doc = document_of(db, rid)
    return None if doc is None else {"number": doc[1], "state": doc[2], "receipt": doc[3]}


def trace_code(
    db: sqlite3.Connection,
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
    db: sqlite3.Connection, batch: str, cfg: BridgeSection | None = None
) -> tuple[dict[str, Any], Iterator[BatchCode]] | None:
    """A batch's header (info, reconciliation, CCP summary) and its codes, lazily."""
    rep = batch_report(db, batch)
    if rep is None:
        return None
    head = {
        "batch_info": _batch_info(db, batch, cfg),
        "reconciliation": rep.as_dict(),
        "ccp": ccp_of_batch(db, batch, 0),
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
