"""What ``saltgw trace`` prints: text for people, or ``--json`` (one object per line)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

from gateway.bridge.config import BridgeSection
from gateway.bridge.db import Db
from gateway.bridge.retention import purge as run_purge
from gateway.bridge.trace import trace_batch, trace_code, trace_material

__all__ = ["batch", "code", "documents", "kind_lines", "material", "purge"]


def _j(obj: object) -> None:
    print(json.dumps(obj, ensure_ascii=False, sort_keys=True))


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _product(info: dict[str, Any]) -> str:
    parts = [info.get("product") or "?", info.get("product_name"), info.get("net_content")]
    return " ".join(str(p) for p in parts if p)


def _batch_line(info: dict[str, Any]) -> str:
    bits = [f"batch {info['batch']}"]
    if info.get("product"):
        bits.append(f"product {_product(info)}")
    if info.get("line"):
        bits.append(f"line {info['line']}")
    if info.get("production_date"):
        bits.append(f"produced {info['production_date']}")
    if info.get("shelf_life_days"):
        bits.append(f"shelf life {info['shelf_life_days']} d")
    if info.get("inspection"):
        bits.append(f"inspection {info['inspection']}")
    return "  ".join(bits)


def _ccp_lines(ccp: dict[str, Any], batch: str) -> list[str]:
    out = [f"  CCP records of batch {batch}: {ccp['total']} ({ccp['fail']} fail)"]
    for r in ccp["records"]:
        value = _num(r["value"]) if r["flag"] is None else str(r["flag"]).lower()
        unit = f" {r['unit']}" if r["unit"] else ""
        limits = f"[{_num(r['lo'])}, {_num(r['hi'])}]"
        device = r["device"] or "-"
        out.append(
            f"    {r['ts']}  {r['type']}  {device}  {value}{unit}  limits {limits}  {r['verdict']}"
        )
    if len(ccp["records"]) < ccp["total"]:
        out.append(f"    … {ccp['total'] - len(ccp['records'])} more (--ccp -1 shows all)")
    return out


def code(
    db: Db,
    value: str,
    cfg: BridgeSection | None,
    as_json: bool,
    ccp_limit: int | None,
) -> int:
    t = trace_code(db, value, cfg, ccp_limit)
    if t is None:
        print(f"saltgw: error: code {value!r} is not in the trace store", file=sys.stderr)
        return 1
    if as_json:
        _j(t)
        return 0
    lines = [f"code {t['code']} ({t['kind']})"]
    if t.get("enterprise"):
        lines.append(f"  enterprise    {t['enterprise']}")
    info = t.get("batch_info")
    if info:
        lines.append("  " + _batch_line(info))
    if t.get("commissioned"):
        lines.append(f"  commissioned  {t['commissioned']}  (event {t['event']})")
    if t.get("children"):
        lines.append(f"  holds         {len(t['children'])}: {' '.join(t['children'])}")
    elif t["kind"] == "unknown":
        lines.append("  (never commissioned or packed here: seen only in outbound records)")
    for key in ("case", "pallet"):
        h = t.get(key)
        lines.append(f"  {key:<13} " + (f"{h['code']} (packed {h['packed']})" if h else "-"))
    rej = t.get("rejected")
    if rej:
        out_of = f", taken out of case {rej['case']}" if rej["case"] else ""
        lines.append(f"  rejected      {rej['ts']} ({rej['reason']}{out_of}): decommissioned")
    doc = t.get("document")
    if doc:
        receipt = f", receipt {doc['receipt']}" if doc.get("receipt") else ""
        lines.append(f"  uploaded in   {doc['number']}: {doc['state']}{receipt}")
    elif t["kind"] == "bag":
        lines.append("  uploaded in   - (not yet in a document)")
    if info:
        lines += _ccp_lines(t["ccp"], info["batch"])
    lines.append(f"  outbound records: {len(t['outbound'])}")
    for o in t["outbound"]:
        ctype = f" ({o['customer_type']})" if o["customer_type"] else ""
        via = "" if o["via"] == value else f"  via {o['via']}"
        lines.append(f"    {o['order']}  {o['ts']}  {o['customer']}{ctype}{via}")
    if t["scans"]:
        lines.append(f"  inbound and recall scans: {len(t['scans'])}")
    for sc in t["scans"]:
        via = "" if sc["via"] == value else f"  via {sc['via']}"
        ref, party = sc["ref"] or "-", sc["party"] or "-"
        lines.append(f"    {sc['kind']:<8} {sc['ts']}  {ref}  {party}{via}")
    print("\n".join(lines))
    return 0


def batch(db: Db, value: str, cfg: BridgeSection | None, as_json: bool) -> int:
    found = trace_batch(db, value, cfg)
    if found is None:
        print(f"saltgw: error: batch {value!r} is not in the trace store", file=sys.stderr)
        return 1
    head, codes = found
    rec = head["reconciliation"]
    if as_json:
        _j(head)
        for c in codes:
            _j(asdict(c))
        return 0
    print(_batch_line(head["batch_info"]))
    print(
        f"  reconciliation: {rec['commissioned']} commissioned, {rec['uploaded']} uploaded, "
        f"{rec['acknowledged']} acknowledged, {rec['other_unacked']} other records not "
        f"acknowledged"
        + (f", {rec['missing_seq']} events never received (seq gap)" if rec["missing_seq"] else "")
        + f": {rec['state']}"
    )
    print("\n".join(kind_lines(rec["kinds"])))
    print(f"  CCP records: {head['ccp']['total']} ({head['ccp']['fail']} fail)")
    print("\n".join(_material_lines(head["materials"]) + _lab_lines(head["lab"])))
    print(f"  {'code':<24} {'case':<20} {'pallet':<20} {'document':<10} outbound")
    for c in codes:
        ob = "; ".join(f"{o['order']} → {o['customer']}" for o in c.outbound) or "-"
        print(f"  {c.code:<24} {c.case or '-':<20} {c.pallet or '-':<20} {c.state or '-':<10} {ob}")
    return 0


def kind_lines(kinds: dict[str, dict[str, int]]) -> list[str]:
    """The batch's records per kind: produced, in documents, acknowledged (and quarantined)."""
    out = [f"  {'records':<10} {'produced':>9} {'in documents':>13} {'acknowledged':>13}"]
    for kind, k in kinds.items():
        mark = "" if k["acknowledged"] == k["produced"] else "  ← not all acknowledged"
        quarantined = f"  ({k['quarantined']} in quarantined documents)" if k["quarantined"] else ""
        out.append(
            f"  {kind:<10} {k['produced']:>9} {k['documented']:>13} {k['acknowledged']:>13}"
            f"{mark}{quarantined}"
        )
    return out


