"""Tell "the database is down or slow" apart from every other failure, without leaking.

The dashboard wraps its database work in :func:`translate_db_errors` (or calls
:func:`check_database` first) and shows one calm message for
:class:`~reportlib.errors.DatabaseUnavailableError`. The engine from
:func:`reportlib.db.make_engine` bounds how long that takes: a connect timeout, a
server-side statement timeout and a pre-ping that replaces dead pooled connections, so
the next call after the server comes back simply works.

Driver errors carry the SQL, its parameters (which can be personal data) and the server
address. None of that reaches the new exception: its message is fixed text, and the
original is dropped from the chain (``from None``) so tracebacks, logs and error
reports cannot print it. Only the error's class name and SQLSTATE are logged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import psycopg2
from sqlalchemy import Engine, literal, select
from sqlalchemy import exc as sa_exc

from reportlib.dialect import replayed_at, utcnow
from reportlib.errors import (
    DatabaseAccessError,
    DatabaseReadOnlyError,
    DatabaseUnavailableError,
)

logger = logging.getLogger(__name__)

UNREACHABLE_MESSAGE: Final = (
    "The database is not reachable right now (connection refused, lost or timed out)."
)
READ_ONLY_MESSAGE: Final = (
    "The database accepts only reads (a read replica, or read-only mode): writes go to the "
    "primary. Point DATABASE_URL at the primary."
)
#: read_only_sql_transaction: a write on a hot standby or in a read-only transaction.
_READ_ONLY_SQLSTATE: Final = "25006"
TIMEOUT_MESSAGE: Final = "The database did not answer in time (the query was cancelled)."
ACCESS_MESSAGE: Final = (
    "The database refused the configured user or password, or the configured database does "
    "not exist. This will not fix itself: check DATABASE_URL (or DASHBOARD_DATABASE_URL)."
)

# SQLSTATE 28xxx (invalid authorization) and 3D000 (invalid catalog name). libpq reports
# the same problems at connect time without a SQLSTATE; then only the message tells, so it
# is matched against these fixed phrases (and never shown or logged).
_ACCESS_SQLSTATE_CLASS: Final = "28"
_ACCESS_SQLSTATES: Final = frozenset({"3D000"})
_ACCESS_PHRASES: Final = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "no pg_hba.conf entry",
    "pg_hba.conf rejects connection",
    "does not exist",
    "permission denied for database",
)

# SQLSTATE classes and codes that mean "not available now, try again later" rather than
# "this request is wrong": connection exceptions, operator intervention (which includes
# 57014 query_canceled, i.e. statement_timeout), insufficient resources, lock timeouts.
_UNAVAILABLE_SQLSTATE_CLASSES: Final = frozenset({"08", "53", "57", "58"})
_UNAVAILABLE_SQLSTATES: Final = frozenset({"55P03"})
_QUERY_CANCELED: Final = "57014"

# SQLite primary result codes for a busy, locked, unreadable or unopenable file. Other
# SQLite OperationalErrors ("no such table", syntax) are bugs or a missing migration and
# must stay visible as what they are.
_SQLITE_UNAVAILABLE_CODES: Final = frozenset(
    {
        5,  # SQLITE_BUSY
        6,  # SQLITE_LOCKED
        10,  # SQLITE_IOERR
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
    }
)
#: SQLITE_INTERRUPT: a statement ran past its time limit (reportlib.dialect.prepare_engine).
_SQLITE_INTERRUPT: Final = 9


def _sqlstate(error: BaseException) -> str | None:
    for attribute in ("pgcode", "sqlstate"):  # psycopg2, psycopg 3
        code = getattr(error, attribute, None)
        if isinstance(code, str) and code:
            return code
    return None


def _driver_error(error: BaseException) -> BaseException:
    """The DBAPI exception SQLAlchemy wrapped, or ``error`` itself."""
    if isinstance(error, sa_exc.DBAPIError) and error.orig is not None:
        return error.orig
    return error


def _classify(error: BaseException) -> str | None:
    """The user-facing message for an unavailability error, or None for any other error."""
    if isinstance(error, sa_exc.TimeoutError):  # pool checkout waited too long
        return UNREACHABLE_MESSAGE
    driver_error = _driver_error(error)
    if isinstance(driver_error, psycopg2.Error) and _sqlstate(driver_error) == _READ_ONLY_SQLSTATE:
        return READ_ONLY_MESSAGE
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return UNREACHABLE_MESSAGE
    if isinstance(driver_error, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        code = _sqlstate(driver_error)
        if code is not None and (code[:2] == _ACCESS_SQLSTATE_CLASS or code in _ACCESS_SQLSTATES):
            return ACCESS_MESSAGE
        if code is None:  # raised by libpq itself: refused, timed out, connection lost
            text = str(driver_error).lower()
            if any(phrase in text for phrase in _ACCESS_PHRASES):
                return ACCESS_MESSAGE  # wrong password, unknown role or database
            return UNREACHABLE_MESSAGE
        if code == _QUERY_CANCELED:
            return TIMEOUT_MESSAGE
        if code[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or code in _UNAVAILABLE_SQLSTATES:
            return UNREACHABLE_MESSAGE
        return None
    if isinstance(driver_error, sqlite3.OperationalError):
        code_number = getattr(driver_error, "sqlite_errorcode", None)
        if isinstance(code_number, int) and code_number & 0xFF == _SQLITE_INTERRUPT:
            return TIMEOUT_MESSAGE
        if isinstance(code_number, int) and code_number & 0xFF in _SQLITE_UNAVAILABLE_CODES:
            return UNREACHABLE_MESSAGE
    return None


def is_database_access_error(error: BaseException) -> bool:
    """Whether ``error`` means wrong credentials or an unknown database (waiting won't help)."""
    return isinstance(error, DatabaseAccessError) or _classify(error) == ACCESS_MESSAGE


def is_read_only_database(error: BaseException) -> bool:
    """Whether ``error`` is a write refused because the database accepts only reads."""
    return isinstance(error, DatabaseReadOnlyError) or _classify(error) == READ_ONLY_MESSAGE


def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database is down, unreachable, overloaded or too slow.

    True for SQLAlchemy's pool timeout and invalidated connections, for driver errors
    without a SQLSTATE (refused, connect timeout, connection lost), for SQLSTATE classes
    08/53/57/58 (57014 is a statement timeout) and 55P03 (lock timeout), and for SQLite's
    busy/locked/I-O/cannot-open errors and a statement interrupted at its time limit; also
    for a write refused by a read-only database (SQLSTATE 25006, see
    :func:`is_read_only_database`), which waiting will not fix. False for everything else,
    including deadlocks and serialization failures (40xxx), which callers retry, and for
    programming errors.
    """
    return _classify(error) is not None


@contextlib.contextmanager
def translate_db_errors() -> Iterator[None]:
    """Turn unavailability errors raised inside the block into DatabaseUnavailableError.

    Other exceptions pass through untouched. The new exception's message is fixed text
    (no SQL, no parameters, no host or credentials) and the driver error is not chained.
    Usage::

        with translate_db_errors(), make_sessionmaker(engine)() as session:
            rows = some_query(session)
    """
    try:
        yield
    except DatabaseUnavailableError:
        raise
    except Exception as error:
        message = _classify(error)
        if message is None:
            raise
        driver_error = _driver_error(error)
        logger.warning(
            "database unavailable: %s (sqlstate %s)",
            type(driver_error).__name__,
            _sqlstate(driver_error) or "none",
        )
        if message == ACCESS_MESSAGE:
            raise DatabaseAccessError(message) from None
        if message == READ_ONLY_MESSAGE:
            raise DatabaseReadOnlyError(message) from None
        raise DatabaseUnavailableError(message) from None


@dataclass(frozen=True, slots=True)
class ReplicaLag:
    """A hot standby that has not replayed all it received: its data is as of
    ``as_of`` (the last replayed commit), ``behind`` before the database's clock."""

    as_of: dt.datetime
    behind: dt.timedelta


_CHECK: Final = select(literal(1), replayed_at(), utcnow())


def check_database(engine: Engine) -> ReplicaLag | None:
    """Raise DatabaseUnavailableError unless the database answers in time; return how far
    behind it is when it is a read replica that lags (None otherwise), in the same round
    trip.

    Bounded by the engine's settings (see :func:`reportlib.db.make_engine`): the connect
    timeout when the server is unreachable, the statement timeout when it is overloaded.
    A pooled connection that died while the server was away is detected by the pre-ping
    and replaced, so the first call after the server returns succeeds.
    """
    with translate_db_errors(), engine.connect() as connection:
        _, as_of, now = connection.execute(_CHECK).one()
    if as_of is None:
        return None
    return ReplicaLag(as_of=as_of, behind=max(now - as_of, dt.timedelta(0)))


__all__ = [
    "ACCESS_MESSAGE",
    "READ_ONLY_MESSAGE",
    "ReplicaLag",
    "TIMEOUT_MESSAGE",
    "UNREACHABLE_MESSAGE",
    "check_database",
    "is_database_access_error",
    "is_database_unavailable",
    "is_read_only_database",
    "translate_db_errors",
]
