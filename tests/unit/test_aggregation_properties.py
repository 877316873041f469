"""Property: whatever sequence of scans and operator actions arrives, no bag is ever in two live
cases, and no case on two live pallets (QB/T 5279-2018 5.1: each small package belongs to one
outer package). The model is rebuilt from what the state machine *reported* (bound, unpacked),
so a binding that should have been refused would show up as a bag in two live cases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.aggregation import Aggregator
from gateway.tracedb import TraceDb

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
BAGS = [f"B{i}" for i in range(4)]
CASES = [f"C{i}" for i in range(4)]
PALLETS = ["P0", "P1"]

children = st.lists(st.sampled_from(BAGS), min_size=1, max_size=3, unique=True) | st.lists(
    st.sampled_from(BAGS + CASES), max_size=4
)
ops = st.one_of(
    st.tuples(st.just("commission"), st.sampled_from(BAGS), st.sampled_from(["X", None])),
    st.tuples(st.just("reject"), st.sampled_from(BAGS)),
    st.tuples(
        st.just("case"),
        st.sampled_from(CASES),
        children,
        st.integers(1, 3),
    ),
    st.tuples(
        st.just("pallet"),
        st.sampled_from(PALLETS),
        st.lists(st.sampled_from(CASES + BAGS[:2]), max_size=4),
        st.integers(1, 3),
    ),
    st.tuples(st.just("close"), st.sampled_from(CASES + PALLETS), st.sampled_from(["", "eob"])),
    st.tuples(st.just("unpack"), st.sampled_from(CASES + PALLETS)),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["X", "Y", None]), min_size=4, max_size=4), st.lists(ops, max_size=30)
)
def test_no_child_is_ever_in_two_live_parents(
    batches: list[str | None], steps: list[tuple[Any, ...]]
) -> None:
    agg = Aggregator(TraceDb(Path(":memory:")), "L1")
    for bag, batch in zip(BAGS, batches, strict=True):
        agg.commission(bag, batch=batch, sku=None, ts=T0)
    live: dict[str, set[str]] = {}  # live parent → children, from what was reported
    for step in steps:
        kind = step[0]
        if kind == "commission":
            agg.commission(step[1], batch=step[2], sku=None, ts=T0)
        elif kind == "reject":
            was = agg.reject(step[1], T0)
            if was is not None and was.parent is not None:  # taken out of its case
                live[was.parent].discard(step[1])
            now = agg.item(step[1])
            assert now is not None and now.parent is None and now.status == "rejected"
        elif kind in ("case", "pallet"):
            res = agg.bind(step[1], list(step[2]), level=kind, expected=step[3], ts=T0)
            if res.ok:
                assert res.status in ("open", "closed")
                live[step[1]] = set(res.children)
        elif kind == "close":
            agg.close_partial(step[1], step[2], T0)
        elif kind == "unpack" and not agg.unpack(step[1], "rework", T0).refusals:
            live.pop(step[1], None)
        # the invariant, on the reported model ...
        owners: dict[str, str] = {}
        for parent, children in live.items():
            for child in children:
                assert child not in owners, f"{child} in {owners[child]} and {parent}"
                owners[child] = parent
        # ... and the store agrees with it
        for parent, children in live.items():
            assert set(agg.children(parent)) == children
