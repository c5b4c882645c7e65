"""Claims: take a report (or the next one) for review, and give it back."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    case,
    delete,
    or_,
    select,
)
from sqlalchemy.orm import Session

from reportlib.audit import record_audit_event
from reportlib.dialect import (
    UTCDateTime,
    dialect_name,
    insert_for_dialect,
    lock_rows_for_dialect,
)
from reportlib.errors import ReviewError
from reportlib.models import ROUTES, ProcessingReport, ReviewClaim
from reportlib.queries import open_review_condition
from reportlib.review.records import (
    CLAIM_ATTEMPTS,
    AlreadyDecidedError,
    Claim,
    ClaimConflictError,
    NotInQueueError,
    ReviewInputError,
    ValuesErasedError,
    check_report_id,
    check_reviewer,
    claim_minutes_or_default,
    resolve_now,
    unexpired_claim,
)


def _reviewable() -> ColumnElement[bool]:
    """Open, and its values still there: an erased report has nothing left to check."""
    return and_(open_review_condition(), ProcessingReport.values_erased_at.is_(None))


def _try_claim(
    db: Session,
    report_id: int,
    reviewer: str,
    now: dt.datetime,
    minutes: int,
    *,
    email_id: int | None = None,
) -> Claim | None:
    """One atomic statement: claim if open and free, expired, or already ours.
    ``email_id``: the report's, when the caller read it already."""
    row = db.execute(
        _claim_statement(dialect_name(db)),
        {
            "report_id": report_id,
            "reviewer": reviewer,
            "now": now,
            "expires": now + dt.timedelta(minutes=minutes),
        },
        # A Core statement: name the mapper, for hosts that bind reportlib's tables by it.
        bind_arguments={"mapper": ReviewClaim},
    ).one_or_none()
    if row is None:
        return None
    if email_id is None:
        email_id = db.scalar(_EMAIL_OF_REPORT, {"report_id": report_id})
    assert email_id is not None
    return Claim(
        report_id=report_id,
        email_id=email_id,
        reviewer=reviewer,
        claimed_at=row.claimed_at,
        expires_at=row.expires_at,
    )


# The statements of a claim are built once (per dialect and filter shape) with bound
# parameters: building them anew on every call cost more than the database spent on
# them.
_NOW = bindparam("now", type_=UTCDateTime())
_EMAIL_OF_REPORT = select(ProcessingReport.email_id).where(
    ProcessingReport.id == bindparam("report_id")
)


@functools.cache
def _claim_statement(dialect: str) -> Any:
    # On the table, not the entity: an ORM INSERT executed with parameters would take the
    # ORM's bulk path.
    claims = ReviewClaim.__table__.c
    source = select(
        ProcessingReport.id,
        bindparam("reviewer", type_=String()),
        _NOW,
        bindparam("expires", type_=UTCDateTime()),
    ).where(ProcessingReport.id == bindparam("report_id"), _reviewable())
    stmt = insert_for_dialect(dialect)(ReviewClaim.__table__).from_select(
        ["report_id", "reviewer", "claimed_at", "expires_at"], source
    )
    excluded = stmt.excluded
    # A reviewer renewing an unexpired claim keeps its start; anyone else starts afresh.
    renewing = and_(claims.reviewer == excluded.reviewer, claims.expires_at > _NOW)
    return stmt.on_conflict_do_update(
        index_elements=[claims.report_id],
        set_={
            "reviewer": excluded.reviewer,
            "claimed_at": case((renewing, claims.claimed_at), else_=excluded.claimed_at),
            "expires_at": excluded.expires_at,
        },
        where=or_(claims.expires_at <= _NOW, claims.reviewer == excluded.reviewer),
    ).returning(claims.claimed_at, claims.expires_at)


def _queue_conditions(intent: bool, route: bool) -> list[ColumnElement[bool]]:
    """The queue filters of :func:`queue_filters` as bound parameters."""
    conditions: list[ColumnElement[bool]] = []
    if intent:
        conditions.append(ProcessingReport.intent == bindparam("intent"))
    if route:
        conditions.append(ProcessingReport.confidence_route == bindparam("route"))
    return conditions


@functools.cache
def _held_statement(intent: bool, route: bool) -> Any:
    """The oldest open report ``reviewer`` holds an unexpired claim on, and its email."""
    return (
        select(ReviewClaim.report_id, ProcessingReport.email_id)
        .join(ProcessingReport, ProcessingReport.id == ReviewClaim.report_id)
        .where(
            ReviewClaim.reviewer == bindparam("reviewer"),
            ReviewClaim.expires_at > _NOW,
            _reviewable(),
            *_queue_conditions(intent, route),
        )
        .order_by(ReviewClaim.claimed_at, ReviewClaim.report_id)
        .limit(1)
    )


