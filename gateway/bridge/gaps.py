"""The bridge's input is complete by construction: each gateway's ``seq`` is tracked.

The contract's ``seq`` is per gateway, strictly increasing, without gaps (gateway/journal.py).
The broker is the one unguarded hop between the gateway's journal (which forgets an event at
the broker's PUBACK) and the bridge: a broker that drops messages (mosquitto queues at most
``max_queued_messages`` per session; a restart without persistence loses its queues; an
``acl_file`` that denies delivery) would leave the trace store silently short. So:

- Every ``seq`` received from a gateway is recorded as a set of ranges (``seq_ranges``), in the
  transaction that stores the events (:meth:`GapTracker.observe`). A hole between two ranges is
  a *gap*: a ``seq`` missing while later ones arrived (``seq_gaps``, with when it was first seen).
- Tracking starts at the first ``seq`` the bridge stores from a gateway (not at 1): a bridge
  that joins a running line owes nothing before it, and under ``saltgw run`` the forwarder's
  gate makes the first event published after the bridge subscribed the first one it sees. A
  lower ``seq`` arriving later (redelivery) extends the tracked span downwards; a hole between
  it and the first range is a gap like any other.
- The gateway publishes the highest ``seq`` the broker acknowledged (retained, at most once a
  second, ``Topics.seq_mark``): seqs past the last one received are a gap at the *tail*
  (:meth:`GapTracker.observe_marks`), which no later event would reveal when the line goes quiet.
- A gap not filled within ``grace_secs`` (out-of-order redelivery after a reconnect is normal) is
  alarmed once (``alarm.seq_gap``, ``state: missing``, with gateway and ``from``/``to``) and a
  replay is asked from the gateway (:mod:`gateway.replay`): again with backoff until it is
  filled. When every ``seq`` of it arrived, ``alarm.seq_gap`` ``state: filled`` clears it. A
  gap the gateway can no longer fill (past its journal's delivered window, or dropped by
  ``journal.when_full: drop_oldest``) stays alarmed, and reconciliation shows it
  (:mod:`gateway.bridge.reconcile`: a batch with a missing ``seq`` in its range is incomplete).

Time is injected (``now``) everywhere: ``tests/unit/test_bridge_gaps.py`` drives it.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from gateway.bridge.db import Db

__all__ = ["Gap", "GapTracker", "ReplayRequest", "first_uncovered", "missing_in", "uncovered"]

log = logging.getLogger(__name__)

MAX_REPLAY = 1000  # seqs asked for in one replay request (the gateway refuses more)
MAX_RETRY_SECS = 60.0


@dataclass(slots=True)
class Gap:
    gateway: str
    lo: int
    hi: int
    since: float
    alarmed: float | None = None
    requests: int = 0
    next_request: float = 0.0


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    gateway: str
    enterprise: str
    site: str
    lo: int
    hi: int


@dataclass(slots=True)
class _Source:
    ranges: list[list[int]] = field(default_factory=list)  # sorted, disjoint, not adjacent
    enterprise: str = ""
    site: str = ""


def _add(ranges: list[list[int]], s: int) -> bool:
    """Record ``s``; True when it was new."""
    if ranges:
        last = ranges[-1]
        if last[1] + 1 == s:
            last[1] = s
            return True
        if last[1] < s:
            ranges.append([s, s])
            return True
    i = bisect.bisect_right(ranges, [s, float("inf")]) - 1
    if i >= 0 and ranges[i][1] >= s:
        return False
    left = i >= 0 and ranges[i][1] + 1 == s
    right = i + 1 < len(ranges) and ranges[i + 1][0] - 1 == s
    if left and right:
        ranges[i][1] = ranges[i + 1][1]
        del ranges[i + 1]
    elif left:
        ranges[i][1] = s
    elif right:
        ranges[i + 1][0] = s
    else:
        ranges.insert(i + 1, [s, s])
    return True


def _holes(ranges: list[list[int]]) -> list[tuple[int, int]]:
    return [(a[1] + 1, b[0] - 1) for a, b in pairwise(ranges)]


def uncovered(ranges: list[list[int]], lo: int, hi: int) -> int:
    """How many seqs of ``[lo, hi]`` are in none of ``ranges`` (also past the last one)."""
    n, cursor = 0, lo
    for a, b in ranges:
        if b < cursor:
            continue
        if a > hi:
            break
        if a > cursor:
            n += a - cursor
        cursor = b + 1
        if cursor > hi:
            return n
    return n + max(0, hi - cursor + 1)


def first_uncovered(ranges: list[list[int]], lo: int, hi: int) -> tuple[int, int] | None:
    """The first run of seqs in ``[lo, hi]`` that none of ``ranges`` holds."""
    cursor = lo
    for a, b in ranges:
        if b < cursor:
            continue
        if a > cursor:
            return cursor, min(a - 1, hi)
        cursor = b + 1
        if cursor > hi:
            return None
    return (cursor, hi) if cursor <= hi else None


def missing_in(ranges: list[list[int]], lo: int, hi: int) -> int:
    """How many seqs of ``[lo, hi]`` are in none of ``ranges`` (within the tracked span)."""
    n = 0
    for a, b in _holes(ranges):
        a, b = max(a, lo), min(b, hi)
        if a <= b:
            n += b - a + 1
    return n


class GapTracker:
    """In-memory view of ``seq_ranges`` / ``seq_gaps``, written in the caller's transaction."""

    def __init__(self, grace_secs: float = 5.0) -> None:
        self.grace = grace_secs
        self.sources: dict[str, _Source] = {}
        self.gaps: dict[tuple[str, int], Gap] = {}
        self.raised = 0
        self.cleared = 0

    # -- persistence ---------------------------------------------------------------------------
    def load(self, db: Db) -> GapTracker:
        self.sources.clear()
        self.gaps.clear()
        for gw, lo, hi, ent, site in db.execute(
            "SELECT gateway, lo, hi, enterprise, site FROM seq_ranges ORDER BY gateway, lo"
        ):
            src = self.sources.setdefault(gw, _Source(enterprise=ent, site=site))
            src.ranges.append([lo, hi])
        for gw, lo, hi, since, alarmed, requests in db.execute(
            "SELECT gateway, lo, hi, since, alarmed, requests FROM seq_gaps"
        ):
            self.gaps[(gw, lo)] = Gap(gw, lo, hi, since, alarmed, requests)
        return self

    # -- ingest (inside the store's transaction) --------------------------------------------------
    def observe(
        self, db: Db, seen: Iterable[tuple[str, int, str, str]], now: float
    ) -> list[Gap]:
        """Record ``(gateway, seq, enterprise, site)`` of stored events; returns the gaps that
        are now filled (alarm them as cleared after the commit). On a rollback, :meth:`load`."""
        touched: dict[str, _Source] = {}
        for gw, seq, ent, site in seen:
            src = self.sources.get(gw)
            if src is None:
                src = self.sources[gw] = _Source(enterprise=ent, site=site)
                log.info("bridge: tracking seq of gateway %s from %d", gw, seq)
            src.enterprise, src.site = ent, site
            before = len(src.ranges)
            first = src.ranges[0][0] if src.ranges else None
            last = src.ranges[-1][1] if src.ranges else None
            if not _add(src.ranges, seq):
                continue
            touched[gw] = src
            if before and len(src.ranges) > before:  # a new range: a new hole next to it
                if last is not None and seq > last + 1:
                    self._new_gap(db, gw, last + 1, seq - 1, now)
                elif first is not None and seq < first - 1:
                    self._new_gap(db, gw, seq + 1, first - 1, now)
        filled: list[Gap] = []
        for gw, src in touched.items():
            db.execute("DELETE FROM seq_ranges WHERE gateway=?", (gw,))
            db.executemany(
                "INSERT INTO seq_ranges(gateway, lo, hi, enterprise, site) VALUES (?,?,?,?,?)",
                [(gw, a, b, src.enterprise, src.site) for a, b in src.ranges],
            )
            for key, gap in list(self.gaps.items()):
                if gap.gateway == gw and uncovered(src.ranges, gap.lo, gap.hi) == 0:
                    del self.gaps[key]
                    db.execute("DELETE FROM seq_gaps WHERE gateway=? AND lo=?", key)
                    filled.append(gap)
        return filled

    def observe_marks(
        self, db: Db, marks: Iterable[tuple[str, int]], now: float
    ) -> None:
        """A gateway's ``last_seq`` mark (``Topics.seq_mark``): seqs past the last one received
        are a gap at the tail, which no later event would reveal if the line went quiet. Marks
        of gateways whose events this bridge does not track are ignored."""
        for gw, mark in marks:
            src = self.sources.get(gw)
            if src is None or not src.ranges:
                continue
            last = src.ranges[-1][1]
            if mark <= last:
                continue
            tail = next(
                (g for g in self.gaps.values() if g.gateway == gw and g.lo <= last + 1 <= g.hi),
                None,
            )
            if tail is None:
                self._new_gap(db, gw, last + 1, mark, now)
            elif tail.hi < mark:
                tail.hi = mark
                db.execute(
                    "UPDATE seq_gaps SET hi=? WHERE gateway=? AND lo=?", (mark, gw, tail.lo)
                )

    def _new_gap(self, db: Db, gw: str, lo: int, hi: int, now: float) -> None:
        gap = Gap(gw, lo, hi, now, next_request=now + self.grace)
        self.gaps[(gw, lo)] = gap
        db.execute(
            "INSERT INTO seq_gaps(gateway, lo, hi, since, alarmed, requests) "
            "VALUES (?,?,?,?,NULL,0) ON CONFLICT(gateway, lo) DO UPDATE SET hi=excluded.hi, "
            "since=excluded.since, alarmed=NULL, requests=0",
            (gw, lo, hi, now),
        )

    # -- timers (the consumer's thread, its own short transaction) ---------------------------------
    def due(self, db: Db, now: float) -> tuple[list[Gap], list[ReplayRequest]]:
        """Gaps to alarm now (past the grace, not yet alarmed: marked alarmed here) and replay
        requests to send (the first hole of each open gap past its grace, with backoff)."""
        to_alarm: list[Gap] = []
        requests: list[ReplayRequest] = []
        for gap in self.gaps.values():
            if now - gap.since < self.grace:
                continue
            if gap.alarmed is None:
                gap.alarmed = now
                to_alarm.append(gap)
            if now >= gap.next_request:
                src = self.sources[gap.gateway]
                hole = self._first_hole(src, gap)
                if hole is None:
                    continue
                gap.requests += 1
                gap.next_request = now + min(MAX_RETRY_SECS, self.grace * 2**gap.requests)
                lo, hi = hole
                requests.append(
                    ReplayRequest(gap.gateway, src.enterprise, src.site, lo,
                                  min(hi, lo + MAX_REPLAY - 1))
                )  # fmt: skip
        if to_alarm or requests:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "UPDATE seq_gaps SET alarmed=COALESCE(alarmed, ?), requests=? "
                    "WHERE gateway=? AND lo=?",
                    [(g.alarmed, g.requests, g.gateway, g.lo) for g in self.gaps.values()],
                )
        return to_alarm, requests

    @staticmethod
    def _first_hole(src: _Source, gap: Gap) -> tuple[int, int] | None:
        return first_uncovered(src.ranges, gap.lo, gap.hi)

    # -- reading ----------------------------------------------------------------------------------
    def missing(self, gw: str, lo: int, hi: int) -> int:
        src = self.sources.get(gw)
        return 0 if src is None else missing_in(src.ranges, lo, hi)

    def open_gaps(self) -> list[Gap]:
        return sorted(self.gaps.values(), key=lambda g: (g.gateway, g.lo))

    def alarm_data(self, gap: Gap, state: str) -> dict[str, Any]:
        src = self.sources.get(gap.gateway)
        still = 0 if src is None else uncovered(src.ranges, gap.lo, gap.hi)
        if state == "missing":
            detail = (
                f"gateway {gap.gateway}: seq {gap.lo}..{gap.hi} not received "
                f"({still} missing); replay asked"
            )
        else:
            detail = f"gateway {gap.gateway}: seq {gap.lo}..{gap.hi} received after all"
        return {
            "state": state,
            "gateway": gap.gateway,
            "from": gap.lo,
            "to": gap.hi,
            "missing": still,
            "detail": detail,
        }
