"""Per record kind, how many records a batch has: produced (stored), in a document, acknowledged
by the platform (issue 13: a batch is complete only when every record of every kind is
acknowledged; QB/T 5279-2018 11.2 及时上传, the 2023 speech's incomplete uploads).

A record belongs to the batch of what it is about:

    kind       rows                                        QB/T 5279-2018
    bags       ``codes`` (codes commissioned)               6.3, table 3
    cases      ``pack.case`` events                         table 2 row 2 (分装信息)
    pallets    ``pack.pallet`` events                       table 2 row 2
    unpacks    ``pack.unpack`` events (rework)              table 2 row 2, 8.4
    ccp        ``ccp`` records                              table 2 row 4
    feedings   ``feedings``                                 table 2 row 1
    rejects    ``rejects`` (the bag's batch)                table 3 row 3
    outbound   ``outbound`` rows (the shipped code's batch) table 4
    inbound    ``scans`` of kind inbound (the code's batch) 5.2
    recall     ``scans`` of kind recall (the code's batch)  10.6
    records    ``lab_records`` of the batch (MES / LIMS)    tables 2 row 3, 3 rows 3-4

Rows are counted by the state of the document that holds their event (documents are few; each is
one index range of the rows), like :func:`gateway.bridge.reconcile.by_state`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.bridge.db import Db
from gateway.bridge.schema import BUILT_RID

__all__ = ["KINDS", "KindCount", "kind_counts"]

# kind → rows of one batch (a table aliased ``x`` with ``rid`` and ``batch``, joined ``ON``)
KINDS: dict[str, str] = {
    "bags": "codes x ON x.batch = ?",
    "cases": "events x ON x.batch = ? AND x.up = 1 AND x.type = 'pack.case'",
    "pallets": "events x ON x.batch = ? AND x.up = 1 AND x.type = 'pack.pallet'",
    "unpacks": "events x ON x.batch = ? AND x.up = 1 AND x.type = 'pack.unpack'",
    "ccp": "ccp x ON x.batch = ?",
    "feedings": "feedings x ON x.batch = ?",
    "rejects": "rejects x ON x.batch = ?",
    "outbound": "outbound x ON x.batch = ?",
    "inbound": "scans x ON x.batch = ? AND x.kind = 'inbound'",
    "recall": "scans x ON x.batch = ? AND x.kind = 'recall'",
    "records": "lab_records x ON x.batch = ?",  # inspections, releases, non-conforming
}


@dataclass(frozen=True, slots=True)
class KindCount:
    produced: int  # records stored
    documented: int  # of them, in a document (any state)
    acknowledged: int  # of them, in a document the platform acknowledged
    quarantined: int  # of them, in a quarantined document (never uploaded as it is)

    @property
    def complete(self) -> bool:
        return self.acknowledged == self.produced


def _count(db: Db, rows_sql: str, batch: str) -> KindCount:
    states: dict[str, int] = {}
    for state, n in db.execute(
        f"SELECT d.state, COUNT(*) FROM documents d JOIN {rows_sql} "
        "AND x.rid BETWEEN d.first_rid AND d.last_rid GROUP BY d.state",
        (batch,),
    ):
        states[state] = n
    waiting = db.execute(
        f"SELECT COUNT(*) FROM {rows_sql.replace(' ON ', ' WHERE ', 1)} AND x.rid > {BUILT_RID}",
        (batch,),
    ).fetchone()[0]
    documented = sum(states.values())
    return KindCount(
        produced=documented + waiting,
        documented=documented,
        acknowledged=states.get("acked", 0),
        quarantined=states.get("quarantined", 0),
    )


def kind_counts(db: Db, batch: str) -> dict[str, KindCount]:
    """Every kind's counts for ``batch`` (kinds without records included, as zeros)."""
    return {kind: _count(db, rows, batch) for kind, rows in KINDS.items()}
