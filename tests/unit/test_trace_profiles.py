"""The traceability profiles together, in process: bag scanner → case packer → pallet builder →
outbound scanner, and the KPI profile, sharing one trace store (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from drivers.base import Reading
from gateway.events import EventDraft, Origin
from gateway.profiles.context import LineContext
from gateway.profiles.registry import profile_specs
from gateway.traceline import close_trace_lines

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=TZ)
ORIGIN = Origin("gw-test-1", "8035", "daiyue", "L1")


class Line:
    def __init__(self, store: Path) -> None:
        self.store = store
        self.batch: str | None = "20261122-L1-01"
        self.t = T0
        self.profiles: dict[str, Any] = {}

    def add(self, device: str, profile: str, **cfg: Any) -> Any:
        spec = profile_specs()[profile]
        model = spec.config_model(profile=profile, device=device, store=self.store, **cfg)
        prof = spec.create(model, spec.bind({}, None), TZ)
        prof.bind_line(LineContext(ORIGIN, lambda: self.batch))
        self.profiles[device] = prof
        return prof

    def scan(
        self, device: str, text: str | None, errors: dict[str, str] | None = None
    ) -> list[EventDraft]:
        self.t += timedelta(milliseconds=500)
        values: dict[str, Any] = {"codes": text or "", "noread": text is None and not errors}
        reading = Reading(device, self.t, values, errors or {})
        return list(self.profiles[device].on_reading(reading))


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    ln = Line(tmp_path / "trace.db")
    yield ln
    close_trace_lines(ln.store)


def _types(evs: list[EventDraft]) -> list[str]:
    return [e.type for e in evs]


def bag(i: int) -> str:
    return f"8035BAG{i:07d}"


def test_bags_cases_pallet_and_outbound(line: Line) -> None:
    line.add("scan1", "bag_scanner", sku="s400")
    line.add("case1", "case_packer", bags_per_case={"s400": 3, "default": 5})
    line.add("pal1", "pallet_builder", cases_per_pallet=2)
    line.add("out1", "outbound_scanner")
    for i in range(3):
        assert _types(line.scan("scan1", f"https://trace.example.cn/q?c={bag(i)}")) == ["pack.bag"]
    (case,) = line.scan("case1", "8035CASE000001")
    assert case.type == "pack.case" and case.batch == "20261122-L1-01"
    # the case label read on the bag line: refused as a bag, and said so (not "seen 1 times")
    (label,) = line.scan("scan1", "8035CASE000001")
    assert label.type == "alarm.duplicate_code" and label.data["count"] == 1
    assert "already known as a case" in label.data["detail"], label.data["detail"]
    line.profiles["case1"].trace.agg.take_slots("bag", 1)  # the empty slot it left
    assert case.data["children"] == [bag(0), bag(1), bag(2)] and case.data["partial"] is False
    # second case: one bag not read -> short case, bound open
    line.scan("scan1", bag(3))
    assert _types(line.scan("scan1", None)) == ["pack.noread"]
    line.scan("scan1", bag(4))
    (short,) = line.scan("case1", "8035CASE000002")
    assert short.type == "alarm.aggregation" and short.data["reason"] == "short_case"
    assert short.data["children"] == [bag(3), bag(4)]
    # the pallet refuses the open case ...
    (refused,) = line.scan("pal1", "8035PALL000001")
    assert refused.data["reason"] == "open_child" and refused.type == "alarm.aggregation"
    # ... an operator closes it as partial, and then the pallet binds both cases
    (closed,) = line.profiles["case1"].close_partial("8035CASE000002", "bag burst", "wang", T0)
    assert closed.type == "pack.case" and closed.data["partial_reason"] == "bag burst"
    line.profiles["case1"].trace.agg.push_slot(
        "case", "8035CASE000001", sku="s400", batch=None, ts=T0
    )
    line.profiles["case1"].trace.agg.push_slot(
        "case", "8035CASE000002", sku="s400", batch=None, ts=T0
    )
    (pallet,) = line.scan("pal1", "8035PALL000002")
    assert pallet.type == "pack.pallet"
    assert pallet.data["children"] == ["8035CASE000001", "8035CASE000002"]
    # outbound before any order: refused (table 4 needs order and customer), not registered
    (no_order,) = line.scan("out1", "8035PALL000002")
    assert no_order.type == "alarm.aggregation" and no_order.data["reason"] == "no_order"
    assert "without order and customer" in no_order.data["detail"]
    # outbound: an order barcode, then the pallet counts for its 5 bags
    assert line.scan("out1", "SO:SO-20261122-7|泰安市盐业公司") == []
    (out,) = line.scan("out1", "8035PALL000002")
    assert out.type == "ship.outbound" and out.data["bags"] == 5
    assert out.data["order"] == "SO-20261122-7" and out.data["customer"] == "泰安市盐业公司"
    again = line.scan("out1", "8035CASE000001")
    assert _types(again) == ["ship.outbound", "alarm.duplicate_code"]
    assert again[1].data["earlier_order"] == "SO-20261122-7"


def test_duplicate_invalid_and_garbage_at_the_bag_scanner(line: Line) -> None:
    line.add("scan1", "bag_scanner")
    assert _types(line.scan("scan1", bag(1))) == ["pack.bag"]
    (dup,) = line.scan("scan1", bag(1))
    assert dup.type == "alarm.duplicate_code" and dup.data["count"] == 2
    assert dup.data["first_device"] == "scan1"
    (bad,) = line.scan("scan1", "8063ABCDEFGH12")
    assert bad.type == "alarm.invalid_code" and bad.data["error"] == "enterprise_foreign"
    assert line.scan("scan1", None, errors={"frame": "binary data"}) == []
    evs = line.scan("scan1", f"{bag(2)}\n{bag(3)}")  # two codes in one frame
    assert [e.data["code"] for e in evs] == [bag(2), bag(3)]
    counts = line.profiles["scan1"].trace.counters.totals()
    assert (counts["read"], counts["valid"], counts["duplicate"], counts["invalid"]) == (5, 3, 1, 1)
    assert (counts["frames"], counts["garbage"]) == (4, 1)


def test_duplicates_survive_a_restart(line: Line) -> None:
    line.add("scan1", "bag_scanner")
    line.scan("scan1", bag(1))
    close_trace_lines(line.store)
    line.add("scan1", "bag_scanner")
    assert _types(line.scan("scan1", bag(1))) == ["alarm.duplicate_code"]


def test_unlabeled_case_frees_its_bags_and_the_next_case_is_right(line: Line) -> None:
    line.add("scan1", "bag_scanner")
    line.add("case1", "case_packer", bags_per_case=2)
    for i in range(2):
        line.scan("scan1", bag(i))
    evs = line.scan("case1", None)  # the case label was not read
    assert _types(evs) == ["pack.noread", "alarm.aggregation"]
    assert evs[1].data["reason"] == "label_noread" and evs[1].data["children"] == [bag(0), bag(1)]
    for i in range(2, 4):
        line.scan("scan1", bag(i))
    (case,) = line.scan("case1", "8035CASE000009")
    assert case.data["children"] == [bag(2), bag(3)]


def test_unpack_frees_bags_and_reject_chute(line: Line) -> None:
    line.add("scan1", "bag_scanner")
    line.add("rej1", "bag_scanner", action="reject")
    line.add("case1", "case_packer", bags_per_case=2)
    line.scan("scan1", bag(1))
    line.scan("scan1", bag(2))
    line.scan("case1", "8035CASE000001")
    (un,) = line.profiles["case1"].unpack("8035CASE000001", "torn", "li", T0)
    assert un.type == "pack.unpack" and un.data["children"] == [bag(1), bag(2)]
    (rej,) = line.scan("rej1", bag(2))
    assert rej.type == "pack.reject" and rej.data["commissioned"] is True
    res = line.profiles["case1"].trace.agg.bind(
        "8035CASE000002", [bag(1), bag(2)], level="case", expected=2, ts=T0
    )
    assert [r.reason for r in res.refusals] == ["rejected_child"]


def test_reject_chute_takes_a_packed_bag_out_of_its_case(line: Line) -> None:
    line.add("scan1", "bag_scanner")
    line.add("rej1", "bag_scanner", action="reject")
    line.add("case1", "case_packer", bags_per_case=2)
    line.scan("scan1", bag(1))
    line.scan("scan1", bag(2))
    (case,) = line.scan("case1", "8035CASE000001")
    assert case.type == "pack.case" and case.data["children"] == [bag(1), bag(2)]
    (rej,) = line.scan("rej1", bag(2))
    assert rej.type == "pack.reject"
    assert rej.data == {"code": bag(2), "reason": "reject_chute", "commissioned": True,
                        "case": "8035CASE000001"}  # fmt: skip
    agg = line.profiles["case1"].trace.agg
    assert agg.children("8035CASE000001") == [bag(1)]
    item = agg.item(bag(2))
    assert item is not None and item.parent is None and item.status == "rejected"
    (again,) = line.scan("rej1", bag(1))  # the case's last bag: the case is empty afterwards
    assert again.data["case"] == "8035CASE000001"
    assert agg.children("8035CASE000001") == []


def test_kpi_scan_rate_alarm_and_snapshot(line: Line) -> None:
    line.add("scan1", "bag_scanner")
    kpi = line.add("cw1", "scan_kpi", scan_rate_threshold=0.9, min_bags=10, window_secs=30)
    count = 100
    kpi.on_reading(Reading("cw1", T0, {"count": count}))  # baseline
    alarms: list[EventDraft] = []
    now = T0
    for i in range(40):
        count += 1
        kpi.on_reading(Reading("cw1", now, {"count": count}))
        line.scan("scan1", bag(i) if i % 4 else None)  # 75 % read
        now += timedelta(seconds=1)
        alarms += kpi.on_tick(now)
    assert [a.data["state"] for a in alarms] == ["low"]
    assert alarms[0].type == "alarm.scan_rate" and alarms[0].data["scan_rate"] < 0.9
    for i in range(40, 80):  # back to 100 %
        count += 1
        kpi.on_reading(Reading("cw1", now, {"count": count}))
        line.scan("scan1", bag(i))
        now += timedelta(seconds=1)
        alarms += kpi.on_tick(now)
    assert [a.data["state"] for a in alarms] == ["low", "recovered"]
    snap = kpi.kpi_message(now)
    assert snap is not None and kpi.kpi_message(now) is None  # not due again yet
    shift = snap["scopes"]["shift"]
    assert snap["shift"] == "2026-11-22/A" and shift["id"] == "2026-11-22/A"
    assert shift["counts"]["produced"] == 80 and shift["counts"]["valid"] == 70
    assert shift["scan_rate"] == pytest.approx(70 / 80)
    assert shift["noread_rate"] == pytest.approx(10 / 80)
    assert snap["scopes"]["batch"]["id"] == "20261122-L1-01"
