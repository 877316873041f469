"""The bridge tracks each gateway's seq durably (gateway/bridge/gaps.py): a seq missing while
later ones arrived is a gap; past the grace it is alarmed once and a replay is asked, with
backoff; when it is filled it is cleared; the state survives a restart of the store. Time is
injected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.bridge.gaps import MAX_REPLAY, GapTracker, first_uncovered, missing_in, uncovered
from gateway.bridge.store import TraceStore
from tests.support.trace_events import LineEvents, payload


def _events(n: int, gateway: str = "gw-a") -> list[dict[str, Any]]:
    f = LineEvents(gateway=gateway)
    return [f.make("pack.bag", {"code": f"8035G{gateway[-1]}{i:05d}"}, "B1") for i in range(n)]


def _ingest(store: TraceStore, evs: list[dict[str, Any]]) -> None:
    store.ingest([("t", payload(e)) for e in evs])


def test_missing_in_counts_holes_within_the_span() -> None:
    ranges = [[1, 3], [6, 6], [9, 10]]
    assert missing_in(ranges, 1, 10) == 4
    assert missing_in(ranges, 5, 7) == 2
    assert missing_in(ranges, 1, 3) == 0


def test_in_order_seqs_make_no_gap(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", grace_secs=2)
    evs = _events(50)
    _ingest(store, evs[:20])
    _ingest(store, evs[20:])
    assert store.gaps.open_gaps() == []
    assert store.db.execute("SELECT lo, hi FROM seq_ranges").fetchall() == [(1, 50)]
    assert store.gaps.due(store.db, 1e12) == ([], [])


def test_a_gap_is_alarmed_after_the_grace_asked_for_with_backoff_and_cleared(
    tmp_path: Path,
) -> None:
    store = TraceStore(tmp_path / "t.db", grace_secs=2)
    evs = _events(30)
    _ingest(store, evs[:10] + evs[15:])  # 11..15 dropped by the broker
    [gap] = store.gaps.open_gaps()
    assert (gap.gateway, gap.lo, gap.hi) == ("gw-a", 11, 15)
    t0 = gap.since
    assert store.gaps.due(store.db, t0 + 1.9) == ([], [])  # within the grace: redelivery is normal
    alarm, asks = store.gaps.due(store.db, t0 + 2.0)
    assert [(g.lo, g.hi) for g in alarm] == [(11, 15)]
    assert [(r.gateway, r.enterprise, r.site, r.lo, r.hi) for r in asks] == [
        ("gw-a", "8035", "daiyue", 11, 15)
    ]
    data = store.gaps.alarm_data(alarm[0], "missing")
    assert (data["state"], data["from"], data["to"], data["missing"]) == ("missing", 11, 15, 5)
    assert store.gaps.due(store.db, t0 + 2.5) == ([], [])  # alarmed once; next ask: backoff
    alarm, asks = store.gaps.due(store.db, t0 + 6.0)
    assert alarm == [] and [(r.lo, r.hi) for r in asks] == [(11, 15)]

    _ingest(store, [evs[12]])  # partly filled: still open, the next ask is for what is left
    assert store.filled == []
    _, asks = store.gaps.due(store.db, t0 + 100)
    assert [(r.lo, r.hi) for r in asks] == [(11, 12)]
    _ingest(store, [evs[10], evs[11], evs[13], evs[14]])
    assert [(g.lo, g.hi, g.alarmed is not None) for g in store.filled] == [(11, 15, True)]
    assert store.gaps.open_gaps() == []
    assert store.db.execute("SELECT lo, hi FROM seq_ranges").fetchall() == [(1, 30)]


def test_the_state_survives_a_restart_and_gateways_are_apart(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", grace_secs=2)
    a, b = _events(10, "gw-a"), _events(10, "gw-b")
    _ingest(store, a[:3] + a[5:] + b)
    [gap] = store.gaps.open_gaps()
    store.gaps.due(store.db, gap.since + 3)  # alarmed
    store.close()
    again = TraceStore(tmp_path / "t.db", grace_secs=2)
    [gap] = again.gaps.open_gaps()
    assert (gap.gateway, gap.lo, gap.hi, gap.requests) == ("gw-a", 4, 5, 1)
    assert gap.alarmed is not None
    alarm, _ = again.gaps.due(again.db, gap.since + 100)
    assert alarm == []  # not alarmed twice
    _ingest(again, a[3:5])
    assert [g.lo for g in again.filled] == [4]


def test_tracking_starts_at_the_first_seq_seen_and_extends_down(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", grace_secs=2)
    evs = _events(20)
    _ingest(store, evs[9:])  # the bridge joined at seq 10: nothing owed before it
    assert store.gaps.open_gaps() == []
    _ingest(store, [evs[8]])  # seq 9 redelivered: the span grows down, no gap
    assert store.gaps.open_gaps() == []
    _ingest(store, [evs[2]])  # seq 3 arrives: 4..8 are missing now
    assert [(g.lo, g.hi) for g in store.gaps.open_gaps()] == [(4, 8)]


def test_a_replay_request_is_bounded(tmp_path: Path) -> None:
    tracker = GapTracker(grace_secs=1)
    store = TraceStore(tmp_path / "t.db")
    tracker.load(store.db)
    with store.db:
        store.db.execute("BEGIN IMMEDIATE")
        tracker.observe(store.db, [("gw", 1, "8035", "s"), ("gw", 5000, "8035", "s")], 0.0)
    _, [ask] = tracker.due(store.db, 10.0)
    assert (ask.lo, ask.hi) == (2, 1 + MAX_REPLAY)


MARK_TOPIC = "salt/v1/8035/daiyue/gateway/gw-a/seq"


def _mark(last: int, gateway: str = "gw-a") -> tuple[str, bytes]:
    body = json.dumps({"gateway": gateway, "last_seq": last}).encode()
    return f"salt/v1/8035/daiyue/gateway/{gateway}/seq", body


def test_uncovered_counts_past_the_last_range_too() -> None:
    ranges = [[1, 3], [6, 6]]
    assert uncovered(ranges, 1, 10) == 2 + 4
    assert first_uncovered(ranges, 1, 10) == (4, 5)
    assert first_uncovered(ranges, 6, 10) == (7, 10)
    assert first_uncovered(ranges, 1, 3) is None and uncovered(ranges, 2, 3) == 0


def test_a_seq_mark_reveals_events_lost_at_the_tail(tmp_path: Path) -> None:
    """The last events before the line went quiet were dropped: no later event shows the gap,
    the gateway's seq mark does; the replay fills it and clears it."""
    store = TraceStore(tmp_path / "t.db", grace_secs=2)
    evs = _events(20)
    _ingest(store, evs[:12])
    store.ingest([_mark(12)])  # everything arrived: nothing to say
    assert store.gaps.open_gaps() == []
    store.ingest([_mark(20)])  # 13..20 acknowledged by the broker, never delivered here
    [gap] = store.gaps.open_gaps()
    assert (gap.lo, gap.hi) == (13, 20)
    store.ingest([_mark(22)])  # the line went on a little: the same tail gap grows
    [gap] = store.gaps.open_gaps()
    assert (gap.lo, gap.hi) == (13, 22)
    alarm, asks = store.gaps.due(store.db, gap.since + 2)
    assert [(g.lo, g.hi) for g in alarm] == [(13, 22)]
    assert [(r.lo, r.hi) for r in asks] == [(13, 22)]
    assert store.gaps.alarm_data(alarm[0], "missing")["missing"] == 10
    more = evs + _events(22)[20:]
    _ingest(store, more[12:18])
    _, asks = store.gaps.due(store.db, gap.since + 100)
    assert [(r.lo, r.hi) for r in asks] == [(19, 22)]
    _ingest(store, more[18:22])
    assert [(g.lo, g.hi) for g in store.filled] == [(13, 22)]
    assert store.gaps.open_gaps() == []


