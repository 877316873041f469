"""Replay (gateway/replay.py) and the journal's delivered window (gateway/journal.py): delivered
rows are kept for the window and can be read back for replay; a replay request is peer input,
bounded in size, range and rate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.replay import MAX_QUEUED, BadReplay, Replayer, parse_request

T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"x" * 2000, "bytes (at most 1024)"),
        (b"[1]", "a request is a JSON object"),
        (b"[" * 1000, "not JSON"),
        (b"nope", "not JSON"),
        (b'{"from": 0, "to": 3}', "'from' must be a positive integer"),
        (b'{"from": 5, "to": 3}', "'from' 5 is after 'to' 3"),
        (b'{"from": 1, "to": 1000000}', "at most 1000 a request"),
        (b'{"from": 1, "to": 2, "reply": "a/#"}', "without wildcards"),
        (b'{"from": true, "to": 2}', "'from' must be a positive integer"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(raw: bytes, why: str) -> None:
    with pytest.raises(BadReplay) as info:
        parse_request(raw)
    assert why in str(info.value)


def test_requests_are_rate_limited_and_bounded() -> None:
    now = [0.0]
    r = Replayer(clock=lambda: now[0])
    for _ in range(MAX_QUEUED + 5):
        r.on_message("t", b'{"from": 1, "to": 2, "reply": "r"}', False)
    assert len(r.queue) == 5 and r.refused == MAX_QUEUED  # the burst, then refused
    assert json.loads(r._answers[0][1])["error"].startswith("too many requests")
    r.on_message("t", b'{"from": 1, "to": 2}', True)  # retained: refused
    assert r.refused == MAX_QUEUED + 1


def test_the_journal_keeps_delivered_rows_for_the_window(tmp_path: Path) -> None:
    j = Journal(
        tmp_path / "j.db", Origin("gw", "8035", "s", "L1"),
        keep_delivered_secs=3600, keep_delivered_events=5,
    ).open()  # fmt: skip
    try:
        evs = j.append([EventDraft("pack.noread", T, {"n": i}) for i in range(8)]).result(5)
        j.ack([e.seq for e in evs[:6]])
        j.append([]).result(5)  # a barrier: the acks are committed
        assert j.stats.backlog == 2 and j.stats.delivered == 6
        reader = j.reader()
        assert [r.seq for r in reader.after(0, 100)] == [7, 8]  # only undelivered go out
        assert [r.seq for r in reader.delivered_between(1, 8, 100)] == [1, 2, 3, 4, 5, 6]
        assert reader.oldest() is not None and reader.oldest()[0] == 7  # type: ignore[index]
        reader.close()
    finally:
        j.close()
