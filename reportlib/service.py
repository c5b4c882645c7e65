"""Write and read processing reports.

Writers validate before anything is kept, write with one atomic upsert per report and
flush; they never commit. The caller owns the transaction. A single report is validated
before any SQL is sent; a batch on PostgreSQL is validated while earlier pieces of it are
written, inside a savepoint that an invalid report rolls back.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import decimal
import functools
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reportlib import jsoncodec
from reportlib.config import get_settings
from reportlib.dialect import dialect_name, insert_for, insert_for_dialect, utcnow
from reportlib.errors import ReportTooLargeError, ReportValidationError, UnknownEmailError
from reportlib.models import ROUTES, IncomingEmail, ProcessingReport
from reportlib.sampling import AUDIT_REASON, AuditRates

INT32_MAX = 2_147_483_647
REVIEW_REASON_MAX = 100
INTENT_MAX = 50
FIELD_NAME_MAX = 100
# Longer numbers are refused: PostgreSQL's numeric and Python's int-to-text conversion both
# have limits, and no amount or reference needs more.
MAX_NUMBER_DIGITS = 1000
_INT_LIMIT = 10**MAX_NUMBER_DIGITS


@dataclass(frozen=True, slots=True)
class ReportInput:
    """The arguments of :func:`create_processing_report`, for batch writes."""

    email_id: int
    extracted_data: Mapping[str, Any]
    agent_checkpoints: Mapping[str, Any] | None
    overall_confidence: float
    confidence_route: str
    needs_review: bool
    review_reason: str | None = None
    processing_time_ms: int | None = None


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return len(value) == 0
    return False


def _check_confidence(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
        raise ReportValidationError(field, "must be a number between 0 and 1")
    try:
        as_float = float(value)
    except (OverflowError, ValueError):  # an int beyond float range, Decimal("sNaN")
        raise ReportValidationError(field, "must be a finite number between 0 and 1") from None
    if not math.isfinite(as_float):
        raise ReportValidationError(field, "must be a finite number between 0 and 1")
    if not 0.0 <= as_float <= 1.0:
        raise ReportValidationError(field, "must be between 0 and 1")
    return as_float


def _check_count(value: Any, field: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportValidationError(field, "must be a whole number")
    if value < 0:
        raise ReportValidationError(field, "must not be negative")
    if value > INT32_MAX:
        raise ReportValidationError(field, f"must be at most {INT32_MAX}")
    return value


def _check_text(value: Any, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReportValidationError(field, "must be text")
    if len(value) > max_length:
        raise ReportValidationError(field, f"must be at most {max_length} characters")
    check_json_text(value, field)
    return value


def check_json_text(value: str, field: str) -> int:
    """Refuse what PostgreSQL text and JSONB refuse (NUL characters, unpaired surrogates);
    return the text's size in UTF-8 bytes."""
    if "\x00" in value:
        raise ReportValidationError(field, "contains a NUL character")
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ReportValidationError(field, "is not valid Unicode text") from None


@dataclass(frozen=True, slots=True)
class _Limits:
    value_bytes: int
    list_items: int
    report_bytes: int


def _limits() -> _Limits:
    settings = get_settings()
    return _Limits(settings.max_value_bytes, settings.max_list_items, settings.max_report_bytes)


def check_json_value(
    value: Any, field: str, depth: int = 0, *, limits: _Limits | None = None
) -> Any:
    """Return ``value`` as it will be stored, or raise naming ``field``.

    Bounded by the settings: a string longer than ``MAX_VALUE_BYTES``, a list or object
    with more than ``MAX_LIST_ITEMS`` entries, or a whole value whose JSON text exceeds
    ``MAX_VALUE_BYTES`` raises :class:`ReportTooLargeError` (checked before the value is
    walked, so a huge input costs little).
    """
    return _check_sized(value, field, depth, limits or _limits())[0]


