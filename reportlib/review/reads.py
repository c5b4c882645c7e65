"""Reads: one report's review item and history, and the reviewer's queue list."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    func,
    select,
)
from sqlalchemy.orm import Session

from reportlib.config import get_settings
from reportlib.models import (
    ProcessingReport,
    ReviewClaim,
    ReviewDecision,
    ReviewFieldVerdict,
)
from reportlib.queries import open_review_condition
from reportlib.review.claims import (
    queue_filters,
)
from reportlib.review.decisions import (
    review_fields,
)
from reportlib.review.records import (
    MAX_LIMIT,
    SORTS,
    Claim,
    DecisionRecord,
    QueueItem,
    ReviewInputError,
    ReviewItem,
    VerdictRecord,
    check_offset,
    check_positive,
    check_report_id,
    check_reviewer,
    resolve_now,
    unexpired_claim,
)
from reportlib.service import (
    INT32_MAX,
)


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
    report_id = check_report_id(report_id)
    limit = check_positive(limit, "limit", MAX_LIMIT)
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
        ProcessingReport.id == check_report_id(report_id)
        if report_id is not None
        else ProcessingReport.email_id == check_positive(email_id, "email_id", INT32_MAX)
    )
    keys = tuple(key_fields) if key_fields is not None else get_settings().key_fields
    current = resolve_now(db, now)
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
            ProcessingReport.values_erased_at,
            ProcessingReport.audit_rate,
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
        fields=tuple(review_fields(row.extracted_fields, row.missing_fields, keys)),
        history=tuple(get_review_history(db, report_id=row.id, limit=history_limit)),
        values_erased_at=row.values_erased_at,
        audit_rate=row.audit_rate,
    )


def _claim_state_filters(
    now: dt.datetime, claimed: bool | None, held_by: str | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if claimed is True:
        conditions.append(unexpired_claim(now))
    elif claimed is False:
        conditions.append(~unexpired_claim(now))
    if held_by is not None:
        conditions.append(unexpired_claim(now, check_reviewer(held_by)))
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
    limit = check_positive(limit, "limit", MAX_LIMIT)
    offset = check_offset(offset)
    filters = queue_filters(intent=intent, route=route)
    current = resolve_now(db, now)
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
    filters = queue_filters(intent=intent, route=route)
    current = resolve_now(db, now)
    filters += _claim_state_filters(current, claimed, held_by)
    stmt = (
        select(func.count()).select_from(ProcessingReport).where(open_review_condition(), *filters)
    )
    return int(db.scalar(stmt) or 0)
