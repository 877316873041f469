"""Outbound, inbound and recall scanning (QB/T 5279-2018 10.3.2 出库扫码登记, 5.2 a wholesaler's
入库/出库扫描, 10.6 召回扫码登记).

Scanning a case or a pallet counts for every bag inside it (through the aggregation tables);
each bag is recorded once per direction in ``ship_scan``. A bag already recorded in the same
direction (shipped twice: a copied label, or the same pallet scanned again for another order) is
reported in :attr:`ShipResult.already`, with the order it went out on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from gateway.aggregation.machine import Aggregator
from gateway.tracedb import TraceDb

__all__ = ["DIRECTIONS", "ShipResult", "Shipping"]

DIRECTIONS = ("outbound", "inbound", "recall")

SCHEMA = """
CREATE TABLE IF NOT EXISTS ship_scan (
    code      TEXT NOT NULL,
    direction TEXT NOT NULL,
    scanned   TEXT NOT NULL,
    ref       TEXT,
    party     TEXT,
    device    TEXT,
    ts        TEXT NOT NULL,
    PRIMARY KEY (code, direction)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class ShipResult:
    code: str
    level: str  # bag | case | pallet | unknown (not aggregated here: another producer's code)
    children: list[str]  # direct children of a case or pallet
    bags: list[str]  # every bag the scan counts for
    already: dict[str, str | None] = field(default_factory=dict)  # bag → earlier ref


class Shipping:
    def __init__(self, db: TraceDb, aggregator: Aggregator) -> None:
        self.db = db
        self.agg = aggregator
        db.script(SCHEMA)

    def scan(
        self,
        code: str,
        direction: str,
        *,
        ref: str | None,
        party: str | None,
        device: str | None,
        ts: datetime,
    ) -> ShipResult:
        """Record a scan of ``code`` (a bag, case or pallet) in ``direction``."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        item = self.agg.item(code)
        level = item.level if item is not None else "unknown"
        children = self.agg.children(code) if item is not None and item.level != "bag" else []
        bags = self.agg.bags_under(code)
        stamp = ts.isoformat(timespec="milliseconds")
        already: dict[str, str | None] = {}
        with self.db.transaction() as c:
            for bag in bags:
                row = c.execute(
                    "SELECT ref FROM ship_scan WHERE code = ? AND direction = ?", (bag, direction)
                ).fetchone()
                if row is not None:
                    already[bag] = row[0]
                    continue
                c.execute(
                    "INSERT INTO ship_scan VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (bag, direction, code, ref, party, device, stamp),
                )
        return ShipResult(code, level, children, bags, already)

    def shipped(self, code: str, direction: str) -> tuple[str | None, str | None] | None:
        """(ref, party) of the scan that recorded bag ``code`` in ``direction``, if any."""
        with self.db.lock:
            row = self.db.conn.execute(
                "SELECT ref, party FROM ship_scan WHERE code = ? AND direction = ?",
                (code, direction),
            ).fetchone()
        return None if row is None else (row[0], row[1])
