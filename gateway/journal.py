"""The durable event journal: SQLite in WAL mode, one writer thread, group commit.

Constraints (see docs/journal.md for the measurements behind the choice):

- An event is *accepted* only once the transaction holding it has committed with
  ``synchronous=FULL`` (WAL fsync'ed): it then survives ``kill -9`` and power loss.
- ``seq`` is allocated inside that transaction from the persisted ``last_seq``: strictly
  increasing, no gaps, never reused across restarts, even when every row has been delivered.
- A row is deleted only after the broker acknowledged it (:meth:`Journal.ack` after PUBACK). With
  a delivered window (``keep_delivered_secs`` and ``keep_delivered_events`` both > 0) an
  acknowledged row is marked ``delivered`` instead and kept that long (and at most that many
  delivered rows), so that a subscriber that found a ``seq`` gap can have it replayed
  (:mod:`gateway.replay`); ``max_events`` / ``when_full`` count undelivered rows only, as before.
- Bounded: at most ``max_events`` undelivered rows. When full, policy ``block`` parks new
  appends until acks make room (the producer's future stays pending: back-pressure), counted in
  ``stats.blocked``; policy ``drop_oldest`` deletes the oldest undelivered rows to make room,
  counted in ``stats.dropped`` and logged: subscribers then see a seq gap, intentionally.
- Readers (the forwarder) use their own connection; WAL lets them read while the writer writes.
- Disk full, I/O errors: a commit that fails for the disk's sake (``sqlite3.OperationalError``)
  accepts nothing; its appends and acks are kept and the commit is retried every
  :data:`RETRY_SECS` (producers wait: back-pressure), counted in ``stats.write_errors``, and
  :attr:`Journal.failing` says why (``/healthz``) until a commit succeeds again.
- Cursors: an event may carry a ``cursor`` (e.g. a checkweigher's weighing counter), stored in
  ``cursors`` in the event's own transaction, so that after a restart a profile resumes exactly
  from its last accepted event (:meth:`Journal.cursors`).
- Tamper-evident: each row carries ``prev`` and ``chain = HMAC-SHA-256(key, prev || seq, type,
  payload)`` (:mod:`gateway.chain`), and ``chain_head`` holds the newest row's seq and chain, all
  written in the same transaction as the row. ``chain_alg`` (one row) says from which seq on the
  rows are keyed, bound to the key (:class:`gateway.chain.Marker`); a journal marked with another
  key does not open. :attr:`Journal.head` is the committed head, which the forwarder publishes
  retained (``Topics.chain_head``) as the external anchor. ``saltgw verify`` reports the first
  broken link.
- Signed: with a ``signer`` (gateway/signing.py) each payload is stored with its signature, so
  what is published, and replayed later, is what was signed (the chain covers the signed bytes).
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gateway.chain import GENESIS, ChainKeyError, Marker, chain_key, journal_body, link
from gateway.events import Event, EventDraft, Origin, format_ts, uuid7

if TYPE_CHECKING:
    from gateway.config.models import JournalSection

__all__ = [
    "Journal",
    "JournalClosed",
    "JournalRow",
    "JournalStats",
    "SharedStore",
    "WhenFull",
    "journal_chain_key",
]

log = logging.getLogger(__name__)

RETRY_SECS = 0.5  # a commit that failed for the disk's sake is tried again this often

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY,
    type     TEXT NOT NULL,
    payload  BLOB NOT NULL,
    accepted REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chain_head (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chain_alg (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    alg        TEXT NOT NULL,
    keyed_from INTEGER NOT NULL,
    mac        BLOB NOT NULL
);
"""
CHAIN = "journal"  # the chain's name in its marker (gateway.chain.marker_mac)
CHAIN_COLUMNS = ("prev", "chain")  # added to journals written before the chain existed
PRUNE_EVERY_SECS = 1.0  # delivered rows past the window are deleted at most this often
UNDELIVERED = "delivered IS NULL"


def journal_chain_key(section: JournalSection) -> bytes:
    """The configured journal's chain key: ``chain_key_env``, else ``chain_key_file``, else
    ``{path}.chain-key`` beside the journal (generated when missing)."""
    return chain_key(
        section.path, section.chain_key_env, section.chain_key_file, "journal chain key"
    )


class WhenFull(StrEnum):
    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"


class SharedStore(Protocol):
    """Another SQLite store whose writes commit in the journal's transactions
    (:meth:`Journal.share_transactions`; gateway/tracedb.py is the one)."""

    @property
    def lock(self) -> AbstractContextManager[object]: ...

    @property
    def staged(self) -> int: ...  # writes in the open transaction, not yet committed

    def attach_to(self, conn: sqlite3.Connection) -> None: ...  # writer thread, at open

    def detach(self) -> None: ...  # writer thread, before the connection closes

    def committed(self) -> None: ...

    def rolled_back(self) -> None: ...


