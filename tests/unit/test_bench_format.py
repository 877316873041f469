"""The benchmarks' JSON line format (bench/report.py) and bench/run.py's --only: format and
selection only, never timings."""

from __future__ import annotations

import json
import math

import pytest

from bench.report import (
    REQUIRED_KEYS,
    error_row,
    latency_summary,
    parse_only,
    percentile,
    row,
    to_line,
)
from bench.run import GROUPS


def test_a_line_starts_with_the_required_keys_in_order() -> None:
    line = to_line(row("x_per_s", 50.0, "x/s", 200.0, events=10))
    obj = json.loads(line)
    assert list(obj)[:5] == list(REQUIRED_KEYS)
    assert obj["ratio"] == 0.25 and obj["events"] == 10
    assert "\n" not in line


def test_required_keys_are_moved_first_and_missing_ones_refused() -> None:
    shuffled = {"events": 1, "ratio": 2.0, "unit": "s", "value": 4, "baseline": 2, "bench": "b"}
    assert list(json.loads(to_line(shuffled)))[:5] == list(REQUIRED_KEYS)
    with pytest.raises(ValueError, match="ratio"):
        to_line({"bench": "b", "value": 1, "unit": "s", "baseline": None})


def test_no_baseline_means_no_ratio() -> None:
    assert row("b", 3.0, "s", None)["ratio"] is None
    assert row("b", 3.0, "s", 0)["ratio"] is None


@pytest.mark.parametrize(
    ("value", "target", "higher_is_better", "met"),
    [(12.0, 10.0, True, True), (8.0, 10.0, True, False), (12.0, 20.0, False, True),
     (25.0, 20.0, False, False), (20.0, 20.0, False, True)],
)  # fmt: skip
def test_met_follows_the_direction_of_the_target(
    value: float, target: float, higher_is_better: bool, met: bool
) -> None:
    r = row("b", value, "u", 1.0, target=target, higher_is_better=higher_is_better)
    assert r["target"] == target and r["met"] is met


def test_no_target_means_no_met_key() -> None:
    assert "met" not in row("b", 1.0, "u", 1.0) and "target" not in row("b", 1.0, "u", 1.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, True, "12"])
def test_values_must_be_finite_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match="finite"):
        row("b", bad, "u", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        row("b", 1.0, "u", bad)  # type: ignore[arg-type]


def test_extra_keys_cannot_overwrite_the_required_ones() -> None:
    with pytest.raises(ValueError, match="ratio"):
        row("b", 1.0, "u", 1.0, ratio=9)
    with pytest.raises(ValueError, match="met"):
        row("b", 1.0, "u", 1.0, met=True)


def test_an_error_line_is_still_a_valid_line() -> None:
    obj = json.loads(to_line(error_row("scan_to_mqtt_p99_ms", RuntimeError("no broker"))))
    assert obj["bench"] == "scan_to_mqtt_p99_ms" and obj["value"] is None
    assert obj["error"] == "no broker"


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 … 1, unsorted on purpose
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary() -> None:
    s = latency_summary([1.0] * 98 + [5.0, 40.0])
    assert s == {"p50_ms": 1.0, "p99_ms": 5.0, "max_ms": 40.0, "mean_ms": 1.43, "count": 100}
    assert latency_summary([]) == {"count": 0}


def test_only_selects_groups_by_group_or_bench_name_in_run_order() -> None:
    assert parse_only(None, GROUPS) == list(GROUPS)
    assert parse_only("", GROUPS) == list(GROUPS)
    assert parse_only("qr_decode_rate,pipeline", GROUPS) == ["pipeline", "qr_decode"]
    assert parse_only("xml_export_peak_rss_mb, xml_export", GROUPS) == ["xml_export"]
    with pytest.raises(ValueError, match="unknown bench 'nope'"):
        parse_only("pipeline,nope", GROUPS)


def test_every_bench_the_issue_names_can_be_selected() -> None:
    names = {b for benches in GROUPS.values() for b in benches}
    assert {
        "pipeline_events_per_s",
        "backlog_drain_events_per_s",
        "scan_to_mqtt_p99_ms",
        "gateway_rss_mb",
        "xml_export_codes_per_s",
        "xml_export_peak_rss_mb",
        "qr_decode_ms_per_frame",
    } <= names
