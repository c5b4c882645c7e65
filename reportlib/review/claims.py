"""Claims: take a report (or the next one) for review, and give it back."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    case,
    delete,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from reportlib.audit import record_audit_event
from reportlib.dialect import (
    UTCDateTime,
    insert_for,
    lock_rows,
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
    db: Session, report_id: int, reviewer: str, now: dt.datetime, minutes: int
) -> Claim | None:
    """One atomic statement: claim if open and free, expired, or already ours."""
    expires = now + dt.timedelta(minutes=minutes)
    source = select(
        ProcessingReport.id,
        literal(reviewer, String()),
        literal(now, UTCDateTime()),
        literal(expires, UTCDateTime()),
    ).where(ProcessingReport.id == report_id, _reviewable())
    stmt = insert_for(db)(ReviewClaim).from_select(
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


def queue_filters(*, intent: str | None, route: str | None) -> list[ColumnElement[bool]]:
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
    filters = queue_filters(intent=intent, route=route)
    db.flush()
    current = resolve_now(db, now)
    if resume:
        held = db.scalar(
            select(ReviewClaim.report_id)
            .join(ProcessingReport, ProcessingReport.id == ReviewClaim.report_id)
            .where(
                ReviewClaim.reviewer == reviewer,
                ReviewClaim.expires_at > current,
                _reviewable(),
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
            .where(_reviewable(), ~unexpired_claim(current), *filters)
            .order_by(ProcessingReport.created_at, ProcessingReport.id)
            .limit(1)
        )
        if tried:
            candidate_stmt = candidate_stmt.where(ProcessingReport.id.not_in(tried))
        candidate_stmt = lock_rows(db, candidate_stmt, of=ProcessingReport, skip_locked=True)
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
