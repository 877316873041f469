"""The code page from per-group skeletons (gateway/resolver/pages.py) is byte-identical to the
page Jinja renders whole, over a few thousand answers of every verdict, with values that need
escaping, several batches and producers, and a snapshot replaced midway."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

import gateway.resolver.verdict as verdict_module
from gateway.resolver.config import ResolverSection, SuspectCopySection
from gateway.resolver.pages import Pages, item_html, table6_rows
from gateway.resolver.querylog import QueryLog
from gateway.resolver.snapshot import SnapshotHolder
from gateway.resolver.verdict import Resolver
from tests.support.snapshot import BATCH, ENTERPRISE, code_row, write_snapshot

T0 = 1_714_600_000.0  # a fixed instant, never today
CODE = "8035K7Q2M9X4TZ"
BATCHES = [
    BATCH,
    {**BATCH, "batch": "B-HELD", "inspection": None},
    {**BATCH, "batch": "B-<&>\"'", "shelf_life": "18个月\n<b>x</b>"},
]


def _snapshot(path: Path, rnd: random.Random, built_at: str) -> list[str]:
    codes: list[str] = []
    rows = []
    for i in range(300):
        code = f"8035C{i:07d}" + ("" if i % 5 else "-x.~_")
        sales = [{"date": "2024-05-06", "party_type": "批发企业", "party": f"<批发>&{i}"}]
        rows.append(
            code_row(
                code,
                state=rnd.choice(["shipped", "commissioned", "recalled", "withdrawn"]),
                batch=BATCHES[i % 3]["batch"],
                produced=f"2024-05-{1 + i % 28:02d}",
                producer_sales=[{"party": "x"}, {"party_type": "零售"}] if i % 7 == 0 else None,
                wholesale_sales=sales if i % 3 == 0 else ([] if i % 11 == 0 else None),
            )
        )
        codes.append(code)
    other = {**ENTERPRISE, "enterprise": "9001", "phone": None, "name": "<乙>"}
    write_snapshot(
        path, batches=BATCHES, codes=rows, enterprises=[ENTERPRISE, other], built_at=built_at
    )
    return codes


def test_skeleton_pages_equal_whole_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = (f"Q{i:021d}" for i in itertools.count())
    monkeypatch.setattr(verdict_module, "new_id", lambda: next(ids))
    rnd = random.Random(7)
    now = [T0]
    snap = tmp_path / "snap.db"
    codes = _snapshot(snap, rnd, "2024-05-03T08:00:00+08:00")
    cfg = ResolverSection(
        snapshot=snap,
        query_log=tmp_path / "q.db",
        suspect_copy=SuspectCopySection(max_queries=4, max_places=3),
    )
    holder = SnapshotHolder(snap, lambda: now[0])
    assert holder.check()
    qlog = QueryLog(cfg.query_log, lambda: now[0], flush_secs=0.01)
    resolver = Resolver(cfg, holder, qlog)
    pages = Pages("12315")
    pool = [*codes, "8035NOTHERE01", "9001NOPE0001", "1234BADFORM", "8035", "9999XYZ00001"]
    seen: set[tuple[str, str | None]] = set()
    try:
        for k in range(3000):
            if k == 1500:  # a new snapshot: skeletons of the old one are not used again
                _snapshot(snap, rnd, "2024-05-04T08:00:00+08:00")
                assert holder.check()
            now[0] += rnd.choice([0.5, 30.0, 3600.0])
            code = rnd.choice(pool[:30]) if rnd.random() < 0.5 else rnd.choice(pool)
            answer = resolver.resolve(
                code, rnd.choice(["scan", "typed", "api"]), f"10.0.{rnd.randrange(6)}.0/24"
            )
            checked = f"2024-05-{1 + k % 28:02d} {k % 24:02d}:{k % 60:02d}"
            if k % 97 == 0:
                checked += "<&>"
            assert pages.code(answer, checked) == pages.code_full(answer, checked), (k, answer)
            seen.add((answer.verdict, answer.reason))
    finally:
        qlog.close()
    assert {v for v, _r in seen} == {
        "genuine",
        "unknown",
        "recalled",
        "withdrawn",
        "suspect_copy",
    }
    assert {r for _v, r in seen} >= {"form", "not_found", "suspect_copy"}
    assert "QzSkel" not in pages.code(answer, "x").decode()


def test_item_rows_escape_and_mark_the_inspection(tmp_path: Path) -> None:
    snap = tmp_path / "snap.db"
    write_snapshot(
        snap,
        batches=[{**BATCH, "inspection": None}],
        codes=[code_row(CODE, wholesale_sales=[{"party": "<a>&b"}, {"date": "2024-05-06"}])],
    )
    cfg = ResolverSection(snapshot=snap, query_log=tmp_path / "q.db")
    holder = SnapshotHolder(snap)
    assert holder.check()
    qlog = QueryLog(cfg.query_log)
    try:
        answer = Resolver(cfg, holder, qlog).resolve(CODE, "scan", "10.0.0.0/24")
    finally:
        qlog.close()
    html = str(item_html(table6_rows(answer)[0]))
    assert '<tr data-field="23" class="empty" data-released="false">' in html
    assert "&lt;a&gt;&amp;b<br>2024-05-06" in html
    assert html.count("<tr ") == 7 and html.endswith("</tr>\n")
