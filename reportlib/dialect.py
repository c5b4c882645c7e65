"""SQL that PostgreSQL and SQLite spell differently, as constructs that compile per dialect.

Callers build one statement; SQLAlchemy picks the spelling for the connection it runs on.
"""

from __future__ import annotations

import datetime as dt
import decimal
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BindParameter,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Dialect,
    Engine,
    Float,
    Integer,
    Select,
    Text,
    bindparam,
    case,
    cast,
    event,
    func,
    literal,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine

from reportlib import jsoncodec

# Column types and functions the model uses: each stores or spells itself per backend.


class utcnow(FunctionElement[dt.datetime]):
    """The current UTC time, evaluated by the database."""

    type = DateTime(timezone=True)
    inherit_cache = True


@compiles(utcnow, "postgresql")
def _utcnow_postgresql(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return "statement_timestamp()"


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    # Same text layout SQLAlchemy writes for SQLite datetimes, so stored values compare as text.
    return "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


class replayed_at(FunctionElement[dt.datetime]):
    """On a PostgreSQL hot standby that has received WAL it has not replayed yet: the commit
    time of the last transaction it replayed, which is how current its data is. NULL on a
    primary, on a standby that has replayed everything it received, and on SQLite."""

    type = DateTime(timezone=True)
    inherit_cache = True


@compiles(replayed_at, "postgresql")
def _replayed_at_postgresql(element: replayed_at, compiler: SQLCompiler, **kw: Any) -> str:
    # A standby whose WAL receiver is down has an unknown receive position: IS DISTINCT
    # FROM counts it as behind, so a replica cut off from its primary says so.
    return (
        "(CASE WHEN pg_is_in_recovery() AND pg_last_wal_receive_lsn() IS DISTINCT FROM "
        "pg_last_wal_replay_lsn() THEN pg_last_xact_replay_timestamp() END)"
    )


@compiles(replayed_at, "sqlite")
def _replayed_at_sqlite(element: replayed_at, compiler: SQLCompiler, **kw: Any) -> str:
    return "NULL"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware value")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw text from a server-side default on SQLite
            value = dt.datetime.fromisoformat(value)
        stamp: dt.datetime = value
        if stamp.tzinfo is None:
            return stamp.replace(tzinfo=dt.UTC)
        return stamp.astimezone(dt.UTC)


class FloatValue(TypeDecorator[float]):
    """A float that reads back as ``float`` (SQLite's RETURNING hands integral REALs back as int)."""

    impl = Float
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        return None if value is None else float(value)


class json_as_text(FunctionElement[Any]):
    """A JSON column as the text the database holds, so the driver cannot parse it first."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        # Keep the column's type, whose result processor parses the text.
        self.type = column.type


@compiles(json_as_text)
def _json_as_text_default(element: json_as_text, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps JSON documents as text already (bare numbers as REAL: see JSONDocument).
    (column,) = element.clauses
    return compiler.process(column, **kw)


@compiles(json_as_text, "postgresql")
def _json_as_text_postgresql(element: json_as_text, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return f"CAST({compiler.process(column, **kw)} AS TEXT)"


class json_from_text(FunctionElement[Any]):
    """A bound JSON text, typed as a document by the database rather than by the driver."""

    inherit_cache = True


@compiles(json_from_text)
def _json_from_text_default(element: json_from_text, compiler: SQLCompiler, **kw: Any) -> str:
    (param,) = element.clauses
    return compiler.process(param, **kw)


@compiles(json_from_text, "postgresql")
def _json_from_text_postgresql(element: json_from_text, compiler: SQLCompiler, **kw: Any) -> str:
    (param,) = element.clauses
    return f"CAST({compiler.process(param, **kw)} AS JSONB)"


class JSONDocument(TypeDecorator[Any]):
    """A JSON document (JSONB on PostgreSQL) that encodes and decodes itself.

    Values travel as JSON text written and parsed by :mod:`reportlib.jsoncodec`, never by
    the engine's ``json_serializer``/``json_deserializer`` or the driver's own JSON
    adapters, so a host's engine on any supported driver stores and reads the same
    values: exact decimals in, ``Decimal`` out. ``float_confidences`` reads each field
    entry's ``confidence`` back as ``float`` (for ``extracted_fields``).
    """

    impl = JSON(none_as_null=True)
    cache_ok = True

    def __init__(self, *, float_confidences: bool = False) -> None:
        super().__init__()
        self.float_confidences = float_confidences

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(JSON(none_as_null=True))

    # The processors below replace JSON's own rather than wrap them: JSON's would encode
    # the text a second time, with whatever codec the engine happens to carry.
    def bind_processor(self, dialect: Dialect) -> Callable[[Any], str | None]:
        def process(value: Any) -> str | None:
            return None if value is None else jsoncodec.dumps(value)

        return process

    def literal_processor(self, dialect: Dialect) -> Callable[[Any], str]:
        def process(value: Any) -> str:
            return "'" + jsoncodec.dumps(value).replace("'", "''") + "'"

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any]:
        float_confidences = self.float_confidences

        def process(value: Any) -> Any:
            if value is None or isinstance(value, (bool, int)):
                return value
            if isinstance(value, float):
                # SQLite stores a bare number in a JSON column as REAL (NUMERIC affinity);
                # its shortest repr gives back the digits that were written.
                return decimal.Decimal(repr(value))
            return jsoncodec.loads(value, float_confidences=float_confidences)

        return process

    def bind_expression(self, bindvalue: BindParameter[Any]) -> ColumnElement[Any]:
        return json_from_text(bindvalue)

    def column_expression(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return json_as_text(column)


#: Number of fixed-width confidence bins (width 0.05).
BINS = 20


class utc_date(FunctionElement[dt.date]):
    """The UTC calendar date of a timestamp column, as a ``DATE`` on both backends."""

    type = Date()
    name = "utc_date"
    inherit_cache = True


@compiles(utc_date, "postgresql")
def _utc_date_postgresql(element: utc_date, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return f"CAST(({compiler.process(column, **kw)} AT TIME ZONE 'UTC') AS DATE)"


@compiles(utc_date, "sqlite")
def _utc_date_sqlite(element: utc_date, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite stores UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' text (see UTCDateTime).
    (column,) = element.clauses
    return f"substr({compiler.process(column, **kw)}, 1, 10)"


class utc_hour(FunctionElement[int]):
    """The UTC hour (0-23) of a timestamp column."""

    type = Integer()
    name = "utc_hour"
    inherit_cache = True


@compiles(utc_hour, "postgresql")
def _utc_hour_postgresql(element: utc_hour, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return (
        f"CAST(EXTRACT(HOUR FROM ({compiler.process(column, **kw)} AT TIME ZONE 'UTC')) AS INTEGER)"
    )


@compiles(utc_hour, "sqlite")
def _utc_hour_sqlite(element: utc_hour, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return f"CAST(substr({compiler.process(column, **kw)}, 12, 2) AS INTEGER)"


class confidence_bin(FunctionElement[int]):
    """``min(floor(confidence * 20), 19)``: the fixed 0.05-wide bin of a confidence."""

    type = Integer()
    name = "confidence_bin"
    inherit_cache = True


@compiles(confidence_bin, "postgresql")
def _confidence_bin_postgresql(element: confidence_bin, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    # CAST(double AS integer) rounds on PostgreSQL, so floor first.
    return f"LEAST(CAST(FLOOR({compiler.process(column, **kw)} * {BINS}) AS INTEGER), {BINS - 1})"


@compiles(confidence_bin, "sqlite")
def _confidence_bin_sqlite(element: confidence_bin, compiler: SQLCompiler, **kw: Any) -> str:
    # CAST(real AS INTEGER) truncates, which is floor for the non-negative confidences.
    (column,) = element.clauses
    return f"MIN(CAST({compiler.process(column, **kw)} * {BINS} AS INTEGER), {BINS - 1})"


class confidence_centile(FunctionElement[int]):
    """The whole number ``c`` with ``c/100 <= confidence < (c+1)/100`` (100 for 1.0).

    ``floor(confidence * 100)`` alone is off by one for some doubles next to an edge
    (``0.29 * 100`` is ``28.999...``), so the result is corrected by comparing with the
    edges themselves: ``confidence < k/100`` then holds exactly for centiles below ``k``,
    the same comparison a threshold makes.
    """

    type = Integer()
    name = "confidence_centile"
    inherit_cache = True


def _centile_sql(value: str, floor: str) -> str:
    edge = "CAST({} AS DOUBLE PRECISION) / 100.0"
    return (
        f"({floor} - CASE WHEN {value} < {edge.format(floor)} THEN 1 ELSE 0 END"
        f" + CASE WHEN {value} >= {edge.format(floor + ' + 1')} THEN 1 ELSE 0 END)"
    )


@compiles(confidence_centile, "postgresql")
def _confidence_centile_postgresql(
    element: confidence_centile, compiler: SQLCompiler, **kw: Any
) -> str:
    (column,) = element.clauses
    value = compiler.process(column, **kw)
    return _centile_sql(value, f"CAST(FLOOR({value} * 100) AS INTEGER)")


@compiles(confidence_centile, "sqlite")
def _confidence_centile_sqlite(
    element: confidence_centile, compiler: SQLCompiler, **kw: Any
) -> str:
    (column,) = element.clauses
    value = compiler.process(column, **kw)
    return _centile_sql(value, f"CAST({value} * 100 AS INTEGER)").replace(
        "DOUBLE PRECISION", "REAL"
    )


class json_text(FunctionElement[str]):
    """A JSON column as the text the database holds (JSONB's canonical text on PostgreSQL),
    for grouping by a whole document."""

    type = Text()
    name = "json_text"
    inherit_cache = True


@compiles(json_text, "postgresql")
def _json_text_postgresql(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return f"CAST({compiler.process(column, **kw)} AS TEXT)"


@compiles(json_text, "sqlite")
def _json_text_sqlite(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return str(compiler.process(column, **kw))


class _object_members(FunctionElement[Any]):
    type = NullType()
    name = "json_object_members"
    inherit_cache = True


@compiles(_object_members, "postgresql")
def _object_members_postgresql(element: _object_members, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    document = compiler.process(column, **kw)
    # jsonb_each refuses anything but an object; any other document has no members.
    return (
        f"jsonb_each(CASE WHEN jsonb_typeof({document}) = 'object' "
        f"THEN {document} ELSE '{{}}'::jsonb END)"
    )


@compiles(_object_members, "sqlite")
def _object_members_sqlite(element: _object_members, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    document = compiler.process(column, **kw)
    return f"json_each(CASE WHEN json_type({document}) = 'object' THEN {document} ELSE '{{}}' END)"


def json_object_members(document: Any, *, name: str) -> TableValuedAlias:
    """The members of a JSON object column as a table named ``name``: ``key`` and
    ``value``, one row per member; no rows when the document is not an object. Joined
    to the document's table ``ON true``, it is read once per row of that table.

    The ``type`` column exists on SQLite only: read the members through
    :func:`json_member_is_object` and :func:`json_member_confidence`, not directly.
    """
    return _object_members(document).table_valued("key", "value", "type", name=name)


class _member_is_object(FunctionElement[bool]):
    type = Boolean()
    name = "json_member_is_object"
    inherit_cache = True


@compiles(_member_is_object, "postgresql")
def _member_is_object_postgresql(
    element: _member_is_object, compiler: SQLCompiler, **kw: Any
) -> str:
    value, _ = element.clauses
    return f"(jsonb_typeof({compiler.process(value, **kw)}) = 'object')"


@compiles(_member_is_object, "sqlite")
def _member_is_object_sqlite(element: _member_is_object, compiler: SQLCompiler, **kw: Any) -> str:
    # json_each hands a string member's value back as bare text, which json_type() would
    # refuse to parse: the member's own type column says what it is.
    _, kind = element.clauses
    return f"({compiler.process(kind, **kw)} = 'object')"


def json_member_is_object(members: TableValuedAlias) -> ColumnElement[bool]:
    """Whether a member of :func:`json_object_members` is itself a JSON object."""
    return _member_is_object(members.c.value, members.c.type)


class _member_confidence(FunctionElement[float]):
    type = Float()
    name = "json_member_confidence"
    inherit_cache = True


@compiles(_member_confidence, "postgresql")
def _member_confidence_postgresql(
    element: _member_confidence, compiler: SQLCompiler, **kw: Any
) -> str:
    (value,) = element.clauses
    return f"CAST(({compiler.process(value, **kw)} ->> 'confidence') AS DOUBLE PRECISION)"


@compiles(_member_confidence, "sqlite")
def _member_confidence_sqlite(element: _member_confidence, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = element.clauses
    return f"CAST(json_extract({compiler.process(value, **kw)}, '$.confidence') AS REAL)"


def json_member_confidence(members: TableValuedAlias) -> ColumnElement[float]:
    """The ``confidence`` of a member of :func:`json_object_members` (a field entry of
    ``extracted_fields``) as a float; NULL when it has none."""
    return _member_confidence(members.c.value)


class _array_texts(FunctionElement[Any]):
    type = NullType()
    name = "json_array_texts"
    inherit_cache = True


@compiles(_array_texts, "postgresql")
def _array_texts_postgresql(element: _array_texts, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    document = compiler.process(column, **kw)
    return (
        f"jsonb_array_elements_text(CASE WHEN jsonb_typeof({document}) = 'array' "
        f"THEN {document} ELSE '[]'::jsonb END)"
    )


@compiles(_array_texts, "sqlite")
def _array_texts_sqlite(element: _array_texts, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    document = compiler.process(column, **kw)
    return f"json_each(CASE WHEN json_type({document}) = 'array' THEN {document} ELSE '[]' END)"


def json_array_texts(document: Any, *, name: str) -> TableValuedAlias:
    """The elements of a JSON array column as a table named ``name`` with one column,
    ``value`` (text); no rows when the document is NULL or not an array."""
    return _array_texts(document).table_valued("value", name=name)


class json_array_length(FunctionElement[int]):
    """The number of elements of a JSON array column; 0 when it is NULL or not an array."""

    type = Integer()
    name = "json_array_length"
    inherit_cache = True


@compiles(json_array_length, "postgresql")
def _json_array_length_postgresql(
    element: json_array_length, compiler: SQLCompiler, **kw: Any
) -> str:
    (column,) = element.clauses
    document = compiler.process(column, **kw)
    # jsonb_array_length refuses anything but an array.
    return (
        f"jsonb_array_length(CASE WHEN jsonb_typeof({document}) = 'array' "
        f"THEN {document} ELSE '[]'::jsonb END)"
    )


@compiles(json_array_length, "sqlite")
def _json_array_length_sqlite(element: json_array_length, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return f"coalesce(json_array_length({compiler.process(column, **kw)}), 0)"


class seconds_between(FunctionElement[float]):
    """``later - earlier`` in seconds, as a float, evaluated by the database."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between, "postgresql")
def _seconds_between_postgresql(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return (
        f"CAST(EXTRACT(EPOCH FROM ({compiler.process(later, **kw)} - "
        f"{compiler.process(earlier, **kw)})) AS DOUBLE PRECISION)"
    )


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    # SQLite date functions keep milliseconds; rounding drops julianday()'s float noise.
    return (
        f"ROUND((julianday({compiler.process(later, **kw)}) - "
        f"julianday({compiler.process(earlier, **kw)})) * 86400.0, 3)"
    )


def as_date(value: Any) -> dt.date:
    """A DATE read back as ``date``: SQLite hands back the text of a computed date."""
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def is_postgresql(session: Session) -> bool:
    """Whether the session is bound to PostgreSQL (else SQLite)."""
    return dialect_name(session) == "postgresql"


def lock_for_refresh(session: Session, *, table: str, lock_timeout_ms: int) -> None:
    """Make writers that touched ``table`` finish first, and hold new ones until commit.

    On PostgreSQL: ``LOCK TABLE ... IN EXCLUSIVE MODE`` (readers go on; writers wait),
    bounded by a local lock timeout. SQLite has one writer at a time; the caller's first
    write takes its lock.
    """
    if is_postgresql(session):
        session.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
        session.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
    # Rebuilding a few busy days takes longer than an interactive statement may.
    allow_long_statements(session, timeout_ms=300_000)


def redacted_entries_in_database(
    session: Session, document: Any, *, kept_number_keys: tuple[str, ...]
) -> ColumnElement[Any] | None:
    """``document`` (a JSON object of field entries) rewritten inside the database so that
    each entry keeps only ``kept_number_keys`` whose values are numbers, and an entry that
    is not an object becomes JSON ``null``; a document that is not an object becomes
    ``{}``. The same result as :func:`reportlib.lifecycle.redact_extracted_fields`.

    On PostgreSQL this is one expression over JSONB, whose numbers keep every digit, so
    a batch of reports is redacted in one UPDATE. SQLite's JSON functions re-print a
    number with 15 significant digits, which could move a confidence by a rounding step;
    there it returns None and the caller redacts in Python.
    """
    if not is_postgresql(session):
        return None
    entries = _object_members(document).table_valued("key", "value", name="entry")
    value = entries.c.value
    empty = _jsonb("{}")
    kept: ColumnElement[Any] = empty
    for key in kept_number_keys:
        name = bindparam(None, key, type_=Text())
        member = value.op("->")(name)
        kept = kept.op("||")(
            case(
                (func.jsonb_typeof(member) == "number", func.jsonb_build_object(name, member)),
                else_=empty,
            )
        )
    entry = case(
        (func.jsonb_typeof(value) == "object", kept),
        else_=_jsonb("null"),
    )
    aggregated = (
        select(func.coalesce(func.jsonb_object_agg(entries.c.key, entry), empty))
        .select_from(entries)
        .scalar_subquery()
    )
    return type_coerce(aggregated, JSONB(none_as_null=True))


def _jsonb(literal_json: str) -> ColumnElement[Any]:
    """A constant JSONB value (PostgreSQL)."""
    return cast(literal(literal_json, Text()), JSONB(none_as_null=True))


_AnySelect = TypeVar("_AnySelect", bound=Select[*tuple[Any, ...]])


def lock_rows(
    session: Session, stmt: _AnySelect, *, of: Any, skip_locked: bool = False, read: bool = False
) -> _AnySelect:
    """``stmt`` locking the rows of ``of`` it reads until commit: ``FOR UPDATE`` (``FOR
    SHARE`` with ``read``, ``SKIP LOCKED`` rows another transaction holds with
    ``skip_locked``) on PostgreSQL. SQLite has one writer at a time, so the transaction
    that writes already excludes every other."""
    return lock_rows_for_dialect(
        dialect_name(session), stmt, of=of, skip_locked=skip_locked, read=read
    )


def lock_rows_for_dialect(
    dialect: str, stmt: _AnySelect, *, of: Any, skip_locked: bool = False, read: bool = False
) -> _AnySelect:
    """:func:`lock_rows` for a statement built once per dialect (named by ``dialect``)."""
    if dialect == "postgresql":
        return stmt.with_for_update(of=of, skip_locked=skip_locked, read=read)
    return stmt


def vacuum_analyze_command(engine: Engine) -> str:
    """The command that refreshes a table's statistics after a bulk rewrite, run outside
    a transaction: ``VACUUM (ANALYZE)`` on PostgreSQL, which also marks the pages
    all-visible for index-only reads; ``ANALYZE`` on SQLite."""
    return "VACUUM (ANALYZE)" if engine.dialect.name == "postgresql" else "ANALYZE"


def dialect_name(session: Session) -> str:
    """The name of the dialect reportlib's tables are bound to in ``session``."""
    # Ask for reportlib's own tables: a host session may bind them by mapper (binds=...)
    # and have no default bind at all.
    from reportlib.models import ProcessingReport  # the model imports this module

    return session.get_bind(ProcessingReport).dialect.name


def insert_for_dialect(name: str) -> Any:
    """The ``insert`` construct with ``on_conflict_do_update`` for dialect ``name``."""
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"unsupported database backend: {name}")


def insert_for(session: Session) -> Any:
    """:func:`insert_for_dialect` for the database ``session`` writes reportlib's rows to."""
    return insert_for_dialect(dialect_name(session))


def single_writer(engine: Engine) -> bool:
    """Whether the database takes one writer at a time (SQLite): a second writing thread
    there makes the other's transaction fail with "database is locked"."""
    return engine.dialect.name == "sqlite"


def engine_options(
    url: URL, *, connect_timeout_s: int, statement_timeout_ms: int
) -> dict[str, Any]:
    """``create_engine`` arguments for ``url``'s backend: on PostgreSQL pre-ping, a
    connect timeout, a statement timeout and UTC sessions, so a slow or absent server
    surfaces as an error within seconds instead of a hung page."""
    if url.get_backend_name() != "postgresql":
        return {}
    return {
        "pool_pre_ping": True,
        "pool_size": 5,
        "max_overflow": 10,
        "pool_timeout": connect_timeout_s,
        "connect_args": {
            "connect_timeout": connect_timeout_s,
            "options": f"-c statement_timeout={int(statement_timeout_ms)} -c timezone=UTC",
            "application_name": "reportlib",
            # Notice a server that vanished mid-query without closing the connection.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "tcp_user_timeout": 15_000,
        },
    }


#: SQLite virtual-machine steps between two checks of the statement's deadline.
SQLITE_PROGRESS_STEPS = 10_000
_DEADLINE = "reportlib_statement_deadline"
_TIME_LIMIT = "reportlib_statement_time_limit_s"


def prepare_engine(engine: Engine, *, statement_timeout_ms: int) -> None:
    """What a new SQLite connection needs: foreign keys, a busy timeout, WAL (readers go
    on while one process writes) and the same per-statement time limit PostgreSQL gets
    from ``statement_timeout``. SQLite has no such setting: a progress handler interrupts
    a statement that runs past its deadline (``sqlite3.OperationalError: interrupted``,
    which :func:`reportlib.health.translate_db_errors` reports as a timeout)."""
    if engine.dialect.name != "sqlite":
        return
    limit_s = statement_timeout_ms / 1000

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()
        info = record.info

        def past_deadline() -> int:
            deadline = info.get(_DEADLINE)
            return 1 if deadline is not None and time.monotonic() > deadline else 0

        dbapi_connection.set_progress_handler(past_deadline, SQLITE_PROGRESS_STEPS)

    def start_clock(conn: Any, *_args: Any) -> None:
        conn.info[_DEADLINE] = time.monotonic() + conn.info.get(_TIME_LIMIT, limit_s)

    def stop_clock(conn: Any, *_args: Any) -> None:
        # Not left running into COMMIT, which runs on the same connection.
        conn.info.pop(_DEADLINE, None)

    def stop_clock_on_error(context: Any) -> None:
        if context.connection is not None:
            context.connection.info.pop(_DEADLINE, None)

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "before_cursor_execute", start_clock)
    event.listen(engine, "after_cursor_execute", stop_clock)
    event.listen(engine, "handle_error", stop_clock_on_error)

    def end_transaction(conn: Any) -> None:
        # allow_long_statements lasts one transaction, as SET LOCAL does on PostgreSQL.
        conn.info.pop(_TIME_LIMIT, None)

    event.listen(engine, "commit", end_transaction)
    event.listen(engine, "rollback", end_transaction)


def allow_long_statements(session: Session, *, timeout_ms: int) -> None:
    """Let this transaction's statements run up to ``timeout_ms`` (rebuilds and refreshes
    take longer than an interactive read may)."""
    if is_postgresql(session):
        session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
    else:
        from reportlib.models import ProcessingReport  # the model imports this module

        session.connection(bind_arguments={"mapper": ProcessingReport}).info[_TIME_LIMIT] = (
            timeout_ms / 1000
        )


__all__ = [
    "replayed_at",
    "dialect_name",
    "insert_for",
    "insert_for_dialect",
    "allow_long_statements",
    "engine_options",
    "lock_rows",
    "prepare_engine",
    "single_writer",
    "BINS",
    "as_date",
    "confidence_bin",
    "confidence_centile",
    "is_postgresql",
    "json_array_length",
    "json_array_texts",
    "json_member_confidence",
    "json_member_is_object",
    "json_object_members",
    "json_text",
    "lock_for_refresh",
    "redacted_entries_in_database",
    "utc_date",
    "utc_hour",
]
