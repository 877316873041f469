"""The aggregation state machine: bags are commissioned, cases bind bags, pallets bind cases.

QB/T 5279-2018 5.1 (生产管理: 每批次最小包装与外包装建立关联关系) and 8.4 (a new outer package's
mark stays linked to the marks inside it): each binding is checked before anything is written,
and a refused binding writes nothing. Refusal reasons (``Refusal.reason``)::

    empty             no children
    parent_in_use     the parent's code is a live case/pallet already, or a code of another level
    duplicate_child   the same child twice in one binding
    not_commissioned  a child the line never commissioned (bags) or never closed (cases)
    wrong_level       a case inside a case, a bag on a pallet, a parent inside itself
    rejected_child    a bag that was rejected (pack.reject: it is also taken out of its case)
    open_child        a case that is still open (short) or was unpacked, put on a pallet
    bound_elsewhere   a child already inside another live case or pallet
    mixed_batch       children of different batches (10.2.4: the batch is the thread)
    mixed_sku         children of different products
    over_ratio        more children than the product's pack ratio
    not_open          close_partial on something that is not an open case/pallet
    no_reason         close_partial or unpack without a reason
    parent_bound      unpacking a case that sits on a live pallet (unpack the pallet first)
    unknown           close_partial/unpack of a code the line does not know
    known_code        commissioning a code the line knows already (the code index alarms it)

Fewer children than the pack ratio is not a refusal: the case is bound *open* (its bags are in
it and cannot go elsewhere) until an operator closes it as partial, with a reason, or reworks it.
A bag or case whose batch is unknown (no batch running) joins any batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from gateway.aggregation.store import (
    Item,
    Slot,
    children_of,
    create_tables,
    get_item,
    get_items,
)
from gateway.tracedb import TraceDb

__all__ = ["CHILD_LEVEL", "Aggregator", "BindResult", "Refusal", "UnpackResult"]

CHILD_LEVEL = {"case": "bag", "pallet": "case"}


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    code: str | None
    detail: str

    def as_dict(self) -> dict[str, str | None]:
        return {"reason": self.reason, "code": self.code, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class BindResult:
    parent: str
    level: str
    children: list[str]
    status: str  # closed | open | refused
    expected: int
    refusals: list[Refusal] = field(default_factory=list)
    batch: str | None = None
    sku: str | None = None
    partial_reason: str | None = None

    @property
    def ok(self) -> bool:
        return not self.refusals


@dataclass(frozen=True, slots=True)
class UnpackResult:
    parent: str
    level: str | None
    children: list[str]
    refusals: list[Refusal] = field(default_factory=list)


def _stamp(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds")


class Aggregator:
    """Bindings of one line, persistent in the line's trace store."""

    def __init__(self, db: TraceDb, line: str) -> None:
        self.db = db
        self.line = line
        create_tables(db)

    # -- bags -----------------------------------------------------------------------------------
    def commission(
        self, code: str, *, batch: str | None, sku: str | None, ts: datetime
    ) -> Refusal | None:
        """Record a bag's code (pack.bag); refused when the code is known already."""
        with self.db.transaction() as c:
            known = get_item(c, code)
            if known is not None:
                return Refusal(
                    "known_code",
                    code,
                    f"code {code} is already known as a {known.level} ({known.status})",
                )
            c.execute(
                "INSERT INTO agg_item (code, level, status, batch, sku, line, ts) "
                "VALUES (?, 'bag', 'commissioned', ?, ?, ?, ?)",
                (code, batch, sku, self.line, _stamp(ts)),
            )
        return None

    def reject(self, code: str, ts: datetime) -> Item | None:
        """A commissioned bag was rejected (it left the line, docs/events.md ``pack.reject``):
        it is marked ``rejected`` (never packed again), taken out of the case it was bound in
        (its ``parent`` is cleared), and its pending slot goes. Returns the bag as it was when
        rejected, with status ``rejected`` and ``parent`` = the case it was taken out of (None
        when it was in none); None when ``code`` is not a bag of this line."""
        with self.db.transaction() as c:
            item = get_item(c, code)
            if item is None or item.level != "bag":
                return None
            c.execute(
                "UPDATE agg_item SET status = 'rejected', parent = NULL WHERE code = ?", (code,)
            )
            c.execute("DELETE FROM agg_pending WHERE level = 'bag' AND code = ?", (code,))
            return replace(item, status="rejected")

    # -- pending slots ----------------------------------------------------------------------------
    def push_slot(
        self, level: str, code: str | None, *, sku: str | None, batch: str | None, ts: datetime
    ) -> None:
        """A bag (or case) reached its scanner: code, or None when its code was not read."""
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO agg_pending (line, level, code, sku, batch, ts) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self.line, level, code, sku, batch, _stamp(ts)),
            )

    def pending(self, level: str) -> list[Slot]:
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT id, code, sku, batch, ts FROM agg_pending WHERE line = ? AND level = ? "
                "ORDER BY id",
                (self.line, level),
            ).fetchall()
        return [Slot(*r) for r in rows]

    def take_slots(self, level: str, n: int) -> list[Slot]:
        """Remove and return the oldest ``n`` pending slots of ``level``."""
        with self.db.transaction() as c:
            rows = c.execute(
                "SELECT id, code, sku, batch, ts FROM agg_pending WHERE line = ? AND level = ? "
                "ORDER BY id LIMIT ?",
                (self.line, level, n),
            ).fetchall()
            if rows:
                c.execute(
                    f"DELETE FROM agg_pending WHERE id IN ({','.join('?' * len(rows))})",
                    [r[0] for r in rows],
                )
        return [Slot(*r) for r in rows]

    # -- binding --------------------------------------------------------------------------------
    def bind(
        self,
        parent: str,
        children: list[str],
        *,
        level: str,
        expected: int,
        ts: datetime,
        partial_reason: str | None = None,
    ) -> BindResult:
        """Bind ``children`` into ``parent`` (a case or pallet), or refuse and write nothing."""
        child_level = CHILD_LEVEL[level]
        with self.db.transaction() as c:
            items = get_items(c, [parent, *children])
            refusals = _check_bind(parent, children, level, child_level, expected, items)
            unique = list(dict.fromkeys(children))
            known = [items[ch] for ch in unique if ch in items]
            batches = sorted({i.batch for i in known if i.batch is not None})
            skus = sorted({i.sku for i in known if i.sku is not None})
            batch = batches[0] if len(batches) == 1 else None
            sku = skus[0] if len(skus) == 1 else None
            if refusals:
                return BindResult(parent, level, unique, "refused", expected, refusals, batch, sku)
            status = "closed" if len(unique) == expected or partial_reason else "open"
            c.execute("DELETE FROM agg_item WHERE code = ?", (parent,))  # an unpacked label
            c.execute(
                "INSERT INTO agg_item (code, level, status, batch, sku, expected, "
                "partial_reason, line, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    parent,
                    level,
                    status,
                    batch,
                    sku,
                    expected,
                    partial_reason,
                    self.line,
                    _stamp(ts),
                ),
            )
            c.executemany(
                "UPDATE agg_item SET parent = ? WHERE code = ?", [(parent, ch) for ch in unique]
            )
        return BindResult(parent, level, unique, status, expected, [], batch, sku, partial_reason)

    def close_partial(self, parent: str, reason: str, ts: datetime) -> BindResult:
        """An operator closes an open (short) case or pallet as partial, giving a reason."""
        with self.db.transaction() as c:
            item = get_item(c, parent)
            level = item.level if item is not None else "case"
            kids = children_of(c, parent) if item is not None else []
            refusal = None
            if not reason.strip():
                refusal = Refusal("no_reason", parent, "closing a partial case needs a reason")
            elif item is None:
                refusal = Refusal("unknown", parent, f"{parent} is not a known case or pallet")
            elif item.level == "bag" or item.status != "open":
                refusal = Refusal(
                    "not_open", parent, f"{item.level} {parent} is {item.status}, not open"
                )
            if refusal is not None or item is None:
                return BindResult(parent, level, kids, "refused", 0, [refusal] if refusal else [])
            c.execute(
                "UPDATE agg_item SET status = 'closed', partial_reason = ? WHERE code = ?",
                (reason, parent),
            )
        return BindResult(
            parent,
            item.level,
            kids,
            "closed",
            item.expected or 0,
            [],
            item.batch,
            item.sku,
            reason,
        )

    def unpack(self, parent: str, reason: str, ts: datetime) -> UnpackResult:
        """Rework (pack.unpack): the case or pallet is opened and its children are free again."""
        with self.db.transaction() as c:
            item = get_item(c, parent)
            if not reason.strip():
                refusal = Refusal("no_reason", parent, "unpacking needs a reason")
            elif item is None or item.level == "bag":
                refusal = Refusal("unknown", parent, f"{parent} is not a known case or pallet")
            elif not item.live:
                refusal = Refusal("not_open", parent, f"{item.level} {parent} is {item.status}")
            elif item.parent is not None:
                refusal = Refusal(
                    "parent_bound",
                    parent,
                    f"case {parent} is on pallet {item.parent}: unpack the pallet first",
                )
            else:
                kids = children_of(c, parent)
                c.execute("UPDATE agg_item SET parent = NULL WHERE parent = ?", (parent,))
                c.execute("UPDATE agg_item SET status = 'unpacked' WHERE code = ?", (parent,))
                return UnpackResult(parent, item.level, kids)
        return UnpackResult(parent, item.level if item else None, [], [refusal])

    # -- queries --------------------------------------------------------------------------------
    def item(self, code: str) -> Item | None:
        with self.db.lock:
            return get_item(self.db.conn, code)

    def children(self, code: str) -> list[str]:
        with self.db.lock:
            return children_of(self.db.conn, code)

    def bags_under(self, code: str) -> list[str]:
        """Every bag code inside ``code`` (itself for a bag), depth first."""
        with self.db.lock:
            item = get_item(self.db.conn, code)
            if item is None or item.level == "bag":
                return [code]
            out: list[str] = []
            for child in children_of(self.db.conn, code):
                out.extend(self.bags_under(child))
            return out


