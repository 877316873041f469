"""Issue 13: nothing committed to the line's trace store ahead of the journal.

A reading goes through the real runtime path (``Gateway._on_reading``: bag_scanner profile →
journal) while the journal refuses to commit the ``pack.bag`` (a trigger in the journal file
aborts the insert: a real SQLite failure of the commit). The trace store must then hold no
trace of that scan, and the same bag read again once the journal works must be commissioned,
not alarmed as a copied mark.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.base import Reading
from gateway.config.loader import load_config
from gateway.runtime import Gateway
from gateway.traceline import close_trace_lines

T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CODE = "80354UR9HGNS31UF"  # QB/T 5279-2018 6.2 (enterprise 8035), from firmware_sim.codegen
REFUSE = (
    "CREATE TRIGGER refuse_bag BEFORE INSERT ON events WHEN NEW.type = 'pack.bag' "
    "BEGIN SELECT RAISE(ABORT, 'injected: journal refuses pack.bag'); END"
)


def _config(tmp: Path) -> Path:
    cfg: dict[str, Any] = {
        "gateway": {"id": "gw-t", "enterprise": "8035", "site": "s", "line": "L1"},
        "mqtt": {"url": "mqtt://127.0.0.1:1"},  # never connected: only the journal is used
        "journal": {"path": str(tmp / "journal.db")},
        "devices": [
            {
                "id": "scan1",
                "driver": "scanner",
                "connection": {"type": "tcp_client", "host": "127.0.0.1", "port": 1},
                "framing": "crlf",
            }
        ],
        "profiles": [{"profile": "bag_scanner", "device": "scan1", "store": str(tmp / "trace.db")}],
    }
    path = tmp / "line.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _read(gw: Gateway, code: str) -> list[dict[str, Any]]:
    """One frame through the runtime; the events the journal accepted for it."""

    async def go() -> None:
        await gw._on_reading(Reading("scan1", T, {"codes": code}))
        for fut in list(gw._in_flight):
            await asyncio.wrap_future(fut)

    before = gw.journal.stats.last_seq
    asyncio.run(go())
    rows = gw.journal.reader().after(before, 100)
    return [json.loads(r.payload) for r in rows]


def _gateway(cfg: Path) -> Gateway:
    gw = Gateway(load_config(cfg))
    gw.journal.open()
    return gw


def test_a_scan_the_journal_refuses_leaves_no_trace_and_is_commissioned_later(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path)
    journal, store = tmp_path / "journal.db", tmp_path / "trace.db"
    gw = _gateway(cfg)  # creates the journal's tables, then the fault is injected
    gw.journal.close()
    close_trace_lines(store)
    conn = sqlite3.connect(journal)
    conn.execute(REFUSE)
    conn.close()

    gw = _gateway(cfg)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="injected"):
            _read(gw, CODE)
        assert gw.journal.stats.accepted == 0
    finally:
        gw.journal.close()
        close_trace_lines(store)

    assert _rows(store, "SELECT code, stage FROM code_seen") == []
    assert _rows(store, "SELECT code FROM agg_item") == []
    assert _rows(store, "SELECT code FROM agg_pending") == []
    assert _rows(store, "SELECT metric, n FROM kpi_count") == []
    assert _rows(journal, "SELECT type FROM events") == []

    conn = sqlite3.connect(journal)  # the journal works again: the bag passes the scanner again
    conn.execute("DROP TRIGGER refuse_bag")
    conn.close()
    gw = _gateway(cfg)
    try:
        events = _read(gw, CODE)
        again = _read(gw, CODE)  # a second read of it now *is* a copied mark
    finally:
        gw.journal.close()
        close_trace_lines(store)
    assert [(e["type"], e["data"].get("code")) for e in events] == [("pack.bag", CODE)]
    assert [e["type"] for e in again] == ["alarm.duplicate_code"]
    assert _rows(store, "SELECT code, count FROM code_seen") == [(CODE, 2)]
    assert _rows(store, "SELECT code, status FROM agg_item") == [(CODE, "commissioned")]


def test_a_profile_that_raises_leaves_no_partial_writes(tmp_path: Path) -> None:
    """One operation's SAVEPOINT rolls back alone; the scan before it still commits."""
    cfg = _config(tmp_path)
    store = tmp_path / "trace.db"
    gw = _gateway(cfg)
    try:
        assert [e["type"] for e in _read(gw, CODE)] == ["pack.bag"]
        trace = gw.profiles["scan1"][0].trace  # type: ignore[attr-defined]
        assert gw.store is not None

        def buggy() -> None:
            with gw.store.lock, trace.db.transaction() as c:  # type: ignore[union-attr]
                c.execute(
                    "INSERT INTO agg_item (code, level, status, ts) VALUES ('X', 'b', 'x', '')"
                )
                raise RuntimeError("a profile bug halfway through")

        with pytest.raises(RuntimeError):
            buggy()
        gw.journal.append([]).result(timeout=10)
    finally:
        gw.journal.close()
        close_trace_lines(store)
    assert _rows(store, "SELECT code FROM agg_item") == [(CODE,)]
