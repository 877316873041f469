"""The resolver's legality verdict (QB/T 5279 9.1), the suspect-copy rule (8.8) with an
injected clock, and the query records behind them (table 5 #3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.resolver.config import ResolverSection, SuspectCopySection
from gateway.resolver.querylog import QueryLog
from gateway.resolver.snapshot import SnapshotHolder
from gateway.resolver.verdict import Resolver, acceptable, normalise
from tests.support.snapshot import BATCH, code_row, write_snapshot

DAY = 86_400.0
T0 = 1_714_600_000.0  # 2024-05-01T21:46:40Z: a fixed instant, never today


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _resolver(
    tmp: Path, clock: Clock, rule: SuspectCopySection | None = None, qlog: Path | None = None
) -> tuple[Resolver, QueryLog]:
    snap = tmp / "snap.db"
    if not snap.exists():
        write_snapshot(
            snap,
            batches=[BATCH, {**BATCH, "batch": "B-UNRELEASED", "inspection": None}],
            codes=[
                code_row("8035GOOD0001"),
                code_row("8035GOOD0002", state="commissioned"),
                code_row("8035GONE0001", state="withdrawn"),
                code_row("8035BACK0001", state="recalled"),
                code_row("8035HOLD0001", batch="B-UNRELEASED"),
            ],
        )
    cfg = ResolverSection(
        snapshot=snap,
        query_log=qlog or tmp / "queries.db",
        suspect_copy=rule or SuspectCopySection(max_queries=3, max_places=2, window_days=10),
    )
    holder = SnapshotHolder(snap, clock)
    assert holder.check()
    log = QueryLog(cfg.query_log, clock, flush_secs=0.01)
    return Resolver(cfg, holder, log), log


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def resolver(tmp_path: Path, clock: Clock) -> Iterator[Resolver]:
    r, log = _resolver(tmp_path, clock)
    yield r
    log.close()


@pytest.mark.parametrize(
    ("code", "verdict", "reason"),
    [
        ("8035GOOD0001", "genuine", None),
        ("8035GOOD0002", "genuine", None),  # commissioned: bound to its batch, legitimate
        ("8035GONE0001", "withdrawn", "withdrawn"),
        ("8035BACK0001", "recalled", "recalled"),
        ("8035NOSUCH01", "unknown", "not_found"),
        ("8001GOOD0001", "unknown", "enterprise_not_here"),  # Annex A, not in this snapshot
        ("8999GOOD0001", "unknown", "form"),  # not in Annex A
        ("1234GOOD0001", "unknown", "form"),  # does not start with 8 or 9
        ("8035abc", "unknown", "form"),  # outside the charset
        ("8035A", "unknown", "form"),  # in-house code too short
        ("8035" + "A" * 21, "unknown", "form"),  # longer than 20 (6.2)
    ],
)
def test_verdicts(resolver: Resolver, code: str, verdict: str, reason: str | None) -> None:
    a = resolver.resolve(code, "scan", "203.0.113.0/24")
    assert (a.verdict, a.reason) == (verdict, reason)
    assert (a.record is not None) == (verdict not in ("unknown",))
    if reason == "form":
        assert a.detail  # which rule of 6.2 / Annex A it broke


def test_found_code_carries_table6_and_unreleased_inspection_is_none(resolver: Resolver) -> None:
    a = resolver.resolve("8035GOOD0001", "scan", "p")
    assert a.record is not None
    assert a.record.fields[1] == "精制盐" and a.record.fields[23] == "合格，一级"
    assert a.record.fields[17] == "8035GOOD0001" and a.record.fields[16] == BATCH["batch"]
    held = resolver.resolve("8035HOLD0001", "scan", "p")
    assert held.verdict == "genuine" and held.record is not None
    assert held.record.fields[23] is None  # never 合格 before the batch is released


def test_copy_rule_counts_queries_within_the_window(tmp_path: Path, clock: Clock) -> None:
    r, log = _resolver(tmp_path, clock)
    try:
        verdicts = []
        for _ in range(4):
            verdicts.append(r.resolve("8035GOOD0001", "scan", "198.51.100.0/24").verdict)
            clock.t += 60
        assert verdicts == ["genuine"] * 3 + ["suspect_copy"]  # the 4th is more than 3
        a = r.resolve("8035GOOD0001", "scan", "198.51.100.0/24")
        assert a.verdict == "suspect_copy" and a.count == 5 and a.reason == "suspect_copy"
        assert a.detail is not None and "3" in a.detail
        clock.t += 11 * DAY  # the window moved past all of them
        b = r.resolve("8035GOOD0001", "scan", "198.51.100.0/24")
        assert b.verdict == "genuine" and b.count == 6  # 次数 counts every query ever
    finally:
        log.close()


def test_copy_rule_counts_distinct_places(resolver: Resolver) -> None:
    seen = [
        resolver.resolve("8035GOOD0001", "scan", place).verdict
        for place in ("192.0.2.0/24", "198.51.100.0/24", "192.0.2.0/24", "203.0.113.0/24")
    ]
    assert seen == ["genuine", "genuine", "genuine", "suspect_copy"]  # 3 places > 2


def test_state_wins_over_the_copy_rule(resolver: Resolver) -> None:
    for _ in range(6):
        assert resolver.resolve("8035BACK0001", "scan", "p").verdict == "recalled"


def test_channels_that_do_not_count(tmp_path: Path, clock: Clock) -> None:
    rule = SuspectCopySection(max_queries=1, max_places=5, channels=["scan"])
    r, log = _resolver(tmp_path, clock, rule)
    try:
        for _ in range(3):
            assert r.resolve("8035GOOD0001", "api", "p").verdict == "genuine"
        assert r.resolve("8035GOOD0001", "scan", "p").verdict == "genuine"
        assert r.resolve("8035GOOD0001", "scan", "p").verdict == "suspect_copy"
    finally:
        log.close()


def test_replicas_sharing_a_query_log_count_each_others_queries(
    tmp_path: Path, clock: Clock
) -> None:
    a, log_a = _resolver(tmp_path, clock)
    b, log_b = _resolver(tmp_path, clock)
    try:
        a.resolve("8035GOOD0001", "scan", "p")
        a.resolve("8035GOOD0001", "scan", "p")
        log_a.close()  # committed (a process's queued records count once written)
        got = b.resolve("8035GOOD0001", "typed", "p")
        assert got.count == 3
        assert b.resolve("8035GOOD0001", "scan", "p").count == 4  # its own, still queued
    finally:
        log_b.close()


def test_head_requests_are_not_recorded(resolver: Resolver) -> None:
    resolver.resolve("8035GOOD0001", "scan", "p", count=False)
    assert resolver.resolve("8035GOOD0001", "scan", "p").count == 1


def test_normalise_and_acceptable() -> None:
    assert normalise("  8035k7q2-m9x4 tz ", "typed") == "8035K7Q2M9X4TZ"
    assert normalise("８０３５ｋ７ｑ２－ｍ９ｘ４ＴＺ", "typed") == "8035K7Q2M9X4TZ"
    assert normalise(" 8035k7 ", "scan") == "8035k7"  # a scanned code is taken as it is
    for bad in ("", "a" * 65, "../etc", "8035\x00", "8035/abc", "８０３５ABC", "8035 ABC"):
        assert not acceptable(bad), bad
    assert acceptable("8035K7Q2M9X4TZ")
