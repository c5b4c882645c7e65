"""Engines and sessions with sensible settings for each backend.

The caller owns the transaction: nothing here commits on anyone's behalf except
``session_scope``, which exists for scripts that want commit-on-success.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from reportlib.config import Settings, get_settings, normalize_database_url


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    # Readers (the dashboard) keep working while the pipeline or the CLI writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_engine(
    url: URL | str | None = None,
    *,
    settings: Settings | None = None,
    statement_timeout_ms: int | None = None,
    **engine_kwargs: Any,
) -> Engine:
    """Build an engine for ``url`` (default: ``DATABASE_URL``).

    SQLite gets foreign keys on and a busy timeout; PostgreSQL gets pre-ping, a connect
    timeout, a statement timeout and UTC sessions, so a slow or absent server surfaces as
    an error within seconds instead of a hung page.
    """
    settings = settings or get_settings()
    if url is None:
        url = settings.sqlalchemy_url
    else:
        url = normalize_database_url(url if isinstance(url, str) else url.render_as_string(False))
    # No JSON codec here: the JSON column types encode and decode themselves, so a host's
    # engine built without this function stores and reads the same values.
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        timeout = statement_timeout_ms or settings.db_statement_timeout_ms
        kwargs.update(
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            pool_timeout=settings.db_connect_timeout_s,
            connect_args={
                "connect_timeout": settings.db_connect_timeout_s,
                "options": f"-c statement_timeout={int(timeout)} -c timezone=UTC",
                "application_name": "reportlib",
                # Notice a server that vanished mid-query without closing the connection.
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
                "tcp_user_timeout": 15_000,
            },
        )
    kwargs.update(engine_kwargs)
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit, so results outlive the transaction."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Commit on success, roll back on error. For scripts and the CLI."""
    with make_sessionmaker(engine)() as session, session.begin():
        yield session
