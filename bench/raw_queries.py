"""The dashboard's queries as they were before the daily rollups: raw scans, the baseline.

A copy of ``reportlib/queries.py`` at commit f1aa435, trimmed to what the pages call, so
one benchmark run can time each page both ways on the same data: this module reads
``processing_reports`` and ``review_decisions`` directly for every figure;
:mod:`reportlib.queries` reads the rollup tables. The per-field figures read
``report_fields`` then; that copy is gone (migration 0007), so they read the same rows
from the reports' JSON (:func:`reportlib.rollups.report_field_rows`), as a rollup of a
changed day does. It runs against the current
schema; the wide window index it was written for (``ix_processing_reports_window``) was
dropped in migration 0003, so the window aggregates here scan instead. The open review
queue is decided with ``NOT EXISTS`` over ``review_decisions``, as before (it does not
read ``review_closed_at``). :class:`~reportlib.queries.ReportFilter` is shared.

Same signatures and result shapes as :mod:`reportlib.queries`; not used by the dashboard.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from reportlib.config import get_settings
from reportlib.dialect import BINS, confidence_bin, is_postgresql, json_array_length, utc_date
from reportlib.errors import ReportValidationError
from reportlib.models import (
    ROUTES,
    IncomingEmail,
    ProcessingReport,
    ReviewDecision,
)
from reportlib.queries.window import ReportFilter, clean_labels, clean_routes
from reportlib.rollups import report_field_rows
from reportlib.service import INT32_MAX, INTENT_MAX

#: Stand-in for a NULL intent or review reason in filters and results.
NONE_LABEL: Final = "(none)"
#: Largest page the review queue returns; also the CSV export cap.
MAX_QUEUE_ROWS: Final = 10_000
#: At most this many distinct fields, intents or reasons appear in one breakdown.
MAX_GROUPS: Final = 50
PERCENTILES: Final = (0.5, 0.95)

#: Allow-list of review queue orders; ties always fall back to age, then id.
QUEUE_SORTS: Final[dict[str, str]] = {
    "oldest": "Oldest first",
    "lowest_confidence": "Lowest confidence first",
}


# The dialect constructs are reportlib's own (reportlib.dialect): only the queries are
# the previous release's.


def _is_postgresql(session: Session) -> bool:
    return is_postgresql(session)


def label_condition(column: Any, labels: tuple[str, ...]) -> ColumnElement[bool]:
    named = [label for label in labels if label != NONE_LABEL]
    parts: list[ColumnElement[bool]] = []
    if named:
        parts.append(column.in_(named))
    if NONE_LABEL in labels:
        parts.append(column.is_(None))
    return or_(*parts)


def _window(
    flt: ReportFilter, *, created_at: Any, intent: Any, route: Any
) -> list[ColumnElement[bool]]:
    start, end = flt.bounds()
    conditions: list[ColumnElement[bool]] = [created_at >= start, created_at < end]
    if flt.intents:
        conditions.append(label_condition(intent, flt.intents))
    if flt.routes:
        conditions.append(route.in_(flt.routes))
    return conditions


def report_window(flt: ReportFilter) -> list[ColumnElement[bool]]:
    r = ProcessingReport
    return _window(flt, created_at=r.created_at, intent=r.intent, route=r.confidence_route)


def _fields(flt: ReportFilter) -> Any:
    """The per-field rows of the filtered window's reports (columns of ``report_fields``)."""
    return report_field_rows(and_(*report_window(flt))).subquery("report_fields").c


def open_review_condition(*, as_of: dt.datetime | None = None) -> ColumnElement[bool]:
    """SQL condition on ``processing_reports``: the report is in the open review queue.

    Open means flagged (``needs_review``) with no review decision on the report's current
    processing: a decision records the ``created_at`` of the processing it reviewed, and
    re-processing moves ``created_at`` forward, so a report that is flagged again re-opens.
    Comparing the recorded processing, not the decision's clock, leaves no race between a
    decision and a re-processing committed at nearly the same instant. With ``as_of``, the queue as it stood at that instant: the
    report existed and no decision had been made yet.
    """
    r = ProcessingReport
    d = ReviewDecision
    decided = select(d.id).where(d.report_id == r.id, d.report_created_at >= r.created_at)
    conditions: list[ColumnElement[bool]] = [r.needs_review.expression]
    if as_of is not None:
        check_aware(as_of, "as_of")
        decided = decided.where(d.decided_at < as_of)
        conditions.append(r.created_at < as_of)
    conditions.append(~exists(decided))
    return and_(*conditions)