class JournalClosed(Exception):
    """The journal was closed; nothing more is accepted."""


@dataclass(frozen=True, slots=True)
class JournalRow:
    seq: int
    type: str
    payload: bytes


@dataclass(slots=True)
class JournalStats:
    accepted: int = 0  # events committed since start
    delivered: int = 0  # rows deleted after PUBACK since start
    dropped: int = 0  # rows deleted unsent by drop_oldest (intentional drops)
    blocked: int = 0  # appends that had to wait for room (policy block)
    commits: int = 0
    backlog: int = 0  # undelivered rows on disk now
    last_seq: int = 0
    write_errors: int = 0  # commits that failed (disk full, I/O error) and were retried


@dataclass(slots=True)
class _Append:
    drafts: Sequence[EventDraft]
    fut: Future[list[Event]]
    waited: bool = False  # counted once in stats.blocked


class Journal:
    """Thread-safe facade over the journal database. Use as a context manager or open/close."""

    def __init__(
        self,
        path: Path,
        origin: Origin,
        *,
        max_events: int = 1_000_000,
        when_full: WhenFull = WhenFull.BLOCK,
        max_batch: int = 2000,
        keep_delivered_secs: float = 0.0,
        keep_delivered_events: int = 0,
        chain_key: bytes | None = None,
        signer: Callable[[bytes], bytes] | None = None,
    ) -> None:
        """``chain_key``: the key of the hash chain (:func:`gateway.chain.chain_key`); None
        takes (or generates) the owner-only ``{path}.chain-key`` beside the journal."""
        self.path = Path(path)
        self._key = chain_key
        self._marked = False  # the chain_alg marker is written (with the first keyed row)
        # signs each event's payload once, as it is stored (gateway/signing.py): the forwarder
        # and replays send those bytes; None stores them unsigned (tests, tools)
        self.signer = signer
        self.keep_secs = keep_delivered_secs
        self.keep_events = keep_delivered_events
        self.keeps = keep_delivered_secs > 0 and keep_delivered_events > 0
        self._pruned_at = 0.0
        self.origin = origin
        self.max_events = max_events
        self.when_full = WhenFull(when_full)
        self.max_batch = max_batch
        self.stats = JournalStats()
        self._requests: queue.SimpleQueue[_Append | list[int] | None] = queue.SimpleQueue()
        self._parked: deque[_Append] = deque()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._db: sqlite3.Connection | None = None
        self._head = GENESIS  # chain value of the newest row (gateway.chain)
        # (seq, chain) of the newest committed row, replaced whole after each commit: read by
        # other threads (the forwarder publishes it, Topics.chain_head); (0, GENESIS) before one
        self.head: tuple[int, bytes] = (0, GENESIS)
        self.failing: str | None = None  # why commits fail now (disk full, …); None when fine
        self._sync_paths: list[Path] = []  # other stores' WAL files, fsync'ed before a commit
        self._retry_acks: list[int] = []  # acks of a failed commit, deleted in the next one
        self._shared: SharedStore | None = None  # written in our transactions (share_transactions)

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> Journal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._key is None:
            self._key = chain_key(self.path, what="journal chain key")
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            raise self._open_error
        return self

    def close(self) -> None:
        """Commit what was handed in, then stop. Parked (blocked) appends fail."""
        if self._thread is None or self._closed.is_set():
            return
        self._requests.put(None)
        self._thread.join()

    def alive(self) -> bool:
        """The writer thread is running (False after close() or a fatal error)."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- producer side -----------------------------------------------------------------------
    def append(self, drafts: Sequence[EventDraft]) -> Future[list[Event]]:
        """Hand events in; the future resolves once they are durably committed."""
        fut: Future[list[Event]] = Future()
        if self._closed.is_set():
            fut.set_exception(JournalClosed(str(self.path)))
            return fut
        self._requests.put(_Append(drafts, fut))
        return fut

    def ack(self, seqs: list[int]) -> None:
        """The broker acknowledged these rows: delete them (in the writer's next transaction)."""
        if seqs and not self._closed.is_set():
            self._requests.put(seqs)

    def cursors(self) -> dict[str, int]:
        """The cursors of the last accepted events (read at start, before producing)."""
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            return {str(k): int(v) for k, v in db.execute("SELECT key, value FROM cursors")}
        finally:
            db.close()

    # -- reader side (any thread; one connection per reader) ----------------------------------
    def reader(self) -> JournalReader:
        return JournalReader(self.path)

    # -- writer thread -----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        have = {r[1] for r in db.execute("PRAGMA table_info(events)")}
        for col in CHAIN_COLUMNS:
            if col not in have:
                db.execute(f"ALTER TABLE events ADD COLUMN {col} BLOB")
        if "delivered" not in have:  # journals from before the delivered window
            db.execute("ALTER TABLE events ADD COLUMN delivered REAL")
        db.execute(
            "CREATE INDEX IF NOT EXISTS events_undelivered ON events(seq) WHERE delivered IS NULL"
        )
        return db

    def _run(self) -> None:
        try:
            db = self._db = self._connect()
            if self._shared is not None:
                self._shared.attach_to(db)
            row = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
            max_row = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
            self.stats.last_seq = max(row[0] if row else 0, max_row[0])
            self.stats.backlog = db.execute(
                f"SELECT COUNT(*) FROM events WHERE {UNDELIVERED}"
            ).fetchone()[0]
            head = db.execute("SELECT seq, hash FROM chain_head").fetchone()
            self._head = bytes(head[1]) if head else GENESIS
            self.head = (int(head[0]), self._head) if head else (0, GENESIS)
            self._check_marker(db)
        except BaseException as exc:  # reported to open()'s caller
            self._open_error = exc
            self._closed.set()
            self._opened.set()
            return
        self._opened.set()
        try:
            self._serve(db)
        except BaseException:
            log.critical("journal %s: writer thread failed", self.path, exc_info=True)
            raise
        finally:
            self._closed.set()
            for parked in self._parked:
                _resolve(parked.fut, exc=JournalClosed(str(self.path)))
            self._parked.clear()
            if self._shared is not None:
                self._shared.detach()
            db.close()

    def _check_marker(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT alg, keyed_from, mac FROM chain_alg").fetchone()
        if row is None:
            return
        assert self._key is not None
        if not Marker(str(row[0]), int(row[1]), bytes(row[2])).valid(self._key, CHAIN):
            raise ChainKeyError(
                f"journal {self.path}: its hash chain was written with another key (or its "
                "chain_alg row was edited): put the journal's key back "
                "(journal.chain_key_env / chain_key_file, or the generated "
                f"{self.path.name}.chain-key), or, once its events are delivered, move the "
                "journal aside (docs/security.md)"
            )
        self._marked = True

    def _serve(self, db: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._requests.get(timeout=RETRY_SECS if self.failing else None)
            except queue.Empty:  # commits failing: try the parked appends again
                first = []
            appends: list[_Append] = []
            acks: list[int] = []
            pending = 0
            item: _Append | list[int] | None = first
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, list):
                    acks.extend(item)
                else:
                    appends.append(item)
                    pending += len(item.drafts)
                if stopping or pending >= self.max_batch:
                    break
                try:
                    item = self._requests.get_nowait()
                except queue.Empty:
                    break
            self._commit(db, appends, acks)

    def sync_before_commit(self, path: Path) -> None:
        """fsync ``path`` (another store's WAL file, written with ``synchronous=NORMAL``)
        before every commit that accepts events: what those events rest on is on disk first.
        Call before :meth:`open`."""
        self._sync_paths.append(Path(path))

    def _sync_others(self) -> None:
        for path in self._sync_paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # nothing written there yet
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- a store written in the journal's own transactions (issue 13, docs/architecture.md) -------
    def share_transactions(self, store: SharedStore) -> None:
        """Commit ``store``'s writes in the same SQLite transactions as the events: the store is
        ATTACHed to the writer's connection (:meth:`SharedStore.attach_to`), its writes go into
        the transaction this connection has open, and the writer commits under
        :attr:`SharedStore.lock` after taking in every append handed in meanwhile. A producer
        that writes the store and appends the events it caused under that lock therefore never
        has its writes committed without its events. Call before :meth:`open`."""
        self._shared = store

    def _commit(self, db: sqlite3.Connection, appends: list[_Append], acks: list[int]) -> None:
        if self._shared is None:
            self._commit_events(db, appends, acks)
            return
        with self._shared.lock:
            # appends handed in since _serve looked carry writes of this transaction: take them
            stop = False
            while True:
                try:
                    item = self._requests.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                elif isinstance(item, list):
                    acks.extend(item)
                else:
                    appends.append(item)
            if stop:  # close() asked: _serve sees it next and commits once more, then stops
                self._requests.put(None)
            self._commit_events(db, appends, acks)

    def _commit_events(
        self, db: sqlite3.Connection, appends: list[_Append], acks: list[int]
    ) -> None:
        stats = self.stats
        if self._sync_paths and any(a.drafts for a in (*self._parked, *appends)):
            try:
                self._sync_others()
            except OSError as exc:  # treated like our own write failing: nothing accepted
                self._parked.extend(appends)
                self._retry_acks = [*self._retry_acks, *acks]
                self._write_failed(db, sqlite3.OperationalError(f"fsync of a trace store: {exc}"))
                return
        admitted: list[tuple[_Append, list[Event]]] = []
        if self._retry_acks:
            acks, self._retry_acks = [*self._retry_acks, *acks], []
        saved = (stats.delivered, stats.backlog, stats.dropped)  # restored if the commit fails
        try:
            if not db.in_transaction:  # a shared store may have begun it (share_transactions)
                db.execute("BEGIN IMMEDIATE")
            if acks:
                before = db.total_changes
                if self.keeps:
                    db.executemany(
                        f"UPDATE events SET delivered=? WHERE seq=? AND {UNDELIVERED}",
                        [(time.time(), s) for s in acks],
                    )
                else:
                    db.executemany("DELETE FROM events WHERE seq=?", [(s,) for s in acks])
                gone = db.total_changes - before
                stats.delivered += gone
                stats.backlog -= gone
            if self.keeps and time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECS:
                self._pruned_at = time.monotonic()
                self._prune_delivered(db)
            queue_ = self._parked
            queue_.extend(appends)
            seq = stats.last_seq
            tip = self._head
            rows: list[tuple[int, str, bytes, float, bytes, bytes]] = []
            cursors: dict[str, int] = {}
            now = time.time()
            while queue_:
                head = queue_[0]
                room = self.max_events - stats.backlog - len(rows)
                if len(head.drafts) > room:
                    if (
                        self.when_full is WhenFull.BLOCK
                        and len(head.drafts) <= self.max_events
                        and not (self._shared is not None and self._shared.staged)
                    ):  # (a shared store's writes are never committed without their events)
                        if not head.waited:
                            head.waited = True
                            stats.blocked += len(head.drafts)
                        break
                    self._drop_oldest(db, len(head.drafts) - room)
                queue_.popleft()
                events = []
                for d in head.drafts:
                    seq += 1
                    ev = self._stamp(d, seq)
                    events.append(ev)
                    if d.cursor is not None:
                        cursors[d.cursor[0]] = d.cursor[1]
                    payload = ev.to_json()
                    if self.signer is not None:
                        payload = self.signer(payload)
                    prev, tip = tip, link(tip, journal_body(seq, ev.type, payload), self._key)
                    rows.append((seq, ev.type, payload, now, prev, tip))
                admitted.append((head, events))
            if rows:
                db.executemany(
                    "INSERT INTO events(seq, type, payload, accepted, prev, chain) "
                    "VALUES (?,?,?,?,?,?)",
                    rows,
                )
                db.execute(
                    "INSERT INTO meta VALUES ('last_seq', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (seq,),
                )
                db.execute("INSERT OR REPLACE INTO chain_head VALUES (1, ?, ?)", (seq, tip))
                if not self._marked:  # the first keyed row: older ones are unkeyed or none
                    assert self._key is not None
                    mark = Marker.make(self._key, CHAIN, rows[0][0])
                    db.execute(
                        "INSERT INTO chain_alg VALUES (1, ?, ?, ?)",
                        (mark.alg, mark.keyed_from, mark.mac),
                    )
                if cursors:
                    db.executemany(
                        "INSERT OR REPLACE INTO cursors VALUES (?, ?)", list(cursors.items())
                    )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if self._shared is not None:
                self._shared.rolled_back()
            stats.delivered, stats.backlog, stats.dropped = saved
            if isinstance(exc, sqlite3.OperationalError):  # the disk: keep it all, retry
                self._retry_acks = acks
                self._parked.extendleft(app for app, _evs in reversed(admitted))
                self._write_failed(db, exc)
                return
            log.error("journal %s: commit failed: %s", self.path, exc)
            for app, _evs in admitted:
                _resolve(app.fut, exc=exc)
            return
        if self._shared is not None:
            self._shared.committed()
        if self.failing is not None:
            log.warning("journal %s: writable again (%s before)", self.path, self.failing)
            self.failing = None
        stats.commits += 1
        if rows:
            self._marked = True
            self._head = tip
            self.head = (seq, tip)
            stats.last_seq = seq
            stats.backlog += len(rows)
            stats.accepted += len(rows)
        for app, events in admitted:
            _resolve(app.fut, events)

    def _write_failed(self, db: sqlite3.Connection, exc: sqlite3.OperationalError) -> None:
        """Nothing of the failed commit was accepted; say why until a commit succeeds."""
        self.stats.write_errors += 1
        name = getattr(exc, "sqlite_errorname", "") or "SQLITE_ERROR"
        why = f"disk full: {exc}" if name == "SQLITE_FULL" else f"cannot write: {exc} ({name})"
        if self.failing is None:
            waiting = sum(len(a.drafts) for a in self._parked)
            log.error(
                "journal %s: %s; %d events wait (none accepted), %d deliveries not yet "
                "recorded; retried every %g s",
                self.path,
                why,
                waiting,
                len(self._retry_acks),
                RETRY_SECS,
            )
        self.failing = why
        if name == "SQLITE_FULL":  # the WAL may hold the space to give back
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass

    def _prune_delivered(self, db: sqlite3.Connection) -> None:
        """Delivered rows older than the window, or beyond the newest ``keep_events``, go."""
        db.execute(
            "DELETE FROM events WHERE delivered IS NOT NULL AND (delivered < ? OR seq <= "
            "(SELECT COALESCE(MAX(seq), 0) FROM events WHERE delivered IS NOT NULL) - ?)",
            (time.time() - self.keep_secs, self.keep_events),
        )

    def _drop_oldest(self, db: sqlite3.Connection, n: int) -> None:
        before = db.total_changes
        db.execute(
            f"DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE {UNDELIVERED} "
            "ORDER BY seq LIMIT ?)",
            (n,),
        )
        gone = db.total_changes - before
        self.stats.dropped += gone
        self.stats.backlog -= gone
        log.warning(
            "journal %s full (%d events): dropped the %d oldest undelivered events "
            "(policy drop_oldest; %d dropped since start)",
            self.path,
            self.max_events,
            gone,
            self.stats.dropped,
        )

    def _stamp(self, d: EventDraft, seq: int) -> Event:
        o = self.origin
        return Event(
            id=str(uuid7()),
            gateway=o.gateway,
            seq=seq,
            type=d.type,
            ts=format_ts(d.ts),
            enterprise=o.enterprise,
            site=o.site,
            line=o.line,
            device=d.device,
            batch=d.batch,
            data=d.data,
        )


def _resolve(
    fut: Future[list[Event]], events: list[Event] | None = None, exc: BaseException | None = None
) -> None:
    """Complete a producer's future; one whose producer gave up waiting (cancelled, e.g. at
    shutdown) is skipped: its events are committed all the same and will be delivered."""
    if not fut.set_running_or_notify_cancel():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(events or [])


class JournalReader:
    """A read-only view for one thread (the forwarder, CLI tools)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def after(self, seq: int, limit: int) -> list[JournalRow]:
        """Undelivered rows with ``seq`` greater than the given one, in order."""
        cur = self._db.execute(
            f"SELECT seq, type, payload FROM events WHERE seq > ? AND {UNDELIVERED} "
            "ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [JournalRow(s, t, bytes(p)) for s, t, p in cur]

    def rows(self, seqs: Sequence[int]) -> list[JournalRow]:
        """The undelivered rows among ``seqs`` (at most a few hundred), in order: the events
        the broker refused, read again to be sent again (gateway/refusals.py)."""
        if not seqs:
            return []
        marks = ",".join("?" * len(seqs))
        cur = self._db.execute(
            f"SELECT seq, type, payload FROM events WHERE seq IN ({marks}) AND {UNDELIVERED} "
            "ORDER BY seq",
            tuple(seqs),
        )
        return [JournalRow(s, t, bytes(p)) for s, t, p in cur]

    def delivered_between(self, lo: int, hi: int, limit: int) -> list[JournalRow]:
        """Delivered rows kept in the window with ``lo <= seq <= hi``, in order (replay)."""
        cur = self._db.execute(
            "SELECT seq, type, payload FROM events WHERE seq BETWEEN ? AND ? "
            "AND delivered IS NOT NULL ORDER BY seq LIMIT ?",
            (lo, hi, limit),
        )
        return [JournalRow(s, t, bytes(p)) for s, t, p in cur]

    def seqs_between(self, lo: int, hi: int) -> list[int]:
        """Every seq of ``[lo, hi]`` still in the journal, delivered or not."""
        cur = self._db.execute(
            "SELECT seq FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq", (lo, hi)
        )
        return [int(r[0]) for r in cur]

    def oldest(self) -> tuple[int, float] | None:
        row = self._db.execute(
            f"SELECT seq, accepted FROM events WHERE {UNDELIVERED} ORDER BY seq LIMIT 1"
        ).fetchone()
        return (row[0], row[1]) if row else None

    def close(self) -> None:
        self._db.close()
