"""The console's view of the bridge's trace store (docs/bridge.md): trace, recall, the recall
CSV and upload completeness are read through a read-only connection (SQLite ``mode=ro``, or a
PostgreSQL session with read-only transactions: an enterprise store, docs/scaling.md; one per
thread), with the same functions ``saltgw trace`` answers with (gateway/bridge/trace.py,
reconcile.py), so the page and the command agree. The console writes only two things, each in
its own short transaction on one read-write connection: access-log rows
(gateway/bridge/access.py, hash-chained with the store's key, listed by ``saltgw trace
--access-log``) and resend requests (gateway/bridge/upload.py, as ``saltgw trace --resend``).
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.bridge import access
from gateway.bridge.config import BridgeSection
from gateway.bridge.db import Db, is_url, open_db
from gateway.bridge.integrity import store_chain_key
from gateway.bridge.reconcile import reports
from gateway.bridge.store import TraceStore
from gateway.bridge.trace import trace_batch, trace_code
from gateway.bridge.upload import CannotResend, resend
from gateway.console.charts import CcpPoint
from gateway.console.config import ConsoleSection

__all__ = [
    "CCP_KINDS",
    "CSV_COLUMNS",
    "CannotResend",
    "ConsoleStore",
    "NoStore",
    "outbound_text",
]

# the CCP record types (docs/events.md, "Critical control points"): kind → (title, yes/no check)
CCP_KINDS: dict[str, tuple[str, bool]] = {
    "net_content": ("净含量", False),
    "metal_detector": ("金属检测", True),
    "magnet_rod": ("磁棒磁感应强度", False),
    "sieve": ("安全筛", True),
    "iodine": ("碘含量", False),
}

CSV_COLUMNS = (
    "code",
    "commissioned",
    "case",
    "pallet",
    "document",
    "document_state",
    "orders",
    "customers",
    "outbound",
)


class NoStore(Exception):
    """The trace store does not exist (yet): the bridge has not run."""


def outbound_text(outbound: list[dict[str, Any]]) -> str:
    """``order → customer; …`` as ``saltgw trace --batch`` prints a code's outbound."""
    return "; ".join(f"{o['order']} → {o['customer']}" for o in outbound)