def test_seq_marks_of_unknown_gateways_and_bad_marks(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", grace_secs=2)
    _ingest(store, _events(5))
    store.ingest([_mark(50, "gw-other")])  # a gateway whose events this bridge never saw
    assert store.gaps.open_gaps() == []
    bad = [
        (MARK_TOPIC, b"{"),
        (MARK_TOPIC, json.dumps({"gateway": "gw-b", "last_seq": 9}).encode()),
        (MARK_TOPIC, json.dumps({"gateway": "gw-a", "last_seq": "9"}).encode()),
        (MARK_TOPIC, json.dumps({"gateway": "gw-a", "last_seq": 0}).encode()),
        (MARK_TOPIC, b"[" * 5000),
    ]
    got = store.ingest(bad)
    assert got.quarantined == len(bad) and store.gaps.open_gaps() == []
    reasons = [r for (r,) in store.db.execute("SELECT reason FROM quarantine ORDER BY qid")]
    assert "not JSON" in reasons[0] and "not the topic's 'gw-a'" in reasons[1]
    assert "last_seq must be an integer" in reasons[2] and "integer" in reasons[3]


def test_a_bridge_of_a_share_group_does_not_track_seq(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", grace_secs=2, track_seq=False)
    evs = _events(20)
    _ingest(store, evs[::2])  # its share: every other event
    store.ingest([_mark(20)])
    assert store.gaps.open_gaps() == []
