"""The review loop: claim a flagged report, decide per field, keep the history.

A report is *open* while it is flagged and no decision exists for its current processing
(:func:`reportlib.queries.open_review_condition`). Re-processing moves ``created_at`` to
now, so a report flagged again re-enters the queue with its earlier decisions visible.

Claims are single atomic upserts, so two reviewers never hold the same report; on
PostgreSQL "next item" also skips rows another transaction is claiming right now
(``FOR UPDATE SKIP LOCKED``). Every time-dependent function takes ``now``: ``None``
means the database clock, read once per call, so claims, decisions and audit rows of one
call agree. Writers validate everything before the first write, flush and never commit.

Decisions, verdicts and notes hold personal data: nothing here logs them, error messages
name fields and reports, never values, and audit rows carry ids, field names and outcomes.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    String,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement

from reportlib.audit import check_actor, is_field_name, record_audit_event
from reportlib.config import get_settings
from reportlib.errors import ReportValidationError, ReviewError
from reportlib.models import (
    FIELD_VERDICTS,
    REVIEW_OUTCOMES,
    ROUTES,
    ProcessingReport,
    ReviewClaim,
    ReviewDecision,
    ReviewFieldVerdict,
    UTCDateTime,
    utcnow,
)
from reportlib.queries import open_review_condition
from reportlib.service import (
    INT32_MAX,
    _check_json_text,
    _check_json_value,
    _insert,
    _is_empty,
)

NOTE_MAX = 2000
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000
CLAIM_ATTEMPTS = 5
SORTS = ("oldest", "newest", "lowest_confidence")
# How free-text input for a field the pipeline marked missing is parsed (see
# parse_corrected_value); fields not listed are text.
FIELD_KINDS: Mapping[str, str] = {"debt_amount": "number", "reference_numbers": "list"}


# --------------------------------------------------------------------------- errors


class ReviewInputError(ReportValidationError, ReviewError):
    """A review argument is invalid; ``field`` names it. Nothing was written."""


class NotInQueueError(ReviewError):
    """The report exists but is not flagged for review."""


class AlreadyDecidedError(ReviewError):
    """The report's current processing already has a decision."""


class NotClaimedError(ReviewError):
    """The reviewer does not hold an unexpired claim on the report."""


class ClaimConflictError(ReviewError):
    """Another reviewer holds an unexpired claim on the report."""

    def __init__(self, report_id: int, holder: str, expires_at: dt.datetime) -> None:
        self.report_id = report_id
        self.holder = holder
        self.expires_at = expires_at
        super().__init__(
            f"report {report_id} is claimed by another reviewer until "
            f"{expires_at.isoformat(timespec='seconds')}"
        )


class StaleReportError(ReviewError):
    """The report was re-processed after the reviewer opened it."""


# --------------------------------------------------------------------------- dialect


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


def _is_postgresql(db: Session) -> bool:
    return db.get_bind(ProcessingReport).dialect.name == "postgresql"


def median_over(value: ColumnElement[Any], rank: Any, count: Any) -> ColumnElement[Any]:
    """The median as ``AVG(median_over(...))`` over rows ranked 1..count by ``value``.

    Portable (no ``percentile_cont`` on SQLite): the middle row, or the mean of the two
    middle rows, are those with ``count <= 2 * rank <= count + 2``.
    """
    return case((and_(2 * rank >= count, 2 * rank <= count + 2), value), else_=None)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Claim:
    """A reviewer's hold on one report until ``expires_at``."""

    report_id: int
    email_id: int
    reviewer: str
    claimed_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class FieldVerdict:
    """A reviewer's verdict on one field: correct, corrected (with the value) or absent."""

    verdict: str
    corrected_value: Any = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    """A stored verdict, with what the pipeline said about the field at the time."""

    field_name: str
    verdict: str
    corrected_value: Any = field(repr=False)
    extracted_confidence: float | None
    was_missing: bool


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A stored decision with its verdicts."""

    id: int
    report_id: int
    email_id: int
    reviewer: str
    decided_at: dt.datetime
    report_created_at: dt.datetime
    outcome: str
    note: str | None = field(repr=False)
    verdicts: tuple[VerdictRecord, ...]
    # False once the report was re-processed: the decision then concerns an earlier version.
    for_current_processing: bool


@dataclass(frozen=True, slots=True)
class DecisionSummary:
    """One decision for the history list: who, when, what; counts instead of values."""

    id: int
    report_id: int
    email_id: int
    reviewer: str
    decided_at: dt.datetime
    report_created_at: dt.datetime
    outcome: str
    has_note: bool
    fields_correct: int
    fields_corrected: int
    fields_absent: int


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One open report in the queue, with who holds it (None: free or claim expired)."""

    report_id: int
    email_id: int
    created_at: dt.datetime
    age_seconds: float
    review_reason: str | None
    intent: str | None
    confidence_route: str
    overall_confidence: float
    claimed_by: str | None
    claim_expires_at: dt.datetime | None
    earlier_decisions: int


@dataclass(frozen=True, slots=True)
class ReviewField:
    """One field to give a verdict on, as the pipeline reported it."""

    name: str
    value: Any = field(repr=False)
    confidence: float | None
    source: str | None
    was_missing: bool
    is_key_field: bool


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """Everything a review form needs for one report."""

    report_id: int
    email_id: int
    created_at: dt.datetime
    needs_review: bool
    is_open: bool
    review_reason: str | None
    intent: str | None
    confidence_route: str
    overall_confidence: float
    claim: Claim | None
    fields: tuple[ReviewField, ...]
    history: tuple[DecisionRecord, ...]


