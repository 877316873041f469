"""Retention (QB/T 5279-2018 11.1: electronic records kept at least until one year after the
product's shelf life ends; saltgw also keeps everything at least two years).

A batch's records are kept until ``production date + max(shelf life + after_shelf_life_days,
min_days)``; the shelf life is the batch's (batch.start), else its product's (config), else
``default_shelf_life_days``. Records outside a batch (outbound, alarms) are kept until their
event date + ``max(default shelf life + after_shelf_life_days, min_days)``. Nothing that the
platform has not acknowledged is ever purged. Acknowledged documents go once no record refers to
them and they are ``min_days`` old; quarantined payloads after ``min_days``.

Run by the bridge every ``purge_interval_secs`` and by ``saltgw trace --purge``. Each purged
record's chain links stay in ``pruned`` with the dates that allowed the purge (the date the span
counts from, the date kept until, today) under the store's chain key (integrity.prune), which
``saltgw verify`` checks against this rule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from gateway.bridge.config import BridgeSection
from gateway.bridge.db import Db
from gateway.bridge.integrity import prune
from gateway.bridge.reconcile import by_state

__all__ = ["PurgeReport", "keep_until", "purge"]

log = logging.getLogger(__name__)

TYPED = (
    "codes", "relations", "ccp", "outbound", "feedings", "rejects", "scans", "moved_bags",
)  # fmt: skip


@dataclass(slots=True)
class PurgeReport:
    batches: int = 0
    events: int = 0
    documents: int = 0
    quarantined: int = 0
    kept_unacked: int = 0  # expired batches kept because not all their records are acknowledged


def keep_until(production_date: date, shelf_life_days: int, cfg: BridgeSection) -> date:
    r = cfg.retention
    return production_date + timedelta(
        days=max(shelf_life_days + r.after_shelf_life_days, r.min_days)
    )


def _unacked(db: Db, batch: str) -> int:
    """The batch's records to upload that the platform has not acknowledged."""
    counts = by_state(db, "events x ON x.batch = ? AND x.up = 1", batch)
    return sum(n for state, n in counts.items() if state != "acked")


def _delete_events(
    db: Db,
    where: str,
    arg: object,
    *,
    key: bytes,
    today: date,
    rule: Callable[[str], tuple[date, date]],
) -> int:
    sub = f"SELECT rid FROM events e WHERE {where}"
    prune(db, sub, arg, key=key, today=today, rule=rule)  # the chain's links survive the purge
    for table in TYPED:
        db.execute(f"DELETE FROM {table} WHERE rid IN ({sub})", (arg,))
    return int(db.execute(f"DELETE FROM events WHERE rid IN ({sub})", (arg,)).rowcount)


def purge(
    db: Db, cfg: BridgeSection, today: date | None = None, *, key: bytes
) -> PurgeReport:
    """``key``: the store's chain key (integrity.prune seals what each purge removed)."""
    today = today or date.today()
    rep = PurgeReport()
    r = cfg.retention
    db.execute("BEGIN IMMEDIATE")
    try:
        rows = db.execute(
            "SELECT batch, product, production_date, shelf_life_days, started FROM batches"
        ).fetchall()
        for batch, product, prod_date, shelf, started in rows:
            made = _date(prod_date) or _date(started)
            if made is None:
                continue
            info = cfg.product(product)
            days = shelf or (info.shelf_life_days if info else r.default_shelf_life_days)
            if keep_until(made, days, cfg) >= today:
                continue
            if _unacked(db, batch):
                rep.kept_unacked += 1
                continue
            until = keep_until(made, days, cfg)
            rep.events += _delete_events(
                db, "e.batch = ?", batch, key=key, today=today, rule=_fixed(made, until)
            )
            db.execute("DELETE FROM batches WHERE batch = ?", (batch,))
            rep.batches += 1
        # records outside a batch, by their event date
        span = max(r.default_shelf_life_days + r.after_shelf_life_days, r.min_days)
        cutoff = (today - timedelta(days=span)).isoformat()
        cond = (
            "e.batch IS NULL AND substr(e.ts, 1, 10) < ? AND (e.up = 0 OR EXISTS (SELECT 1 "
            "FROM documents d WHERE d.state = 'acked' AND e.rid BETWEEN d.first_rid AND "
            "d.last_rid))"
        )

        def by_event_date(ts: str) -> tuple[date, date]:
            since = _date(ts) or today  # (selected by this date, so it parses)
            return since, since + timedelta(days=span)

        rep.events += _delete_events(db, cond, cutoff, key=key, today=today, rule=by_event_date)
        old = time.time() - r.min_days * 86400
        docs = db.execute(
            "SELECT id, number FROM documents d WHERE state = 'acked' AND created < ? "
            "AND NOT EXISTS (SELECT 1 FROM events e "
            "WHERE e.rid BETWEEN d.first_rid AND d.last_rid)",
            (old,),
        ).fetchall()
        for doc_id, number in docs:
            db.execute("DELETE FROM attempts WHERE number = ?", (number,))
            db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        rep.documents = len(docs)
        rep.quarantined = db.execute("DELETE FROM quarantine WHERE received < ?", (old,)).rowcount
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    if rep.batches or rep.events or rep.documents or rep.quarantined:
        log.info(
            "retention: purged %d batches, %d events, %d documents, %d quarantined payloads",
            rep.batches, rep.events, rep.documents, rep.quarantined,
        )  # fmt: skip
    return rep


def _fixed(since: date, until: date) -> Callable[[str], tuple[date, date]]:
    """The retention dates of a batch's records: the batch's, whatever the event's date."""
    return lambda _ts: (since, until)


def _date(v: str | None) -> date | None:
    if not v:
        return None
    try:
        return date.fromisoformat(v[:10])
    except ValueError:
        return None