def documents(db: Db, as_json: bool) -> int:
    rows = db.execute(
        "SELECT number, state, codes, attempts, receipt, last_error FROM documents ORDER BY id"
    ).fetchall()
    keys = ("number", "state", "codes", "attempts", "receipt", "last_error")
    for r in rows:
        d = dict(zip(keys, r, strict=True))
        if as_json:
            _j(d)
        else:
            tail = d["receipt"] or d["last_error"] or ""
            print(f"{d['number']}  {d['state']:<11} {d['codes']:>7} codes  "
                  f"{d['attempts']} failed attempts  {tail}")  # fmt: skip
    return 0


QUARANTINE_SHOWN = 200  # characters of a quarantined payload printed (as text; JSON: all kept)


def quarantine(db: Db, n: int, as_json: bool) -> int:
    """The newest ``n`` quarantined messages, newest last: time, kind, topic, reason, payload
    (the first :data:`QUARANTINE_SHOWN` characters of what was kept, as text)."""
    rows = db.execute(
        "SELECT * FROM (SELECT qid, received, kind, topic, reason, size, payload FROM quarantine "
        "ORDER BY qid DESC LIMIT ?) ORDER BY qid",
        (max(0, n),),
    ).fetchall()
    total = db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
    for qid, received, kind, topic, reason, size, payload in rows:
        text = bytes(payload).decode("utf-8", errors="replace")
        at = datetime.fromtimestamp(received, UTC).isoformat(timespec="seconds")
        if as_json:
            _j({"qid": qid, "received": at, "kind": kind, "topic": topic, "reason": reason,
                "size": size, "kept": len(payload), "payload": text})  # fmt: skip
        else:
            shown = text[:QUARANTINE_SHOWN].encode("unicode_escape").decode("ascii")
            more = f" … ({size if size is not None else len(payload)} bytes)" if len(
                text) > QUARANTINE_SHOWN else ""  # fmt: skip
            print(f"{at}  {kind or '-':<9} {topic}\n  reason:  {reason}\n  payload: {shown}{more}")
    if not as_json:
        print(f"{len(rows)} of {total} quarantined messages shown")
    return 0