class ConsoleStore:
    def __init__(self, cfg: ConsoleSection) -> None:
        self.path: Path | str = cfg.store if is_url(cfg.store) else Path(cfg.store)
        self._bridge = BridgeSection(
            store=self.path, chain_key_env=cfg.chain_key_env, chain_key_file=cfg.chain_key_file
        )
        self._local = threading.local()
        self._rw: TraceStore | None = None
        self._rw_lock = threading.Lock()
        self._all: list[Db] = []
        self._all_lock = threading.Lock()

    # -- connections -----------------------------------------------------------------------------
    def _exists(self) -> None:
        if isinstance(self.path, Path) and not self.path.is_file():
            raise NoStore(f"no trace store at {self.path} (has the bridge run yet?)")

    def ro(self) -> Db:
        db: Db | None = getattr(self._local, "db", None)
        if db is None:
            self._exists()
            if isinstance(self.path, Path):
                db = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=30,
                )
            else:  # reconnects by itself after a lost connection (gateway/bridge/pg.py)
                try:
                    db = open_db(self.path, readonly=True)
                except sqlite3.Error as exc:  # unreachable, refused, schema out of date
                    raise NoStore(str(exc)) from None
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def _writer(self) -> TraceStore:
        if self._rw is None:
            self._exists()
            key = store_chain_key(self._bridge, self.path)
            try:
                self._rw = TraceStore(self.path, create=False, chain_key=key)
            except sqlite3.Error as exc:  # unreachable, refused, schema out of date
                if isinstance(self.path, Path):
                    raise
                raise NoStore(str(exc)) from None
        return self._rw

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                db.close()
            self._all.clear()
        with self._rw_lock:
            if self._rw is not None:
                self._rw.close()
                self._rw = None

    # -- reading ---------------------------------------------------------------------------------
    def code(self, code: str) -> dict[str, Any] | None:
        return trace_code(self.ro(), code, None, 50)

    def batch(self, batch: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        found = trace_batch(self.ro(), batch, None)
        if found is None:
            return None
        head, codes = found
        return head, [asdict(c) for c in codes]

    def recall_csv(self, batch: str) -> bytes | None:
        """The batch's codes as CSV (UTF-8 with BOM, for spreadsheet programs): one row per
        code, the same rows ``saltgw trace --batch`` lists."""
        found = self.batch(batch)
        if found is None:
            return None
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(CSV_COLUMNS)
        for c in found[1]:
            ob = c["outbound"]
            w.writerow([
                c["code"], c["commissioned"], c["case"] or "", c["pallet"] or "",
                c["document"] or "", c["state"] or "",
                "; ".join(dict.fromkeys(o["order"] for o in ob)),
                "; ".join(dict.fromkeys(o["customer"] for o in ob)),
                outbound_text(ob),
            ])  # fmt: skip
        return ("\ufeff" + buf.getvalue()).encode("utf-8")

    def customers(self, codes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The customers a batch's codes went to: name, type, orders, codes."""
        out: dict[str, dict[str, Any]] = {}
        for c in codes:
            for o in c["outbound"]:
                e = out.setdefault(
                    o["customer"],
                    {"customer": o["customer"], "type": o["customer_type"], "orders": {},
                     "codes": set()},
                )  # fmt: skip
                e["orders"][o["order"]] = None
                e["codes"].add(c["code"])
        return [
            {**e, "orders": list(e["orders"]), "codes": len(e["codes"])}
            for _, e in sorted(out.items())
        ]

    def ccp_summary(self, batch: str | None) -> dict[str, dict[str, Any]]:
        """Per CCP kind with records (of ``batch``, else all kept): records, failed, unit."""
        where, args = ("WHERE batch = ?", (batch,)) if batch else ("", ())
        rows = self.ro().execute(
            "SELECT type, COUNT(*), SUM(CASE WHEN verdict = 'pass' THEN 0 ELSE 1 END), MAX(unit) "
            "FROM ccp "
            f"{where} GROUP BY type",
            args,
        )
        return {
            str(t).removeprefix("ccp."): {"records": n, "fail": f, "unit": u} for t, n, f, u in rows
        }

    def ccp_series(self, kind: str, batch: str | None, limit: int) -> list[CcpPoint]:
        """The newest ``limit`` records of ``ccp.{kind}`` (of ``batch``, else all kept), oldest
        first; a record whose time cannot be read is left out."""
        sql = "SELECT ts, device, value, flag, lo, hi, verdict FROM ccp WHERE type = ?"
        args: tuple[Any, ...] = (f"ccp.{kind}",)
        if batch:
            sql, args = sql + " AND batch = ?", (*args, batch)
        rows = self.ro().execute(sql + " ORDER BY rid DESC LIMIT ?", (*args, limit)).fetchall()
        out = []
        for ts, device, value, flag, lo, hi, verdict in reversed(rows):
            try:
                at = datetime.fromisoformat(str(ts)).timestamp()
            except ValueError:
                continue
            out.append(CcpPoint(at, value, None if flag is None else bool(flag), lo, hi,
                                str(verdict), device))  # fmt: skip
        out.sort(key=lambda p: p.at)
        return out

    def ccp_batches(self, limit: int = 50) -> list[str]:
        """Batches with CCP records, newest first."""
        rows = self.ro().execute(
            "SELECT batch FROM ccp WHERE batch IS NOT NULL GROUP BY batch ORDER BY MAX(rid) DESC "
            "LIMIT ?",
            (limit,),
        )
        return [str(b) for (b,) in rows]

    def completeness(self) -> list[dict[str, Any]]:
        """Every batch's reconciliation (newest first) with the documents holding its codes."""
        db = self.ro()
        out = []
        for rep in reports(db):
            docs = db.execute(
                "SELECT d.number, d.state, d.codes, d.attempts, d.receipt, d.last_error "
                "FROM documents d WHERE EXISTS (SELECT 1 FROM codes x WHERE x.batch = ? "
                "AND x.rid BETWEEN d.first_rid AND d.last_rid) ORDER BY d.id",
                (rep.batch,),
            ).fetchall()
            keys = ("number", "state", "codes", "attempts", "receipt", "last_error")
            out.append(
                {**rep.as_dict(), "documents": [dict(zip(keys, d, strict=True)) for d in docs]}
            )
        out.sort(key=lambda r: str(r["batch"]), reverse=True)
        return out

    def documents(self, state: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT number, state, codes, attempts, receipt, last_error FROM documents"
        rows = (
            self.ro()
            .execute(
                sql + (" WHERE state = ? ORDER BY id" if state else " ORDER BY id"),
                (state,) if state else (),
            )
            .fetchall()
        )
        keys = ("number", "state", "codes", "attempts", "receipt", "last_error")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def access_rows(self, limit: int = 50) -> list[access.AccessEntry]:
        try:
            return access.recent(self.ro(), limit)
        except sqlite3.OperationalError:  # a SQLite store before the access log existed
            if not isinstance(self.path, Path):
                raise
            return []

    # -- writing ---------------------------------------------------------------------------------
    def audit(self, query: str, subject: str | None, outcome: str, user: str, host: str) -> None:
        """One access-log row, committed before the answer is sent."""
        with self._rw_lock:
            w = self._writer()
            access.record(w.db, query, subject, outcome, key=w.chain_key, user=user, host=host)

    def resend(self, number: str, by: str) -> None:
        """Queue quarantined document ``number`` again; :class:`CannotResend` says why not."""
        with self._rw_lock:
            resend(self._writer().db, number, by)
