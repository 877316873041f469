"""The telemetry store (gateway/telemetry/store.py): order, cursors, delete on ack, bounds and
policies, with an injected clock and no network."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.telemetry.feed import StoreFeed
from gateway.telemetry.record import Quality, TagMeta, TagPoint
from gateway.telemetry.store import TelemetryStore, WhenFull

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
METAS = [TagMeta("d1", "a", "int"), TagMeta("d1", "b", "int"), TagMeta("d2", "a", "int")]


class Clock:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now


def _good(**values: int) -> dict[str, TagPoint]:
    return {k: TagPoint(v, Quality.GOOD) for k, v in values.items()}


def _store(tmp: Path, outputs: tuple[str, ...] = ("uns",), **kw: object) -> TelemetryStore:
    kw.setdefault("clock", Clock())  # never today's date: the records are read "now"
    return TelemetryStore(tmp / "t.db", METAS, outputs, **kw).open()  # type: ignore[arg-type]


def _ids(feed: StoreFeed) -> list[int]:
    return [r.id for r in feed.read(10_000)]


def test_records_in_order_survive_reopen_and_are_deleted_once_every_output_acked(
    tmp_path: Path,
) -> None:
    s = _store(tmp_path, ("uns", "sparkplug"))
    for i in range(5):
        s.append("d1", T0 + timedelta(seconds=i), _good(a=i))
    assert s.flush(5)
    uns, spb = StoreFeed(s, "uns"), StoreFeed(s, "sparkplug")
    recs = uns.read(100)
    assert [r.id for r in recs] == [1, 2, 3, 4, 5]
    assert recs[2].points == {"a": TagPoint(2, Quality.GOOD)} and recs[2].ts == T0 + timedelta(
        seconds=2
    )
    assert _ids(uns) == [1, 2, 3, 4, 5]  # not acknowledged: read again
    uns.ack(3)
    assert _ids(uns) == [4, 5] and _ids(spb) == [1, 2, 3, 4, 5]
    assert s.flush(5) and s.stats.stored == 5  # sparkplug has not acked: all kept
    spb.ack(2)
    assert s.flush(5) and s.stats.stored == 3 and s.stats.delivered == 2
    s.close()
    s2 = _store(tmp_path, ("uns", "sparkplug"))
    assert _ids(StoreFeed(s2, "uns")) == [4, 5] and _ids(StoreFeed(s2, "sparkplug")) == [3, 4, 5]
    s2.append("d1", T0, _good(a=9))
    assert s2.flush(5) and _ids(StoreFeed(s2, "uns")) == [4, 5, 6]
    s2.close()


def test_ids_are_never_reused_and_a_dropped_output_releases_its_records(tmp_path: Path) -> None:
    s = _store(tmp_path, ("uns", "gone"))
    s.append("d1", T0, _good(a=1))
    s.flush(5)
    StoreFeed(s, "uns").ack(1)
    s.close()
    s = _store(tmp_path, ("uns",))  # "gone" removed from the config: its cursor goes
    assert s.stats.stored == 0
    s.append("d1", T0, _good(a=2))
    s.flush(5)
    assert _ids(StoreFeed(s, "uns")) == [2]
    s.close()
    with pytest.raises(ValueError, match="not one of the store's outputs"):
        StoreFeed(s, "nope")


def test_coalesce_folds_the_oldest_into_one_record_per_device_with_the_latest_values(
    tmp_path: Path,
) -> None:
    s = _store(tmp_path, max_records=20)
    for i in range(21):  # one past the bound
        dev = "d1" if i % 3 else "d2"
        pts = _good(a=i) if i % 2 else _good(b=i)
        if dev == "d2":
            pts = _good(a=i)
        s.append(dev, T0 + timedelta(seconds=i), pts)
    assert s.flush(5)
    recs = StoreFeed(s, "uns").read(100)
    assert len(recs) <= 18 + 2  # 90 % of max_records, plus at most one per device
    assert s.stats.coalesced == 21 - len(recs) and s.stats.dropped == 0
    # order and ids hold; the newest values of every tag survive
    assert [r.id for r in recs] == sorted(r.id for r in recs) and recs[-1].id == 21
    latest: dict[tuple[str, str], int] = {}
    for i in range(21):
        dev = "d1" if i % 3 else "d2"
        tag = "a" if (dev == "d2" or i % 2) else "b"
        latest[(dev, tag)] = i
    seen: dict[tuple[str, str], object] = {}
    for r in recs:
        for tag, p in r.points.items():
            seen[(r.device, tag)] = p.value
    assert seen == latest
    folded = [r for r in recs if r.coalesced]
    assert folded and sum(r.coalesced for r in folded) == s.stats.coalesced + len(folded)
    s.close()


def test_drop_oldest_deletes_the_oldest_and_counts_them(tmp_path: Path) -> None:
    s = _store(tmp_path, max_records=20, when_full=WhenFull.DROP_OLDEST)
    for i in range(21):
        s.append("d1", T0, _good(a=i))
    assert s.flush(5)
    assert _ids(StoreFeed(s, "uns")) == list(range(4, 22))  # 18 = 90 % of 20 kept
    assert s.stats.dropped == 3 and s.stats.coalesced == 0
    s.close()


@pytest.mark.parametrize("policy", [WhenFull.COALESCE, WhenFull.DROP_OLDEST])
def test_the_age_bound_uses_the_read_time_and_the_injected_clock(
    tmp_path: Path, policy: WhenFull
) -> None:
    clock = Clock()
    s = _store(tmp_path, max_age_secs=60.0, when_full=policy, clock=clock)
    for i in range(4):
        s.append("d1", T0 + timedelta(seconds=i), _good(a=i))
    s.append("d1", T0 + timedelta(seconds=100), _good(b=7))
    assert s.flush(5) and s.stats.stored == 5  # nothing old yet
    clock.now = T0.timestamp() + 62.5  # records 1-3 are older than 60 s, 4 not yet
    s.ack("other", 0)  # any wake-up lets the writer look at the age
    assert s.flush(5)
    recs = StoreFeed(s, "uns").read(100)
    if policy is WhenFull.COALESCE:
        assert [(r.id, dict(r.points), r.coalesced) for r in recs] == [
            (3, {"a": TagPoint(2, Quality.GOOD)}, 3),
            (4, {"a": TagPoint(3, Quality.GOOD)}, 0),
            (5, {"b": TagPoint(7, Quality.GOOD)}, 0),
        ]
        assert s.stats.coalesced == 2
    else:
        assert [r.id for r in recs] == [4, 5] and s.stats.dropped == 3
    s.close()


def test_quality_survives_the_store_and_folding(tmp_path: Path) -> None:
    s = _store(tmp_path, max_records=10)
    s.append("d1", T0, {"a": TagPoint(None, Quality.BAD), "b": TagPoint(3, Quality.STALE)})
    s.append("d1", T0, {"a": TagPoint(4, Quality.GOOD)})
    for i in range(10):
        s.append("d2", T0, _good(a=i))
    assert s.flush(5)
    recs = StoreFeed(s, "uns").read(100)
    d1 = [r for r in recs if r.device == "d1"]
    assert len(d1) == 1 and d1[0].coalesced == 2
    assert d1[0].points == {"a": TagPoint(4, Quality.GOOD), "b": TagPoint(3, Quality.STALE)}
    s.close()


def test_appends_never_block_a_full_queue_folds_in_memory_and_counts(tmp_path: Path) -> None:
    s = TelemetryStore(tmp_path / "t.db", METAS, ("uns",), queue_max=3, clock=Clock())
    # not opened: no writer takes anything, like a disk that stalls
    for i in range(10):
        s.append("d1" if i < 8 else "d2", T0 + timedelta(seconds=i), _good(a=i, b=i))
    assert s.stats.overflow_coalesced == 7 and s.backlog == 3 + 2
    s.open()
    assert s.flush(5)
    recs = StoreFeed(s, "uns").read(100)
    assert [(r.device, r.points["a"].value, r.coalesced) for r in recs] == [
        ("d1", 0, 0), ("d1", 1, 0), ("d1", 2, 0), ("d1", 7, 5), ("d2", 9, 2),
    ]  # fmt: skip
    s.close()


def test_the_file_is_wal_with_full_sync_and_its_own(tmp_path: Path) -> None:
    s = _store(tmp_path)
    s.close()
    db = sqlite3.connect(tmp_path / "t.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")} >= {
        "records", "cursors",
    }  # fmt: skip
