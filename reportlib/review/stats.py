"""Statistics: decisions in a window, queue throughput and per-reviewer figures."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    func,
    select,
)
from sqlalchemy.orm import Session

from reportlib.checks import (
    check_aware,
    check_window,
)
from reportlib.dialect import (
    seconds_between,
)
from reportlib.models import (
    REVIEW_OUTCOMES,
    ProcessingReport,
    ReviewClaim,
    ReviewDecision,
    ReviewFieldVerdict,
)
from reportlib.queries import open_review_condition
from reportlib.review.records import (
    MAX_LIMIT,
    DecisionSummary,
    QueueStats,
    ReviewerThroughput,
    ReviewInputError,
    check_offset,
    check_positive,
    check_reviewer,
    resolve_now,
)


def median_over(value: ColumnElement[Any], rank: Any, count: Any) -> ColumnElement[Any]:
    """The median as ``AVG(median_over(...))`` over rows ranked 1..count by ``value``.

    Portable (no ``percentile_cont`` on SQLite): the middle row, or the mean of the two
    middle rows, are those with ``count <= 2 * rank <= count + 2``.
    """
    return case((and_(2 * rank >= count, 2 * rank <= count + 2), value), else_=None)


#: A gap between two of a reviewer's decisions longer than this is a break, not work.
ACTIVE_GAP_SECONDS: Final = 600


def _active_time(
    db: Session, in_window: ColumnElement[bool], reviewers: list[str]
) -> dict[str, tuple[int, float, float | None]]:
    """Per reviewer of ``reviewers``: decisions made within ACTIVE_GAP_SECONDS of their
    previous one in the window, the seconds of those gaps, and their median."""
    d = ReviewDecision
    gaps = (
        select(
            d.reviewer,
            seconds_between(
                d.decided_at,
                func.lag(d.decided_at).over(partition_by=d.reviewer, order_by=(d.decided_at, d.id)),
            ).label("gap"),
        )
        .where(in_window, d.reviewer.in_(reviewers))
        .subquery()
    )
    working = (
        select(
            gaps.c.reviewer,
            gaps.c.gap,
            func.row_number().over(partition_by=gaps.c.reviewer, order_by=gaps.c.gap).label("rank"),
            func.count().over(partition_by=gaps.c.reviewer).label("n"),
        )
        .where(gaps.c.gap.is_not(None), gaps.c.gap <= ACTIVE_GAP_SECONDS)
        .subquery()
    )
    rows = db.execute(
        select(
            working.c.reviewer,
            func.count(),
            func.sum(working.c.gap),
            func.avg(median_over(working.c.gap, working.c.rank, working.c.n)),
        ).group_by(working.c.reviewer)
    ).all()
    return {
        reviewer: (int(n), float(total or 0.0), None if median is None else float(median))
        for reviewer, n, total, median in rows
    }


def review_window(
    start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime, default_days: int
) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)``: ``end`` defaults to ``now``, ``start`` to ``default_days`` before it."""
    start, end = check_window(start, end, error=ReviewInputError)
    window_end = now if end is None else end
    window_start = window_end - dt.timedelta(days=default_days) if start is None else start
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
    limit = check_positive(limit, "limit", MAX_LIMIT)
    offset = check_offset(offset)
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(
            ReviewDecision.decided_at >= check_aware(start, "start", error=ReviewInputError)
        )
    if end is not None:
        conditions.append(
            ReviewDecision.decided_at < check_aware(end, "end", error=ReviewInputError)
        )
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
    max_reviewers = check_positive(max_reviewers, "max_reviewers", MAX_LIMIT)
    current = resolve_now(db, now)
    window_start, window_end = review_window(start, end, current, 7)

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
    active = _active_time(db, in_window, [row.reviewer for row in reviewer_rows])
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
                timed_decisions=active.get(row.reviewer, (0, 0.0, None))[0],
                active_seconds=active.get(row.reviewer, (0, 0.0, None))[1],
                median_seconds_per_item=active.get(row.reviewer, (0, 0.0, None))[2],
            )
            for row in reviewer_rows
        ),
    )
