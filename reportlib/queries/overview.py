"""Overview page: both periods' KPIs with exact percentiles, open-queue snapshots and
daily trends."""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from reportlib.checks import (
    check_aware,
    share,
)
from reportlib.dialect import UTCDateTime, as_date
from reportlib.models import (
    PROCESSING_TIME_BUCKET_MS,
    PROCESSING_TIME_BUCKET_SQL,
    PROCESSING_TIME_BUCKETS,
    ROUTES,
    ProcessingReport,
    ms_bucket_column,
)
from reportlib.queries.window import (
    Dims,
    Labels,
    ReportFilter,
    clean_labels,
    clean_routes,
    dim_conditions,
    dims_params,
    filter_params,
    records_frame,
    report_window,
    rollup_read,
    sum_or_zero,
)
from reportlib.rollups import (
    BY_TABLE,
    STATEMENT_CACHE_SIZE,
    Dirty,
    SourceShape,
    plan_source,
    read_dirty,
    source_rows,
)
from reportlib.service import INT32_MAX, INTENT_MAX, utc_day_bounds

PERCENTILES: Final = (0.5, 0.95)
KPI_COLUMNS: Final = ("reports", "confidence_sum", "tokens", "timed_reports")
MS_BUCKET_COLUMNS: Final = tuple(ms_bucket_column(b) for b in range(PROCESSING_TIME_BUCKETS))
#: Distinct processing times read for one bucket (the last, open-ended one included).
MAX_BUCKET_VALUES: Final = 100_000


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


def _bucket_range(bucket: int) -> tuple[int, int]:
    low = bucket * PROCESSING_TIME_BUCKET_MS
    # The last bucket also holds every longer time.
    high = low + PROCESSING_TIME_BUCKET_MS if bucket < PROCESSING_TIME_BUCKETS - 1 else INT32_MAX
    return low, high