def _check_sized(value: Any, field: str, depth: int, limits: _Limits) -> tuple[Any, int]:
    """:func:`check_json_value` that also returns the size of the value's JSON text in
    bytes (UTF-8, separators included; escapes aside), summed while walking it rather than
    by encoding it once more."""
    if type(value) is str and depth <= 32:  # the common case first: plain text
        if len(value) > limits.value_bytes:
            raise ReportTooLargeError(field, f"is longer than {limits.value_bytes} bytes")
        size = check_json_text(value, field) + 2
        if depth == 0 and size > limits.value_bytes:
            raise ReportTooLargeError(field, f"is larger than {limits.value_bytes} bytes")
        return value, size
    if type(value) not in _SCALARS:  # exact numbers, booleans and None have no length
        if isinstance(value, str) and len(value) > limits.value_bytes:
            raise ReportTooLargeError(field, f"is longer than {limits.value_bytes} bytes")
        if isinstance(value, (list, tuple, Mapping)) and len(value) > limits.list_items:
            raise ReportTooLargeError(field, f"has more than {limits.list_items} items")
    checked, size = _check_json_item(value, field, depth, limits)
    if depth == 0 and size > limits.value_bytes:
        raise ReportTooLargeError(field, f"is larger than {limits.value_bytes} bytes")
    return checked, size


_SCALARS = frozenset({int, float, decimal.Decimal, bool, type(None)})


