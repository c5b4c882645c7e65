"""Review records, errors and the argument checks every review action shares."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    exists,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session, aliased

from reportlib.audit import check_actor, is_field_name
from reportlib.checks import (
    check_aware,
)
from reportlib.config import get_settings
from reportlib.dialect import UTCDateTime, utcnow
from reportlib.errors import ReportValidationError, ReviewError
from reportlib.models import ProcessingReport, ReviewClaim
from reportlib.service import (
    INT32_MAX,
)

NOTE_MAX = 2000
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000
CLAIM_ATTEMPTS = 5
SORTS = ("oldest", "newest", "lowest_confidence")
# How free-text input for a field the pipeline marked missing is parsed (see
# parse_corrected_value); fields not listed are text.
FIELD_KINDS: Mapping[str, str] = {"debt_amount": "number", "reference_numbers": "list"}


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


class ValuesErasedError(ReviewError):
    """The report's values were purged or erased: there is nothing left to check, so it
    cannot be claimed or decided. It stays in the open queue's figures (a redaction
    changes no figure) until the email is processed again."""

    def __init__(self, report_id: int, erased_at: dt.datetime) -> None:
        self.report_id = report_id
        self.erased_at = erased_at
        super().__init__(
            f"report {report_id}: its values were erased on {erased_at:%Y-%m-%d}; "
            "there is nothing left to review"
        )


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
    #: When retention or an erasure request removed the values (None: they are there).
    values_erased_at: dt.datetime | None = None
    #: The rate this report was drawn at as an audit sample (None: it is not one).
    audit_rate: float | None = None

    @property
    def blind(self) -> bool:
        """An open audit sample: reviewed without its confidences and route."""
        return self.audit_rate is not None and self.is_open


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
    #: Decisions made within :data:`~reportlib.review.stats.ACTIVE_GAP_SECONDS` of the
    #: reviewer's previous one, and the seconds of those gaps: the reviewer's active time.
    timed_decisions: int = 0
    active_seconds: float = 0.0
    #: The median of those gaps: seconds per item while working (None without one).
    median_seconds_per_item: float | None = None

    @property
    def items_per_active_hour(self) -> float | None:
        """Timed decisions per hour of active time (None without any)."""
        if self.active_seconds <= 0:
            return None
        return self.timed_decisions / (self.active_seconds / 3600.0)

    @property
    def changed_share(self) -> float:
        """The share of decisions that changed something (corrected or rejected)."""
        return (self.corrected + self.rejected) / self.decisions if self.decisions else 0.0


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


def check_reviewer(reviewer: object) -> str:
    """Return the reviewer identity stripped, or raise :class:`ReviewInputError`."""
    try:
        return check_actor(reviewer, "reviewer")
    except ReportValidationError as exc:
        raise ReviewInputError(exc.field, exc.problem) from None


def check_positive(value: object, field_name: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ReviewInputError(field_name, f"must be a whole number between 1 and {maximum}")
    return value


def check_offset(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OFFSET:
        raise ReviewInputError("offset", f"must be a whole number between 0 and {MAX_OFFSET}")
    return value


def check_report_id(report_id: object) -> int:
    return check_positive(report_id, "report_id", INT32_MAX)


def db_now(db: Session) -> dt.datetime:
    # No table in the statement: name one, for sessions that bind reportlib by mapper.
    value = db.scalar(
        select(type_coerce(utcnow(), UTCDateTime())),
        bind_arguments={"mapper": ProcessingReport},
    )
    assert isinstance(value, dt.datetime)
    return value


def resolve_now(db: Session, now: dt.datetime | None) -> dt.datetime:
    return db_now(db) if now is None else check_aware(now, "now", error=ReviewInputError)


def claim_minutes_or_default(claim_minutes: int | None) -> int:
    if claim_minutes is None:
        return get_settings().review_claim_minutes
    return check_positive(claim_minutes, "claim_minutes", 24 * 60)


def verdict_label(name: object, position: int) -> str:
    return f"verdicts.{name}" if is_field_name(name) else f"verdicts[{position}]"


def unexpired_claim(
    now: dt.datetime | ColumnElement[Any], holder: str | None = None
) -> ColumnElement[bool]:
    # An alias, so the test stays a correlated subquery when the outer query joins claims.
    claim = aliased(ReviewClaim)
    conditions = [claim.report_id == ProcessingReport.id, claim.expires_at > now]
    if holder is not None:
        conditions.append(claim.reviewer == holder)
    return exists().where(*conditions).correlate(ProcessingReport)
