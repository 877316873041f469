"""The access log of trace queries (QB/T 5279-2018 11.4: the system records who used it):
every ``saltgw trace`` query writes one row to the trace store's ``access_log`` table and one
line to the ``saltgw.access`` logger, found or not, as soon as the answer is known.

A row holds when, who (the OS user, and the user behind ``sudo``), from which host and process,
what was asked (code, batch, documents, purge) and the outcome (found / not found).
``saltgw trace --access-log`` lists the newest rows.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import sqlite3
import time
from dataclasses import asdict, dataclass

__all__ = ["AccessEntry", "recent", "record", "show", "who"]

log = logging.getLogger("saltgw.access")


@dataclass(frozen=True, slots=True)
class AccessEntry:
    at: float
    user: str
    host: str
    pid: int
    query: str  # "code" | "batch" | "documents" | "purge" | "resend"
    subject: str | None  # the code or batch asked about
    outcome: str  # "found" | "not found" | "done" | "queued" | "refused"


def who() -> str:
    """The OS user, and the user behind ``sudo`` if any."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        user = f"uid:{os.getuid()}"
    behind = os.environ.get("SUDO_USER")
    return f"{user} (sudo by {behind})" if behind and behind != user else user


def record(db: sqlite3.Connection, query: str, subject: str | None, outcome: str) -> AccessEntry:
    """Write one access row (its own transaction) and log it."""
    entry = AccessEntry(
        time.time(), who(), socket.gethostname(), os.getpid(), query, subject, outcome
    )
    db.execute(
        "INSERT INTO access_log(at, user, host, pid, query, subject, outcome) "
        "VALUES (?,?,?,?,?,?,?)",
        (entry.at, entry.user, entry.host, entry.pid, query, subject, outcome),
    )
    log.info(
        "trace query %s %r by %s on %s: %s", query, subject or "", entry.user, entry.host, outcome
    )
    return entry


def recent(db: sqlite3.Connection, limit: int = 50) -> list[AccessEntry]:
    """The newest ``limit`` rows, oldest first."""
    rows = db.execute(
        "SELECT at, user, host, pid, query, subject, outcome FROM access_log "
        "ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [AccessEntry(*r) for r in reversed(rows)]


def show(db: sqlite3.Connection, limit: int, as_json: bool) -> int:
    for e in recent(db, limit):
        if as_json:
            print(json.dumps(asdict(e), ensure_ascii=False))
        else:
            when = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(e.at))
            print(f"{when}  {e.user}@{e.host}  {e.query} {e.subject or ''}  → {e.outcome}")
    return 0
