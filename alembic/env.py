"""Alembic environment for reportlib's own migrations.

reportlib keeps its revision in its own version table, so a host application that runs
Alembic on the same database keeps its ``alembic_version`` untouched.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from reportlib.db import make_engine
from reportlib.migrate import VERSION_TABLE, include_object
from reportlib.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection: Any = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or None
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("reportlib migrations run online only: set DATABASE_URL and run migrate")
run_migrations_online()
