"""Engines and sessions with sensible settings for each backend.

The caller owns the transaction: nothing here commits on anyone's behalf except
``session_scope``, which exists for scripts that want commit-on-success.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from reportlib.config import Settings, get_settings, normalize_database_url
from reportlib.dialect import engine_options, prepare_engine


def make_engine(
    url: URL | str | None = None,
    *,
    settings: Settings | None = None,
    statement_timeout_ms: int | None = None,
    **engine_kwargs: Any,
) -> Engine:
    """Build an engine for ``url`` (default: ``DATABASE_URL``).

    Both backends get a per-statement time limit (``statement_timeout_ms``, default
    ``DB_STATEMENT_TIMEOUT_MS``); see :func:`reportlib.dialect.engine_options` and
    :func:`reportlib.dialect.prepare_engine` for the rest of each backend's settings.
    """
    settings = settings or get_settings()
    if url is None:
        url = settings.sqlalchemy_url
    else:
        url = normalize_database_url(url if isinstance(url, str) else url.render_as_string(False))
    # No JSON codec here: the JSON column types encode and decode themselves, so a host's
    # engine built without this function stores and reads the same values.
    timeout = statement_timeout_ms or settings.db_statement_timeout_ms
    kwargs = engine_options(
        url, connect_timeout_s=settings.db_connect_timeout_s, statement_timeout_ms=timeout
    )
    kwargs.update(engine_kwargs)
    engine = create_engine(url, **kwargs)
    prepare_engine(engine, statement_timeout_ms=timeout)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit, so results outlive the transaction."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Commit on success, roll back on error. For scripts and the CLI."""
    with make_sessionmaker(engine)() as session, session.begin():
        yield session