def purge(db: Db, cfg: BridgeSection | None, as_json: bool, key: bytes) -> int:
    if cfg is None:
        cfg = BridgeSection()
    rep = run_purge(db, cfg, date.today(), key=key)
    if as_json:
        _j(asdict(rep))
    else:
        print(
            f"purged {rep.batches} batches, {rep.events} events, {rep.documents} documents, "
            f"{rep.quarantined} quarantined payloads; kept {rep.kept_unacked} expired batches "
            "not fully acknowledged by the platform"
        )
    return 0


def _receipt_text(r: dict[str, Any]) -> str:
    return (f"received {r['received']} from {r['supplier']}: {_num(r['quantity'])} {r['unit']}, "
            f"incoming inspection {r['verdict']}")  # fmt: skip


def _material_lines(materials: list[dict[str, Any]]) -> list[str]:
    out = [f"  materials fed: {len(materials)} lot(s)"]
    for m in materials:
        out.append(f"    {m['material']}  lot {m['lot'] or '-'}  {_num(m['quantity'])} {m['unit']}"
                   f"  ({m['feedings']} feedings {m['first']} … {m['last']})")  # fmt: skip
        for r in m["receipts"]:
            out.append(f"      {_receipt_text(r)}")
        if not m["receipts"]:
            out.append("      no receipt record for this lot")
        for i in m["inspections"]:
            out.append(f"      lab {i['sample']}: {i['verdict']} ({i['method']})")
    return out


def _lab_lines(lab: dict[str, Any]) -> list[str]:
    out = []
    for i in lab["inspections"]:
        items = "; ".join(f"{it['item']} {it['result']}" for it in i["items"])
        out.append(f"  lab inspection {i['sample']} sampled {i['sampled']} by {i['sampler']}, "
                   f"{i['method']}: {items} -> {i['verdict']}"
                   + (f", grade {i['grade']}" if i.get("grade") else "")
                   + f" (inspector {i['inspector']}, reviewer {i['reviewer']}, "
                   f"approver {i['approver']})")  # fmt: skip
    for r in lab["releases"]:
        why = f": {r['reason']}" if r.get("reason") else ""
        kept = f", retained sample {r['retained_sample']}" if r.get("retained_sample") else ""
        out.append(f"  release {r['decision']} {r['at']} by {r['by']}{kept}{why}")
    for n in lab["nonconforming"]:
        codes = f" ({len(n['codes'])} codes)" if n["codes"] else " (whole batch)"
        out.append(f"  non-conforming{codes}: {n['reason']} -> {n['disposition']} by {n['by']}")
    for r in lab["returns"]:
        codes = f" ({len(r['codes'])} codes)" if r["codes"] else " (whole batch)"
        order = f" {r['order']}" if r.get("order") else ""
        out.append(f"  returned{order} by {r['party']}{codes}: {r['reason']} -> "
                   f"{r['disposition']} by {r['by']} {r['at']}")  # fmt: skip
    public = lab["public_inspection"]
    out.append(f"  table 6 #23 (public): {public or '- (not released)'}")
    return out


def material(db: Db, lot: str, as_json: bool) -> int:
    """Recall by a material lot (5.1 召回管理): batches, codes, cases, pallets, customers."""
    t = trace_material(db, lot)
    if t is None:
        print(f"saltgw: error: material lot {lot!r} is not in the trace store", file=sys.stderr)
        return 1
    if as_json:
        _j(t)
        return 0
    lines = [f"material lot {lot}"]
    for r in t["receipts"]:
        lines.append(f"  {r['material']}: {_receipt_text(r)}")
    for i in t["inspections"]:
        lines.append(f"  lab {i['sample']}: {i['verdict']} ({i['method']})")
    lines.append(f"  feedings: {len(t['feedings'])}, into {len(t['batches'])} batch(es)")
    for b in t["batches"]:
        lines.append(f"  batch {b['batch']}: {len(b['codes'])} codes, {len(b['cases'])} cases, "
                     f"{len(b['pallets'])} pallets; released: "
                     f"{b['lab']['release'] or 'no'}")  # fmt: skip
        for c in b["codes"]:
            lines.append(f"    {c['code']:<24} {c['case'] or '-':<20} {c['pallet'] or '-':<20} "
                         f"{', '.join(c['customers']) or '-'}")  # fmt: skip
    lines.append(f"  customers: {len(t['customers'])}")
    for c in t["customers"]:
        ctype = f" ({c['customer_type']})" if c["customer_type"] else ""
        lines.append(f"    {c['customer']}{ctype}: {c['codes']} codes, orders "
                     f"{', '.join(c['orders'])}")  # fmt: skip
    print("\n".join(lines))
    return 0