def check_aware(value: Any, name: str) -> None:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ReportValidationError(name, "must be a timezone-aware datetime")


def one_of(value: Any, allowed: Iterable[str], name: str) -> str:
    options = tuple(allowed)
    if value not in options:
        raise ReportValidationError(name, f"must be one of {', '.join(options)}")
    return str(value)


def check_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ReportValidationError(name, f"must be a whole number from {low} to {high}")
    return value


def most_frequent_first(column: Any) -> tuple[Any, ...]:
    # NULL sorts first on SQLite and last on PostgreSQL: put it last explicitly on both.
    return (func.count().desc(), column.is_(None), column)


def share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def bin_edges(index: int) -> tuple[float, float]:
    """Lower and upper edge of confidence bin ``index`` (the last bin includes 1.0)."""
    return index / BINS, (index + 1) / BINS


def bin_label(index: int) -> str:
    """``"0.85–0.90"``: a bin's range for axis labels."""
    low, high = bin_edges(index)
    return f"{low:.2f}–{high:.2f}"


# --------------------------------------------------------------------------------------
# Filter options and emptiness
# --------------------------------------------------------------------------------------


def has_reports(session: Session) -> bool:
    """Whether the database holds any report at all (to tell an empty database from an
    empty window)."""
    return session.execute(select(ProcessingReport.id).limit(1)).first() is not None


def list_intents(session: Session, *, flt: ReportFilter) -> list[str]:
    """Intents seen in the filter's date range (ignoring its intent and route choices),
    most frequent first; :data:`NONE_LABEL` stands for reports without one."""
    r = ProcessingReport
    date_only = ReportFilter(flt.start, flt.end)
    rows = session.execute(
        select(r.intent, func.count().label("n"))
        .where(*report_window(date_only))
        .group_by(r.intent)
        .order_by(*most_frequent_first(r.intent))
        .limit(200)
    ).all()
    return [NONE_LABEL if intent is None else intent for intent, _ in rows]


