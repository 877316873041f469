"""The trace store's database seam: SQLite (the embedded default) or PostgreSQL (one enterprise
store that several bridges write, docs/scaling.md).

The store code is written once, in SQL both engines run (``ON CONFLICT``, ``RETURNING``,
``"user"`` quoted), against the DB-API subset :class:`Db` names; a ``sqlite3.Connection`` is
one. :func:`open_db` gives a :class:`gateway.bridge.pg.PgConnection` for a ``postgresql://``
URL (psycopg 3, the ``postgres`` extra: imported only then), which keeps what little differs
in one place:

- ``?`` placeholders become ``%s`` (and a literal ``%`` becomes ``%%``);
- ``BEGIN IMMEDIATE`` (SQLite: take the write lock now) becomes ``BEGIN`` and
  ``pg_advisory_xact_lock``: the transactions that extend a hash chain, number documents or
  purge are serialised across every bridge writing the database, as SQLite serialises its
  writers (why: docs/scaling.md); a plain ``BEGIN`` (a consistent view to read) becomes
  ``BEGIN ISOLATION LEVEL REPEATABLE READ``;
- psycopg's errors are raised as the ``sqlite3`` classes of the same DB-API name
  (``OperationalError``: the database is unavailable, nothing committed, try again), so the
  code's ``except sqlite3.OperationalError`` holds for both;
- ``numeric`` results (``SUM`` of integers) come back as ``int`` (or ``float``), as SQLite's do.

The SQLite schema is created and widened in place (:func:`gateway.bridge.schema.connect`); the
PostgreSQL schema is versioned with alembic (gateway/bridge/migrations, ``saltgw store
migrate``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from pydantic import StringConstraints

__all__ = ["Cursor", "Db", "PostgresUrl", "columns", "describe", "is_url", "open_db"]

URL_SCHEMES = ("postgresql://", "postgres://")
#: a store setting that names a PostgreSQL database (``bridge.store``, ``console.store``)
PostgresUrl = Annotated[str, StringConstraints(pattern=r"^postgres(ql)?://")]


class Cursor(Protocol):
    """What the store code uses of a cursor."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


class Db(Protocol):
    """What the store code uses of a connection (autocommit; transactions are explicit
    ``BEGIN IMMEDIATE`` … ``COMMIT``)."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> Any: ...

    def close(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: Any) -> Any: ...


def is_url(store: object) -> bool:
    """Whether ``store`` (``bridge.store``, ``--store``) names a PostgreSQL database."""
    return isinstance(store, str) and store.startswith(URL_SCHEMES)


def describe(store: Path | str) -> str:
    """``store`` as it may be shown and logged: a URL without its password."""
    if not is_url(store):
        return str(store)
    parts = urlsplit(str(store))
    if parts.password is None:
        return str(store)
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def open_db(store: Path | str, *, create: bool = True, readonly: bool = False) -> Db:
    """A connection to the trace store ``store``: a SQLite file (created with its tables unless
    ``create=False``) or a ``postgresql://`` URL (its schema must be migrated: ``saltgw store
    migrate``)."""
    if is_url(store):
        from gateway.bridge.pg import PgConnection

        return PgConnection(str(store), readonly=readonly)
    from gateway.bridge.schema import connect

    return connect(Path(store), create=create)


def columns(db: Db, table: str) -> set[str]:
    """The column names of ``table`` (empty when there is no such table)."""
    if isinstance(db, sqlite3.Connection):
        return {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}
    rows = db.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    )
    return {str(r[0]) for r in rows}
