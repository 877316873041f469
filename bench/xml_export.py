#!/usr/bin/env python3
"""Trace store → validated upload documents: how fast, in how much memory.

    python bench/xml_export.py            # 1,000,000 codes
    python bench/xml_export.py --quick    # 100,000 codes
    python bench/xml_export.py --codes 250000 --profile epcis --no-baseline

A store is filled the way the bridge fills it (bags in batches of 100,000, cases of 20 bags,
pallets of 40 cases, a net-content CCP record every 100 bags, one outbound order per pallet),
then, in a fresh process each, every profile's :class:`DocumentBuilder` turns all of it into
documents of 10,000 codes: written with lxml's incremental writer, each parsed back and checked
against its XSD (GS1's for EPCIS, platform-1.xsd for the platform profile), stored in the outbox
table. The baseline, in its own process, builds the same platform XML as one lxml tree, then
serializes and validates it. Peak RSS is VmHWM of the measuring process (not ``ru_maxrss``:
after a fork and exec that also counts the parent's peak, e.g. bench/run.py's).

One JSON object per line: {"bench": ..., "value": ..., "unit": ..., "baseline": ..., ...}.
Targets (issue 6): 1M codes in ≤ 10 s at ≤ 100 MB RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import emit, row
from gateway.bridge.config import BridgeSection
from gateway.bridge.content import DocumentContent
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.schema import connect

TZ = timezone(timedelta(hours=8))
CHUNK = 10_000
TARGET_SECS_PER_M = 10.0
TARGET_RSS_MB = 100.0


def peak_rss_mb() -> float:
    """This process's peak RSS since its exec (VmHWM). ``ru_maxrss`` is not used: Linux keeps
    the maximum across exec, so a child of a big parent would report the parent's peak."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:  # not Linux: the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kb) / 1024


# -- the store ------------------------------------------------------------------------------------
def fill(db_path: Path, n: int) -> None:
    """Rows exactly as TraceStore.ingest writes them, inserted in bulk."""
    db = connect(db_path)
    db.execute("PRAGMA synchronous=OFF")  # set-up only; the export measures the real settings
    db.execute("BEGIN")
    rid = 0
    ev: list[tuple[Any, ...]] = []
    codes: list[tuple[Any, ...]] = []
    rel: list[tuple[Any, ...]] = []
    ccp: list[tuple[Any, ...]] = []
    out: list[tuple[Any, ...]] = []
    now = time.time()

    def event(etype: str, ts: str, batch: str | None, weight: int) -> int:
        nonlocal rid
        rid += 1
        ev.append((rid, str(uuid.UUID(int=rid)), etype, ts, "gw-bench", rid, "8035", "daiyue",
                   "L1", None, batch, now, 1, weight))  # fmt: skip
        return rid

    def flush() -> None:
        db.executemany(
            "INSERT INTO events(rid, id, type, ts, gateway, seq, enterprise, site, line, device, "
            "batch, received, up, weight) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            ev,
        )
        db.executemany(
            "INSERT INTO codes(rid, code, enterprise, batch, ts) VALUES (?,?,?,?,?)", codes
        )
        db.executemany("INSERT INTO relations VALUES (?,?,?,?,?,?,?)", rel)
        db.executemany(
            "INSERT INTO ccp(rid, type, ts, device, batch, value, flag, unit, lo, hi, verdict) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            ccp,
        )
        db.executemany(
            "INSERT INTO outbound(rid, pos, order_no, ts, customer, customer_type, code) "
            "VALUES (?,?,?,?,?,?,?)",
            out,
        )
        for lst in (ev, codes, rel, ccp, out):
            lst.clear()

    case: list[str] = []
    pallet: list[str] = []
    n_case = n_pallet = 0
    for i in range(n):
        b = i // 100_000
        batch = f"20261122-L1-{b + 1:02d}"
        if i % 100_000 == 0:
            db.execute(
                "INSERT INTO batches(batch, enterprise, site, line, product, production_date, "
                "shelf_life_days, inspection, started, last_activity) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (batch, "8035", "daiyue", "L1", "P400", "2026-11-22", 1095, "合格，一级",
                 "2026-11-22T08:00:00.000+08:00", now),
            )  # fmt: skip
        s = i % 86400
        ts = f"2026-11-22T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{i % 1000:03d}+08:00"
        code = f"8035{i:012d}K7Q2"
        codes.append((event("pack.bag", ts, batch, 1), code, "8035", batch, ts))
        case.append(code)
        if i % 100 == 99:
            r = event("ccp.net_content", ts, batch, 1)
            ccp.append((r, "ccp.net_content", ts, "cw1", batch, 401.5, None, "g", 388.0, None,
                        "pass"))  # fmt: skip
        if len(case) == 20:
            n_case += 1
            parent = f"8035C{n_case:011d}"
            r = event("pack.case", ts, batch, 21)
            rel.extend((r, k, parent, c, "case", "pack", ts) for k, c in enumerate(case))
            pallet.append(parent)
            case = []
        if len(pallet) == 40:
            n_pallet += 1
            parent = f"8035P{n_pallet:011d}"
            r = event("pack.pallet", ts, batch, 41)
            rel.extend((r, k, parent, c, "pallet", "pack", ts) for k, c in enumerate(pallet))
            pallet = []
            r = event("ship.outbound", ts, None, 1)
            out.append((r, 0, f"SO-{n_pallet:06d}", ts, "某某盐业批发公司", "wholesaler", parent))
        if len(ev) >= 50_000:
            flush()
    flush()
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def reset(db_path: Path) -> None:
    db = connect(db_path)
    db.execute("DELETE FROM documents")
    db.execute("DELETE FROM meta")
    db.execute("VACUUM")
    db.close()


