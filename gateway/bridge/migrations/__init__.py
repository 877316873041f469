"""The PostgreSQL trace store's schema, versioned with alembic (the ``postgres`` extra).

``saltgw store migrate --store URL`` (or :func:`migrate`) brings a database to the revision
this saltgw reads and writes (:data:`gateway.bridge.pg.SCHEMA_REVISION`); a bridge or ``saltgw
trace`` refuses a database at another revision. Migrations run under an advisory lock, so two
operators (or two hosts' deployment scripts) migrating at once do it one after the other.
A new revision: ``alembic -x url=… revision -m "…"`` with ``script_location`` this folder, then
raise ``SCHEMA_REVISION``. SQLite stores keep their in-place schema handling
(gateway/bridge/schema.py).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MIGRATE_LOCK", "current", "migrate", "sqlalchemy_url"]

HERE = Path(__file__).parent
# pg_advisory_xact_lock key held while migrating ("saltgwMG" as an int64)
MIGRATE_LOCK = int.from_bytes(b"saltgwMG", "big") - 2**63


def sqlalchemy_url(url: str) -> str:
    """A ``postgresql://`` URL as SQLAlchemy names psycopg 3: ``postgresql+psycopg://``."""
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def current(url: str) -> str | None:
    """The database's revision (None: never migrated)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return None if row is None else str(row[0])


def migrate(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database at ``url`` to ``revision``; returns (revision before, after)."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    before = current(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()
    return before, current(url)
