"""The trace store on PostgreSQL: a psycopg 3 connection that runs the store's SQL
(gateway/bridge/db.py says what it translates and why). Imported only for a ``postgresql://``
store (the ``postgres`` extra).

One connection, used by one thread at a time, in autocommit mode with explicit transactions.
A connection that was lost is opened again at the next statement, unless it was lost inside a
transaction: then every statement fails (``sqlite3.OperationalError``) until the caller ends
it (``ROLLBACK``), so a half-done transaction never continues on a new connection.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NoReturn

import psycopg
from psycopg.adapt import Loader
from psycopg.pq import TransactionStatus

from gateway.bridge.db import describe

__all__ = ["SCHEMA_REVISION", "WRITE_LOCK", "PgConnection", "SchemaOutOfDate", "translate"]

log = logging.getLogger(__name__)

# the alembic revision this code reads and writes (gateway/bridge/migrations/versions)
SCHEMA_REVISION = "0001"
# pg_advisory_xact_lock key of the store's write transactions ("saltgwTS" as an int64)
WRITE_LOCK = int.from_bytes(b"saltgwTS", "big") - 2**63

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|\?|%")


class SchemaOutOfDate(sqlite3.OperationalError):
    """The database's schema is not the one this saltgw writes: ``saltgw store migrate``."""


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """The store's SQL with psycopg's placeholders: ``?`` outside literals → ``%s``, ``%`` →
    ``%%``."""

    def sub(m: re.Match[str]) -> str:
        t = m.group(0)
        if t == "?":
            return "%s"
        if t == "%":
            return "%%"
        return t.replace("%", "%%")

    return _TOKEN.sub(sub, sql)


class _NumberLoader(Loader):
    """``numeric`` as SQLite gives it: an ``int`` when whole, else a ``float``."""

    def load(self, data: Any) -> int | float:
        text = bytes(data)
        try:
            return int(text)
        except ValueError:
            return float(text)


_DBAPI = ("IntegrityError", "DataError", "ProgrammingError", "NotSupportedError",
          "InternalError", "OperationalError", "InterfaceError", "DatabaseError")


def _raise(exc: psycopg.Error, where: str) -> NoReturn:
    """``exc`` as the ``sqlite3`` exception of the same DB-API class (an interface error, a
    closed connection, as ``OperationalError``: try again)."""
    name = next((c.__name__ for c in type(exc).__mro__ if c.__name__ in _DBAPI), "DatabaseError")
    cls: type[sqlite3.Error] = getattr(sqlite3, name)
    if cls is sqlite3.InterfaceError:
        cls = sqlite3.OperationalError
    raise cls(f"{where}: {str(exc).strip()}") from exc


class PgConnection:
    """The subset of ``sqlite3.Connection`` the store code uses (:class:`gateway.bridge.db.Db`),
    on PostgreSQL."""

    def __init__(self, url: str, *, readonly: bool = False, check_schema: bool = True) -> None:
        self.url = url
        self.where = describe(url)
        self.readonly = readonly
        self._lost_in_tx = False
        self._conn = self._connect()
        if check_schema:
            self._check_schema()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            _raise(exc, f"trace store {self.where}")
        conn.adapters.register_loader("numeric", _NumberLoader)
        if self.readonly:
            conn.execute("SET default_transaction_read_only = on")
        return conn

    def _check_schema(self) -> None:
        try:
            row = self._conn.execute(
                "SELECT version_num FROM alembic_version"
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
        except psycopg.Error as exc:
            self._conn.close()
            _raise(exc, f"trace store {self.where}")
        if row is None or row[0] != SCHEMA_REVISION:
            self._conn.close()
            have = "no saltgw schema" if row is None else f"schema revision {row[0]}"
            raise SchemaOutOfDate(
                f"trace store {self.where} has {have}; this saltgw needs revision "
                f"{SCHEMA_REVISION}: run saltgw store migrate --store URL (docs/scaling.md)"
            )

    # -- sqlite3.Connection -----------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        if self._conn.broken or self._conn.closed:
            return self._lost_in_tx  # the server rolled it back; the caller is to end it
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[Any]:
        conn = self._ready(sql)
        try:
            if sql == "BEGIN IMMEDIATE":
                conn.execute("BEGIN")
                return conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            if sql == "BEGIN":
                return conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            return conn.execute(translate(sql), parameters or None)
        except psycopg.Error as exc:
            self._note_loss()
            _raise(exc, f"trace store {self.where}")

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> psycopg.Cursor[Any]:
        conn = self._ready(sql)
        cur = conn.cursor()
        params = list(seq_of_parameters)
        try:
            if params:
                cur.executemany(translate(sql), params)
        except psycopg.Error as exc:
            self._note_loss()
            _raise(exc, f"trace store {self.where}")
        return cur

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        """As ``with sqlite3.Connection``: commit an open transaction, or roll it back when the
        block raised."""
        if self.in_transaction:
            self.execute("COMMIT" if kind is None else "ROLLBACK")

    # -- lost connections -------------------------------------------------------------------------
    def _note_loss(self) -> None:
        if self._conn.broken or self._conn.closed:
            if self._conn.info.transaction_status != TransactionStatus.IDLE:
                self._lost_in_tx = True
            log.warning("trace store %s: connection lost", self.where)

    def _ready(self, sql: str) -> psycopg.Connection[Any]:
        if not (self._conn.broken or self._conn.closed):
            return self._conn
        if self._lost_in_tx and sql != "ROLLBACK":
            raise sqlite3.OperationalError(
                f"trace store {self.where}: connection lost inside a transaction (rolled back)"
            )
        self._lost_in_tx = False
        log.info("trace store %s: connecting again", self.where)
        self._conn = self._connect()
        return self._conn