def config(db_path: Path, profile: str) -> BridgeSection:
    return BridgeSection(
        store=db_path,
        profile=profile,  # type: ignore[arg-type]
        codes_per_document=CHUNK,
        products=[{"id": "P400", "name": "精制盐", "net_content": "400g"}],  # type: ignore[list-item]
    )


# -- measured children ----------------------------------------------------------------------------
def child_export(db_path: Path, profile: str) -> None:
    db = connect(db_path)
    b = DocumentBuilder(db, config(db_path, profile), enterprise="8035", node="bench", tz=TZ)
    t0, c0 = time.perf_counter(), time.process_time()
    built = b.build_ready(force=True, limit=10**9)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    row = db.execute(
        "SELECT COUNT(*), SUM(LENGTH(body)), SUM(state='pending') FROM documents"
    ).fetchone()
    codes = db.execute("SELECT COUNT(*) FROM codes").fetchone()[0]
    print(json.dumps({"secs": secs, "cpu": cpu, "rss_mb": peak_rss_mb(), "documents": len(built),
                      "xml_bytes": row[1], "valid": row[2] == row[0], "codes": codes}))  # fmt: skip


def child_baseline(db_path: Path) -> None:
    """The same platform XML built the usual way: one lxml tree holding every code, then
    serialized and validated. What the incremental writer avoids."""
    from lxml import etree

    from gateway.bridge.platform import PLATFORM_NS
    from gateway.bridge.xmlcheck import check_document

    ns = f"{{{PLATFORM_NS}}}"
    db = connect(db_path)
    cfg = config(db_path, "platform")
    t0 = time.perf_counter()
    last = db.execute("SELECT MAX(rid) FROM events").fetchone()[0]
    content = DocumentContent(db, 1, last, cfg)
    root = etree.Element(ns + "TraceDocument", nsmap={None: PLATFORM_NS}, version="1",
                         number="8035-20261122-bench-000001", enterprise="8035",
                         created="2026-11-22T12:00:00.000+08:00")  # fmt: skip
    batches = etree.SubElement(root, ns + "Batches")
    for b in content.batches():
        etree.SubElement(batches, ns + "Batch", id=b.batch, site=b.site, line=b.line)
    sub = etree.SubElement
    for g in content.code_groups():
        codes = sub(root, ns + "Codes", enterprise=g.enterprise, count=str(g.count))
        if g.batch:
            codes.set("batch", g.batch)
        for code, ts, _b, _e in g.codes:
            sub(codes, ns + "C", t=ts).text = code
    rels = sub(root, ns + "Relations")
    for r in content.relations():
        el = sub(rels, ns + "Pack", event=r.event.id, parent=r.parent, level=r.level, t=r.ts,
                 line=r.event.line)  # fmt: skip
        for child in r.children:
            sub(el, ns + "C").text = child
    ccp = sub(root, ns + "CcpRecords")
    for c in content.ccp_records():
        sub(ccp, ns + "Ccp", event=c.event.id, type=c.type, t=c.ts, line=c.event.line,
            verdict=c.verdict)  # fmt: skip
    out = sub(root, ns + "Outbound")
    for o in content.outbound():
        el = sub(out, ns + "Order", event=o.event.id, number=o.order, t=o.ts,
                 customer=o.customer, quantity=str(len(o.codes)))  # fmt: skip
        for code, _ in o.codes:
            sub(el, ns + "C").text = code
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    ok = check_document(xml).valid
    secs = time.perf_counter() - t0
    print(json.dumps({"secs": secs, "rss_mb": peak_rss_mb(), "valid": ok, "xml_bytes": len(xml)}))