@functools.cache
def _candidate_statement(dialect: str, intent: bool, route: bool, excluding: bool) -> Any:
    """The oldest open report nobody holds, and its email; with ``excluding``, not one
    of ``tried``. Locked (rows another transaction holds skipped) on PostgreSQL."""
    stmt = (
        select(ProcessingReport.id, ProcessingReport.email_id)
        .where(_reviewable(), ~unexpired_claim(_NOW), *_queue_conditions(intent, route))
        .order_by(ProcessingReport.created_at, ProcessingReport.id)
        .limit(1)
    )
    if excluding:
        stmt = stmt.where(ProcessingReport.id.not_in(bindparam("tried", expanding=True)))
    return lock_rows_for_dialect(dialect, stmt, of=ProcessingReport, skip_locked=True)


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
        select(
            ProcessingReport.needs_review,
            ProcessingReport.values_erased_at,
            open_review_condition().label("is_open"),
        ).where(ProcessingReport.id == report_id)
    ).one_or_none()
    if report is None:
        raise ReviewError(f"report {report_id} does not exist")
    if not report.needs_review:
        raise NotInQueueError(f"report {report_id} is not flagged for review")
    if not report.is_open:
        raise AlreadyDecidedError(
            f"report {report_id} was already decided for its current processing"
        )
    if report.values_erased_at is not None:
        raise ValuesErasedError(report_id, report.values_erased_at)
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
    :class:`ValuesErasedError` when its values were erased, :class:`ReviewInputError` on
    bad arguments. Writes a ``review_claimed`` audit row.
    Flushes; never commits.
    """
    reviewer = check_reviewer(reviewer)
    report_id = check_report_id(report_id)
    minutes = claim_minutes_or_default(claim_minutes)
    db.flush()
    current = resolve_now(db, now)
    claim = _try_claim(db, report_id, reviewer, current, minutes)
    if claim is None:
        _raise_unclaimable(db, report_id, current)
    assert claim is not None
    _audit_claim(db, claim, minutes, current)
    return claim


def check_queue_filters(*, intent: object, route: object) -> None:
    """Raise :class:`ReviewInputError` naming ``intent`` or ``route`` when it is not a
    valid queue filter (None: no filter)."""
    if intent is not None and not isinstance(intent, str):
        raise ReviewInputError("intent", "must be text")
    if route is not None and route not in ROUTES:
        raise ReviewInputError("route", "must be one of " + ", ".join(ROUTES))


def queue_filters(*, intent: str | None, route: str | None) -> list[ColumnElement[bool]]:
    check_queue_filters(intent=intent, route=route)
    conditions: list[ColumnElement[bool]] = []
    if intent is not None:
        conditions.append(ProcessingReport.intent == intent)
    if route is not None:
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
    """Claim the oldest open report nobody holds whose values are still there; None when
    there is none.

    With ``resume`` (the default) a reviewer who already holds an open report gets that
    one back, renewed, instead of a second one. ``intent``/``route`` restrict the choice.
    Two concurrent callers never get the same report: on PostgreSQL the candidate row is
    locked with ``FOR UPDATE SKIP LOCKED``, and the claim itself is one atomic upsert that
    refuses a report someone else holds; a lost race moves on to the next candidate, a
    bounded number of times, then raises :class:`ReviewError`. Flushes; never commits.
    """
    reviewer = check_reviewer(reviewer)
    minutes = claim_minutes_or_default(claim_minutes)
    check_queue_filters(intent=intent, route=route)
    shape = (intent is not None, route is not None)
    db.flush()
    current = resolve_now(db, now)
    params: dict[str, Any] = {
        "reviewer": reviewer,
        "now": current,
        "intent": intent,
        "route": route,
    }
    if resume:
        held = db.execute(_held_statement(*shape), params).one_or_none()
        if held is not None:
            claim = _try_claim(
                db, held.report_id, reviewer, current, minutes, email_id=held.email_id
            )
            if claim is not None:
                _audit_claim(db, claim, minutes, current)
                return claim
    dialect = dialect_name(db)
    tried: list[int] = []
    for _attempt in range(CLAIM_ATTEMPTS):
        candidate = db.execute(
            _candidate_statement(dialect, *shape, bool(tried)), {**params, "tried": tried}
        ).one_or_none()
        if candidate is None:
            return None
        claim = _try_claim(
            db, candidate.id, reviewer, current, minutes, email_id=candidate.email_id
        )
        if claim is not None:
            _audit_claim(db, claim, minutes, current)
            return claim
        tried.append(candidate.id)
    raise ReviewError("the queue is busy: no report could be claimed; try again")


def release_claim(
    db: Session, *, report_id: int, reviewer: str, now: dt.datetime | None = None
) -> bool:
    """Give up ``reviewer``'s claim on ``report_id``; False when they held none.

    Only one's own claim can be released. Writes a ``review_claim_released`` audit row.
    Flushes; never commits.
    """
    reviewer = check_reviewer(reviewer)
    report_id = check_report_id(report_id)
    db.flush()
    current = resolve_now(db, now)
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
