"""The access log of trace queries (QB/T 5279-2018 11.4: the system records who used it):
every ``saltgw trace`` query writes one row to the trace store's ``access_log`` table and one
line to the ``saltgw.access`` logger, found or not, **committed before the answer is printed**
(a reader that closes the pipe early still leaves its row).

A row holds when, who, from which host and process, what was asked (code, batch, documents,
purge) and the outcome (found / not found). Who is taken from the operating system, never from
the environment (``$USER`` and ``$SUDO_USER`` are whatever the caller sets): the process's uid
and its name in the password database, and the login uid (``/proc/self/loginuid``, set at login
and kept across ``sudo`` and ``su``) when it differs. Rows are hash-chained like the store's
records (:mod:`gateway.chain`, keyed with the store's chain key; ``prev``/``chain`` columns,
head in ``meta.access_head``, marker in ``meta.access_alg``), so
``saltgw verify`` finds an edited, removed or inserted row. ``saltgw trace --access-log`` lists
the newest rows.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.bridge.db import Db, columns
from gateway.bridge.integrity import set_marker
from gateway.chain import GENESIS, link

__all__ = [
    "AccessEntry",
    "access_body",
    "access_head",
    "astuple_row",
    "recent",
    "record",
    "show",
    "who",
]

log = logging.getLogger("saltgw.access")

LOGINUID = Path("/proc/self/loginuid")
UNSET_LOGINUID = 4294967295  # (uid_t)-1: no login session (daemons, containers)


@dataclass(frozen=True, slots=True)
class AccessEntry:
    at: float
    user: str
    host: str
    pid: int
    query: str  # "code" | "batch" | "documents" | "purge" | "resend" | console: "export", …
    subject: str | None  # the code or batch asked about
    outcome: str  # "found" | "not found" | "done" | "queued" | "refused"


def _name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:  # no passwd entry for the uid (containers)
        return f"uid {uid}"


def _login_uid() -> int | None:
    try:
        value = int(LOGINUID.read_text().strip())
    except (OSError, ValueError):
        return None
    return None if value == UNSET_LOGINUID else value


def who() -> str:
    """The OS user of this process (uid and name), and the user who logged in when that is
    someone else (``sudo``, ``su``); never from environment variables."""
    uid = os.getuid()
    user = _name(uid)
    login = _login_uid()
    return f"{user}, logged in as {_name(login)}" if login is not None and login != uid else user


def _ensure_chain(db: Db) -> None:
    cols = columns(db, "access_log")
    for col in ("prev", "chain"):
        if col not in cols:
            db.execute(f"ALTER TABLE access_log ADD COLUMN {col} BLOB")


def access_body(row: tuple[object, ...]) -> bytes:
    """What the chain covers of one row: (id, at, user, host, pid, query, subject, outcome)."""
    return json.dumps(list(row), ensure_ascii=False, separators=(",", ":")).encode()


def access_head(db: Db) -> tuple[int, bytes] | None:
    """(id, chain) of the newest linked row, or None before the first."""
    row = db.execute("SELECT value FROM meta WHERE key='access_head'").fetchone()
    if row is None:
        return None
    rid, _, hexed = str(row[0]).partition(":")
    return int(rid), bytes.fromhex(hexed)


def record(
    db: Db,
    query: str,
    subject: str | None,
    outcome: str,
    *,
    key: bytes,
    user: str | None = None,
    host: str | None = None,
) -> AccessEntry:
    """Write one access row, linked to the one before under the store's chain ``key``, and
    commit it (its own transaction); then log it. ``user``/``host``: who asked and from where
    when that is not this process's OS user on this host (the web console's signed-in user and
    client address, docs/console.md)."""
    entry = AccessEntry(
        time.time(),
        user or who(),
        host or socket.gethostname(),
        os.getpid(),
        query,
        subject,
        outcome,
    )
    own = not db.in_transaction  # else the caller's transaction commits it
    if own:
        db.execute("BEGIN IMMEDIATE")
    try:
        _ensure_chain(db)
        head = access_head(db)
        prev = head[1] if head is not None else GENESIS
        cur = db.execute(
            'INSERT INTO access_log(at, "user", host, pid, query, subject, outcome) '
            "VALUES (?,?,?,?,?,?,?) RETURNING id",
            (entry.at, entry.user, entry.host, entry.pid, query, subject, outcome),
        )
        rid = int(cur.fetchone()[0])
        set_marker(db, key, "access_alg", "access log", rid)
        body = access_body((rid, *astuple_row(entry)))
        chain = link(prev, body, key)
        db.execute("UPDATE access_log SET prev=?, chain=? WHERE id=?", (prev, chain, rid))
        db.execute(
            "INSERT INTO meta(key, value) VALUES ('access_head', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (f"{rid}:{chain.hex()}",),
        )
        if own:
            db.execute("COMMIT")
    except BaseException:
        if own:
            db.execute("ROLLBACK")
        raise
    log.info(
        "trace query %s %r by %s on %s: %s", query, subject or "", entry.user, entry.host, outcome
    )
    return entry


def astuple_row(e: AccessEntry) -> tuple[object, ...]:
    """The stored columns of an entry after its id, in table order."""
    return (e.at, e.user, e.host, e.pid, e.query, e.subject, e.outcome)


def recent(db: Db, limit: int = 50) -> list[AccessEntry]:
    """The newest ``limit`` rows, oldest first."""
    rows = db.execute(
        'SELECT at, "user", host, pid, query, subject, outcome FROM access_log '
        "ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [AccessEntry(*r) for r in reversed(rows)]


def show(db: Db, limit: int, as_json: bool) -> int:
    for e in recent(db, limit):
        if as_json:
            print(json.dumps(asdict(e), ensure_ascii=False))
        else:
            when = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(e.at))
            print(f"{when}  {e.user}@{e.host}  {e.query} {e.subject or ''}  → {e.outcome}")
    return 0