@dataclass(frozen=True, slots=True)
class ReviewerThroughput:
    """Decisions by one reviewer in the statistics window."""

    reviewer: str
    decisions: int
    approved: int
    corrected: int
    rejected: int
    decisions_per_day: float
    median_seconds_to_decision: float | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The queue right now and the review work done in ``[window_start, window_end)``."""

    now: dt.datetime
    open_count: int
    claimed_count: int
    unclaimed_count: int
    oldest_open_created_at: dt.datetime | None
    resolved_today: int
    window_start: dt.datetime
    window_end: dt.datetime
    decisions_in_window: int
    median_seconds_to_decision: float | None
    throughput: tuple[ReviewerThroughput, ...]


# --------------------------------------------------------------------------- helpers


def check_reviewer(reviewer: object) -> str:
    """Return the reviewer identity stripped, or raise :class:`ReviewInputError`."""
    try:
        return check_actor(reviewer, "reviewer")
    except ReportValidationError as exc:
        raise ReviewInputError(exc.field, exc.problem) from None


def _check_positive(value: object, field_name: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ReviewInputError(field_name, f"must be a whole number between 1 and {maximum}")
    return value


def _check_offset(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OFFSET:
        raise ReviewInputError("offset", f"must be a whole number between 0 and {MAX_OFFSET}")
    return value


def _check_report_id(report_id: object) -> int:
    return _check_positive(report_id, "report_id", INT32_MAX)


def _check_aware(value: object, field_name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ReviewInputError(field_name, "must be a timezone-aware datetime")
    return value.astimezone(dt.UTC)


def _db_now(db: Session) -> dt.datetime:
    # No table in the statement: name one, for sessions that bind reportlib by mapper.
    value = db.scalar(
        select(type_coerce(utcnow(), UTCDateTime())),
        bind_arguments={"mapper": ProcessingReport},
    )
    assert isinstance(value, dt.datetime)
    return value


def _resolve_now(db: Session, now: dt.datetime | None) -> dt.datetime:
    return _db_now(db) if now is None else _check_aware(now, "now")


def _claim_minutes(claim_minutes: int | None) -> int:
    if claim_minutes is None:
        return get_settings().review_claim_minutes
    return _check_positive(claim_minutes, "claim_minutes", 24 * 60)


def _verdict_label(name: object, position: int) -> str:
    return f"verdicts.{name}" if is_field_name(name) else f"verdicts[{position}]"


def _unexpired_claim(now: dt.datetime, holder: str | None = None) -> ColumnElement[bool]:
    # An alias, so the test stays a correlated subquery when the outer query joins claims.
    claim = aliased(ReviewClaim)
    conditions = [claim.report_id == ProcessingReport.id, claim.expires_at > now]
    if holder is not None:
        conditions.append(claim.reviewer == holder)
    return exists().where(*conditions).correlate(ProcessingReport)


# --------------------------------------------------------------------------- claims


def _try_claim(
    db: Session, report_id: int, reviewer: str, now: dt.datetime, minutes: int
) -> Claim | None:
    """One atomic statement: claim if open and free, expired, or already ours."""
    expires = now + dt.timedelta(minutes=minutes)
    source = select(
        ProcessingReport.id,
        literal(reviewer, String()),
        literal(now, UTCDateTime()),
        literal(expires, UTCDateTime()),
    ).where(ProcessingReport.id == report_id, open_review_condition())
    stmt = _insert(db)(ReviewClaim).from_select(
        ["report_id", "reviewer", "claimed_at", "expires_at"], source
    )
    excluded = stmt.excluded
    # A reviewer renewing an unexpired claim keeps its start; anyone else starts afresh.
    renewing = and_(ReviewClaim.reviewer == excluded.reviewer, ReviewClaim.expires_at > now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ReviewClaim.report_id],
        set_={
            "reviewer": excluded.reviewer,
            "claimed_at": case((renewing, ReviewClaim.claimed_at), else_=excluded.claimed_at),
            "expires_at": excluded.expires_at,
        },
        where=or_(ReviewClaim.expires_at <= now, ReviewClaim.reviewer == excluded.reviewer),
    ).returning(ReviewClaim.claimed_at, ReviewClaim.expires_at)
    row = db.execute(stmt).one_or_none()
    if row is None:
        return None
    email_id = db.scalar(select(ProcessingReport.email_id).where(ProcessingReport.id == report_id))
    assert email_id is not None
    return Claim(
        report_id=report_id,
        email_id=email_id,
        reviewer=reviewer,
        claimed_at=row.claimed_at,
        expires_at=row.expires_at,
    )


def _audit_claim(db: Session, claim: Claim, minutes: int, now: dt.datetime) -> None:
    record_audit_event(
        db,
        actor=claim.reviewer,
        action="review_claimed",
        email_id=claim.email_id,
        details={"report_id": claim.report_id, "claim_minutes": minutes},
        occurred_at=now,
    )


def _raise_unclaimable(db: Session, report_id: int, now: dt.datetime) -> None:
    """Explain why ``report_id`` could not be claimed."""
    report = db.execute(
        select(ProcessingReport.needs_review, open_review_condition().label("is_open")).where(
            ProcessingReport.id == report_id
        )
    ).one_or_none()
    if report is None:
        raise ReviewError(f"report {report_id} does not exist")
    if not report.needs_review:
        raise NotInQueueError(f"report {report_id} is not flagged for review")
    if not report.is_open:
        raise AlreadyDecidedError(
            f"report {report_id} was already decided for its current processing"
        )
    holder = db.execute(
        select(ReviewClaim.reviewer, ReviewClaim.expires_at).where(
            ReviewClaim.report_id == report_id
        )
    ).one_or_none()
    if holder is not None and holder.expires_at > now:
        raise ClaimConflictError(report_id, holder.reviewer, holder.expires_at)
    raise ReviewError(f"report {report_id} could not be claimed; try again")


def claim_report(
    db: Session,
    *,
    report_id: int,
    reviewer: str,
    now: dt.datetime | None = None,
    claim_minutes: int | None = None,
) -> Claim:
    """Claim one open report for ``reviewer`` (or renew the reviewer's own claim).

    The claim lasts ``claim_minutes`` (default: ``REVIEW_CLAIM_MINUTES``). Raises
    :class:`ClaimConflictError` when someone else holds an unexpired claim,
    :class:`NotInQueueError` / :class:`AlreadyDecidedError` when the report is not open,
    :class:`ReviewInputError` on bad arguments. Writes a ``review_claimed`` audit row.
    Flushes; never commits.
    """
    reviewer = check_reviewer(reviewer)
    report_id = _check_report_id(report_id)
    minutes = _claim_minutes(claim_minutes)
    db.flush()
    current = _resolve_now(db, now)
    claim = _try_claim(db, report_id, reviewer, current, minutes)
    if claim is None:
        _raise_unclaimable(db, report_id, current)
    assert claim is not None
    _audit_claim(db, claim, minutes, current)
    return claim


def _queue_filters(*, intent: str | None, route: str | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if intent is not None:
        if not isinstance(intent, str):
            raise ReviewInputError("intent", "must be text")
        conditions.append(ProcessingReport.intent == intent)
    if route is not None:
        if route not in ROUTES:
            raise ReviewInputError("route", "must be one of " + ", ".join(ROUTES))
        conditions.append(ProcessingReport.confidence_route == route)
    return conditions


def claim_next_report(
    db: Session,
    *,
    reviewer: str,
    now: dt.datetime | None = None,
    claim_minutes: int | None = None,
    intent: str | None = None,
    route: str | None = None,
    resume: bool = True,
) -> Claim | None:
    """Claim the oldest open report nobody holds; None when there is none.

    With ``resume`` (the default) a reviewer who already holds an open report gets that
    one back, renewed, instead of a second one. ``intent``/``route`` restrict the choice.
    Two concurrent callers never get the same report: on PostgreSQL the candidate row is
    locked with ``FOR UPDATE SKIP LOCKED``, and the claim itself is one atomic upsert that
    refuses a report someone else holds; a lost race moves on to the next candidate, a
    bounded number of times, then raises :class:`ReviewError`. Flushes; never commits.
    """
    reviewer = check_reviewer(reviewer)
    minutes = _claim_minutes(claim_minutes)
    filters = _queue_filters(intent=intent, route=route)
    db.flush()
    current = _resolve_now(db, now)
    if resume:
        held = db.scalar(
            select(ReviewClaim.report_id)
            .join(ProcessingReport, ProcessingReport.id == ReviewClaim.report_id)
            .where(
                ReviewClaim.reviewer == reviewer,
                ReviewClaim.expires_at > current,
                open_review_condition(),
                *filters,
            )
            .order_by(ReviewClaim.claimed_at, ReviewClaim.report_id)
            .limit(1)
        )
        if held is not None:
            claim = _try_claim(db, held, reviewer, current, minutes)
            if claim is not None:
                _audit_claim(db, claim, minutes, current)
                return claim
    tried: list[int] = []
    for _attempt in range(CLAIM_ATTEMPTS):
        candidate_stmt = (
            select(ProcessingReport.id)
            .where(open_review_condition(), ~_unexpired_claim(current), *filters)
            .order_by(ProcessingReport.created_at, ProcessingReport.id)
            .limit(1)
        )
        if tried:
            candidate_stmt = candidate_stmt.where(ProcessingReport.id.not_in(tried))
        if _is_postgresql(db):
            candidate_stmt = candidate_stmt.with_for_update(skip_locked=True, of=ProcessingReport)
        candidate = db.scalar(candidate_stmt)
        if candidate is None:
            return None
        claim = _try_claim(db, candidate, reviewer, current, minutes)
        if claim is not None:
            _audit_claim(db, claim, minutes, current)
            return claim
        tried.append(candidate)
    raise ReviewError("the queue is busy: no report could be claimed; try again")


def release_claim(
    db: Session, *, report_id: int, reviewer: str, now: dt.datetime | None = None
) -> bool:
    """Give up ``reviewer``'s claim on ``report_id``; False when they held none.

    Only one's own claim can be released. Writes a ``review_claim_released`` audit row.
    Flushes; never commits.
    """
    reviewer = check_reviewer(reviewer)
    report_id = _check_report_id(report_id)
    db.flush()
    current = _resolve_now(db, now)
    released = db.execute(
        delete(ReviewClaim)
        .where(ReviewClaim.report_id == report_id, ReviewClaim.reviewer == reviewer)
        .returning(ReviewClaim.report_id)
    ).one_or_none()
    if released is None:
        return False
    email_id = db.scalar(select(ProcessingReport.email_id).where(ProcessingReport.id == report_id))
    record_audit_event(
        db,
        actor=reviewer,
        action="review_claim_released",
        email_id=email_id,
        details={"report_id": report_id},
        occurred_at=current,
    )
    return True


# --------------------------------------------------------------------------- decisions


def _check_note(note: object) -> str | None:
    if note is None:
        return None
    if not isinstance(note, str):
        raise ReviewInputError("note", "must be text")
    if len(note) > NOTE_MAX:
        raise ReviewInputError("note", f"must be at most {NOTE_MAX} characters")
    try:
        _check_json_text(note, "note")
    except ReportValidationError as exc:
        raise ReviewInputError(exc.field, exc.problem) from None
    return note if note.strip() else None


def _report_fields(
    extracted_fields: Any, missing_fields: Any, key_fields: Sequence[str]
) -> list[ReviewField]:
    """The fields of one processing, key fields first, then the rest by name."""
    extracted = (
        {k: v for k, v in extracted_fields.items() if isinstance(v, Mapping)}
        if isinstance(extracted_fields, Mapping)
        else {}
    )
    missing = [
        name
        for name in (missing_fields if isinstance(missing_fields, list) else [])
        if isinstance(name, str) and name not in extracted
    ]
    names = list(dict.fromkeys([*extracted, *missing]))
    order = {name: position for position, name in enumerate(key_fields)}
    names.sort(key=lambda name: (order.get(name, len(order)), name))
    fields: list[ReviewField] = []
    for name in names:
        meta = extracted.get(name)
        confidence = meta.get("confidence") if meta is not None else None
        source = meta.get("source") if meta is not None else None
        fields.append(
            ReviewField(
                name=name,
                value=meta.get("value") if meta is not None else None,
                confidence=float(confidence)
                if isinstance(confidence, (int, float, decimal.Decimal))
                and not isinstance(confidence, bool)
                else None,
                source=source if isinstance(source, str) else None,
                was_missing=meta is None,
                is_key_field=name in order,
            )
        )
    return fields


def _normalize_verdict(raw: object, label: str) -> FieldVerdict:
    if isinstance(raw, FieldVerdict):
        return raw
    if isinstance(raw, str):
        return FieldVerdict(raw)
    if isinstance(raw, Mapping) and set(raw) <= {"verdict", "corrected_value"}:
        return FieldVerdict(raw.get("verdict", ""), raw.get("corrected_value"))
    raise ReviewInputError(label, "must be a verdict: correct, corrected or absent")


def _validate_verdicts(
    verdicts: object,
    fields: Sequence[ReviewField],
    key_fields: Sequence[str],
) -> list[dict[str, Any]]:
    """Check one verdict per field and return the verdict rows to store."""
    if not isinstance(verdicts, Mapping):
        raise ReviewInputError("verdicts", "must map each field name to a verdict")
    by_name = {f.name: f for f in fields}
    for position, name in enumerate(verdicts):
        if not isinstance(name, str) or (name not in by_name and name not in key_fields):
            raise ReviewInputError(_verdict_label(name, position), "is not a field of this report")
    for position, wanted in enumerate(fields):
        if wanted.name not in verdicts:
            raise ReviewInputError(_verdict_label(wanted.name, position), "needs a verdict")
    rows: list[dict[str, Any]] = []
    for position, (name, raw) in enumerate(verdicts.items()):
        label = _verdict_label(name, position)
        given = _normalize_verdict(raw, label)
        report_field = by_name.get(name)
        was_missing = report_field is None or report_field.was_missing
        if given.verdict not in FIELD_VERDICTS:
            raise ReviewInputError(label, "must be one of " + ", ".join(FIELD_VERDICTS))
        corrected: Any = None
        if given.verdict == "corrected":
            if _is_empty(given.corrected_value):
                raise ReviewInputError(
                    f"{label}.corrected_value", "is empty: give the value or choose 'absent'"
                )
            try:
                corrected = _check_json_value(given.corrected_value, f"{label}.corrected_value")
            except ReportValidationError as exc:
                raise ReviewInputError(exc.field, exc.problem) from None
            if not was_missing and report_field is not None and corrected == report_field.value:
                raise ReviewInputError(
                    f"{label}.corrected_value", "equals the extracted value: choose 'correct'"
                )
        elif given.corrected_value is not None:
            raise ReviewInputError(f"{label}.corrected_value", "is only allowed with 'corrected'")
        if given.verdict == "correct" and was_missing:
            raise ReviewInputError(
                label, "was marked missing: choose 'absent' or give the value with 'corrected'"
            )
        rows.append(
            {
                "field_name": name,
                "verdict": given.verdict,
                "corrected_value": corrected,
                "extracted_confidence": None
                if was_missing or report_field is None
                else report_field.confidence,
                "was_missing": was_missing,
            }
        )
    rows.sort(key=lambda row: row["field_name"])
    return rows


def _check_outcome(outcome: object, rows: Sequence[Mapping[str, Any]]) -> str:
    if outcome not in REVIEW_OUTCOMES:
        raise ReviewInputError("outcome", "must be one of " + ", ".join(REVIEW_OUTCOMES))
    assert isinstance(outcome, str)
    changed = any(
        row["verdict"] == "corrected" or (row["verdict"] == "absent" and not row["was_missing"])
        for row in rows
    )
    if outcome == "approved" and changed:
        raise ReviewInputError("outcome", "is 'approved' but some field was corrected")
    if outcome == "corrected" and not changed:
        raise ReviewInputError("outcome", "is 'corrected' but no field was corrected")
    return outcome


def decide_report(
    db: Session,
    *,
    report_id: int,
    reviewer: str,
    outcome: str,
    verdicts: Mapping[str, FieldVerdict | str],
    note: str | None = None,
    report_created_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
    key_fields: Sequence[str] | None = None,
) -> DecisionRecord:
    """Record ``reviewer``'s decision on the current processing of ``report_id``.

    ``verdicts`` maps every extracted and every missing field of the report (key fields
    the report lacks are also accepted) to ``"correct"``, ``"absent"`` or
    ``FieldVerdict("corrected", value)``; a field marked missing takes ``"absent"`` or a
    value. The value is validated like extracted values. ``outcome`` is ``approved`` (no
    field corrected), ``corrected`` (some field corrected, or an extracted value was
    bogus) or ``rejected``. Pass ``report_created_at`` as shown to the reviewer to refuse
    a decision on a report re-processed meanwhile (:class:`StaleReportError`).

    Only the holder of an unexpired claim may decide (:class:`NotClaimedError`,
    :class:`ClaimConflictError`); a report already decided for its current processing
    raises :class:`AlreadyDecidedError`; bad input raises :class:`ReviewInputError`
    naming the field. In every error case nothing is written. On success the claim is
    released and a ``review_decided`` audit row (ids, field names, verdicts; no values)
    written. Flushes; never commits.
    """
    reviewer = check_reviewer(reviewer)
    report_id = _check_report_id(report_id)
    note = _check_note(note)
    if outcome not in REVIEW_OUTCOMES:
        raise ReviewInputError("outcome", "must be one of " + ", ".join(REVIEW_OUTCOMES))
    expected = (
        None if report_created_at is None else _check_aware(report_created_at, "report_created_at")
    )
    keys = tuple(key_fields) if key_fields is not None else get_settings().key_fields
    db.flush()

    report_stmt = (
        select(
            ProcessingReport.email_id,
            ProcessingReport.created_at,
            ProcessingReport.needs_review,
            ProcessingReport.extracted_fields,
            ProcessingReport.missing_fields,
            # Flagged but not open means decided: one definition of "open" everywhere.
            open_review_condition().label("is_open"),
            ReviewClaim.reviewer.label("holder"),
            ReviewClaim.expires_at.label("claim_expires_at"),
        )
        .outerjoin(ReviewClaim, ReviewClaim.report_id == ProcessingReport.id)
        .where(ProcessingReport.id == report_id)
    )
    if _is_postgresql(db):
        # Hold re-processing of this report off until the decision is committed.
        report_stmt = report_stmt.with_for_update(read=True, of=ProcessingReport)
    report = db.execute(report_stmt).one_or_none()
    if report is None:
        raise ReviewError(f"report {report_id} does not exist")
    current = _resolve_now(db, now)
    if not report.needs_review:
        raise NotInQueueError(f"report {report_id} is not flagged for review")
    if expected is not None and expected != report.created_at:
        raise StaleReportError(
            f"report {report_id} was re-processed after it was opened; reload it"
        )
    if not report.is_open:
        raise AlreadyDecidedError(
            f"report {report_id} was already decided for its current processing"
        )
    if current < report.created_at:
        raise ReviewInputError("now", "is before the report's processing time")
    if report.holder is None:
        raise NotClaimedError(f"claim report {report_id} before deciding")
    if report.claim_expires_at <= current:
        raise NotClaimedError(
            f"claim report {report_id} before deciding"
            + (" (your claim expired)" if report.holder == reviewer else "")
        )
    if report.holder != reviewer:
        raise ClaimConflictError(report_id, report.holder, report.claim_expires_at)

    fields = _report_fields(report.extracted_fields, report.missing_fields, keys)
    rows = _validate_verdicts(verdicts, fields, keys)
    outcome = _check_outcome(outcome, rows)

    # First write: consume the claim atomically. Losing a race here writes nothing.
    consumed = db.execute(
        delete(ReviewClaim)
        .where(
            ReviewClaim.report_id == report_id,
            ReviewClaim.reviewer == reviewer,
            ReviewClaim.expires_at > current,
        )
        .returning(ReviewClaim.report_id)
    ).one_or_none()
    if consumed is None:
        raise NotClaimedError(f"your claim on report {report_id} was lost; claim it again")
    decision_id = db.scalars(
        insert(ReviewDecision)
        .values(
            report_id=report_id,
            email_id=report.email_id,
            reviewer=reviewer,
            decided_at=current,
            report_created_at=report.created_at,
            outcome=outcome,
            note=note,
        )
        .returning(ReviewDecision.id)
    ).one()
    # Core executemany: one multi-row INSERT, whatever mix of NULLs the rows hold.
    db.execute(
        insert(cast(Table, ReviewFieldVerdict.__table__)),
        [{"decision_id": decision_id, **row} for row in rows],
    )
    safe_names = [row["field_name"] for row in rows if is_field_name(row["field_name"])]
    record_audit_event(
        db,
        actor=reviewer,
        action="review_decided",
        email_id=report.email_id,
        details={
            "report_id": report_id,
            "decision_id": decision_id,
            "outcome": outcome,
            "verdicts": {
                row["field_name"]: row["verdict"] for row in rows if row["field_name"] in safe_names
            },
            "unnamed_fields_count": len(rows) - len(safe_names),
            "has_note": note is not None,
        },
        occurred_at=current,
    )
    return DecisionRecord(
        id=decision_id,
        report_id=report_id,
        email_id=report.email_id,
        reviewer=reviewer,
        decided_at=current,
        report_created_at=report.created_at,
        outcome=outcome,
        note=note,
        verdicts=tuple(VerdictRecord(**row) for row in rows),
        for_current_processing=True,
    )


def parse_corrected_value(field_name: str, text: str, *, like: Any = None) -> Any:
    """Turn a reviewer's typed text into a value shaped like ``like`` (the extracted value).

    Lists are split on new lines and commas; numbers accept ``1234.56`` or ``1234,56``
    and become ``Decimal``; anything else stays text. Without ``like`` (a field marked
    missing) :data:`FIELD_KINDS` decides. Raises :class:`ReviewInputError` naming the
    field; the text is never echoed.
    """
    label = f"verdicts.{field_name}.corrected_value" if is_field_name(field_name) else "verdicts"
    if not isinstance(text, str) or not text.strip():
        raise ReviewInputError(label, "is empty: give the value or choose 'absent'")
    if isinstance(like, (list, tuple)):
        kind = "list"
    elif isinstance(like, (int, float, decimal.Decimal)) and not isinstance(like, bool):
        kind = "number"
    elif like is None:
        kind = FIELD_KINDS.get(field_name, "text")
    else:
        kind = "text"
    stripped = text.strip()
    if kind == "list":
        parts = [part.strip() for line in stripped.splitlines() for part in line.split(",")]
        return [part for part in parts if part]
    if kind == "number":
        cleaned = stripped.replace(" ", "").replace("\u00a0", "")
        if "," in cleaned and "." not in cleaned:
            cleaned = cleaned.replace(",", ".")
        try:
            number = decimal.Decimal(cleaned)
        except decimal.InvalidOperation:
            raise ReviewInputError(label, "must be a number such as 1234.56") from None
        if not number.is_finite():
            raise ReviewInputError(label, "must be a finite number")
        return number
    return stripped


# --------------------------------------------------------------------------- reads


def _json_scalar(value: Any) -> Any:
    # SQLite gives JSON columns NUMERIC affinity, so a bare number is stored as REAL and
    # read back as float; its shortest repr restores the Decimal the reviewer entered.
    if isinstance(value, float):
        return decimal.Decimal(repr(value))
    return value


def _verdicts_by_decision(db: Session, ids: Sequence[int]) -> dict[int, list[VerdictRecord]]:
    found: dict[int, list[VerdictRecord]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = db.execute(
        select(
            ReviewFieldVerdict.decision_id,
            ReviewFieldVerdict.field_name,
            ReviewFieldVerdict.verdict,
            ReviewFieldVerdict.corrected_value,
            ReviewFieldVerdict.extracted_confidence,
            ReviewFieldVerdict.was_missing,
        )
        .where(ReviewFieldVerdict.decision_id.in_(list(ids)))
        .order_by(ReviewFieldVerdict.decision_id, ReviewFieldVerdict.field_name)
    )
    for row in rows:
        found[row.decision_id].append(
            VerdictRecord(
                field_name=row.field_name,
                verdict=row.verdict,
                corrected_value=_json_scalar(row.corrected_value),
                extracted_confidence=row.extracted_confidence,
                was_missing=bool(row.was_missing),
            )
        )
    return found


def get_review_history(db: Session, *, report_id: int, limit: int = 20) -> list[DecisionRecord]:
    """Decisions on ``report_id`` across all its processings, newest first, with verdicts.

    Verdicts include corrected values: show them only to those allowed to see values.
    """
    report_id = _check_report_id(report_id)
    limit = _check_positive(limit, "limit", MAX_LIMIT)
    rows = db.execute(
        select(
            ReviewDecision.id,
            ReviewDecision.report_id,
            ReviewDecision.email_id,
            ReviewDecision.reviewer,
            ReviewDecision.decided_at,
            ReviewDecision.report_created_at,
            ReviewDecision.outcome,
            ReviewDecision.note,
            ProcessingReport.created_at.label("current_created_at"),
        )
        .join(ProcessingReport, ProcessingReport.id == ReviewDecision.report_id)
        .where(ReviewDecision.report_id == report_id)
        .order_by(ReviewDecision.decided_at.desc(), ReviewDecision.id.desc())
        .limit(limit)
    ).all()
    verdicts = _verdicts_by_decision(db, [row.id for row in rows])
    return [
        DecisionRecord(
            id=row.id,
            report_id=row.report_id,
            email_id=row.email_id,
            reviewer=row.reviewer,
            decided_at=row.decided_at,
            report_created_at=row.report_created_at,
            outcome=row.outcome,
            note=row.note,
            verdicts=tuple(verdicts[row.id]),
            for_current_processing=row.report_created_at >= row.current_created_at,
        )
        for row in rows
    ]


def get_review_item(
    db: Session,
    *,
    report_id: int | None = None,
    email_id: int | None = None,
    now: dt.datetime | None = None,
    history_limit: int = 20,
    key_fields: Sequence[str] | None = None,
) -> ReviewItem | None:
    """The review form's data for one report (by ``report_id`` or ``email_id``), or None.

    ``claim`` is the unexpired claim, if any; ``history`` the earlier decisions.
    """
    if (report_id is None) == (email_id is None):
        raise ReviewInputError("report_id", "give exactly one of report_id and email_id")
    condition = (
        ProcessingReport.id == _check_report_id(report_id)
        if report_id is not None
        else ProcessingReport.email_id == _check_positive(email_id, "email_id", INT32_MAX)
    )
    keys = tuple(key_fields) if key_fields is not None else get_settings().key_fields
    current = _resolve_now(db, now)
    row = db.execute(
        select(
            ProcessingReport.id,
            ProcessingReport.email_id,
            ProcessingReport.created_at,
            ProcessingReport.needs_review,
            ProcessingReport.review_reason,
            ProcessingReport.intent,
            ProcessingReport.confidence_route,
            ProcessingReport.overall_confidence,
            ProcessingReport.extracted_fields,
            ProcessingReport.missing_fields,
            open_review_condition().label("is_open"),
            ReviewClaim.reviewer.label("holder"),
            ReviewClaim.claimed_at,
            ReviewClaim.expires_at,
        )
        .outerjoin(
            ReviewClaim,
            and_(ReviewClaim.report_id == ProcessingReport.id, ReviewClaim.expires_at > current),
        )
        .where(condition)
    ).one_or_none()
    if row is None:
        return None
    claim = (
        None
        if row.holder is None
        else Claim(
            report_id=row.id,
            email_id=row.email_id,
            reviewer=row.holder,
            claimed_at=row.claimed_at,
            expires_at=row.expires_at,
        )
    )
    return ReviewItem(
        report_id=row.id,
        email_id=row.email_id,
        created_at=row.created_at,
        needs_review=bool(row.needs_review),
        is_open=bool(row.is_open),
        review_reason=row.review_reason,
        intent=row.intent,
        confidence_route=row.confidence_route,
        overall_confidence=row.overall_confidence,
        claim=claim,
        fields=tuple(_report_fields(row.extracted_fields, row.missing_fields, keys)),
        history=tuple(get_review_history(db, report_id=row.id, limit=history_limit)),
    )


def _claim_state_filters(
    now: dt.datetime, claimed: bool | None, held_by: str | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if claimed is True:
        conditions.append(_unexpired_claim(now))
    elif claimed is False:
        conditions.append(~_unexpired_claim(now))
    if held_by is not None:
        conditions.append(_unexpired_claim(now, check_reviewer(held_by)))
    return conditions


def list_review_queue(
    db: Session,
    *,
    now: dt.datetime | None = None,
    sort: str = "oldest",
    intent: str | None = None,
    route: str | None = None,
    claimed: bool | None = None,
    held_by: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[QueueItem]:
    """Open reports with who holds them, at most ``limit`` (1 to 1000).

    ``sort`` is ``oldest`` (default), ``newest`` or ``lowest_confidence``. ``claimed``
    True/False keeps only held/free items; ``held_by`` only one reviewer's. An expired
    claim counts as free and shows no holder.
    """
    if sort not in SORTS:
        raise ReviewInputError("sort", "must be one of " + ", ".join(SORTS))
    limit = _check_positive(limit, "limit", MAX_LIMIT)
    offset = _check_offset(offset)
    filters = _queue_filters(intent=intent, route=route)
    current = _resolve_now(db, now)
    filters += _claim_state_filters(current, claimed, held_by)
    order: dict[str, tuple[Any, ...]] = {
        "oldest": (ProcessingReport.created_at.asc(), ProcessingReport.id.asc()),
        "newest": (ProcessingReport.created_at.desc(), ProcessingReport.id.desc()),
        "lowest_confidence": (
            ProcessingReport.overall_confidence.asc(),
            ProcessingReport.created_at.asc(),
            ProcessingReport.id.asc(),
        ),
    }
    earlier = (
        select(func.count())
        .where(ReviewDecision.report_id == ProcessingReport.id)
        .correlate(ProcessingReport)
        .scalar_subquery()
    )
    stmt: Select[Any] = (
        select(
            ProcessingReport.id,
            ProcessingReport.email_id,
            ProcessingReport.created_at,
            ProcessingReport.review_reason,
            ProcessingReport.intent,
            ProcessingReport.confidence_route,
            ProcessingReport.overall_confidence,
            ReviewClaim.reviewer,
            ReviewClaim.expires_at,
            earlier.label("earlier_decisions"),
        )
        .outerjoin(
            ReviewClaim,
            and_(ReviewClaim.report_id == ProcessingReport.id, ReviewClaim.expires_at > current),
        )
        .where(open_review_condition(), *filters)
        .order_by(*order[sort])
        .limit(limit)
        .offset(offset)
    )
    return [
        QueueItem(
            report_id=row.id,
            email_id=row.email_id,
            created_at=row.created_at,
            age_seconds=(current - row.created_at).total_seconds(),
            review_reason=row.review_reason,
            intent=row.intent,
            confidence_route=row.confidence_route,
            overall_confidence=row.overall_confidence,
            claimed_by=row.reviewer,
            claim_expires_at=row.expires_at,
            earlier_decisions=int(row.earlier_decisions),
        )
        for row in db.execute(stmt)
    ]


def count_review_queue(
    db: Session,
    *,
    now: dt.datetime | None = None,
    intent: str | None = None,
    route: str | None = None,
    claimed: bool | None = None,
    held_by: str | None = None,
) -> int:
    """How many open reports :func:`list_review_queue` pages through with these filters."""
    filters = _queue_filters(intent=intent, route=route)
    current = _resolve_now(db, now)
    filters += _claim_state_filters(current, claimed, held_by)
    stmt = (
        select(func.count()).select_from(ProcessingReport).where(open_review_condition(), *filters)
    )
    return int(db.scalar(stmt) or 0)


def _window(
    start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime, default_days: int
) -> tuple[dt.datetime, dt.datetime]:
    window_end = now if end is None else _check_aware(end, "end")
    window_start = (
        window_end - dt.timedelta(days=default_days)
        if start is None
        else _check_aware(start, "start")
    )
    if window_end <= window_start:
        raise ReviewInputError("end", "must be after start")
    return window_start, window_end


def list_decisions(
    db: Session,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    reviewer: str | None = None,
    outcome: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[DecisionSummary]:
    """Decisions made in ``[start, end)`` (unbounded sides when None), newest first.

    Counts of verdicts per kind stand in for the values, so this list can be shown to
    anyone allowed to see the queue.
    """
    limit = _check_positive(limit, "limit", MAX_LIMIT)
    offset = _check_offset(offset)
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(ReviewDecision.decided_at >= _check_aware(start, "start"))
    if end is not None:
        conditions.append(ReviewDecision.decided_at < _check_aware(end, "end"))
    if reviewer is not None:
        conditions.append(ReviewDecision.reviewer == check_reviewer(reviewer))
    if outcome is not None:
        if outcome not in REVIEW_OUTCOMES:
            raise ReviewInputError("outcome", "must be one of " + ", ".join(REVIEW_OUTCOMES))
        conditions.append(ReviewDecision.outcome == outcome)

    def verdict_count(kind: str) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((ReviewFieldVerdict.verdict == kind, 1), else_=0)), 0)

    stmt = (
        select(
            ReviewDecision.id,
            ReviewDecision.report_id,
            ReviewDecision.email_id,
            ReviewDecision.reviewer,
            ReviewDecision.decided_at,
            ReviewDecision.report_created_at,
            ReviewDecision.outcome,
            (ReviewDecision.note.is_not(None)).label("has_note"),
            verdict_count("correct").label("fields_correct"),
            verdict_count("corrected").label("fields_corrected"),
            verdict_count("absent").label("fields_absent"),
        )
        .outerjoin(ReviewFieldVerdict, ReviewFieldVerdict.decision_id == ReviewDecision.id)
        .where(*conditions)
        .group_by(ReviewDecision.id)
        .order_by(ReviewDecision.decided_at.desc(), ReviewDecision.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [
        DecisionSummary(
            id=row.id,
            report_id=row.report_id,
            email_id=row.email_id,
            reviewer=row.reviewer,
            decided_at=row.decided_at,
            report_created_at=row.report_created_at,
            outcome=row.outcome,
            has_note=bool(row.has_note),
            fields_correct=int(row.fields_correct),
            fields_corrected=int(row.fields_corrected),
            fields_absent=int(row.fields_absent),
        )
        for row in db.execute(stmt)
    ]


def get_queue_stats(
    db: Session,
    *,
    now: dt.datetime | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    max_reviewers: int = 50,
) -> QueueStats:
    """Queue size now, and review work done in ``[start, end)`` (default: 7 days to now).

    ``open_count``/``claimed_count`` count open reports and those held by an unexpired
    claim; ``resolved_today`` counts decisions made since midnight UTC of ``now``'s day.
    The median time from flag to decision runs from the reviewed processing's
    ``created_at`` to ``decided_at``, over decisions made in the window. Throughput lists
    the ``max_reviewers`` busiest reviewers of the window, most decisions first.
    """
    max_reviewers = _check_positive(max_reviewers, "max_reviewers", MAX_LIMIT)
    current = _resolve_now(db, now)
    window_start, window_end = _window(start, end, current, 7)

    queue = db.execute(
        select(
            func.count(),
            func.count(ReviewClaim.report_id),
            func.min(ProcessingReport.created_at),
        )
        .select_from(ProcessingReport)
        .outerjoin(
            ReviewClaim,
            and_(ReviewClaim.report_id == ProcessingReport.id, ReviewClaim.expires_at > current),
        )
        .where(open_review_condition())
    ).one()
    day_start = dt.datetime.combine(current.date(), dt.time.min, tzinfo=dt.UTC)
    resolved_today = db.scalar(
        select(func.count())
        .select_from(ReviewDecision)
        .where(
            ReviewDecision.decided_at >= day_start,
            ReviewDecision.decided_at < day_start + dt.timedelta(days=1),
        )
    )

    in_window = and_(
        ReviewDecision.decided_at >= window_start, ReviewDecision.decided_at < window_end
    )
    seconds = seconds_between(ReviewDecision.decided_at, ReviewDecision.report_created_at)
    ranked = (
        select(
            seconds.label("seconds"),
            func.row_number().over(order_by=seconds).label("rank"),
            func.count().over().label("n"),
        )
        .where(in_window)
        .subquery()
    )
    overall = db.execute(
        select(
            func.count(),
            func.avg(median_over(ranked.c.seconds, ranked.c.rank, ranked.c.n)),
        ).select_from(ranked)
    ).one()

    per_reviewer = (
        select(
            ReviewDecision.reviewer,
            ReviewDecision.outcome,
            seconds.label("seconds"),
            func.row_number()
            .over(partition_by=ReviewDecision.reviewer, order_by=seconds)
            .label("rank"),
            func.count().over(partition_by=ReviewDecision.reviewer).label("n"),
        )
        .where(in_window)
        .subquery()
    )

    def outcome_count(kind: str) -> ColumnElement[Any]:
        return func.sum(case((per_reviewer.c.outcome == kind, 1), else_=0))

    decisions = func.count().label("decisions")
    reviewer_rows = db.execute(
        select(
            per_reviewer.c.reviewer,
            decisions,
            outcome_count("approved").label("approved"),
            outcome_count("corrected").label("corrected"),
            outcome_count("rejected").label("rejected"),
            func.avg(
                median_over(per_reviewer.c.seconds, per_reviewer.c.rank, per_reviewer.c.n)
            ).label("median_seconds"),
        )
        .group_by(per_reviewer.c.reviewer)
        .order_by(decisions.desc(), per_reviewer.c.reviewer)
        .limit(max_reviewers)
    ).all()
    days = (window_end - window_start).total_seconds() / 86400.0
    open_count, claimed_count, oldest = queue
    return QueueStats(
        now=current,
        open_count=int(open_count),
        claimed_count=int(claimed_count),
        unclaimed_count=int(open_count) - int(claimed_count),
        oldest_open_created_at=oldest,
        resolved_today=int(resolved_today or 0),
        window_start=window_start,
        window_end=window_end,
        decisions_in_window=int(overall[0]),
        median_seconds_to_decision=None if overall[1] is None else float(overall[1]),
        throughput=tuple(
            ReviewerThroughput(
                reviewer=row.reviewer,
                decisions=int(row.decisions),
                approved=int(row.approved),
                corrected=int(row.corrected),
                rejected=int(row.rejected),
                decisions_per_day=int(row.decisions) / days,
                median_seconds_to_decision=None
                if row.median_seconds is None
                else float(row.median_seconds),
            )
            for row in reviewer_rows
        ),
    )


__all__ = [
    "SORTS",
    "AlreadyDecidedError",
    "Claim",
    "ClaimConflictError",
    "DecisionRecord",
    "DecisionSummary",
    "FieldVerdict",
    "NotClaimedError",
    "NotInQueueError",
    "QueueItem",
    "QueueStats",
    "ReviewField",
    "ReviewInputError",
    "ReviewItem",
    "ReviewerThroughput",
    "StaleReportError",
    "VerdictRecord",
    "check_reviewer",
    "claim_next_report",
    "claim_report",
    "count_review_queue",
    "decide_report",
    "get_queue_stats",
    "get_review_history",
    "get_review_item",
    "list_decisions",
    "list_review_queue",
    "parse_corrected_value",
    "release_claim",
    "seconds_between",
]