def _check_json_item(value: Any, field: str, depth: int, limits: _Limits) -> tuple[Any, int]:
    if depth > 32:
        raise ReportValidationError(field, "is nested too deeply")
    # The common exact types first; the checks below handle them the same way.
    kind = type(value)
    if kind is decimal.Decimal:
        return value, _decimal_size(value, field)
    if kind is list:
        return _checked_items(value, field, depth, limits)
    if value is None or isinstance(value, bool):
        return value, 5
    if isinstance(value, str):
        return value, check_json_text(value, field) + 2
    if isinstance(value, int):
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise ReportValidationError(
                field, f"has a number of more than {MAX_NUMBER_DIGITS} digits"
            )
        return value, 20 if -(10**19) < value < 10**19 else len(str(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ReportValidationError(field, "must be a finite number")
        return decimal.Decimal(repr(value)), 24
    if isinstance(value, decimal.Decimal):
        return value, _decimal_size(value, field)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        size = 2
        for key, item in value.items():
            if not isinstance(key, str):
                raise ReportValidationError(field, "has a key that is not text")
            out[key], item_size = _check_sized(item, field, depth + 1, limits)
            size += check_json_text(key, field) + 4 + item_size
        return out, size
    if isinstance(value, (list, tuple)):
        return _checked_items(value, field, depth, limits)
    raise ReportValidationError(field, f"cannot be stored as JSON ({type(value).__name__})")


def _decimal_size(value: decimal.Decimal, field: str) -> int:
    if not value.is_finite():
        raise ReportValidationError(field, "must be a finite number")
    exponent = int(value.as_tuple().exponent)
    digits = max(value.adjusted() + 1, 0) + max(-exponent, 0)
    if digits > MAX_NUMBER_DIGITS:
        raise ReportValidationError(field, f"has a number of more than {MAX_NUMBER_DIGITS} digits")
    return digits + 2


def _checked_items(
    value: Sequence[Any], field: str, depth: int, limits: _Limits
) -> tuple[list[Any], int]:
    items = []
    size = 2
    for item in value:
        checked, item_size = _check_sized(item, field, depth + 1, limits)
        items.append(checked)
        size += item_size + 1
    return items, size


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if type(value) is dict:
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ReportValidationError(field, "must be a mapping")
    return value


@dataclass(frozen=True, slots=True)
class _Rules:
    """What validating a report depends on besides the report: read once per batch."""

    limits: _Limits
    key_fields: tuple[str, ...]
    #: The JSON size of each key field's name, checked once.
    key_name_bytes: dict[str, int]
    #: Keys of extracted_data that are not extra fields.
    known_keys: frozenset[str]
    #: Audit sampling rates (AUDIT_SAMPLE_RATE, AUDIT_SAMPLE_OVERRIDES).
    audit: AuditRates


def _rules(key_fields: Sequence[str] | None, audit_rates: AuditRates | None = None) -> _Rules:
    settings = get_settings()
    names = key_fields if key_fields is not None else settings.key_fields
    for name in names:
        _check_field_name(name, "key_fields")
    # A key field named twice is still one field, listed missing at most once.
    name_bytes = {name: check_json_text(name, "key_fields") for name in names}
    limits = _Limits(settings.max_value_bytes, settings.max_list_items, settings.max_report_bytes)
    return _Rules(
        limits,
        tuple(name_bytes),
        name_bytes,
        frozenset((*name_bytes, "extraction_metadata")),
        audit_rates if audit_rates is not None else AuditRates.from_settings(settings),
    )


def _check_field_name(name: Any, field: str) -> None:
    if not isinstance(name, str) or not name or len(name) > FIELD_NAME_MAX:
        raise ReportValidationError(
            field, f"field names must be text of 1 to {FIELD_NAME_MAX} characters"
        )


def _plain_text_size(value: str, limit: int) -> int:
    """The size of a top-level text value as JSON, or -1 when it needs the full check
    (:func:`_check_sized`, which names the problem)."""
    if len(value) > limit or "\x00" in value:
        return -1
    if value.isascii():
        size = len(value) + 2
    else:
        try:
            size = len(value.encode("utf-8")) + 2
        except UnicodeEncodeError:
            return -1
    return size if size <= limit else -1


def build_report_values(
    *,
    email_id: Any,
    extracted_data: Any,
    agent_checkpoints: Any,
    overall_confidence: Any,
    confidence_route: Any,
    needs_review: Any,
    review_reason: Any = None,
    processing_time_ms: Any = None,
    key_fields: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Validate pipeline output and return the column values of one report.

    Raises :class:`ReportValidationError` naming the first bad argument. Pure: no SQL.
    """
    row = _report_row(
        email_id,
        extracted_data,
        agent_checkpoints,
        overall_confidence,
        confidence_route,
        needs_review,
        review_reason,
        processing_time_ms,
        _rules(key_fields),
    )
    return _values(row)


def _values(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row of :func:`_report_row` as column values, ``extracted_fields`` as stored."""
    values = dict(zip(_COLUMNS, row, strict=True))
    values["extracted_fields"] = {
        name: {"value": value, "confidence": confidence, "source": source}
        for name, value, confidence, source in row[1]
    }
    return values


def _report_row(
    email_id: Any,
    extracted_data: Any,
    agent_checkpoints: Any,
    overall_confidence: Any,
    confidence_route: Any,
    needs_review: Any,
    review_reason: Any,
    processing_time_ms: Any,
    rules: _Rules,
) -> tuple[Any, ...]:
    """:func:`build_report_values` as a tuple in :data:`_COLUMNS` order, with the
    extracted fields as ``(name, value, confidence, source)`` (see :func:`_values`).

    Batches validate every report here, so the common types take a short path first;
    anything else goes through the same checks as before, which name the problem.
    """
    _check_email_id(email_id)
    data = _mapping(extracted_data, "extracted_data")
    checkpoints = _mapping(agent_checkpoints, "agent_checkpoints")
    intent_checkpoint = _mapping(checkpoints.get("agent_1_intent"), "agent_1_intent")
    extraction = _mapping(checkpoints.get("agent_2_extraction"), "agent_2_extraction")
    field_confidence = _mapping(
        extraction.get("field_confidence"), "agent_2_extraction.field_confidence"
    )
    metadata = _mapping(data.get("extraction_metadata"), "extraction_metadata")
    limits = rules.limits
    if len(data) > limits.list_items:
        raise ReportTooLargeError("extracted_data", f"has more than {limits.list_items} fields")

    if type(overall_confidence) is float and 0.0 <= overall_confidence <= 1.0:
        overall = overall_confidence
    else:
        overall = _check_confidence(overall_confidence, "overall_confidence")
    if confidence_route not in ROUTES:
        raise ReportValidationError("confidence_route", "must be one of high, medium, low")
    if not isinstance(needs_review, bool):
        raise ReportValidationError("needs_review", "must be true or false")
    reason = _check_text(review_reason, "review_reason", REVIEW_REASON_MAX)
    if processing_time_ms is None or (
        type(processing_time_ms) is int and 0 <= processing_time_ms <= INT32_MAX
    ):
        time_ms = processing_time_ms
    else:
        time_ms = _check_count(processing_time_ms, "processing_time_ms", optional=True)
    intent = intent_checkpoint.get("intent")
    if intent is not None and not (
        type(intent) is str
        and len(intent) <= INTENT_MAX
        and intent.isascii()
        and "\x00" not in intent
    ):
        intent = _check_text(intent, "agent_1_intent.intent", INTENT_MAX)
    sources = extraction.get("sources_processed", 1)
    if type(sources) is not int or not 0 <= sources <= INT32_MAX:
        sources = _check_count(sources, "agent_2_extraction.sources_processed")
    tokens = extraction.get("total_tokens_used", 0)
    if type(tokens) is not int or not 0 <= tokens <= INT32_MAX:
        tokens = _check_count(tokens, "agent_2_extraction.total_tokens_used")

    extracted_fields: list[tuple[str, Any, float, str]] = []
    missing: list[str] = []
    report_bytes = 2
    value_limit = limits.value_bytes
    key_fields, key_name_bytes = rules.key_fields, rules.key_name_bytes
    names: Sequence[Any] = key_fields
    if data.keys() - rules.known_keys:
        names = [*key_fields, *(k for k in data if k not in rules.known_keys)]
    for name in names:
        name_bytes = key_name_bytes.get(name, -1)
        if name_bytes < 0:
            _check_field_name(name, "extracted_data")
            name_bytes = check_json_text(name, "extracted_data")
        value = data.get(name)
        if value is None or (not value.strip() if type(value) is str else is_empty(value)):
            if name in key_name_bytes:
                missing.append(name)
            continue
        field_meta = metadata.get(name)
        if type(field_meta) is not dict:
            field_meta = _mapping(field_meta, f"extraction_metadata.{name}")
        confidence = field_confidence.get(name, _ABSENT)
        given_in = 1
        if confidence is _ABSENT:
            confidence, given_in = field_meta.get("confidence", _ABSENT), 2
            if confidence is _ABSENT:
                confidence, given_in = 0.5, 0
        source = field_meta.get("source", "unknown")
        if not isinstance(source, str):
            raise ReportValidationError(f"extraction_metadata.{name}.source", "must be text")
        value_bytes = _plain_text_size(value, value_limit) if type(value) is str else -1
        if value_bytes < 0:
            value, value_bytes = _check_sized(value, name, 0, limits)
        source_bytes = _plain_text_size(source, value_limit) if type(source) is str else -1
        if source_bytes < 0:
            source, source_bytes = _check_sized(
                source, f"extraction_metadata.{name}.source", 0, limits
            )
        if type(confidence) is not float or not 0.0 <= confidence <= 1.0:
            confidence = _check_confidence(confidence, _confidence_label(name, given_in))
        extracted_fields.append((name, value, confidence, source))
        # {"name":{"value":…,"confidence":0.123…,"source":…}},
        report_bytes += name_bytes + value_bytes + source_bytes + 64
    if report_bytes > limits.report_bytes:
        raise ReportTooLargeError(
            "extracted_data", f"is larger than {limits.report_bytes} bytes in total"
        )
    audit_rate = None
    if not needs_review and rules.audit.enabled:
        audit_rate = rules.audit.sample_rate(email_id, confidence_route, intent)
        if audit_rate is not None:
            needs_review, reason = True, AUDIT_REASON
    return (
        email_id,
        extracted_fields,
        missing,
        overall,
        confidence_route,
        needs_review,
        reason,
        intent,
        sources,
        tokens,
        time_ms,
        audit_rate,
    )


_ABSENT: Any = object()


def _check_email_id(value: Any) -> int:
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ReportValidationError("email_id", "must be a whole number")
    if not 1 <= value <= INT32_MAX:
        raise ReportValidationError("email_id", f"must be between 1 and {INT32_MAX}")
    return value


def _confidence_label(name: str, given_in: int) -> str:
    """Where a field's confidence came from, for the error that names it."""
    if given_in == 1:
        return f"agent_2_extraction.field_confidence.{name}"
    if given_in == 2:
        return f"extraction_metadata.{name}.confidence"
    return name


_UPDATED_ON_CONFLICT = (
    "extracted_fields",
    "missing_fields",
    "overall_confidence",
    "confidence_route",
    "needs_review",
    "review_reason",
    "intent",
    "sources_processed",
    "total_tokens_used",
    "processing_time_ms",
    "audit_rate",
)


_COLUMNS = ("email_id", *_UPDATED_ON_CONFLICT)


def _on_conflict(stmt: Any) -> Any:
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[ProcessingReport.__table__.c.email_id],
        set_={**{name: excluded[name] for name in _UPDATED_ON_CONFLICT}, "created_at": utcnow()},
    )


# Built once per dialect with bindparam() placeholders: building the construct anew for
# every report cost more Python time than the database spent on the row, and a prebuilt
# statement also keeps its cache key.
@functools.cache
def _single_upsert(dialect: str) -> Any:
    # INSERT ... SELECT ... WHERE EXISTS: an unknown email inserts nothing instead of
    # failing the caller's transaction with a foreign-key error.
    table = ProcessingReport.__table__
    source: Select[Any] = select(
        *(bindparam(name, type_=table.c[name].type).label(name) for name in _COLUMNS)
    ).where(exists().where(IncomingEmail.id == bindparam("email_id")))
    stmt = insert_for_dialect(dialect)(table).from_select(list(_COLUMNS), source)
    # A Core INSERT read back as ORM objects: insert(ProcessingReport) with a parameter
    # dict would put the ORM into its bulk-insert mode instead.
    return select(ProcessingReport).from_statement(_on_conflict(stmt).returning(*table.c))


@functools.cache
def _batch_upsert(dialect: str) -> Any:
    # RETURNING lets SQLAlchemy page an executemany into multi-row VALUES statements
    # ("insertmanyvalues"); without it an upsert goes one round trip per row.
    table = ProcessingReport.__table__
    return _on_conflict(insert_for_dialect(dialect)(table)).returning(table.c.id)


def create_processing_report(
    db: Session,
    email_id: int,
    extracted_data: Mapping[str, Any],
    agent_checkpoints: Mapping[str, Any],
    overall_confidence: float,
    confidence_route: str,
    needs_review: bool,
    review_reason: str | None = None,
    processing_time_ms: int | None = None,
    *,
    key_fields: Sequence[str] | None = None,
) -> ProcessingReport:
    """Store the report for ``email_id``, replacing any earlier one in place.

    One atomic ``INSERT ... ON CONFLICT`` per call, so concurrent writers of the same email
    never see an IntegrityError or leave duplicates. Flushes; never commits. A re-processed
    email keeps its report id and review history, and ``created_at`` moves to now.

    Raises :class:`ReportValidationError` (a ``ValueError``) naming the bad argument before
    any SQL is sent, and :class:`UnknownEmailError` when no ``incoming_emails`` row exists.
    """
    values = build_report_values(
        email_id=email_id,
        extracted_data=extracted_data,
        agent_checkpoints=agent_checkpoints,
        overall_confidence=overall_confidence,
        confidence_route=confidence_route,
        needs_review=needs_review,
        review_reason=review_reason,
        processing_time_ms=processing_time_ms,
        key_fields=key_fields,
    )
    db.flush()
    stmt = _single_upsert(dialect_name(db))
    report: ProcessingReport | None = db.scalars(
        stmt, values, execution_options={"populate_existing": True}
    ).one_or_none()
    if report is None:
        raise UnknownEmailError()
    return report


def create_processing_reports(
    db: Session,
    reports: Iterable[ReportInput],
    *,
    key_fields: Sequence[str] | None = None,
    chunk_size: int = 10_000,
    audit_rates: AuditRates | None = None,
) -> int:
    """Store many reports at once (backfills), with the same validation and upsert rules.

    Every input is validated before the batch is kept: an invalid one raises
    :class:`ReportValidationError` whose field is prefixed with its position
    (``reports[3].overall_confidence``), and so does an email without an
    ``incoming_emails`` row (:class:`UnknownEmailError`, ``reports[3].email_id``); then
    nothing of the batch is written. The last report given for an email wins. Rows are
    written in ``email_id`` order, at most ``chunk_size`` per statement, so concurrent
    batches over overlapping emails cannot deadlock. Returns the number of reports
    written. Flushes; never commits.

    On PostgreSQL (psycopg2, psycopg 3) the reports are validated in ``email_id`` order,
    a piece at a time, while the database writes the piece before (COPY into a temporary
    stage, then one upsert), inside a savepoint that an invalid report rolls back.

    ``audit_rates`` replaces the audit sampling rates of the settings for this batch (the
    demo seeds its own audit samples this way); see :mod:`reportlib.sampling`.
    """
    rules = _rules(key_fields, audit_rates)
    items = list(reports)
    latest: dict[int, int] = {}  # email_id -> position of its last report
    for position, item in enumerate(items):
        try:
            latest[_check_email_id(item.email_id)] = position
        except ReportValidationError as exc:
            raise _at(position, exc) from None
    # Reports replaced by a later one for the same email are not written, but checked.
    written = set(latest.values())
    for position, item in enumerate(items):
        if position not in written:
            _checked(item, position, rules)
    order = [latest[email_id] for email_id in sorted(latest)]
    connection = db.connection(bind_arguments={"mapper": ProcessingReport})
    copy = _copy_writer(connection.connection.driver_connection)
    if copy is not None and order:
        db.flush()
        try:
            _copy_upsert(connection, copy, items, order, rules, min(chunk_size, _STAGE_PIECE))
        except IntegrityError as exc:
            # The savepoint is rolled back; the foreign key found an email without a row.
            if _constraint_name(exc) != _EMAIL_FOREIGN_KEY:
                raise
            unknown = _first_unknown_email(db, latest)
            if unknown is None:  # its row was written meanwhile: the error stands
                raise
            raise UnknownEmailError(f"reports[{unknown}].email_id") from None
        return len(order)
    rows = [_checked(items[position], position, rules) for position in order]
    if not rows:
        return 0
    unknown = _first_unknown_email(db, latest)
    if unknown is not None:
        raise UnknownEmailError(f"reports[{unknown}].email_id")
    db.flush()
    stmt = _batch_upsert(dialect_name(db))
    for start in range(0, len(rows), chunk_size):
        chunk = rows[start : start + chunk_size]
        db.execute(stmt, [_values(row) for row in chunk]).all()
    return len(rows)


def _first_unknown_email(db: Session, latest: Mapping[int, int]) -> int | None:
    """The first position (of ``latest``: email_id -> position) whose email has no
    ``incoming_emails`` row, or None."""
    known = set(db.scalars(select(IncomingEmail.id).where(IncomingEmail.id.in_(list(latest)))))
    unknown = [position for email_id, position in latest.items() if email_id not in known]
    return min(unknown) if unknown else None


def _at(position: int, exc: ReportValidationError) -> ReportValidationError:
    """The same error, its field prefixed with the report's position in the batch."""
    return type(exc)(f"reports[{position}].{exc.field}", exc.problem)


def _checked(item: ReportInput, position: int, rules: _Rules) -> tuple[Any, ...]:
    try:
        return _report_row(
            item.email_id,
            item.extracted_data,
            item.agent_checkpoints,
            item.overall_confidence,
            item.confidence_route,
            item.needs_review,
            item.review_reason,
            item.processing_time_ms,
            rules,
        )
    except ReportValidationError as exc:
        raise _at(position, exc) from None


# -- COPY: PostgreSQL batches through a staging table -------------------------------------

#: Reports per piece on PostgreSQL: the database writes one piece while the next is
#: validated. A piece's statements cost about 2 ms besides its rows, so pieces are large;
#: the first is a quarter of that, so the database starts early.
_STAGE_PIECE = 2_000
_STAGE = "reportlib_batch_stage"
_SAVEPOINT = "reportlib_batch"
# Checked by the database for every row anyway: a violation names an unknown email.
_EMAIL_FOREIGN_KEY = "fk_processing_reports_email_id_incoming_emails"
# ON COMMIT DROP: nothing of the stage outlives the caller's transaction.
_CREATE_STAGE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} ("
    "email_id integer NOT NULL, extracted_fields jsonb NOT NULL, missing_fields jsonb, "
    "overall_confidence double precision NOT NULL, confidence_route varchar(20) NOT NULL, "
    "needs_review boolean NOT NULL, review_reason varchar(100), intent varchar(50), "
    "sources_processed integer NOT NULL, total_tokens_used integer NOT NULL, "
    "processing_time_ms integer, audit_rate double precision) ON COMMIT DROP"
)
_COPY_STAGE = f"COPY {_STAGE} ({', '.join(_COLUMNS)}) FROM STDIN"
_UPSERT_FROM_STAGE = (
    f"INSERT INTO processing_reports ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(_COLUMNS)} FROM {_STAGE} ORDER BY email_id "
    "ON CONFLICT (email_id) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in _UPDATED_ON_CONFLICT)
    + ", created_at = statement_timestamp()"
)
# COPY's text format: backslash escapes for the characters that delimit fields and rows.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_LINE = "%d\t%s\t%s\t%r\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n"


def _copy_text(value: str | None) -> str:
    return "\\N" if value is None else value.translate(_COPY_ESCAPES)


def _copy_json(text: str) -> str:
    # JSON text escapes every control character itself: only its backslashes need COPY's.
    return text.replace("\\", "\\\\") if "\\" in text else text


def _fields_json(fields: Sequence[tuple[str, Any, float, str]]) -> str:
    """The extracted fields of :func:`_report_row` as :func:`jsoncodec.dumps` writes
    ``extracted_fields`` (a float confidence, a text source)."""
    quote, dump = jsoncodec.quote, jsoncodec.dumps_plain
    return (
        "{"
        + ",".join(
            [
                f'{quote(name)}:{{"value":{dump(value)},'
                f'"confidence":{confidence!r},"source":{quote(source)}}}'
                for name, value, confidence, source in fields
            ]
        )
        + "}"
    )


def _copy_line(
    email_id: int,
    fields: Sequence[tuple[str, Any, float, str]],
    missing: list[str],
    overall: float,
    route: str,
    flagged: bool,
    reason: str | None,
    intent: str | None,
    sources: int,
    tokens: int,
    time_ms: int | None,
    audit_rate: float | None,
) -> str:
    """A validated row (:func:`_report_row`, in its order) as a line of COPY text."""
    return _COPY_LINE % (
        email_id,
        _copy_json(_fields_json(fields)),
        _copy_json(jsoncodec.dumps_plain(missing)) if missing else "[]",
        overall,
        _copy_text(route),
        "t" if flagged else "f",
        _copy_text(reason),
        _copy_text(intent),
        sources,
        tokens,
        "\\N" if time_ms is None else f"{time_ms:d}",
        "\\N" if audit_rate is None else repr(audit_rate),
    )


CopyWriter = Callable[[Any, str, str], None]


def _copy_psycopg2(cursor: Any, sql: str, data: str) -> None:
    # One read of the whole piece: each read takes the GIL back from the validating thread.
    cursor.copy_expert(sql, io.StringIO(data), size=max(len(data), 8192))


def _copy_psycopg(cursor: Any, sql: str, data: str) -> None:
    with cursor.copy(sql) as copy:
        copy.write(data)


def _copy_writer(driver_connection: Any) -> CopyWriter | None:
    """How to COPY on this driver connection: psycopg2 and psycopg 3 can; others
    (SQLite, asyncpg behind run_sync) write multi-row INSERTs instead."""
    kind = type(driver_connection)
    if kind.__module__.startswith("psycopg2"):
        return _copy_psycopg2
    if kind.__module__.startswith("psycopg.") and kind.__name__ == "Connection":
        return _copy_psycopg  # not AsyncConnection: its copy() must be awaited
    return None


def _copy_upsert(
    connection: Any,
    copy: CopyWriter,
    items: Sequence[ReportInput],
    order: Sequence[int],
    rules: _Rules,
    piece_size: int,
) -> None:
    """Validate and write the reports at ``order`` (positions, in ``email_id`` order)
    piece by piece: this thread validates and formats a piece while a worker thread
    COPYs the one before into the stage and upserts it. Pieces go in ``email_id`` order,
    each upsert in ``email_id`` order, so rows are locked in one order throughout.

    Only the worker uses the connection while it runs; this thread touches it again only
    once the worker is done. It runs in a copy of the caller's context, so tracing sees
    its statements where they belong. An invalid report, or an integrity error (an
    unknown email fails the foreign key), rolls the savepoint back: nothing of the batch
    stays.
    """
    connection.exec_driver_sql(_CREATE_STAGE)
    connection.exec_driver_sql(f"SAVEPOINT {_SAVEPOINT}")
    try:
        with ThreadPoolExecutor(max_workers=1) as worker:
            sent: Future[None] | None = None
            try:
                for start, end in _piece_bounds(len(order), piece_size):
                    # Each row becomes its line at once: only text outlives a report, which
                    # keeps the garbage collector's young generations nearly empty.
                    data = "".join(
                        [
                            _copy_line(*_checked(items[position], position, rules))
                            for position in order[start:end]
                        ]
                    )
                    if sent is not None:
                        sent.result()
                    sent = worker.submit(
                        contextvars.copy_context().run, _write_piece, connection, copy, data
                    )
            finally:
                if sent is not None:
                    sent.result()
    except (ReportValidationError, IntegrityError):
        connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        connection.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        raise
    connection.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")


def _piece_bounds(total: int, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each piece: a first one of a quarter of ``size``, then ``size``."""
    bounds = [(0, min(total, max(size // 4, 1)))]
    while bounds[-1][1] < total:
        start = bounds[-1][1]
        bounds.append((start, min(total, start + size)))
    return bounds


def _write_piece(connection: Any, copy: CopyWriter, data: str) -> None:
    connection.exec_driver_sql(f"TRUNCATE {_STAGE}")
    cursor = connection.connection.driver_connection.cursor()
    try:
        copy(cursor, _COPY_STAGE, data)
    finally:
        cursor.close()
    connection.exec_driver_sql(_UPSERT_FROM_STAGE)


def _constraint_name(exc: IntegrityError) -> str | None:
    # psycopg2 and psycopg 3 both report the violated constraint in the error's diag.
    return getattr(getattr(exc.orig, "diag", None), "constraint_name", None)


def get_processing_report(db: Session, email_id: int) -> ProcessingReport | None:
    """The report for ``email_id``, or None."""
    return db.scalars(
        select(ProcessingReport).where(ProcessingReport.email_id == email_id)
    ).one_or_none()


def utc_day_bounds(start_date: dt.date, end_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start of start_date, start of the day after end_date) in UTC."""
    if isinstance(start_date, dt.datetime) or isinstance(end_date, dt.datetime):
        start_date = start_date.date() if isinstance(start_date, dt.datetime) else start_date
        end_date = end_date.date() if isinstance(end_date, dt.datetime) else end_date
    if not isinstance(start_date, dt.date):
        raise ReportValidationError("start_date", "must be a date")
    if not isinstance(end_date, dt.date):
        raise ReportValidationError("end_date", "must be a date")
    if end_date < start_date:
        raise ReportValidationError("end_date", "must not be before start_date")
    start = dt.datetime.combine(start_date, dt.time.min, tzinfo=dt.UTC)
    try:
        end = dt.datetime.combine(end_date + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    except OverflowError:
        raise ReportValidationError("end_date", "is out of range") from None
    return start, end


def get_reports_by_date_range(
    db: Session, start_date: dt.date, end_date: dt.date, *, limit: int | None = None
) -> list[ProcessingReport]:
    """Reports created from ``start_date`` through the whole of ``end_date`` (UTC), newest first."""
    start, end = utc_day_bounds(start_date, end_date)
    stmt = (
        select(ProcessingReport)
        .where(ProcessingReport.created_at >= start, ProcessingReport.created_at < end)
        .order_by(ProcessingReport.created_at.desc(), ProcessingReport.id.desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(db.scalars(stmt))


def get_reports_needing_review(db: Session, limit: int = 100) -> list[ProcessingReport]:
    """Flagged reports, newest first, at most ``limit``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ReportValidationError("limit", "must be a positive whole number")
    stmt = (
        select(ProcessingReport)
        .where(ProcessingReport.needs_review.is_(True))
        .order_by(ProcessingReport.created_at.desc(), ProcessingReport.id.desc())
        .limit(min(limit, 10_000))
    )
    return list(db.scalars(stmt))


def ensure_incoming_email(
    db: Session,
    email_id: int,
    *,
    subject: str | None = None,
    sender: str | None = None,
    received_at: dt.datetime | None = None,
) -> None:
    """Record an email and its descriptive details; details left as None keep what is stored.

    Flushes; never commits.
    """
    if (
        isinstance(email_id, bool)
        or not isinstance(email_id, int)
        or not 1 <= email_id <= INT32_MAX
    ):
        raise ReportValidationError("email_id", f"must be between 1 and {INT32_MAX}")
    _check_text(subject, "subject", 500)
    _check_text(sender, "sender", 320)
    if received_at is not None and (
        not isinstance(received_at, dt.datetime) or received_at.tzinfo is None
    ):
        raise ReportValidationError("received_at", "must be a timezone-aware datetime")
    insert = insert_for(db)
    values = {"id": email_id, "subject": subject, "sender": sender, "received_at": received_at}
    stmt = insert(IncomingEmail).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[IncomingEmail.id],
        set_={
            name: func.coalesce(stmt.excluded[name], IncomingEmail.__table__.c[name])
            for name in ("subject", "sender", "received_at")
        },
    )
    db.flush()
    db.execute(stmt)


__all__ = [
    "ReportInput",
    "build_report_values",
    "create_processing_report",
    "create_processing_reports",
    "ensure_incoming_email",
    "get_processing_report",
    "get_reports_by_date_range",
    "get_reports_needing_review",
]