# --------------------------------------------------------------------------------------
# Overview
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The open review queue at an instant: its size and its oldest item."""

    as_of: dt.datetime
    size: int
    oldest_created_at: dt.datetime | None

    @property
    def oldest_age_s(self) -> float | None:
        """Seconds the oldest open item had waited at ``as_of``."""
        if self.oldest_created_at is None:
            return None
        return (self.as_of - self.oldest_created_at).total_seconds()


@dataclass(frozen=True, slots=True)
class PeriodKpis:
    """Headline numbers for one period."""

    start: dt.date
    end: dt.date
    reports: int
    avg_confidence: float | None
    flagged: int
    tokens: int
    timed_reports: int
    p50_processing_ms: float | None
    p95_processing_ms: float | None
    queue: QueueSnapshot

    @property
    def needs_review_share(self) -> float | None:
        """Flagged reports as a share of all reports (None for an empty period)."""
        return share(self.flagged, self.reports)


@dataclass(frozen=True, slots=True)
class OverviewKpis:
    """The selected period and the period of equal length right before it."""

    current: PeriodKpis
    previous: PeriodKpis


def percentile_from_sorted_pair(low: float, high: float, fraction: float) -> float:
    """Linear interpolation between the two closest ranks (see the module docstring)."""
    return low + fraction * (high - low)


def _sqlite_percentiles(
    session: Session, conditions: list[ColumnElement[bool]], count: int
) -> list[float | None]:
    # No percentile_cont on SQLite: fetch the two closest ranks with ORDER BY/LIMIT/OFFSET.
    if count == 0:
        return [None for _ in PERCENTILES]
    r = ProcessingReport
    results: list[float | None] = []
    for p in PERCENTILES:
        h = (count - 1) * p
        low_rank = math.floor(h)
        values: Sequence[Any] = session.scalars(
            select(r.processing_time_ms)
            .where(*conditions, r.processing_time_ms.is_not(None))
            .order_by(r.processing_time_ms)
            .limit(2)
            .offset(low_rank)
        ).all()
        low = float(values[0])
        high = float(values[1]) if len(values) > 1 else low
        results.append(percentile_from_sorted_pair(low, high, h - low_rank))
    return results


def queue_snapshot(
    session: Session,
    *,
    as_of: dt.datetime,
    intents: Sequence[str] = (),
    routes: Sequence[str] = (),
) -> QueueSnapshot:
    """Size and oldest item of the open review queue at ``as_of``, for the given intents
    and routes (all when empty), over all dates."""
    check_aware(as_of, "as_of")
    r = ProcessingReport
    conditions = [open_review_condition(as_of=as_of)]
    intent_labels = clean_labels(intents, "intents", INTENT_MAX)
    if intent_labels:
        conditions.append(label_condition(r.intent, intent_labels))
    if routes:
        conditions.append(r.confidence_route.in_(clean_routes(routes)))
    size, oldest = session.execute(
        select(func.count(), func.min(r.created_at)).where(*conditions)
    ).one()
    return QueueSnapshot(as_of=as_of, size=int(size), oldest_created_at=oldest)


def _period_kpis(session: Session, flt: ReportFilter, now: dt.datetime) -> PeriodKpis:
    r = ProcessingReport
    conditions = report_window(flt)
    columns: list[Any] = [
        func.count(),
        func.avg(r.overall_confidence),
        func.coalesce(func.sum(case((r.needs_review, 1), else_=0)), 0),
        func.coalesce(func.sum(r.total_tokens_used), 0),
        func.count(r.processing_time_ms),
    ]
    postgresql = _is_postgresql(session)
    if postgresql:
        columns += [
            type_coerce(func.percentile_cont(p).within_group(r.processing_time_ms), Float)
            for p in PERCENTILES
        ]
    row = session.execute(select(*columns).where(*conditions)).one()
    reports, avg_confidence, flagged, tokens, timed = row[:5]
    if postgresql:
        percentiles = [None if v is None else float(v) for v in row[5:]]
    else:
        percentiles = _sqlite_percentiles(session, conditions, int(timed))
    _, end = flt.bounds()
    queue = queue_snapshot(session, as_of=min(end, now), intents=flt.intents, routes=flt.routes)
    return PeriodKpis(
        start=flt.start,
        end=flt.end,
        reports=int(reports),
        avg_confidence=None if avg_confidence is None else float(avg_confidence),
        flagged=int(flagged),
        tokens=int(tokens),
        timed_reports=int(timed),
        p50_processing_ms=percentiles[0],
        p95_processing_ms=percentiles[1],
        queue=queue,
    )


def overview_kpis(session: Session, *, flt: ReportFilter, now: dt.datetime) -> OverviewKpis:
    """KPIs of the filtered period and of the previous period of equal length.

    The open queue is a snapshot at the end of each period (at ``now`` for a period that
    has not ended yet), counting open items of any age that match the intent and route
    filters.
    """
    check_aware(now, "now")
    return OverviewKpis(
        current=_period_kpis(session, flt, now), previous=_period_kpis(session, flt.previous(), now)
    )


DAILY_COLUMNS: Final = (
    "day",
    "reports",
    "high",
    "medium",
    "low",
    "flagged",
    "needs_review_rate",
    "avg_confidence",
)


def daily_trends(session: Session, *, flt: ReportFilter) -> pd.DataFrame:
    """One row per UTC day of the range (days without reports included, with zeros).

    Columns: ``day`` (date), ``reports``, ``high``/``medium``/``low`` (reports per route),
    ``flagged``, ``needs_review_rate`` and ``avg_confidence`` (NaN on empty days).
    """
    r = ProcessingReport
    day = utc_date(r.created_at)
    rows = session.execute(
        select(
            day.label("day"),
            r.confidence_route,
            func.count(),
            func.sum(case((r.needs_review, 1), else_=0)),
            func.sum(r.overall_confidence),
        )
        .where(*report_window(flt))
        .group_by(day, r.confidence_route)
        .order_by(day, r.confidence_route)
        .limit(flt.days * len(ROUTES))
    ).all()
    by_day: dict[dt.date, dict[str, float]] = {
        d: {"reports": 0, "high": 0, "medium": 0, "low": 0, "flagged": 0, "confidence": 0.0}
        for d in flt.dates()
    }
    for day_value, route, count, flagged, confidence_sum in rows:
        bucket = by_day[day_value]
        bucket["reports"] += count
        bucket[route] += count
        bucket["flagged"] += flagged
        bucket["confidence"] += float(confidence_sum)
    records = [
        (
            d,
            int(b["reports"]),
            int(b["high"]),
            int(b["medium"]),
            int(b["low"]),
            int(b["flagged"]),
            share(b["flagged"], b["reports"]),
            share(b["confidence"], b["reports"]),
        )
        for d, b in by_day.items()
    ]
    frame = pd.DataFrame.from_records(records, columns=list(DAILY_COLUMNS))
    return frame.astype({"needs_review_rate": "float64", "avg_confidence": "float64"})


# --------------------------------------------------------------------------------------
# Confidence
# --------------------------------------------------------------------------------------


def confidence_histogram(session: Session, *, flt: ReportFilter) -> pd.DataFrame:
    """Overall confidence in :data:`BINS` fixed bins, per route.

    One row per (bin, route) for every bin and every route in the filter (all three
    when unfiltered), zeros included. Columns: ``bin``, ``lower``, ``upper``, ``label``,
    ``route``, ``reports``.
    """
    r = ProcessingReport
    bucket = confidence_bin(r.overall_confidence)
    rows = session.execute(
        select(bucket.label("bin"), r.confidence_route, func.count())
        .where(*report_window(flt))
        .group_by(bucket, r.confidence_route)
        .order_by(bucket, r.confidence_route)
        .limit(BINS * len(ROUTES))
    ).all()
    counts = {(int(b), route): int(n) for b, route, n in rows}
    routes = flt.routes or ROUTES
    records = [
        (i, *bin_edges(i), bin_label(i), route, counts.get((i, route), 0))
        for i in range(BINS)
        for route in routes
    ]
    return pd.DataFrame.from_records(
        records, columns=["bin", "lower", "upper", "label", "route", "reports"]
    )


def ordered_fields(names: Iterable[str], key_fields: Sequence[str]) -> list[str]:
    present = set(names)
    return [f for f in key_fields if f in present] + sorted(present - set(key_fields))


def key_field_names(key_fields: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(key_fields) if key_fields is not None else get_settings().key_fields


def field_confidence_summary(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per field: how often it was extracted or missing, and its mean/min/max confidence.

    Key fields come first (in settings order, even when never seen), then the
    :data:`MAX_GROUPS` most frequent other fields by name. Columns: ``field``,
    ``extracted``, ``missing``, ``avg_confidence``, ``min_confidence``,
    ``max_confidence``.
    """
    keys = key_field_names(key_fields)
    rf = _fields(flt)
    rows = session.execute(
        select(
            rf.field_name,
            func.sum(case((rf.is_missing, 0), else_=1)),
            func.sum(case((rf.is_missing, 1), else_=0)),
            func.avg(rf.confidence),
            func.min(rf.confidence),
            func.max(rf.confidence),
        )
        .group_by(rf.field_name)
        .order_by(func.count().desc(), rf.field_name)
        .limit(MAX_GROUPS + len(keys))
    ).all()
    found = {row[0]: row for row in rows}
    names = ordered_fields(list(found) + list(keys), keys)[: MAX_GROUPS + len(keys)]
    records = []
    for name in names:
        _, extracted, missing, avg, low, high = found.get(name, (name, 0, 0, None, None, None))
        records.append(
            (
                name,
                int(extracted),
                int(missing),
                None if avg is None else float(avg),
                None if low is None else float(low),
                None if high is None else float(high),
            )
        )
    frame = pd.DataFrame.from_records(
        records,
        columns=[
            "field",
            "extracted",
            "missing",
            "avg_confidence",
            "min_confidence",
            "max_confidence",
        ],
    )
    return frame.astype(
        {"avg_confidence": "float64", "min_confidence": "float64", "max_confidence": "float64"}
    )


