"""Golden cases for the aggregation state machine (aggregation_cases/cases.yaml), persistence
across a restart, slots, and shipping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.aggregation import Aggregator, Shipping
from gateway.tracedb import TraceDb

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "aggregation_cases" / "cases.yaml").read_text(encoding="utf-8")
)
T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def _step(agg: Aggregator, step: dict[str, Any], ts: datetime) -> tuple[str, list[Any], Any]:
    """Run one step; (status, refusals, result)."""
    ((kind, args),) = step.items()
    if kind == "commission":
        refusals = []
        for code in args["codes"]:
            r = agg.commission(code, batch=args.get("batch"), sku=args.get("sku"), ts=ts)
            if r is not None:
                refusals.append(r)
        return ("refused" if refusals else "commissioned"), refusals, None
    if kind == "reject":
        assert agg.reject(args["code"], ts) is not None
        return "rejected", [], None
    if kind == "bind":
        res = agg.bind(
            args["parent"],
            list(args["children"]),
            level=args["level"],
            expected=args["expected"],
            ts=ts,
            partial_reason=args.get("partial_reason"),
        )
        return res.status, res.refusals, res
    if kind == "close_partial":
        res = agg.close_partial(args["parent"], args["reason"], ts)
        return res.status, res.refusals, res
    if kind == "unpack":
        un = agg.unpack(args["parent"], args["reason"], ts)
        return ("refused" if un.refusals else "unpacked"), un.refusals, un
    raise AssertionError(f"unknown step {kind}")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_aggregation_case(case: dict[str, Any]) -> None:
    agg = Aggregator(TraceDb(Path(":memory:")), "L1")
    ts = T0
    for step in case.get("setup", []):
        status, refusals, _ = _step(agg, step, ts)
        assert not refusals, f"setup step {step} refused: {refusals}"
        ts += timedelta(seconds=1)
    status, refusals, result = _step(agg, case["do"], ts)
    expect = case["expect"]
    assert status == expect["status"]
    assert [r.reason for r in refusals] == expect["reasons"], refusals
    if "codes" in expect:
        assert [r.code for r in refusals] == expect["codes"]
    if "batch" in expect:
        assert result.batch == expect["batch"]
    for r in refusals:
        assert r.detail  # every refusal says why, for the alarm
    for code, parent in case.get("after", {}).items():
        item = agg.item(code)
        assert item is not None, code
        assert item.parent == parent, (code, item)


def test_bindings_survive_a_restart(tmp_path: Path) -> None:
    db = TraceDb(tmp_path / "trace.db")
    agg = Aggregator(db, "L1")
    for b in ("B1", "B2"):
        agg.commission(b, batch="X", sku="s", ts=T0)
    assert agg.bind("C1", ["B1", "B2"], level="case", expected=2, ts=T0).ok
    agg.push_slot("bag", None, sku="s", batch="X", ts=T0)
    db.close()
    agg = Aggregator(TraceDb(tmp_path / "trace.db"), "L1")
    assert agg.children("C1") == ["B1", "B2"]
    assert agg.bind("C2", ["B1"], level="case", expected=1, ts=T0).refusals[0].reason == (
        "bound_elsewhere"
    )
    assert [s.code for s in agg.pending("bag")] == [None]


def test_slots_are_taken_oldest_first_per_line_and_level() -> None:
    db = TraceDb(Path(":memory:"))
    l1, l2 = Aggregator(db, "L1"), Aggregator(db, "L2")
    for code in ("B1", None, "B3"):
        l1.push_slot("bag", code, sku=None, batch=None, ts=T0)
    l2.push_slot("bag", "X1", sku=None, batch=None, ts=T0)
    assert [s.code for s in l1.take_slots("bag", 2)] == ["B1", None]
    assert [s.code for s in l1.pending("bag")] == ["B3"]
    assert [s.code for s in l2.pending("bag")] == ["X1"]
    l1.commission("B3", batch=None, sku=None, ts=T0)
    l1.reject("B3", T0)  # a rejected bag leaves the flow: its slot goes too
    assert l1.pending("bag") == []


def test_outbound_scan_of_a_pallet_counts_for_every_bag_once() -> None:
    db = TraceDb(Path(":memory:"))
    agg = Aggregator(db, "L1")
    for b in ("B1", "B2", "B3", "B4"):
        agg.commission(b, batch=None, sku=None, ts=T0)
    agg.bind("C1", ["B1", "B2"], level="case", expected=2, ts=T0)
    agg.bind("C2", ["B3", "B4"], level="case", expected=2, ts=T0)
    agg.bind("P1", ["C1", "C2"], level="pallet", expected=2, ts=T0)
    ship = Shipping(db, agg)
    first = ship.scan("P1", "outbound", ref="SO1", party="泰安盐业", device="out1", ts=T0)
    assert first.level == "pallet" and first.children == ["C1", "C2"]
    assert sorted(first.bags) == ["B1", "B2", "B3", "B4"] and first.already == {}
    again = ship.scan("C2", "outbound", ref="SO2", party=None, device="out1", ts=T0)
    assert again.already == {"B3": "SO1", "B4": "SO1"}
    assert ship.shipped("B1", "outbound") == ("SO1", "泰安盐业")
    recall = ship.scan("B2", "recall", ref="R1", party=None, device="out1", ts=T0)
    assert recall.level == "bag" and recall.bags == ["B2"] and recall.already == {}
    foreign = ship.scan("9040ZZZZZZ", "inbound", ref=None, party=None, device="in1", ts=T0)
    assert foreign.level == "unknown" and foreign.bags == ["9040ZZZZZZ"]