def _bucket_values(
    session: Session, flt: ReportFilter, buckets: Sequence[int], dirty: Dirty
) -> dict[int, list[tuple[int, int]]]:
    """Distinct processing times in each of ``buckets`` within the window, ascending, with
    their counts: ``{bucket: [(ms, reports), ...]}``, in one statement."""
    params: dict[str, Any] = {}
    if flt.intents or flt.routes:
        # Filtered by intent or route: the raw values of the buckets, one range of the
        # bucket index per bucket (the open-ended last bucket: every bucket from it on).
        params.update(filter_params(flt))
        params["buckets"] = [b for b in buckets if b < PROCESSING_TIME_BUCKETS - 1]
        params["value_limit"] = MAX_BUCKET_VALUES * len(buckets)
        stmt = _filtered_bucket_statement(Dims.of(flt), PROCESSING_TIME_BUCKETS - 1 in buckets)
    else:
        # The per-day values rollup (no intent or route): index ranges per day.
        read = plan_source(
            BY_TABLE["rollup_processing_time_values"],
            start=flt.start,
            end=flt.end,
            dirty=dirty,
            columns=("reports",),
            day_list=True,
        )
        params.update(read.params)
        for index, bucket in enumerate(buckets):
            params[f"bucket_low_{index}"], params[f"bucket_high_{index}"] = _bucket_range(bucket)
        stmt = _bucket_statement(read.shape, len(buckets))
    out: dict[int, list[tuple[int, int]]] = {bucket: [] for bucket in buckets}
    last_bucket = PROCESSING_TIME_BUCKETS - 1
    # Every value lies in one of the buckets read (NULL in none), so its bucket follows
    # from the value itself.
    for value, n in session.execute(stmt, params).all():
        ms = int(value)
        out[min(ms // PROCESSING_TIME_BUCKET_MS, last_bucket)].append((ms, int(n)))
    return out


def _in_bucket(ms: Any, index: int) -> ColumnElement[bool]:
    """``ms`` within the ``index``-th bound bucket range."""
    return and_(ms >= bindparam(f"bucket_low_{index}"), ms < bindparam(f"bucket_high_{index}"))


#: A report's processing-time bucket, written as the index on it is (a literal divisor:
#: a bound one would not match the index).
_TIME_BUCKET: Final = literal_column(PROCESSING_TIME_BUCKET_SQL, Integer())


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _filtered_bucket_statement(dims: Dims, last: bool) -> Select[Any]:
    """The window's distinct processing times and their counts in the buckets
    ``buckets`` (an expanding list), and in the open-ended last one when ``last``."""
    ms = ProcessingReport.__table__.c.processing_time_ms
    in_buckets: ColumnElement[bool] = _TIME_BUCKET.in_(bindparam("buckets", expanding=True))
    if last:
        in_buckets = or_(
            in_buckets, _TIME_BUCKET >= literal_column(str(PROCESSING_TIME_BUCKETS - 1))
        )
    return (
        select(ms, func.count())
        .where(*report_window(dims), in_buckets)
        .group_by(ms)
        .order_by(ms)
        .limit(bindparam("value_limit", type_=Integer()))
    )


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _bucket_statement(shape: SourceShape, count: int) -> Select[Any]:
    values = source_rows(shape)
    # One branch per bucket: each is one range of the values index per day, read from the
    # index alone, where a single OR of the ranges is read from the table.
    branches = [
        select(values.c.processing_time_ms, values.c.reports).where(
            _in_bucket(values.c.processing_time_ms, index)
        )
        for index in range(count)
    ]
    rows = (branches[0] if count == 1 else union_all(*branches)).subquery("bucket_values")
    ms = rows.c.processing_time_ms
    return (
        select(ms, func.sum(rows.c.reports))
        .group_by(ms)
        .order_by(ms)
        .limit(MAX_BUCKET_VALUES * count)
    )


def _percentiles(
    session: Session,
    flt: ReportFilter,
    timed: int,
    counts: Sequence[Any],
    dirty: Dirty,
) -> list[float | None]:
    """Exact percentiles of the window's processing times: the rollup's bucket
    ``counts`` locate each rank's bucket, then that bucket's values give the rank."""
    if timed == 0:
        return [None for _ in PERCENTILES]
    buckets = [(b, int(n)) for b, n in enumerate(counts) if n]

    def locate(rank: int) -> tuple[int, int]:
        """The bucket holding ``rank`` and how many values come before that bucket."""
        before = 0
        for bucket, n in buckets:
            if rank < before + n:
                return bucket, before
            before += n
        raise RuntimeError("processing-time rollups disagree")  # pragma: no cover

    ranks = []
    for p in PERCENTILES:
        h = (timed - 1) * p
        ranks += [math.floor(h), min(math.floor(h) + 1, timed - 1)]
    located = {rank: locate(rank) for rank in ranks}
    # Every bucket the ranks fall in, read in one statement.
    values = _bucket_values(session, flt, sorted({bucket for bucket, _ in located.values()}), dirty)

    def value(rank: int) -> float:
        bucket, seen = located[rank]
        for ms, count in values[bucket]:
            seen += count
            if rank < seen:
                return float(ms)
        raise RuntimeError("processing-time rollups disagree")  # pragma: no cover

    results: list[float | None] = []
    for p in PERCENTILES:
        h = (timed - 1) * p
        low_rank = math.floor(h)
        low = value(low_rank)
        high = value(low_rank + 1) if low_rank + 1 < timed else low
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
    return _queue_snapshot(session, as_of, intents, routes, read_dirty(session))


def _queue_snapshot(
    session: Session,
    as_of: dt.datetime,
    intents: Sequence[str],
    routes: Sequence[str],
    dirty: Dirty,
) -> QueueSnapshot:
    """:func:`queue_snapshot` with the dirty days already read.

    Items written before ``as_of``'s UTC day and closed after it (or never) come from the
    queue rollup; the rest, written or closed on that day, from the raw rows. At a
    midnight, which is where every past period ends, the rollup answers alone.
    """
    check_aware(as_of, "as_of")
    intent_labels = clean_labels(intents, "intents", INTENT_MAX)
    route_labels = clean_routes(routes)
    dims = Dims(Labels.of(intent_labels), bool(route_labels))
    day = as_of.astimezone(dt.UTC).date()
    day_start, day_end = utc_day_bounds(day, day)
    at_midnight = as_of == day_start
    params: dict[str, Any] = {
        **dims_params(intent_labels, route_labels),
        "as_of": as_of,
        "as_of_day": day,
        "day_start": day_start,
        "day_end": day_end,
    }

    read = plan_source(
        BY_TABLE["rollup_review_queue"],
        start=None,
        end=day - dt.timedelta(days=1),
        dirty=dirty,
        columns=("items",),
    )
    earlier, first_day = session.execute(
        _earlier_items_statement(read.shape, dims, at_midnight), {**params, **read.params}
    ).one()
    if first_day is not None:
        params["first_start"], params["first_end"] = utc_day_bounds(
            as_date(first_day), as_date(first_day)
        )
    that_day: Any = (0, None, None)
    if not at_midnight or first_day is not None:
        that_day = session.execute(
            _that_day_statement(dims, at_midnight, first_day is not None), params
        ).one()
    candidates = [that_day[1], that_day[2]]
    present = [c for c in candidates if c is not None]
    return QueueSnapshot(
        as_of=as_of,
        size=int(earlier) + int(that_day[0]),
        oldest_created_at=min(present) if present else None,
    )


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _earlier_items_statement(shape: SourceShape, dims: Dims, at_midnight: bool) -> Select[Any]:
    """Open items written before ``as_of_day`` and still open after it, and the oldest
    day they were written on."""
    s = source_rows(shape)
    day = bindparam("as_of_day", type_=Date())
    # closed_day > day: closed after that day; at midnight, closed that day counts too.
    closed_later = s.c.closed_day >= day if at_midnight else s.c.closed_day > day
    return select(sum_or_zero(s.c["items"]), func.min(s.c.day)).where(
        closed_later, *dim_conditions(dims, s)
    )


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _that_day_statement(dims: Dims, at_midnight: bool, first_day: bool) -> Select[Any]:
    """Open items at ``as_of`` written or closed on its day (none at midnight), and the
    oldest one open then among those written on ``first_day`` (None without one)."""
    r = ProcessingReport.__table__.c
    as_of = bindparam("as_of", type_=UTCDateTime())
    day_start = bindparam("day_start", type_=UTCDateTime())
    dims_on_reports = dims.conditions(r.intent, r.confidence_route)
    open_at = or_(r.review_closed_at.is_(None), r.review_closed_at >= as_of)
    # The oldest item open at as_of among those written on the rollup's oldest open day.
    oldest_earlier: Any = null()
    if first_day:
        oldest_earlier = (
            select(func.min(r.created_at))
            .where(
                r.needs_review,
                r.created_at >= bindparam("first_start", type_=UTCDateTime()),
                r.created_at < bindparam("first_end", type_=UTCDateTime()),
                open_at,
                *dims_on_reports,
            )
            .scalar_subquery()
        )
    if at_midnight:
        return select(literal_column("0"), null(), oldest_earlier)
    # Written that day before as_of and still open, or written earlier and closed that day
    # at or after as_of; split by whether the review is still open, each part is one index
    # range (today's open items read from the time index alone, not from the reports).
    open_now = select(func.count().label("items"), func.min(r.created_at).label("oldest")).where(
        r.needs_review,
        r.review_closed_at.is_(None),
        r.created_at >= day_start,
        r.created_at < as_of,
        *dims_on_reports,
    )
    closed_since = select(func.count(), func.min(r.created_at)).where(
        r.needs_review,
        r.review_closed_at.is_not(None),
        r.review_closed_at >= as_of,
        r.created_at < as_of,
        or_(
            r.created_at >= day_start,
            r.review_closed_at < bindparam("day_end", type_=UTCDateTime()),
        ),
        *dims_on_reports,
    )
    parts = union_all(open_now, closed_since).subquery("open_at")
    # The oldest-day lookup rides along in the same statement.
    return select(func.sum(parts.c["items"]), func.min(parts.c.oldest), oldest_earlier)


def _period_kpis(session: Session, flt: ReportFilter, now: dt.datetime, dirty: Dirty) -> PeriodKpis:
    read = rollup_read(session, "rollup_reports", flt, dirty, KPI_COLUMNS + MS_BUCKET_COLUMNS)
    row = session.execute(_kpi_statement(read.shape, Dims.of(flt)), read.params).one()
    reports, confidence_sum, flagged, tokens, timed = row[:5]
    percentiles = _percentiles(session, flt, int(timed), row[5:], dirty)
    _, end = flt.bounds()
    queue = _queue_snapshot(session, min(end, now), flt.intents, flt.routes, dirty)
    return PeriodKpis(
        start=flt.start,
        end=flt.end,
        reports=int(reports),
        avg_confidence=share(float(confidence_sum or 0.0), int(reports)),
        flagged=int(flagged),
        tokens=int(tokens),
        timed_reports=int(timed),
        p50_processing_ms=percentiles[0],
        p95_processing_ms=percentiles[1],
        queue=queue,
    )


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _kpi_statement(shape: SourceShape, dims: Dims) -> Select[Any]:
    s = source_rows(shape)
    return select(
        sum_or_zero(s.c.reports),
        func.sum(s.c.confidence_sum),
        sum_or_zero(case((s.c.needs_review, s.c.reports), else_=0)),
        sum_or_zero(s.c.tokens),
        sum_or_zero(s.c.timed_reports),
        # NULL without rows, which _percentiles passes over like an empty bucket.
        *(func.sum(s.c[name]) for name in MS_BUCKET_COLUMNS),
    ).where(*dim_conditions(dims, s))


def overview_kpis(session: Session, *, flt: ReportFilter, now: dt.datetime) -> OverviewKpis:
    """KPIs of the filtered period and of the previous period of equal length.

    The open queue is a snapshot at the end of each period (at ``now`` for a period that
    has not ended yet), counting open items of any age that match the intent and route
    filters.
    """
    check_aware(now, "now")
    dirty = read_dirty(session)  # one read serves both periods and their queue snapshots
    return OverviewKpis(
        current=_period_kpis(session, flt, now, dirty),
        previous=_period_kpis(session, flt.previous(), now, dirty),
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
    read = rollup_read(session, "rollup_reports", flt, columns=("reports", "confidence_sum"))
    read.params["row_limit"] = flt.days * len(ROUTES)
    rows = session.execute(_daily_statement(read.shape, Dims.of(flt)), read.params).all()
    by_day: dict[dt.date, dict[str, float]] = {
        d: {"reports": 0, "high": 0, "medium": 0, "low": 0, "flagged": 0, "confidence": 0.0}
        for d in flt.dates()
    }
    for day_value, route, count, flagged, confidence_sum in rows:
        bucket = by_day[as_date(day_value)]
        bucket["reports"] += int(count)
        bucket[route] += int(count)
        bucket["flagged"] += int(flagged)
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
    return records_frame(records, DAILY_COLUMNS, floats=("needs_review_rate", "avg_confidence"))


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _daily_statement(shape: SourceShape, dims: Dims) -> Select[Any]:
    s = source_rows(shape)
    return (
        select(
            s.c.day,
            s.c.route,
            func.sum(s.c.reports),
            sum_or_zero(case((s.c.needs_review, s.c.reports), else_=0)),
            func.sum(s.c.confidence_sum),
        )
        .where(*dim_conditions(dims, s))
        .group_by(s.c.day, s.c.route)
        .order_by(s.c.day, s.c.route)
        .limit(bindparam("row_limit", type_=Integer()))
    )