def field_confidence_histogram(
    session: Session, *, flt: ReportFilter, fields: Sequence[str]
) -> pd.DataFrame:
    """Confidence of each extracted field in the fixed bins, for the given fields.

    One row per (field, bin), zeros included, fields in the given order. Columns:
    ``field``, ``bin``, ``lower``, ``upper``, ``label``, ``values``, ``share`` (of that
    field's extracted values; NaN when it has none).
    """
    names = list(dict.fromkeys(fields))[: MAX_GROUPS * 2]
    rf = _fields(flt)
    counts: dict[tuple[str, int], int] = {}
    if names:
        bucket = confidence_bin(rf.confidence)
        rows = session.execute(
            select(rf.field_name, bucket.label("bin"), func.count())
            .where(
                rf.field_name.in_(names),
                rf.confidence.is_not(None),
                ~rf.is_missing,
            )
            .group_by(rf.field_name, bucket)
            .order_by(rf.field_name, bucket)
            .limit(len(names) * BINS)
        ).all()
        counts = {(name, int(b)): int(n) for name, b, n in rows}
    totals = {name: sum(counts.get((name, i), 0) for i in range(BINS)) for name in names}
    records = [
        (
            name,
            i,
            *bin_edges(i),
            bin_label(i),
            counts.get((name, i), 0),
            share(counts.get((name, i), 0), totals[name]),
        )
        for name in names
        for i in range(BINS)
    ]
    frame = pd.DataFrame.from_records(
        records, columns=["field", "bin", "lower", "upper", "label", "values", "share"]
    )
    return frame.astype({"share": "float64"})


