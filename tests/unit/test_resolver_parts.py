"""The resolver's parts without a server: config files (FILE:LINE:COL), the snapshot holder's
reloads, clients behind proxies, the rate limiter, the query log and its CSV export."""

from __future__ import annotations

import io
import sqlite3
import time
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.config.loader import ConfigError, read_any_config, read_resolver_config
from gateway.resolver.clients import ClientResolver, place_of
from gateway.resolver.config import ResolverFile
from gateway.resolver.export import export_csv, since_ms
from gateway.resolver.querylog import Complaint, QueryLog, QueryRecord
from gateway.resolver.ratelimit import RateLimiter
from gateway.resolver.snapshot import SnapshotHolder
from tests.support.snapshot import code_row, write_snapshot

ROOT = Path(__file__).parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")


# -- config ------------------------------------------------------------------------------------
def test_resolver_only_file_and_full_config(tmp_path: Path) -> None:
    only = tmp_path / "r.yaml"
    only.write_text("resolver:\n  snapshot: var/snap.db\n  listen: 0.0.0.0:8480\n")
    section = read_resolver_config(only)
    assert section.listen == "0.0.0.0:8480" and section.suspect_copy.max_queries == 30
    cfg, warnings = read_any_config(only)
    assert isinstance(cfg, ResolverFile) and warnings == []
    full = tmp_path / "full.yaml"
    full.write_text(
        'gateway: {id: g, enterprise: "8035", site: s, line: L1}\n'
        "resolver:\n  snapshot: var/snap.db\n"
    )
    assert read_resolver_config(full).snapshot == Path("var/snap.db")


def test_resolver_config_errors_name_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "resolver:\n"
        "  snapshot: var/snap.db\n"
        "  listen: nowhere\n"
        "  rate_limit: {per_second: 0, burst: 5, colour: red}\n"
        "  trusted_proxies: [10.0.0.0/33]\n"
    )
    with pytest.raises(ConfigError) as err:
        read_resolver_config(bad)
    lines = [str(i) for i in err.value.issues]
    assert f"{bad}:3:11: error: resolver.listen: expected HOST:PORT" in lines[0]
    assert any(f"{bad}:4:28: error: resolver.rate_limit.per_second" in x for x in lines)
    assert any(f"{bad}:4:41: error: resolver.rate_limit.colour: unknown key" in x for x in lines)
    assert any(f"{bad}:5:20: error: resolver.trusted_proxies: not a network" in x for x in lines)
    assert len(lines) == 4
    same = tmp_path / "same.yaml"
    same.write_text("resolver:\n  snapshot: var/snap.db\n  query_log: var/../var/snap.db\n")
    with pytest.raises(ConfigError) as err2:
        read_resolver_config(same)
    assert [str(i) for i in err2.value.issues] == [
        f"{same}:2:3: error: resolver: query_log must not be the snapshot (the snapshot is "
        "read-only)"
    ]


def test_full_config_without_a_resolver_section_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "g.yaml"
    f.write_text('gateway: {id: g, enterprise: "8035", site: s, line: L1}\n')
    with pytest.raises(ConfigError) as err:
        read_resolver_config(f)
    assert str(err.value.issues[0]) == f"{f}:1:1: error: resolver: no resolver: section " + (
        "(docs/resolver.md)"
    )
    empty = tmp_path / "e.yaml"
    empty.write_text("listen: 1\n")
    with pytest.raises(ConfigError) as err2:
        read_resolver_config(empty)
    assert {i.message for i in err2.value.issues} == {"required key missing", "unknown key"}


