"""Per-batch reconciliation: codes commissioned vs. uploaded vs. acknowledged (the speech's
part 三 item 4: uploads that never happen or are incomplete; QB/T 5279 11.2 及时上传).

A batch is *complete* only when every code commissioned in it, and every other record of the
batch (packing, CCP), sits in a document the platform acknowledged. A batch that stays
incomplete ``incomplete_alarm_secs`` after its last event raises ``alarm.upload`` once (state
``incomplete``, with the counts); when it completes later, a second ``alarm.upload`` (state
``complete``) clears it.

Counted against the gateway's ``seq``, not only against what arrived: a batch whose ``seq``
range (per gateway, from its first to its last uploadable event) has a ``seq`` the bridge never
received (:mod:`gateway.bridge.gaps`) is incomplete, ``missing_seq`` says how many.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.bridge.db import Db
from gateway.bridge.gaps import missing_in
from gateway.bridge.kinds import KindCount, kind_counts
from gateway.bridge.schema import BUILT_RID

__all__ = ["BatchReport", "Reconciler", "batch_report", "by_state", "reports"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchReport:
    batch: str
    commissioned: int  # codes commissioned in the batch
    documented: int  # of them, in a document (any state)
    uploaded: int  # of them, delivered (sent or acknowledged)
    acknowledged: int  # of them, acknowledged by the platform
    quarantined: int  # of them, in a quarantined document
    other_unacked: int  # packing / CCP / outbound records of the batch not acknowledged
    ended: bool  # batch.end seen
    last_activity: float
    kinds: dict[str, KindCount] = field(default_factory=dict)  # per record kind (kinds.py)
    missing_seq: int = 0  # seqs within the batch's range never received from its gateway

    @property
    def complete(self) -> bool:
        """Every code and record of every kind acknowledged (a batch without codes: once it has
        ended)."""
        return (
            (self.commissioned > 0 or self.ended)
            and self.acknowledged == self.commissioned
            and self.other_unacked == 0
            and all(k.complete for k in self.kinds.values())
            and self.missing_seq == 0
        )

    @property
    def state(self) -> str:
        if self.complete:
            return "complete"
        return "incomplete" if self.ended else "open"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete, "state": self.state}


def by_state(db: Db, rows_sql: str, batch: str) -> dict[str | None, int]:
    """Count a batch's rows (``rows_sql``: a table filtered by ``batch = ?``, aliased ``x``) by
    the state of the document holding them (None: not in a document yet). Documents are few;
    each is one index range (batch, rid) of the rows."""
    out: dict[str | None, int] = {}
    for state, n in db.execute(
        f"SELECT d.state, COUNT(*) FROM documents d JOIN {rows_sql} "
        "AND x.rid BETWEEN d.first_rid AND d.last_rid GROUP BY d.state",
        (batch,),
    ):
        out[state] = n
    waiting = db.execute(
        f"SELECT COUNT(*) FROM {rows_sql.replace(' ON ', ' WHERE ', 1)} AND x.rid > {BUILT_RID}",
        (batch,),
    ).fetchone()[0]
    if waiting:
        out[None] = waiting
    return out


CODES_OF_BATCH = "codes x ON x.batch = ?"
OTHERS_OF_BATCH = "events x ON x.batch = ? AND x.up = 1 AND x.type != 'pack.bag'"


def batch_report(db: Db, batch: str) -> BatchReport | None:
    head = db.execute("SELECT ended, last_activity FROM batches WHERE batch=?", (batch,)).fetchone()
    if head is None:
        return None
    codes = by_state(db, CODES_OF_BATCH, batch)
    others = by_state(db, OTHERS_OF_BATCH, batch)
    n = sum(codes.values())
    return BatchReport(
        batch,
        commissioned=n,
        documented=n - codes.get(None, 0),
        uploaded=codes.get("sent", 0) + codes.get("acked", 0),
        acknowledged=codes.get("acked", 0),
        quarantined=codes.get("quarantined", 0),
        other_unacked=sum(v for k, v in others.items() if k != "acked"),
        ended=head[0] is not None,
        last_activity=head[1],
        kinds=kind_counts(db, batch),
        missing_seq=missing_seq(db, batch),
    )


def missing_seq(db: Db, batch: str) -> int:
    """Seqs in the batch's range (per gateway) that the bridge never received."""
    n = 0
    for gw, lo, hi in db.execute(
        "SELECT gateway, MIN(seq), MAX(seq) FROM events WHERE batch = ? AND up = 1 "
        "GROUP BY gateway",
        (batch,),
    ).fetchall():
        ranges = [[a, b] for a, b in db.execute(
            "SELECT lo, hi FROM seq_ranges WHERE gateway = ? ORDER BY lo", (gw,))]  # fmt: skip
        n += missing_in(ranges, lo, hi)
    return n


def reports(db: Db) -> list[BatchReport]:
    names = [r[0] for r in db.execute("SELECT batch FROM batches ORDER BY batch")]
    return [r for r in (batch_report(db, b) for b in names) if r is not None]


class Reconciler:
    def __init__(
        self,
        db: Db,
        incomplete_alarm_secs: float,
        alarm: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.db = db
        self.after = incomplete_alarm_secs
        self.alarm = alarm
        self.alarms_raised = 0

    def run_once(self, now: float | None = None) -> list[BatchReport]:
        """Reconcile batches not known complete (or touched since); raise/clear alarms."""
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT batch, alarmed FROM batches "
            "WHERE completed IS NULL OR last_activity > completed OR alarmed IS NOT NULL"
        ).fetchall()
        out = []
        for batch, alarmed in rows:
            rep = batch_report(self.db, batch)
            if rep is None:
                continue
            out.append(rep)
            if rep.complete:
                self.db.execute(
                    "UPDATE batches SET completed=?, alarmed=NULL WHERE batch=?", (now, batch)
                )
                if alarmed is not None:
                    self._raise(rep, "complete")
            elif alarmed is None and now - rep.last_activity >= self.after:
                self.db.execute("UPDATE batches SET alarmed=? WHERE batch=?", (now, batch))
                self._raise(rep, "incomplete")
        return out

    def _raise(self, rep: BatchReport, state: str) -> None:
        self.alarms_raised += 1
        data = {
            "state": state,
            "batch": rep.batch,
            "commissioned": rep.commissioned,
            "uploaded": rep.uploaded,
            "acknowledged": rep.acknowledged,
            "quarantined": rep.quarantined,
            "other_unacked": rep.other_unacked,
            "missing_seq": rep.missing_seq,
            "detail": (
                f"batch {rep.batch}: {rep.acknowledged} of {rep.commissioned} codes "
                f"acknowledged by the platform"
                + (
                    f", {rep.other_unacked} other records not acknowledged"
                    if state != "complete"
                    else ""
                )
                + (
                    f", {rep.missing_seq} events never received from the gateway (seq gap)"
                    if rep.missing_seq
                    else ""
                )
            ),
        }
        if state == "complete":
            log.info("alarm.upload cleared: %s", data["detail"])
        else:
            log.warning("alarm.upload: %s", data["detail"])
        if self.alarm is not None:
            self.alarm(data)