def confidence_by_intent(session: Session, *, flt: ReportFilter) -> pd.DataFrame:
    """Per intent (most reports first, at most :data:`MAX_GROUPS`): reports, mean overall
    confidence, reports per route and flagged reports.

    Columns: ``intent`` (:data:`NONE_LABEL` for none), ``reports``, ``avg_confidence``,
    ``high``, ``medium``, ``low``, ``flagged``, ``needs_review_rate``.
    """
    r = ProcessingReport

    def per_route(route: str) -> Any:
        return func.sum(case((r.confidence_route == route, 1), else_=0))

    rows = session.execute(
        select(
            r.intent,
            func.count(),
            func.avg(r.overall_confidence),
            per_route("high"),
            per_route("medium"),
            per_route("low"),
            func.sum(case((r.needs_review, 1), else_=0)),
        )
        .where(*report_window(flt))
        .group_by(r.intent)
        .order_by(*most_frequent_first(r.intent))
        .limit(MAX_GROUPS)
    ).all()
    records = [
        (
            NONE_LABEL if intent is None else intent,
            int(n),
            float(avg),
            int(high),
            int(medium),
            int(low),
            int(flagged),
            flagged / n,
        )
        for intent, n, avg, high, medium, low, flagged in rows
    ]
    return pd.DataFrame.from_records(
        records,
        columns=[
            "intent",
            "reports",
            "avg_confidence",
            "high",
            "medium",
            "low",
            "flagged",
            "needs_review_rate",
        ],
    )


@dataclass(frozen=True, slots=True)
class RouteThresholdWhatIf:
    """What a review threshold on overall confidence would do in the filtered period."""

    threshold: float
    reports: int
    below: int
    below_not_flagged: int
    flagged_at_or_above: int

    @property
    def below_share(self) -> float | None:
        """Reports below the threshold as a share of all reports."""
        return share(self.below, self.reports)