# -- snapshot holder ---------------------------------------------------------------------------
def test_snapshot_reload_keeps_the_old_one_until_a_new_one_opens(tmp_path: Path) -> None:
    path = tmp_path / "snap.db"
    holder = SnapshotHolder(path)
    assert not holder.check() and holder.connection() is None  # none published yet
    write_snapshot(path, codes=[code_row("8035AAAAAA01")], built_at="2024-05-01T00:00:00Z")
    assert holder.check() and holder.current is not None and holder.current.codes == 1
    assert not holder.check()  # the same file: nothing to do
    held = holder.connection()
    assert held is not None
    # a broken file replaces it: logged, the old snapshot keeps answering
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database at all" * 100)
    broken.replace(path)
    assert not holder.check()
    assert holder.current.built_at == "2024-05-01T00:00:00Z"
    _snap, db = holder.connection() or (None, None)
    assert db is not None and db.execute("SELECT COUNT(*) FROM codes").fetchone() == (1,)
    # another schema version is refused the same way
    write_snapshot(path, schema_version=99)
    assert not holder.check() and holder.current.codes == 1
    # a good one takes over; this thread's connection follows
    write_snapshot(
        path,
        codes=[code_row("8035AAAAAA01"), code_row("8035AAAAAA02")],
        built_at="2024-05-02T00:00:00Z",
    )
    assert holder.check() and holder.current.built_at == "2024-05-02T00:00:00Z"
    _snap2, db2 = holder.connection() or (None, None)
    assert db2 is not None and db2.execute("SELECT COUNT(*) FROM codes").fetchone() == (2,)


def test_snapshot_is_opened_read_only(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "snap.db", codes=[code_row("8035AAAAAA01")])
    holder = SnapshotHolder(path)
    holder.check()
    _snap, db = holder.connection() or (None, None)
    assert db is not None
    with pytest.raises(sqlite3.OperationalError):
        db.execute("DELETE FROM codes")


# -- clients and places ------------------------------------------------------------------------
def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    c = ClientResolver(["127.0.0.1/32", "10.0.0.0/8"])
    assert c.client("203.0.113.9", "198.51.100.7") == "203.0.113.9"  # not a proxy: ignored
    assert c.client("127.0.0.1", "198.51.100.7") == "198.51.100.7"
    # what the client wrote itself sits left of what the proxies appended
    assert c.client("127.0.0.1", "1.2.3.4, 198.51.100.7, 10.1.1.1") == "198.51.100.7"
    assert c.client("127.0.0.1", "garbage") == "127.0.0.1"
    assert c.client("127.0.0.1", None) == "127.0.0.1"
    assert ClientResolver([]).client("127.0.0.1", "198.51.100.7") == "127.0.0.1"


