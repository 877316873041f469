"""Writing events into the trace store: one transaction per group of messages.

Constraints:

- :meth:`TraceStore.ingest` commits (``synchronous=FULL``) before it returns; the MQTT consumer
  acknowledges (PUBACK) only afterwards, so an acknowledged event is on disk.
- Events are de-duplicated by ``id`` (delivery is at-least-once): a repeat is counted, not stored.
- A payload that is not a valid event goes to ``quarantine`` with the reason, in the same
  transaction; it never stops the bridge. Nor does a bridge bug on one message: when storing a
  message fails other than for the disk's sake (``sqlite3.OperationalError``, raised: nothing
  is committed, the consumer retries), the group's transaction is rolled back and the group
  stored again message by message, each in a savepoint, the failing one quarantined (kind
  ``error``, logged with its traceback).
- Tamper-evident: each stored record is linked into a keyed hash chain in the same transaction
  (:mod:`gateway.bridge.integrity`); a store keyed with another key does not open; ``saltgw
  verify`` reports the first broken link.
- Authenticated: with ``known`` (gateway/bridge/gateways.py) an event or seq mark not signed by
  a gateway the bridge knows is quarantined (kind ``unauthenticated``), never stored or chained.
- A code commissioned twice (two ``pack.bag`` events) keeps its first commissioning; the later
  event is kept with a note and not uploaded (the scanner raised ``alarm.duplicate_code``, 8.8).
- A rejected bag (``pack.reject`` with a code) is decommissioned (``codes.rejected``) and taken
  out of the case the event names, or else of the case the store has it in (a ``relations`` row
  with action ``remove``): trace answers and uploads show it out of the case.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.bridge.content import batch_of
from gateway.bridge.db import Db, describe, is_url, open_db
from gateway.bridge.gaps import Gap, GapTracker
from gateway.bridge.gateways import KnownGateways
from gateway.bridge.integrity import check_marker, seal
from gateway.bridge.lab_records import check_lab_record, duplicate_note, lab_record
from gateway.bridge.line_records import check_line_record, label
from gateway.bridge.records import KINDS, BadEvent, Parsed, parse_event
from gateway.bridge.schema import PENDING_EVENTS_SQL, QUARANTINE_PAYLOAD_BYTES
from gateway.chain import ChainKeyError
from gateway.chain import chain_key as _chain_key

__all__ = ["IngestStats", "TraceStore", "parse_seq_mark"]

SEQ_MARK_RE = re.compile(r"(?:[^/]+/)+gateway/([^/+#]+)/seq")


def parse_seq_mark(topic: str, payload: bytes) -> tuple[str, int]:
    """(gateway, last_seq) of a gateway's seq mark (``Topics.seq_mark``); :class:`BadEvent`
    when it is not one."""
    m = SEQ_MARK_RE.fullmatch(topic)
    if m is None or len(payload) > 1024:
        raise BadEvent("not a seq mark (…/gateway/{id}/seq, at most 1 KiB)", "schema")
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEvent(f"seq mark: not JSON: {exc}", "not_json") from None
    gw = body.get("gateway") if isinstance(body, dict) else None
    last = body.get("last_seq") if isinstance(body, dict) else None
    if gw != m.group(1):
        raise BadEvent(f"seq mark: gateway {gw!r} is not the topic's {m.group(1)!r}", "schema")
    if type(last) is not int or not 1 <= last < 2**63:
        raise BadEvent(f"seq mark: last_seq must be an integer >= 1; got {last!r}", "schema")
    return gw, last


log = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestStats:
    accepted: int = 0
    duplicates: int = 0  # repeats of an event id already stored (at-least-once delivery)
    quarantined: int = 0
    conflicts: int = 0  # a code commissioned a second time
    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))


@dataclass(frozen=True, slots=True)
class _Tripped:
    """An unexpected error of the bridge's own checks on one message."""

    exc: Exception


_Checked = Parsed | tuple[str, int] | BadEvent | _Tripped