def route_threshold_what_if(
    session: Session, *, flt: ReportFilter, threshold: float
) -> RouteThresholdWhatIf:
    """How many reports have overall confidence strictly below ``threshold``; of those,
    how many are not flagged today; and how many flagged ones are at or above it."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ReportValidationError("threshold", "must be a number between 0 and 1")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ReportValidationError("threshold", "must be between 0 and 1")
    t = float(threshold)
    r = ProcessingReport
    below = r.overall_confidence < t
    reports, n_below, below_unflagged, flagged_above = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((below, 1), else_=0)), 0),
            func.coalesce(func.sum(case((and_(below, ~r.needs_review), 1), else_=0)), 0),
            func.coalesce(func.sum(case((and_(~below, r.needs_review), 1), else_=0)), 0),
        ).where(*report_window(flt))
    ).one()
    return RouteThresholdWhatIf(
        threshold=t,
        reports=int(reports),
        below=int(n_below),
        below_not_flagged=int(below_unflagged),
        flagged_at_or_above=int(flagged_above),
    )


# --------------------------------------------------------------------------------------
# Missing fields
# --------------------------------------------------------------------------------------


def count_reports(session: Session, *, flt: ReportFilter) -> int:
    """Number of reports in the filtered window."""
    return int(
        session.execute(
            select(func.count()).select_from(ProcessingReport).where(*report_window(flt))
        ).scalar_one()
    )


def missing_field_frequency(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """How often each field was missing: a count and a share of the window's reports.

    Key fields always appear (with 0 when never missing), followed by other fields that
    went missing; most missing first. Columns: ``field``, ``missing``, ``reports``,
    ``share``.
    """
    keys = key_field_names(key_fields)
    rf = _fields(flt)
    rows = session.execute(
        select(rf.field_name, func.count())
        .where(rf.is_missing)
        .group_by(rf.field_name)
        .order_by(func.count().desc(), rf.field_name)
        .limit(MAX_GROUPS + len(keys))
    ).all()
    total = count_reports(session, flt=flt)
    counts = {name: int(n) for name, n in rows}
    names = ordered_fields(list(counts) + list(keys), keys)
    # Most missing first; ties keep key-field order, then names.
    names.sort(key=lambda name: -counts.get(name, 0))
    records = [
        (name, counts.get(name, 0), total, share(counts.get(name, 0), total)) for name in names
    ]
    frame = pd.DataFrame.from_records(records, columns=["field", "missing", "reports", "share"])
    return frame.astype({"share": "float64"})


def missing_fields_daily(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per UTC day and field: missing count and share of that day's reports.

    One row per (day, field) for every day of the range and every key field plus any
    other field that went missing. Columns: ``day``, ``field``, ``missing``, ``reports``,
    ``share`` (NaN on days without reports).
    """
    keys = key_field_names(key_fields)
    rf = _fields(flt)
    r = ProcessingReport
    field_day = utc_date(rf.created_at)
    rows = session.execute(
        select(field_day.label("day"), rf.field_name, func.count())
        .where(rf.is_missing)
        .group_by(field_day, rf.field_name)
        .order_by(field_day, rf.field_name)
        .limit(flt.days * (MAX_GROUPS + len(keys)))
    ).all()
    report_day = utc_date(r.created_at)
    totals = dict(
        session.execute(
            select(report_day.label("day"), func.count())
            .where(*report_window(flt))
            .group_by(report_day)
            .order_by(report_day)
            .limit(flt.days)
        ).all()
    )
    counts = {(d, name): int(n) for d, name, n in rows}
    names = ordered_fields([name for _, name in counts] + list(keys), keys)
    records = [
        (
            d,
            name,
            counts.get((d, name), 0),
            int(totals.get(d, 0)),
            share(counts.get((d, name), 0), totals.get(d, 0)),
        )
        for d in flt.dates()
        for name in names
    ]
    frame = pd.DataFrame.from_records(
        records, columns=["day", "field", "missing", "reports", "share"]
    )
    return frame.astype({"share": "float64"})