def run_child(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def rows(
    n: int,
    profiles: Sequence[str] = ("platform", "epcis"),
    *,
    baseline: bool = True,
    workdir: str | None = None,
) -> list[dict[str, Any]]:
    """Fill a store with ``n`` bag codes, export it with each profile (own process each) and,
    unless told not to, build the whole-tree baseline; the result lines."""
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        db = Path(tmp) / "trace.db"
        t0 = time.perf_counter()
        run_child("fill", str(db), str(n))
        fill_secs = time.perf_counter() - t0
        base = run_child("baseline", str(db)) if baseline else None
        for profile in profiles:
            reset(db)
            r = run_child("export", str(db), profile)
            out.extend(_profile_rows(profile, r, base))
    note = "set-up: the store filled in bulk, not measured above"
    out.append(row("xml_export_fill_secs", round(fill_secs, 1), "s", None, codes=n, note=note))
    return out


def _profile_rows(
    profile: str, r: dict[str, Any], base: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The speed and memory lines of one profile's export (``base``: the whole-tree build)."""
    common = {"profile": profile, "codes": r["codes"], "documents": r["documents"],
              "codes_per_document": CHUNK, "all_valid": r["valid"]}  # fmt: skip
    note = (
        "the same codes as one platform-XML lxml tree, serialized and validated once"
        if base
        else "baseline skipped"
    )
    speed = row(
        "xml_export_codes_per_s",
        round(r["codes"] / r["secs"]),
        "codes/s",
        round(r["codes"] / base["secs"]) if base else None,
        target=round(1e6 / TARGET_SECS_PER_M),
        digits=2,
        baseline_note=note,
        seconds=round(r["secs"], 2),
        cpu_seconds=round(r["cpu"], 2),
        load_avg_1m=round(os.getloadavg()[0], 2),
        xml_mb=round(r["xml_bytes"] / 2**20, 1),
        target_seconds=round(TARGET_SECS_PER_M * r["codes"] / 1e6, 2),
        **common,
    )
    speed["met"] = speed["met"] and r["valid"]
    rss = row(
        "xml_export_peak_rss_mb",
        round(r["rss_mb"], 1),
        "MB",
        round(base["rss_mb"], 1) if base else None,
        target=TARGET_RSS_MB,
        higher_is_better=False,
        baseline_note=note,
        **common,
    )
    return [speed, rss]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100,000 codes")
    ap.add_argument("--codes", type=int, help="number of bag codes (default 1,000,000)")
    ap.add_argument("--profile", choices=["platform", "epcis", "both"], default="both")
    ap.add_argument("--no-baseline", action="store_true", help="skip the whole-tree baseline")
    ap.add_argument("--dir", help="where the temporary store goes (default: system temp)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, db = args.child[0], Path(args.child[1])
        if kind == "fill":
            fill(db, int(args.child[2]))
        elif kind == "export":
            child_export(db, args.child[2])
        else:
            child_baseline(db)
        if kind == "fill":
            print("{}")
        return
    n = args.codes or (100_000 if args.quick else 1_000_000)
    profiles = ["platform", "epcis"] if args.profile == "both" else [args.profile]
    for result in rows(n, profiles, baseline=not args.no_baseline, workdir=args.dir):
        emit(result)


if __name__ == "__main__":
    main()