class TraceStore:
    """One connection, used by one thread at a time (each thread opens its own store)."""

    def __init__(
        self,
        path: Path | str,
        *,
        create: bool = True,
        grace_secs: float = 5.0,
        track_seq: bool = True,
        chain_key: bytes | None = None,
        known: KnownGateways | None = None,
    ) -> None:
        """``track_seq=False``: no seq gap tracking (a bridge of a share group sees only part
        of every gateway's seq). ``path``: a SQLite file or a ``postgresql://`` URL (one store
        several bridges write: docs/scaling.md). ``chain_key``: the key of the store's hash
        chains (:func:`gateway.bridge.integrity.store_chain_key`); None takes (or generates) the
        owner-only ``{path}.chain-key`` beside a SQLite store (a PostgreSQL store needs it
        given: every bridge writing it holds the same key). ``known``: store only events and seq
        marks signed by these gateways (the bridge service always gives them; None: no check,
        for tools and tests of the store itself)."""
        self.path: Path | str = path if is_url(path) else Path(path)
        self.shared = is_url(path)  # other bridges write it too
        if self.shared and chain_key is None:
            raise ChainKeyError(
                f"trace store {describe(path)}: a PostgreSQL store needs its chain key given "
                "(bridge.chain_key_env or chain_key_file, the same on every bridge writing it)"
            )
        self.known = known
        self.db: Db = open_db(self.path, create=create)
        try:
            self.chain_key = chain_key or _chain_key(Path(self.path), what="trace store chain key")
            check_marker(self.db, self.chain_key, self.path)
        except BaseException:
            self.db.close()
            raise
        self.stats = IngestStats()
        self.track_seq = track_seq
        self.gaps = GapTracker(grace_secs).load(self.db)
        self.filled: list[Gap] = []  # gaps filled by the last ingest (alarm them as cleared)
        self._seen: list[tuple[str, int, str, str]] = []  # (gateway, seq, …) stored this group
        self._marks: list[tuple[str, int]] = []  # (gateway, last_seq) marks of this group

    def close(self) -> None:
        self.db.close()

    # -- ingest ----------------------------------------------------------------------------------
    def ingest(self, messages: Sequence[tuple[str, bytes]]) -> IngestStats:
        """Store ``(topic, payload)`` messages in one transaction; returns this call's counts.
        Raises only ``sqlite3.OperationalError`` (the disk: nothing committed)."""
        try:
            got = self._ingest(messages, careful=False)
        except sqlite3.OperationalError:
            raise
        except Exception:  # one message tripped the bridge: find it, keep the others
            log.warning("bridge: storing a group of %d messages failed; storing them one by "
                        "one", len(messages), exc_info=True)  # fmt: skip
            got = self._ingest(messages, careful=True)
        s = self.stats
        s.accepted += got.accepted
        s.duplicates += got.duplicates
        s.quarantined += got.quarantined
        s.conflicts += got.conflicts
        for k, n in got.by_kind.items():
            s.by_kind[k] = s.by_kind.get(k, 0) + n
        return got

    def _ingest(self, messages: Sequence[tuple[str, bytes]], *, careful: bool) -> IngestStats:
        got = IngestStats()
        now = time.time()
        db = self.db
        checked = [self._check(topic, payload) for topic, payload in messages]  # no database
        db.execute("BEGIN IMMEDIATE")
        stored: list[int] = []
        self._seen = []
        self._marks = []
        try:
            ids = self._stored_ids([c for c in checked if isinstance(c, Parsed)])
            for (topic, payload), c in zip(messages, checked, strict=True):
                if careful:
                    db.execute("SAVEPOINT one")
                try:
                    new_id = self._one(topic, payload, c, ids, now, got, stored)
                except sqlite3.OperationalError:
                    raise
                except Exception as exc:
                    if not careful:
                        raise
                    db.execute("ROLLBACK TO one")
                    log.error("bridge: storing the message on %r failed; quarantined", topic,
                              exc_info=True)  # fmt: skip
                    self._quarantine(topic, payload, BadEvent(f"bridge error: {exc!r}", "error"),
                                     now, got)  # fmt: skip
                    new_id = None
                if careful:
                    db.execute("RELEASE one")
                if new_id is not None:  # a repeat later in this group is a duplicate
                    ids.add(new_id)
            if self.track_seq:
                self.filled = self.gaps.observe(db, self._seen, now)
                self.gaps.observe_marks(db, self._marks, now)
            seal(db, stored, self.chain_key)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self.gaps.load(db)  # the tracker's view of what was rolled back
            self.filled = []
            raise
        return got

    def _check(self, topic: str, payload: bytes) -> _Checked:
        """One message parsed and checked, without the database: its seq mark, its event, why
        it is refused, or what tripped the bridge on it (raised again where it is stored, so
        that a careful ingest quarantines it and keeps the others)."""
        try:
            if SEQ_MARK_RE.fullmatch(topic):
                mark = parse_seq_mark(topic, payload)
                if self.known is not None:
                    self.known.check(mark[0], payload, "seq mark")
                return mark
            ev = parse_event(payload)
            if self.known is not None:  # before anything else looks at it (gateways.py)
                self.known.check(ev.gateway, payload)
            check_line_record(ev)
            check_lab_record(ev)
            return ev
        except BadEvent as exc:
            return exc
        except Exception as exc:
            return _Tripped(exc)

    def _stored_ids(self, events: list[Parsed]) -> set[str]:
        """Which of these events' ids the store holds already: one query per 500, not one per
        event (a round trip each on PostgreSQL)."""
        ids = sorted({ev.id for ev in events})
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT id FROM events WHERE id IN ({marks})", chunk)
            found.update(str(r[0]) for r in rows)
        return found

    def _one(
        self,
        topic: str,
        payload: bytes,
        checked: _Checked,
        ids: set[str],
        now: float,
        got: IngestStats,
        stored: list[int],
    ) -> str | None:
        """Store one checked message; the id of the event it stored, if it did."""
        if isinstance(checked, _Tripped):
            raise checked.exc
        if isinstance(checked, BadEvent):
            self._quarantine(topic, payload, checked, now, got)
            return None
        if isinstance(checked, tuple):
            self._marks.append(checked)
            return None
        ev = checked
        if ev.id in ids:
            got.duplicates += 1
            return None
        conflict, rid = self._store(ev, payload, now)
        self._seen.append((ev.gateway, ev.seq, ev.enterprise, ev.site))
        stored.append(rid)
        got.conflicts += conflict
        got.accepted += 1
        return ev.id

    def quarantine_raw(self, messages: Sequence[tuple[str, bytes]], reason: str) -> None:
        """Keep messages in quarantine as they are (the consumer's last resort when a group
        cannot be stored at all for a reason other than the disk)."""
        got = IngestStats()
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for topic, payload in messages:
                self._quarantine(topic, payload, BadEvent(reason, "error"), now, got)
        self.stats.quarantined += got.quarantined
        self.stats.by_kind["error"] += got.quarantined

    def _quarantine(
        self, topic: str, payload: bytes, exc: BadEvent, now: float, got: IngestStats
    ) -> None:
        log.warning("quarantined a message on %r (%s): %s", topic, exc.kind, exc)
        got.quarantined += 1
        got.by_kind[exc.kind] = got.by_kind.get(exc.kind, 0) + 1
        self.db.execute(
            "INSERT INTO quarantine(received, topic, payload, reason, kind, size) "
            "VALUES (?,?,?,?,?,?)",
            (now, topic[:1024], payload[:QUARANTINE_PAYLOAD_BYTES], str(exc), exc.kind,
             len(payload)),
        )  # fmt: skip

    def _store(self, ev: Parsed, payload: bytes, now: float) -> tuple[int, int]:
        """Store one event; returns (1 if it is a conflicting commissioning else 0, its rid)."""
        db = self.db
        note = ev.note
        conflict = 0
        if ev.type == "pack.bag":
            row = db.execute("SELECT rid FROM codes WHERE code=?", (ev.codes[0],)).fetchone()
            if row is not None:
                note = f"code already commissioned (event rid {row[0]}); not uploaded again"
                conflict = 1
                log.warning(
                    "code %r commissioned twice: event %s kept, not uploaded", ev.codes[0], ev.id
                )
                ev.up, ev.weight = False, 0
        elif ev.group == "record" and note is None:
            note = duplicate_note(db, ev)
            if note is not None:
                ev.up, ev.weight = False, 0
        keep_payload = payload if not ev.up else None
        cur = db.execute(
            "INSERT INTO events(id, type, ts, gateway, seq, enterprise, site, line, device, "
            "batch, received, up, weight, note, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "RETURNING rid",
            (
                ev.id, ev.type, ev.ts, ev.gateway, ev.seq, ev.enterprise, ev.site, ev.line,
                ev.device, ev.batch, now, int(ev.up), ev.weight, note, keep_payload,
            ),
        )  # fmt: skip
        rid = int(cur.fetchone()[0])
        if ev.batch is not None:
            self._touch_batch(ev, now)
        if ev.group == "record" and note is None:
            lab_record(db, ev, rid)  # uploaded: its body is in lab_records
        if not ev.up:
            return conflict, rid
        if ev.type == "pack.bag":
            db.execute(
                "INSERT INTO codes(rid, code, enterprise, batch, ts) VALUES (?,?,?,?,?)",
                (rid, ev.codes[0], ev.enterprise, ev.batch, ev.ts),
            )
        elif ev.type == "pack.reject":
            self._reject(ev, rid)
        elif ev.group == "pack":
            self._relations(ev, rid)
        elif ev.type == "ship.outbound":
            d = ev.data
            db.executemany(
                "INSERT INTO outbound(rid, pos, order_no, ts, customer, customer_type, code, "
                "batch) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (rid, i, d["order"], ev.ts, d["customer"], d.get("customer_type"), c,
                     batch_of(db, c) or ev.batch)
                    for i, c in enumerate(ev.codes)
                ],
            )  # fmt: skip
            self._moved_bags(ev, rid)
        elif ev.type == "feed.material":
            d = ev.data
            db.execute(
                "INSERT INTO feedings(rid, ts, device, batch, material, lot, quantity, unit, "
                "point, operator, count) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rid, ev.ts, ev.device, ev.batch, d["material"], d.get("lot"),
                    float(d["quantity"]), d["unit"], label(d.get("point")),
                    label(d.get("operator")), d.get("count"),
                ),
            )  # fmt: skip
        elif ev.type in ("ship.inbound", "recall.scan"):
            d = ev.data
            inbound = ev.type == "ship.inbound"
            code = ev.codes[0]
            db.execute(
                "INSERT INTO scans(rid, kind, ts, device, batch, code, level, ref, party, bags) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    rid, "inbound" if inbound else "recall", ev.ts, ev.device,
                    batch_of(db, code) or ev.batch, code, d.get("level"),
                    d.get("order" if inbound else "recall"),
                    d.get("supplier" if inbound else "party"), d.get("bags"),
                ),
            )  # fmt: skip
            self._moved_bags(ev, rid)
        elif ev.group == "ccp":
            d = ev.data
            value, limits = d["value"], d["limits"]
            is_flag = isinstance(value, bool)
            db.execute(
                "INSERT INTO ccp(rid, type, ts, device, batch, value, flag, unit, lo, hi, verdict) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rid, ev.type, ev.ts, ev.device, ev.batch,
                    None if is_flag else float(value), int(value) if is_flag else None,
                    d.get("unit"), limits.get("lo"), limits.get("hi"), d["verdict"],
                ),
            )  # fmt: skip
        return 0, rid

    def _moved_bags(self, ev: Parsed, rid: int) -> None:
        """The bags a scan of a case or pallet counts for (``bag_codes``; docs/wholesale.md),
        with each bag's batch when this store knows it."""
        bags = ev.data.get("bag_codes") or []
        scanned = ev.data.get("code") or ev.codes[0]
        self.db.executemany(
            "INSERT INTO moved_bags(rid, pos, scanned, code, batch) VALUES (?,?,?,?,?)",
            [(rid, i, scanned, b, batch_of(self.db, b)) for i, b in enumerate(bags)],
        )

    def _relations(self, ev: Parsed, rid: int) -> None:
        parent, children = ev.codes[0], ev.codes[1:]
        if ev.type == "pack.unpack":
            level = self._level_of(parent)
            if not children:  # unpack everything the parent holds now
                children = self.children_of(parent)
                ev.weight = 1 + len(children)
                self.db.execute("UPDATE events SET weight=? WHERE rid=?", (ev.weight, rid))
            action = "unpack"
        else:
            level, action = ev.type.split(".", 1)[1], "pack"
        self.db.executemany(
            "INSERT INTO relations(rid, pos, parent, child, level, action, ts) "
            "VALUES (?,?,?,?,?,?,?)",
            [(rid, i, parent, c, level, action, ev.ts) for i, c in enumerate(children)],
        )

    def _reject(self, ev: Parsed, rid: int) -> None:
        """A bag taken off the line: the reject record; a known code is decommissioned and taken
        out of its case (the one the event names, else the one the store has it in)."""
        d, db = ev.data, self.db
        code = ev.codes[0] if ev.codes else None
        parent: str | None = None
        batch, commissioned = ev.batch, d.get("commissioned")
        if code is not None:
            row = db.execute("SELECT batch FROM codes WHERE code=?", (code,)).fetchone()
            if row is not None:
                batch = row[0] or batch
                db.execute(
                    "UPDATE codes SET rejected=COALESCE(rejected, ?) WHERE code=?", (ev.ts, code)
                )
            if commissioned is None:
                commissioned = row is not None
            held = self._container(code)
            parent = d.get("case") or held
            if parent is not None:
                level = self._level_of(parent)
                db.execute(
                    "INSERT INTO relations(rid, pos, parent, child, level, action, ts) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (rid, 0, parent, code, level, "remove", ev.ts),
                )
        db.execute(
            "INSERT INTO rejects(rid, ts, device, batch, reason, code, parent, commissioned, "
            "value, unit, count, detection) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                rid, ev.ts, ev.device, batch, d["reason"], code, parent,
                None if commissioned is None else int(commissioned),
                None if d.get("value") is None else float(d["value"]), d.get("unit"),
                d.get("count"), d.get("detection"),
            ),
        )  # fmt: skip

    def _container(self, code: str) -> str | None:
        """The case or pallet the store has ``code`` in now, if any."""
        row = self.db.execute(
            "SELECT parent, action FROM relations WHERE child=? ORDER BY rid DESC LIMIT 1",
            (code,),
        ).fetchone()
        return str(row[0]) if row is not None and row[1] == "pack" else None

    def _level_of(self, parent: str) -> str:
        row = self.db.execute(
            "SELECT level FROM relations WHERE parent=? AND action='pack' ORDER BY rid DESC "
            "LIMIT 1",
            (parent,),
        ).fetchone()
        return str(row[0]) if row else "case"

    def children_of(self, parent: str) -> list[str]:
        """Codes packed in ``parent`` now (packed and not unpacked since)."""
        rows = self.db.execute(
            "SELECT child, action FROM relations WHERE parent=? ORDER BY rid, pos", (parent,)
        ).fetchall()
        inside: dict[str, None] = {}
        for child, action in rows:
            if action == "pack":
                inside[child] = None
            else:
                inside.pop(child, None)
        return list(inside)

    def _touch_batch(self, ev: Parsed, now: float) -> None:
        db = self.db
        db.execute(
            "INSERT INTO batches(batch, enterprise, site, line, last_activity) VALUES (?,?,?,?,?) "
            "ON CONFLICT(batch) DO UPDATE SET last_activity=excluded.last_activity",
            (ev.batch, ev.enterprise, ev.site, ev.line, now),
        )
        d = ev.data
        if ev.type == "batch.start":
            db.execute(
                "UPDATE batches SET product=COALESCE(?, product), "
                "production_date=COALESCE(?, production_date, ?), "
                "shelf_life_days=COALESCE(?, shelf_life_days), started=?, "
                "inspection=COALESCE(?, inspection), shift=COALESCE(?, shift), "
                "person_in_charge=COALESCE(?, person_in_charge) WHERE batch=?",
                (
                    _opt(d.get("product")), _opt(d.get("production_date")), ev.ts[:10],
                    d.get("shelf_life_days"), ev.ts, _opt(d.get("inspection")),
                    label(d.get("shift")), d.get("person_in_charge"), ev.batch,
                ),
            )  # fmt: skip
        elif ev.type == "batch.end":
            db.execute(
                "UPDATE batches SET ended=?, inspection=COALESCE(?, inspection), "
                "production_date=COALESCE(production_date, ?), shift=COALESCE(shift, ?), "
                "person_in_charge=COALESCE(?, person_in_charge) WHERE batch=?",
                (
                    ev.ts,
                    _opt(d.get("inspection")),
                    ev.ts[:10],
                    label(d.get("shift")),
                    d.get("person_in_charge"),
                    ev.batch,
                ),
            )
        elif ev.group != "record":  # a lab's or MES's record says nothing of production
            db.execute(
                "UPDATE batches SET production_date=COALESCE(production_date, ?) WHERE batch=?",
                (ev.ts[:10], ev.batch),
            )

    # -- small reads -----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        q = self.db.execute
        return {
            "events": q("SELECT COUNT(*) FROM events").fetchone()[0],
            "codes": q("SELECT COUNT(*) FROM codes").fetchone()[0],
            "quarantine": q("SELECT COUNT(*) FROM quarantine").fetchone()[0],
            "pending_events": q(PENDING_EVENTS_SQL).fetchone()[0],
        }

    def quarantined(self) -> list[tuple[str, str, bytes]]:
        rows = self.db.execute("SELECT topic, reason, payload FROM quarantine ORDER BY qid")
        return [(t, r, bytes(p)) for t, r, p in rows]


def _opt(v: object) -> str | None:
    return None if v is None else (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