def missing_fields_by_intent(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per intent and field: missing count and share of that intent's reports.

    Intents with reports in the window (most reports first, at most :data:`MAX_GROUPS`)
    times key fields plus other fields that went missing. Columns: ``intent``,
    ``field``, ``missing``, ``reports``, ``share``.
    """
    keys = key_field_names(key_fields)
    rf = _fields(flt)
    r = ProcessingReport
    intents = session.execute(
        select(r.intent, func.count())
        .where(*report_window(flt))
        .group_by(r.intent)
        .order_by(*most_frequent_first(r.intent))
        .limit(MAX_GROUPS)
    ).all()
    rows = session.execute(
        select(rf.intent, rf.field_name, func.count())
        .where(rf.is_missing)
        .group_by(rf.intent, rf.field_name)
        .order_by(rf.intent.is_(None), rf.intent, rf.field_name)
        .limit(MAX_GROUPS * (MAX_GROUPS + len(keys)))
    ).all()
    counts = {(intent, name): int(n) for intent, name, n in rows}
    names = ordered_fields([name for _, name in counts] + list(keys), keys)
    records = [
        (
            NONE_LABEL if intent is None else intent,
            name,
            counts.get((intent, name), 0),
            int(n),
            counts.get((intent, name), 0) / n,
        )
        for intent, n in intents
        for name in names
    ]
    return pd.DataFrame.from_records(
        records, columns=["intent", "field", "missing", "reports", "share"]
    )


def missing_field_cooccurrence(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """Which fields go missing together.

    One row per ordered pair (``field``, ``other``) of fields, including ``field ==
    other`` (the field's own missing count): ``reports`` where both were missing, and
    ``share`` = that count divided by the reports where ``field`` was missing (NaN when
    it never was). Columns: ``field``, ``other``, ``reports``, ``share``.
    """
    keys = key_field_names(key_fields)
    rf = _fields(flt)
    # Read once, joined to itself.
    missing = select(rf.report_id, rf.field_name).where(rf.is_missing).cte("missing")
    a, b = missing.alias("a"), missing.alias("b")
    rows = session.execute(
        select(a.c.field_name, b.c.field_name, func.count())
        .join_from(a, b, b.c.report_id == a.c.report_id)
        .group_by(a.c.field_name, b.c.field_name)
        .order_by(a.c.field_name, b.c.field_name)
        .limit((MAX_GROUPS + len(keys)) ** 2)
    ).all()
    counts = {(x, y): int(n) for x, y, n in rows}
    names = ordered_fields([x for x, _ in counts] + list(keys), keys)
    records = [
        (x, y, counts.get((x, y), 0), share(counts.get((x, y), 0), counts.get((x, x), 0)))
        for x in names
        for y in names
    ]
    frame = pd.DataFrame.from_records(records, columns=["field", "other", "reports", "share"])
    return frame.astype({"share": "float64"})


def missing_count_distribution(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """How many reports miss 0, 1, 2, ... fields (up to the number of key fields, or more
    if a report lists more). Columns: ``missing_fields``, ``reports``, ``share``."""
    keys = key_field_names(key_fields)
    rf = _fields(flt)
    per_report = (
        select(rf.report_id, func.count().label("n"))
        .where(rf.is_missing)
        .group_by(rf.report_id)
        .subquery()
    )
    rows = session.execute(
        select(per_report.c.n, func.count())
        .group_by(per_report.c.n)
        .order_by(per_report.c.n)
        .limit(MAX_GROUPS + len(keys))
    ).all()
    total = count_reports(session, flt=flt)
    counts = {int(n): int(c) for n, c in rows}
    with_missing = sum(counts.values())
    counts[0] = total - with_missing
    top = max([len(keys), *counts])
    records = [(n, counts.get(n, 0), share(counts.get(n, 0), total)) for n in range(top + 1)]
    frame = pd.DataFrame.from_records(records, columns=["missing_fields", "reports", "share"])
    return frame.astype({"share": "float64"})


# --------------------------------------------------------------------------------------
# Review queue and drill-down
# --------------------------------------------------------------------------------------


def _queue_conditions(flt: ReportFilter, reasons: Sequence[str]) -> list[ColumnElement[bool]]:
    conditions = [*report_window(flt), open_review_condition()]
    if reasons:
        labels = clean_labels(reasons, "reasons", 100)
        conditions.append(label_condition(ProcessingReport.review_reason, labels))
    return conditions


QUEUE_COLUMNS: Final = (
    "email_id",
    "created_at",
    "review_reason",
    "intent",
    "confidence_route",
    "overall_confidence",
    "missing_fields",
)


def review_queue_page(
    session: Session,
    *,
    flt: ReportFilter,
    sort: str = "oldest",
    limit: int = 50,
    offset: int = 0,
    reasons: Sequence[str] = (),
) -> pd.DataFrame:
    """One page of open review items created in the filtered window.

    ``sort`` is ``"oldest"`` (by ``created_at``) or ``"lowest_confidence"``; ties fall back
    to age, then report id, so pages never overlap. ``reasons`` limits to those review
    reasons (:data:`NONE_LABEL` for none). Columns: :data:`QUEUE_COLUMNS`; ``created_at``
    is UTC, ``missing_fields`` is the number of missing fields.
    """
    one_of(sort, QUEUE_SORTS, "sort")
    check_int(limit, "limit", 1, MAX_QUEUE_ROWS)
    check_int(offset, "offset", 0, INT32_MAX)
    r = ProcessingReport
    order: list[Any] = [r.created_at, r.id]
    if sort == "lowest_confidence":
        order.insert(0, r.overall_confidence)
    rows = session.execute(
        select(
            r.email_id,
            r.created_at,
            r.review_reason,
            r.intent,
            r.confidence_route,
            r.overall_confidence,
            json_array_length(r.missing_fields).label("missing_fields"),
        )
        .where(*_queue_conditions(flt, reasons))
        .order_by(*order)
        .limit(limit)
        .offset(offset)
    ).all()
    frame = pd.DataFrame.from_records([tuple(row) for row in rows], columns=list(QUEUE_COLUMNS))
    return frame.astype(
        {
            "email_id": "int64",
            "overall_confidence": "float64",
            "missing_fields": "int64",
            "created_at": "datetime64[us, UTC]",
        }
    )


def count_review_queue_in_window(
    session: Session, *, flt: ReportFilter, reasons: Sequence[str] = ()
) -> int:
    """Number of open review items created in the filtered window."""
    return int(
        session.execute(
            select(func.count())
            .select_from(ProcessingReport)
            .where(*_queue_conditions(flt, reasons))
        ).scalar_one()
    )


def review_queue_reasons(session: Session, *, flt: ReportFilter) -> pd.DataFrame:
    """Review reasons of open items in the window, most frequent first (at most
    :data:`MAX_GROUPS`). Columns: ``review_reason`` (:data:`NONE_LABEL` for none),
    ``items``."""
    r = ProcessingReport
    rows = session.execute(
        select(r.review_reason, func.count())
        .where(*_queue_conditions(flt, ()))
        .group_by(r.review_reason)
        .order_by(*most_frequent_first(r.review_reason))
        .limit(MAX_GROUPS)
    ).all()
    return pd.DataFrame.from_records(
        [(NONE_LABEL if reason is None else reason, int(n)) for reason, n in rows],
        columns=["review_reason", "items"],
    )


@dataclass(frozen=True, slots=True)
class FieldDetail:
    """One extracted field of a report. ``value`` is untrusted text from an email."""

    name: str
    value: Any
    confidence: float | None
    source: str | None


@dataclass(frozen=True, slots=True)
class ReportDetail:
    """Everything the drill-down shows about one report and its email."""

    report_id: int
    email_id: int
    created_at: dt.datetime
    overall_confidence: float
    confidence_route: str
    needs_review: bool
    open_for_review: bool
    review_reason: str | None
    intent: str | None
    sources_processed: int
    total_tokens_used: int
    processing_time_ms: int | None
    subject: str | None
    sender: str | None
    received_at: dt.datetime | None
    fields: tuple[FieldDetail, ...] = field(default=())
    missing_fields: tuple[str, ...] = field(default=())


def _float_or_none(value: Any) -> float | None:
    # Decimal from the exact JSON codec, or anything a foreign writer stored.
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def get_report_detail(
    session: Session, *, email_id: int, key_fields: Sequence[str] | None = None
) -> ReportDetail | None:
    """The report for ``email_id`` with its email's details, or None if there is none.

    Fields are listed key fields first (settings order), then the rest by name.
    """
    check_int(email_id, "email_id", 1, INT32_MAX)
    keys = key_field_names(key_fields)
    r = ProcessingReport
    e = IncomingEmail
    row = session.execute(
        select(r, e.subject, e.sender, e.received_at)
        .outerjoin(e, e.id == r.email_id)
        .where(r.email_id == email_id)
        .limit(1)
    ).one_or_none()
    if row is None:
        return None
    report, subject, sender, received_at = row
    is_open: Any = session.execute(
        select(literal_column("1")).where(r.id == report.id, open_review_condition()).limit(1)
    ).first()
    extracted = report.extracted_fields if isinstance(report.extracted_fields, dict) else {}
    fields = []
    for name in ordered_fields(extracted, keys):
        item = extracted[name]
        if isinstance(item, dict):
            source = item.get("source")
            fields.append(
                FieldDetail(
                    name=name,
                    value=item.get("value"),
                    confidence=_float_or_none(item.get("confidence")),
                    source=None if source is None else str(source),
                )
            )
        else:
            fields.append(FieldDetail(name=name, value=item, confidence=None, source=None))
    missing = report.missing_fields if isinstance(report.missing_fields, list) else []
    return ReportDetail(
        report_id=report.id,
        email_id=report.email_id,
        created_at=report.created_at,
        overall_confidence=report.overall_confidence,
        confidence_route=report.confidence_route,
        needs_review=report.needs_review,
        open_for_review=is_open is not None,
        review_reason=report.review_reason,
        intent=report.intent,
        sources_processed=report.sources_processed,
        total_tokens_used=report.total_tokens_used,
        processing_time_ms=report.processing_time_ms,
        subject=subject,
        sender=sender,
        received_at=received_at,
        fields=tuple(fields),
        missing_fields=tuple(str(name) for name in missing),
    )