def test_places_are_networks_not_addresses() -> None:
    assert place_of("203.0.113.77") == "203.0.113.0/24"
    assert place_of("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert place_of("::ffff:203.0.113.77") == "203.0.113.0/24"
    assert place_of("nonsense") == "unknown"


# -- rate limit --------------------------------------------------------------------------------
def test_token_bucket_with_an_injected_clock() -> None:
    now = [100.0]
    rl = RateLimiter(per_second=2, burst=3, max_clients=100, clock=lambda: now[0])
    assert [rl.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = rl.take("a")
    assert wait == pytest.approx(0.5) and RateLimiter.retry_after(wait) == 1
    assert rl.take("b") == 0.0  # another client has its own bucket
    now[0] += 0.5
    assert rl.take("a") == 0.0
    assert rl.take("a") > 0
    assert rl.refused == 2


def test_client_table_is_bounded() -> None:
    rl = RateLimiter(per_second=1, burst=1, max_clients=100, clock=lambda: 0.0)
    for i in range(1000):
        rl.take(f"c{i}")
    assert len(rl) == 100
    assert rl.take("c999") > 0  # recent clients are still remembered


# -- query log and export ----------------------------------------------------------------------
def test_query_log_feedback_complaints_and_csv(tmp_path: Path) -> None:
    t = [1_714_600_000.0]  # 2024-05-02 05:46:40 in Shanghai
    log = QueryLog(tmp_path / "q.db", clock=lambda: t[0], flush_secs=0.01)
    for i, channel in enumerate(("scan", "typed", "api")):
        log.record(
            QueryRecord(
                f"q{i:021d}", log.now_ms() + i, "8035AAAAAA01", channel, "p", i + 1, "genuine", None
            )
        )
    log.feedback(f"q{1:021d}", False, "袋上批次不同")
    log.complain(
        Complaint(
            "c" * 22,
            log.now_ms(),
            "8035AAAAAA01",
            "某市某超市",
            '包装破损, "结块"',
            None,
            "form",
            "203.0.113.0/24",
        )
    )
    log.close()
    log = QueryLog(tmp_path / "q.db", clock=lambda: t[0])
    try:
        out = io.StringIO()
        assert export_csv(log, "queries", out, SHANGHAI) == 3
        rows = out.getvalue().splitlines()
        assert rows[0] == "time,code,channel,place,count,verdict,reason,matches,comment,query_id"
        assert rows[2].startswith("2024-05-02T05:46:40+08:00,8035AAAAAA01,typed,p,2,genuine,,no,")
        out = io.StringIO()
        assert export_csv(log, "complaints", out, SHANGHAI) == 1
        assert '"包装破损, ""结块"""' in out.getvalue()
        assert (
            export_csv(
                log, "queries", io.StringIO(), SHANGHAI, since_ms(date(2024, 5, 3), SHANGHAI)
            )
            == 0
        )
        with pytest.raises(ValueError):
            export_csv(log, "secrets", io.StringIO(), SHANGHAI)
    finally:
        log.close()


def test_records_are_written_off_the_request_path(tmp_path: Path) -> None:
    log = QueryLog(tmp_path / "q.db", flush_secs=0.05)
    start = time.perf_counter()
    for i in range(2000):
        log.record(QueryRecord(f"{i:022d}", i, "8035AAAAAA01", "scan", "p", i, "genuine", None))
    queued = time.perf_counter() - start
    assert log.recent("8035AAAAAA01", 0, ["scan"], 10).total == 2000  # counted while queued
    log.close()
    assert queued < 2.0  # 2,000 records queued without waiting for the disk
    with sqlite3.connect(tmp_path / "q.db") as db:
        assert db.execute("SELECT COUNT(*) FROM queries").fetchone() == (2000,)
        assert db.execute("SELECT n FROM code_counts").fetchone() == (2000,)


def test_recent_reads_the_covering_index_and_old_files_are_migrated(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with sqlite3.connect(path) as db:  # a query log written before the covering index
        db.execute(
            "CREATE TABLE queries (id INTEGER PRIMARY KEY, qid TEXT NOT NULL UNIQUE, "
            "ts_ms INTEGER NOT NULL, code TEXT NOT NULL, channel TEXT NOT NULL, "
            "place TEXT NOT NULL, count INTEGER NOT NULL, verdict TEXT NOT NULL, reason TEXT)"
        )
        db.execute("CREATE INDEX queries_code_ts ON queries (code, ts_ms)")
        db.execute(
            "INSERT INTO queries (qid, ts_ms, code, channel, place, count, verdict) "
            "VALUES ('a', 5, '8035AAAAAA01', 'scan', 'p1', 1, 'genuine')"
        )
    log = QueryLog(path, clock=lambda: 0.01)
    try:
        for i, (place, channel) in enumerate((("p2", "typed"), ("p3", "api"), ("p2", "scan"))):
            log.record(QueryRecord(f"b{i}", 6 + i, "8035AAAAAA01", channel, place, 0, "genuine",
                                   None))  # fmt: skip
        recent = log.recent("8035AAAAAA01", 6, ["scan", "typed"], 10)
        # queued or written, the three count (the older row predates code_counts); the window
        # and the channels filter the places
        assert (recent.total, recent.in_window, recent.places) == (3, 2, frozenset({"p2"}))
    finally:
        log.close()
    with sqlite3.connect(path) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "queries_code_recent" in names and "queries_code_ts" not in names
        sql = log._recent_sql[2]
        plan = " ".join(
            str(r[-1]) for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", ("c", 0, 5, "scan", "api"))
        )
        assert "COVERING INDEX queries_code_recent" in plan, plan
    log = QueryLog(path)
    try:
        recent = log.recent("8035AAAAAA01", 6, ["scan", "typed"], 10)
        assert (recent.total, recent.in_window, recent.places) == (3, 2, frozenset({"p2"}))
        assert log.recent("8035AAAAAA01", 0, ["scan", "typed", "api"], 2).in_window == 2  # cap
    finally:
        log.close()