def _check_bind(
    parent: str,
    children: list[str],
    level: str,
    child_level: str,
    expected: int,
    items: dict[str, Item],
) -> list[Refusal]:
    out: list[Refusal] = []
    if not children:
        out.append(Refusal("empty", parent, f"{level} {parent} has no children"))
    own = items.get(parent)
    if own is not None and own.level != level:
        out.append(
            Refusal("parent_in_use", parent, f"{parent} is a {own.level}, not a {level} label")
        )
    elif own is not None and own.live:
        out.append(
            Refusal("parent_in_use", parent, f"{level} {parent} is already packed ({own.status})")
        )
    seen: set[str] = set()
    for ch in children:
        if ch in seen:
            out.append(Refusal("duplicate_child", ch, f"{ch} is listed twice in {level} {parent}"))
            continue
        seen.add(ch)
        it = items.get(ch)
        what = "commissioned bag" if child_level == "bag" else "closed case"
        if ch == parent:
            out.append(Refusal("wrong_level", ch, f"{level} {parent} cannot contain itself"))
        elif it is None:
            out.append(Refusal("not_commissioned", ch, f"{ch} is not a {what} of this line"))
        elif it.level != child_level:
            out.append(
                Refusal("wrong_level", ch, f"{ch} is a {it.level}; a {level} holds {child_level}s")
            )
        elif it.status == "rejected":
            out.append(Refusal("rejected_child", ch, f"bag {ch} was rejected"))
        elif child_level == "case" and it.status != "closed":
            out.append(Refusal("open_child", ch, f"case {ch} is {it.status}, not closed"))
        elif it.parent is not None and it.parent != parent:
            out.append(Refusal("bound_elsewhere", ch, f"{ch} is already in {level} {it.parent}"))
        elif it.parent == parent:
            out.append(Refusal("bound_elsewhere", ch, f"{ch} is already in {level} {parent}"))
    known = [items[ch] for ch in dict.fromkeys(children) if ch in items and ch != parent]
    batches = sorted({i.batch for i in known if i.batch is not None})
    if len(batches) > 1:
        out.append(Refusal("mixed_batch", None, f"batches {', '.join(batches)} in one {level}"))
    skus = sorted({i.sku for i in known if i.sku is not None})
    if len(skus) > 1:
        out.append(Refusal("mixed_sku", None, f"products {', '.join(skus)} in one {level}"))
    if len(seen) > expected:
        out.append(
            Refusal(
                "over_ratio",
                None,
                f"{len(seen)} {child_level}s for a {level} of {expected} (pack ratio)",
            )
        )
    return out
