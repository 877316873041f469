"""alembic's environment for the trace store: the connection comes from
:func:`gateway.bridge.migrations.migrate` (``config.attributes["connection"]``), or from
``-x url=postgresql://…`` on alembic's own command line. Each run holds an advisory lock."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from gateway.bridge.migrations import MIGRATE_LOCK, sqlalchemy_url


def _run(connection: Any) -> None:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK})
        context.run_migrations()


def run_migrations_online() -> None:
    given = context.config.attributes.get("connection")
    if given is not None:
        _run(given)
        given.commit()
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("give the database: alembic -x url=postgresql://… upgrade head")
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    with engine.connect() as connection:
        _run(connection)
        connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("the trace store's migrations run online only")
run_migrations_online()
