"""Aggregates for the dashboard, read from the daily rollups.

Every function takes a :class:`~sqlalchemy.orm.Session`, is keyword-only, binds every
value, bounds every result (``ORDER BY`` + ``LIMIT``, or a fixed number of groups) and
returns a small pandas DataFrame or a frozen dataclass. Python only reshapes: it fills
in days or bins that have no rows, splits a group's set of missing fields into its
fields, and divides counts that SQL produced.

Sums, counts, minima, maxima and histograms come from the rollup tables of
:mod:`reportlib.rollups`, whose rows per day are a fixed function of that day's raw rows;
days changed since their last rebuild are computed from the raw rows in the same
statement. Reads therefore cost about the number of days times groups, not the number
of reports, and every figure equals the computation from the raw rows. The open review
queue and the drill-down read ``processing_reports`` through small partial indexes.

Definitions used throughout (the tests recompute every number with them):

* **Window**: ``created_at`` in ``[start 00:00 UTC, end + 1 day 00:00 UTC)``.
* **Day**: the UTC calendar date of ``created_at`` (:class:`utc_date`).
* **Confidence bin**: ``min(floor(confidence * 20), 19)``; bin *i* covers
  ``[i/20, (i+1)/20)`` and the last bin also holds 1.0 (:class:`confidence_bin`).
* **Percentile** *p* of *n* sorted values ``v[0..n-1]``: with ``h = (n - 1) * p``,
  ``v[floor(h)] + (h - floor(h)) * (v[ceil(h)] - v[floor(h)])``. This is linear
  interpolation between closest ranks: PostgreSQL's ``percentile_cont`` and pandas'
  ``quantile(interpolation="linear")``. NULL processing times are left out.
* **Open review item**: a flagged report with no decision made on its current
  processing (:func:`open_review_condition`).

``reportlib`` never imports Streamlit; the dashboard caches these results.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Subquery,
    and_,
    case,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from reportlib.config import get_settings
from reportlib.dialect import BINS, as_date, confidence_bin, json_array_length, utc_date
from reportlib.errors import ReportValidationError
from reportlib.models import (
    OPEN_DAY,
    PROCESSING_TIME_BUCKET_MS,
    PROCESSING_TIME_BUCKETS,
    ROUTES,
    IncomingEmail,
    ProcessingReport,
    bin_column,
    centile_column,
    ms_bucket_column,
)
from reportlib.rollups import BY_TABLE, Dirty, read_dirty, rollup_source
from reportlib.service import INT32_MAX, INTENT_MAX, utc_day_bounds

#: Stand-in for a NULL intent or review reason in filters and results.
NONE_LABEL: Final = "(none)"
#: Longest date range a filter may span, in days (inclusive of both ends).
MAX_RANGE_DAYS: Final = 366
#: Largest page the review queue returns; also the CSV export cap.
MAX_QUEUE_ROWS: Final = 10_000
#: At most this many distinct fields, intents or reasons appear in one breakdown.
MAX_GROUPS: Final = 50
#: At most this many distinct sets of missing fields are read per breakdown.
MAX_MISSING_SETS: Final = 10_000
PERCENTILES: Final = (0.5, 0.95)
KPI_COLUMNS: Final = ("reports", "confidence_sum", "tokens", "timed_reports")
FIELD_SUMMARY_COLUMNS: Final = (
    "extracted",
    "missing",
    "scored",
    "confidence_sum",
    "confidence_min",
    "confidence_max",
)
BIN_COLUMNS: Final = tuple(bin_column(i) for i in range(BINS))
CENTILE_COLUMNS: Final = tuple(centile_column(c) for c in range(101))
MS_BUCKET_COLUMNS: Final = tuple(ms_bucket_column(b) for b in range(PROCESSING_TIME_BUCKETS))
#: Distinct processing times read for one bucket (the last, open-ended one included).
MAX_BUCKET_VALUES: Final = 100_000

#: Allow-list of review queue orders; ties always fall back to age, then id.
QUEUE_SORTS: Final[dict[str, str]] = {
    "oldest": "Oldest first",
    "lowest_confidence": "Lowest confidence first",
}


# --------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------


def _clean_labels(values: Iterable[str], name: str, max_length: int) -> tuple[str, ...]:
    cleaned: set[str] = set()
    for value in values:
        if not isinstance(value, str) or not value or len(value) > max_length:
            raise ReportValidationError(
                name, f"values must be text of 1 to {max_length} characters"
            )
        cleaned.add(value)
    return tuple(sorted(cleaned))


def _clean_routes(values: Iterable[str]) -> tuple[str, ...]:
    routes = set(_clean_labels(values, "routes", 20))
    if routes - set(ROUTES):
        raise ReportValidationError("routes", "must be high, medium or low")
    return tuple(route for route in ROUTES if route in routes)


@dataclass(frozen=True, slots=True)
class ReportFilter:
    """Which reports a dashboard view covers: a UTC date range plus optional intents and routes.

    ``intents`` may contain :data:`NONE_LABEL` for reports without an intent. Empty
    ``intents`` or ``routes`` mean "all". Values are de-duplicated and sorted, so equal
    filters compare (and cache) equal.
    """

    start: dt.date
    end: dt.date
    intents: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
                raise ReportValidationError(name, "must be a date")
        if self.end < self.start:
            raise ReportValidationError("end", "must not be before start")
        if (self.end - self.start).days + 1 > MAX_RANGE_DAYS:
            raise ReportValidationError("end", f"the range may span at most {MAX_RANGE_DAYS} days")
        if self.start <= dt.date.min + dt.timedelta(days=MAX_RANGE_DAYS) or (
            self.end >= dt.date.max - dt.timedelta(days=1)
        ):
            raise ReportValidationError("start", "is out of range")
        object.__setattr__(self, "routes", _clean_routes(self.routes))
        object.__setattr__(self, "intents", _clean_labels(self.intents, "intents", INTENT_MAX))

    @classmethod
    def last_days(
        cls,
        days: int,
        *,
        today: dt.date,
        intents: Sequence[str] = (),
        routes: Sequence[str] = (),
    ) -> ReportFilter:
        """The ``days`` UTC days ending with ``today`` (inclusive)."""
        return cls(today - dt.timedelta(days=days - 1), today, tuple(intents), tuple(routes))

    @property
    def days(self) -> int:
        """Number of calendar days in the range, both ends included."""
        return (self.end - self.start).days + 1

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """``[start 00:00 UTC, day after end 00:00 UTC)``."""
        return utc_day_bounds(self.start, self.end)

    def previous(self) -> ReportFilter:
        """The period of equal length that ends the day before this one starts."""
        length = dt.timedelta(days=self.days)
        return ReportFilter(self.start - length, self.end - length, self.intents, self.routes)

    def dates(self) -> list[dt.date]:
        """Every day in the range, in order."""
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]


def _label_condition(column: Any, labels: tuple[str, ...]) -> ColumnElement[bool]:
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
        conditions.append(_label_condition(intent, flt.intents))
    if flt.routes:
        conditions.append(route.in_(flt.routes))
    return conditions


def _report_window(flt: ReportFilter) -> list[ColumnElement[bool]]:
    r = ProcessingReport
    return _window(flt, created_at=r.created_at, intent=r.intent, route=r.confidence_route)


def open_review_condition(*, as_of: dt.datetime | None = None) -> ColumnElement[bool]:
    """SQL condition on ``processing_reports``: the report is in the open review queue.

    Open means flagged (``needs_review``) with no review decision on the report's current
    processing. ``review_closed_at`` holds when the first such decision was made: a
    decision records the ``created_at`` of the processing it reviewed, and re-processing
    moves ``created_at`` forward, so a report that is flagged again re-opens (database
    triggers keep the column, see migration 0003). Comparing the recorded processing, not
    the decision's clock, leaves no race between a decision and a re-processing committed
    at nearly the same instant. With ``as_of``, the queue as it stood at that instant: the
    report existed and no decision had been made yet.
    """
    r = ProcessingReport
    conditions: list[ColumnElement[bool]] = [r.needs_review.expression]
    if as_of is None:
        conditions.append(r.review_closed_at.is_(None))
    else:
        _check_aware(as_of, "as_of")
        conditions += [
            r.created_at < as_of,
            or_(r.review_closed_at.is_(None), r.review_closed_at >= as_of),
        ]
    return and_(*conditions)


def _check_aware(value: Any, name: str) -> None:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ReportValidationError(name, "must be a timezone-aware datetime")


def _one_of(value: Any, allowed: Iterable[str], name: str) -> str:
    options = tuple(allowed)
    if value not in options:
        raise ReportValidationError(name, f"must be one of {', '.join(options)}")
    return str(value)


def _int_in(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ReportValidationError(name, f"must be a whole number from {low} to {high}")
    return value


def _most_frequent_first(column: Any, count: Any = None) -> tuple[Any, ...]:
    # NULL sorts first on SQLite and last on PostgreSQL: put it last explicitly on both.
    return ((func.count() if count is None else count).desc(), column.is_(None), column)


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def bin_edges(index: int) -> tuple[float, float]:
    """Lower and upper edge of confidence bin ``index`` (the last bin includes 1.0)."""
    return index / BINS, (index + 1) / BINS


def bin_label(index: int) -> str:
    """``"0.85–0.90"``: a bin's range for axis labels."""
    low, high = bin_edges(index)
    return f"{low:.2f}–{high:.2f}"


def _rollup(
    session: Session,
    name: str,
    flt: ReportFilter,
    dirty: Dirty | None = None,
    columns: Sequence[str] = (),
) -> Subquery:
    return rollup_source(
        session, BY_TABLE[name], start=flt.start, end=flt.end, dirty=dirty, columns=columns
    )


def _dims(flt: ReportFilter, source: Subquery) -> list[ColumnElement[bool]]:
    """The filter's intents and routes as conditions on a rollup source."""
    conditions: list[ColumnElement[bool]] = []
    if flt.intents:
        conditions.append(_label_condition(source.c.intent, flt.intents))
    if flt.routes:
        conditions.append(source.c.route.in_(flt.routes))
    return conditions


def _total(column: Any) -> Any:
    return func.coalesce(func.sum(column), literal_column("0"))


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
    s = _rollup(session, "rollup_reports", flt, columns=("reports",))
    n = func.sum(s.c.reports)
    rows = session.execute(
        select(s.c.intent, n)
        .group_by(s.c.intent)
        .order_by(*_most_frequent_first(s.c.intent, n))
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
        return _share(self.flagged, self.reports)


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
    ranges = [_bucket_range(bucket) for bucket in buckets]
    if flt.intents or flt.routes:
        # Filtered by intent or route: the raw values of the buckets, by index range.
        r = ProcessingReport
        ms: Any = r.processing_time_ms
        stmt = select(ms, func.count()).where(
            *_report_window(flt), or_(*(and_(ms >= low, ms < high) for low, high in ranges))
        )
    else:
        # The per-day values rollup (no intent or route): index ranges per day.
        values = rollup_source(
            session,
            BY_TABLE["rollup_processing_time_values"],
            start=flt.start,
            end=flt.end,
            dirty=dirty,
            columns=("reports",),
            day_list=True,
        )
        ms = values.c.processing_time_ms
        stmt = select(ms, func.sum(values.c.reports)).where(
            or_(*(and_(ms >= low, ms < high) for low, high in ranges))
        )
    rows = session.execute(
        stmt.group_by(ms).order_by(ms).limit(MAX_BUCKET_VALUES * len(ranges))
    ).all()
    out: dict[int, list[tuple[int, int]]] = {bucket: [] for bucket in buckets}
    for value, n in rows:
        if value is None:
            continue
        for bucket, (low, high) in zip(buckets, ranges, strict=True):
            if low <= value < high:
                out[bucket].append((int(value), int(n)))
    return out


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
    values = _bucket_values(
        session, flt, sorted({bucket for bucket, _ in located.values()}), dirty
    )

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
    _check_aware(as_of, "as_of")
    intent_labels = _clean_labels(intents, "intents", INTENT_MAX)
    route_labels = _clean_routes(routes)
    day = as_of.astimezone(dt.UTC).date()
    day_start, day_end = utc_day_bounds(day, day)
    flt_dims = ReportFilter(day, day, intent_labels, route_labels)

    s = rollup_source(
        session,
        BY_TABLE["rollup_review_queue"],
        start=None,
        end=day - dt.timedelta(days=1),
        dirty=dirty,
    )
    at_midnight = as_of == day_start
    # closed_day > day: closed after that day; at midnight, closed that day counts too.
    closed_later = s.c.closed_day >= day if at_midnight else s.c.closed_day > day
    earlier, first_day = session.execute(
        select(_total(s.c["items"]), func.min(s.c.day)).where(closed_later, *_dims(flt_dims, s))
    ).one()

    r = ProcessingReport
    dims: list[ColumnElement[bool]] = []
    if intent_labels:
        dims.append(_label_condition(r.intent, intent_labels))
    if route_labels:
        dims.append(r.confidence_route.in_(route_labels))
    open_at = or_(r.review_closed_at.is_(None), r.review_closed_at >= as_of)
    # The oldest item open at as_of among those written on the rollup's oldest open day.
    oldest_earlier: Any = None
    if first_day is not None:
        first_start, first_end = utc_day_bounds(as_date(first_day), as_date(first_day))
        oldest_earlier = (
            select(func.min(r.created_at))
            .where(
                r.needs_review, r.created_at >= first_start, r.created_at < first_end, open_at, *dims
            )
            .scalar_subquery()
        )
    that_day: Any = (0, None, None)
    if not at_midnight:
        # Written that day before as_of and still open, or written earlier and closed
        # that day at or after as_of: two index ranges (BitmapOr on PostgreSQL); the
        # oldest-day lookup rides along in the same statement.
        that_day = session.execute(
            select(func.count(), func.min(r.created_at), oldest_earlier).where(
                r.needs_review,
                r.created_at < as_of,
                or_(
                    and_(r.created_at >= day_start, open_at),
                    and_(
                        r.created_at < day_start,
                        r.review_closed_at >= as_of,
                        r.review_closed_at < day_end,
                    ),
                ),
                *dims,
            )
        ).one()
    elif oldest_earlier is not None:
        that_day = (0, None, session.execute(select(oldest_earlier)).scalar_one())
    candidates = [that_day[1], that_day[2]]
    present = [c for c in candidates if c is not None]
    return QueueSnapshot(
        as_of=as_of,
        size=int(earlier) + int(that_day[0]),
        oldest_created_at=min(present) if present else None,
    )


def _period_kpis(
    session: Session, flt: ReportFilter, now: dt.datetime, dirty: Dirty
) -> PeriodKpis:
    s = _rollup(session, "rollup_reports", flt, dirty, columns=KPI_COLUMNS + MS_BUCKET_COLUMNS)
    row = session.execute(
        select(
            _total(s.c.reports),
            func.sum(s.c.confidence_sum),
            _total(case((s.c.needs_review, s.c.reports), else_=0)),
            _total(s.c.tokens),
            _total(s.c.timed_reports),
            *(_total(s.c[name]) for name in MS_BUCKET_COLUMNS),
        ).where(*_dims(flt, s))
    ).one()
    reports, confidence_sum, flagged, tokens, timed = row[:5]
    percentiles = _percentiles(session, flt, int(timed), row[5:], dirty)
    _, end = flt.bounds()
    queue = _queue_snapshot(session, min(end, now), flt.intents, flt.routes, dirty)
    return PeriodKpis(
        start=flt.start,
        end=flt.end,
        reports=int(reports),
        avg_confidence=_share(float(confidence_sum or 0.0), int(reports)),
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
    _check_aware(now, "now")
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
    s = _rollup(session, "rollup_reports", flt, columns=("reports", "confidence_sum"))
    rows = session.execute(
        select(
            s.c.day,
            s.c.route,
            func.sum(s.c.reports),
            _total(case((s.c.needs_review, s.c.reports), else_=0)),
            func.sum(s.c.confidence_sum),
        )
        .where(*_dims(flt, s))
        .group_by(s.c.day, s.c.route)
        .order_by(s.c.day, s.c.route)
        .limit(flt.days * len(ROUTES))
    ).all()
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
            _share(b["flagged"], b["reports"]),
            _share(b["confidence"], b["reports"]),
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
    s = _rollup(session, "rollup_reports", flt, columns=BIN_COLUMNS)
    rows = session.execute(
        select(s.c.route, *(_total(s.c[bin_column(i)]) for i in range(BINS)))
        .where(*_dims(flt, s))
        .group_by(s.c.route)
        .order_by(s.c.route)
        .limit(len(ROUTES))
    ).all()
    counts = {(i, row[0]): int(n) for row in rows for i, n in enumerate(row[1:])}
    routes = flt.routes or ROUTES
    records = [
        (i, *bin_edges(i), bin_label(i), route, counts.get((i, route), 0))
        for i in range(BINS)
        for route in routes
    ]
    return pd.DataFrame.from_records(
        records, columns=["bin", "lower", "upper", "label", "route", "reports"]
    )


def _ordered_fields(names: Iterable[str], key_fields: Sequence[str]) -> list[str]:
    present = set(names)
    return [f for f in key_fields if f in present] + sorted(present - set(key_fields))


def _key_fields(key_fields: Sequence[str] | None) -> tuple[str, ...]:
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
    keys = _key_fields(key_fields)
    s = _rollup(session, "rollup_fields", flt, columns=FIELD_SUMMARY_COLUMNS)
    seen = func.sum(s.c.extracted) + func.sum(s.c.missing)
    rows = session.execute(
        select(
            s.c.field_name,
            func.sum(s.c.extracted),
            func.sum(s.c.missing),
            func.sum(s.c.confidence_sum),
            func.sum(s.c.scored),
            func.min(s.c.confidence_min),
            func.max(s.c.confidence_max),
        )
        .where(*_dims(flt, s))
        .group_by(s.c.field_name)
        .order_by(seen.desc(), s.c.field_name)
        .limit(MAX_GROUPS + len(keys))
    ).all()
    found = {row[0]: row for row in rows}
    names = _ordered_fields(list(found) + list(keys), keys)[: MAX_GROUPS + len(keys)]
    records = []
    for name in names:
        _, extracted, missing, total, scored, low, high = found.get(
            name, (name, 0, 0, None, 0, None, None)
        )
        records.append(
            (
                name,
                int(extracted),
                int(missing),
                _share(float(total or 0.0), int(scored or 0)),
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
    counts: dict[tuple[str, int], int] = {}
    if names:
        s = _rollup(session, "rollup_fields", flt, columns=BIN_COLUMNS)
        rows = session.execute(
            select(s.c.field_name, *(_total(s.c[bin_column(i)]) for i in range(BINS)))
            .where(*_dims(flt, s), s.c.field_name.in_(names))
            .group_by(s.c.field_name)
            .order_by(s.c.field_name)
            .limit(len(names))
        ).all()
        counts = {(row[0], i): int(n) for row in rows for i, n in enumerate(row[1:])}
    totals = {name: sum(counts.get((name, i), 0) for i in range(BINS)) for name in names}
    records = [
        (
            name,
            i,
            *bin_edges(i),
            bin_label(i),
            counts.get((name, i), 0),
            _share(counts.get((name, i), 0), totals[name]),
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
    s = _rollup(session, "rollup_reports", flt, columns=("reports", "confidence_sum"))

    def per_route(route: str) -> Any:
        return _total(case((s.c.route == route, s.c.reports), else_=0))

    n = func.sum(s.c.reports)
    rows = session.execute(
        select(
            s.c.intent,
            n,
            func.sum(s.c.confidence_sum),
            per_route("high"),
            per_route("medium"),
            per_route("low"),
            _total(case((s.c.needs_review, s.c.reports), else_=0)),
        )
        .where(*_dims(flt, s))
        .group_by(s.c.intent)
        .order_by(*_most_frequent_first(s.c.intent, n))
        .limit(MAX_GROUPS)
    ).all()
    records = [
        (
            NONE_LABEL if intent is None else intent,
            int(count),
            float(confidence_sum) / int(count),
            int(high),
            int(medium),
            int(low),
            int(flagged),
            int(flagged) / int(count),
        )
        for intent, count, confidence_sum, high, medium, low, flagged in rows
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
        return _share(self.below, self.reports)


def route_threshold_what_if(session: Session, *, flt: ReportFilter, threshold: float) -> RouteThresholdWhatIf:
    """How many reports have overall confidence strictly below ``threshold``; of those,
    how many are not flagged today; and how many flagged ones are at or above it.

    A threshold on the 0.01 grid (what the dashboard's slider offers) reads the
    rollup's exact centiles; any other threshold reads the raw rows of the window.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ReportValidationError("threshold", "must be a number between 0 and 1")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ReportValidationError("threshold", "must be between 0 and 1")
    t = float(threshold)
    centile = round(t * 100)
    if centile / 100 == t:
        s = _rollup(session, "rollup_reports", flt, columns=("reports", *CENTILE_COLUMNS))
        below: Any = sum(
            (s.c[centile_column(c)] for c in range(centile)), start=literal_column("0")
        )
        row = session.execute(
            select(
                _total(s.c.reports),
                _total(below),
                _total(case((~s.c.needs_review, below), else_=0)),
                _total(case((s.c.needs_review, s.c.reports - below), else_=0)),
            ).where(*_dims(flt, s))
        ).one()
    else:
        r = ProcessingReport
        raw_below = r.overall_confidence < t
        row = session.execute(
            select(
                func.count(),
                _total(case((raw_below, 1), else_=0)),
                _total(case((and_(raw_below, ~r.needs_review), 1), else_=0)),
                _total(case((and_(~raw_below, r.needs_review), 1), else_=0)),
            ).where(*_report_window(flt))
        ).one()
    reports, n_below, below_unflagged, flagged_above = row
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
    s = _rollup(session, "rollup_reports", flt, columns=("reports",))
    return int(session.execute(select(_total(s.c.reports)).where(*_dims(flt, s))).scalar_one())


def _missing_names(missing_set: str | None) -> tuple[str, ...]:
    """The distinct field names of one report's ``missing_fields`` JSON text."""
    if missing_set is None:
        return ()
    try:
        names = json.loads(missing_set)
    except ValueError:
        return ()
    if not isinstance(names, list):
        return ()
    return tuple(dict.fromkeys(str(name) for name in names if name is not None))


def _missing_sets(
    session: Session, flt: ReportFilter, dirty: Dirty, *by: str
) -> list[tuple[tuple[Any, ...], tuple[str, ...], int]]:
    """Reports per (``by`` columns, set of missing fields): ``[(by values, names, n)]``.

    Every report is in exactly one set (an empty one when nothing was missing), so the
    same rows give the totals too. SQL groups by the whole set; splitting a set into its
    fields is left to the caller.
    """
    s = _rollup(session, "rollup_missing_sets", flt, dirty, columns=("reports",))
    keys = [s.c[name] for name in by]
    rows = session.execute(
        select(*keys, s.c.missing_set, func.sum(s.c.reports))
        .where(*_dims(flt, s))
        .group_by(*keys, s.c.missing_set)
        .order_by(*keys, s.c.missing_set)
        .limit(MAX_MISSING_SETS)
    ).all()
    return [(tuple(row[: len(by)]), _missing_names(row[len(by)]), int(row[-1])) for row in rows]


def _top_missing(counts: dict[str, int], limit: int) -> dict[str, int]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return dict(ranked)


def missing_field_frequency(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """How often each field was missing: a count and a share of the window's reports.

    Key fields always appear (with 0 when never missing), followed by other fields that
    went missing; most missing first. Columns: ``field``, ``missing``, ``reports``,
    ``share``.
    """
    keys = _key_fields(key_fields)
    dirty = read_dirty(session, start=flt.start, end=flt.end)
    tally: dict[str, int] = defaultdict(int)
    total = 0
    for _, missing, n in _missing_sets(session, flt, dirty):
        total += n
        for name in missing:
            tally[name] += n
    counts = _top_missing(tally, MAX_GROUPS + len(keys))
    names = _ordered_fields(list(counts) + list(keys), keys)
    # Most missing first; ties keep key-field order, then names.
    names.sort(key=lambda name: -counts.get(name, 0))
    records = [
        (name, counts.get(name, 0), total, _share(counts.get(name, 0), total)) for name in names
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
    keys = _key_fields(key_fields)
    dirty = read_dirty(session, start=flt.start, end=flt.end)
    counts: dict[tuple[dt.date, str], int] = defaultdict(int)
    tally: dict[str, int] = defaultdict(int)
    totals: dict[dt.date, int] = defaultdict(int)
    for (day,), missing, n in _missing_sets(session, flt, dirty, "day"):
        totals[as_date(day)] += n
        for name in missing:
            counts[(as_date(day), name)] += n
            tally[name] += n
    kept = _top_missing(tally, MAX_GROUPS + len(keys))
    names = _ordered_fields(list(kept) + list(keys), keys)
    records = [
        (
            d,
            name,
            counts.get((d, name), 0),
            totals.get(d, 0),
            _share(counts.get((d, name), 0), totals.get(d, 0)),
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
    keys = _key_fields(key_fields)
    dirty = read_dirty(session, start=flt.start, end=flt.end)
    counts: dict[tuple[str | None, str], int] = defaultdict(int)
    tally: dict[str, int] = defaultdict(int)
    per_intent: dict[str | None, int] = defaultdict(int)
    for (intent,), missing, n in _missing_sets(session, flt, dirty, "intent"):
        per_intent[intent] += n
        for name in missing:
            counts[(intent, name)] += n
            tally[name] += n
    # Most reports first; NULL last among equals, then by name (as list_intents orders).
    intents = sorted(
        per_intent.items(), key=lambda item: (-item[1], item[0] is None, item[0] or "")
    )[:MAX_GROUPS]
    kept = _top_missing(tally, MAX_GROUPS + len(keys))
    names = _ordered_fields(list(kept) + list(keys), keys)
    records = [
        (
            NONE_LABEL if intent is None else intent,
            name,
            counts.get((intent, name), 0),
            int(n),
            counts.get((intent, name), 0) / int(n),
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
    keys = _key_fields(key_fields)
    dirty = read_dirty(session, start=flt.start, end=flt.end)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    tally: dict[str, int] = defaultdict(int)
    for _, missing, n in _missing_sets(session, flt, dirty):
        for x in missing:
            tally[x] += n
            for y in missing:
                counts[(x, y)] += n
    kept = _top_missing(tally, MAX_GROUPS + len(keys))
    names = _ordered_fields(list(kept) + list(keys), keys)
    records = [
        (x, y, counts.get((x, y), 0), _share(counts.get((x, y), 0), counts.get((x, x), 0)))
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
    keys = _key_fields(key_fields)
    dirty = read_dirty(session, start=flt.start, end=flt.end)
    counts: dict[int, int] = defaultdict(int)
    total = 0
    for _, missing, n in _missing_sets(session, flt, dirty):
        total += n
        if missing:
            counts[len(missing)] += n
    counts[0] = total - sum(counts.values())
    top = max([len(keys), *counts])
    records = [(n, counts.get(n, 0), _share(counts.get(n, 0), total)) for n in range(top + 1)]
    frame = pd.DataFrame.from_records(records, columns=["missing_fields", "reports", "share"])
    return frame.astype({"share": "float64"})


# --------------------------------------------------------------------------------------
# Review queue and drill-down
# --------------------------------------------------------------------------------------


def _queue_conditions(flt: ReportFilter, reasons: Sequence[str]) -> list[ColumnElement[bool]]:
    conditions = [*_report_window(flt), open_review_condition()]
    if reasons:
        labels = _clean_labels(reasons, "reasons", 100)
        conditions.append(_label_condition(ProcessingReport.review_reason, labels))
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
    _one_of(sort, QUEUE_SORTS, "sort")
    _int_in(limit, "limit", 1, MAX_QUEUE_ROWS)
    _int_in(offset, "offset", 0, INT32_MAX)
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


def _open_items(session: Session, flt: ReportFilter) -> Subquery:
    """Queue rollup rows of the window that are still open (closed_day is the stand-in)."""
    return _rollup(session, "rollup_review_queue", flt, columns=("items",))


def count_review_queue_in_window(session: Session, *, flt: ReportFilter, reasons: Sequence[str] = ()) -> int:
    """Number of open review items created in the filtered window (from the queue rollup:
    a few rows per day, however long the backlog)."""
    s = _open_items(session, flt)
    conditions = [s.c.closed_day == OPEN_DAY, *_dims(flt, s)]
    if reasons:
        labels = _clean_labels(reasons, "reasons", 100)
        conditions.append(_label_condition(s.c.review_reason, labels))
    return int(session.execute(select(_total(s.c["items"])).where(*conditions)).scalar_one())


def review_queue_reasons(session: Session, *, flt: ReportFilter) -> pd.DataFrame:
    """Review reasons of open items in the window, most frequent first (at most
    :data:`MAX_GROUPS`). Columns: ``review_reason`` (:data:`NONE_LABEL` for none),
    ``items``."""
    s = _open_items(session, flt)
    n = func.sum(s.c["items"])
    rows = session.execute(
        select(s.c.review_reason, n)
        .where(s.c.closed_day == OPEN_DAY, *_dims(flt, s))
        .group_by(s.c.review_reason)
        .order_by(*_most_frequent_first(s.c.review_reason, n))
        .limit(MAX_GROUPS)
    ).all()
    return pd.DataFrame.from_records(
        [(NONE_LABEL if reason is None else reason, int(items)) for reason, items in rows],
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
    _int_in(email_id, "email_id", 1, INT32_MAX)
    keys = _key_fields(key_fields)
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
    for name in _ordered_fields(extracted, keys):
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


__all__ = [
    "BINS",
    "MAX_QUEUE_ROWS",
    "MAX_RANGE_DAYS",
    "NONE_LABEL",
    "QUEUE_COLUMNS",
    "QUEUE_SORTS",
    "FieldDetail",
    "OverviewKpis",
    "PeriodKpis",
    "QueueSnapshot",
    "ReportDetail",
    "ReportFilter",
    "RouteThresholdWhatIf",
    "bin_edges",
    "bin_label",
    "confidence_bin",
    "confidence_by_intent",
    "confidence_histogram",
    "count_reports",
    "count_review_queue_in_window",
    "daily_trends",
    "field_confidence_histogram",
    "field_confidence_summary",
    "get_report_detail",
    "has_reports",
    "list_intents",
    "missing_count_distribution",
    "missing_field_cooccurrence",
    "missing_field_frequency",
    "missing_fields_by_intent",
    "missing_fields_daily",
    "open_review_condition",
    "overview_kpis",
    "percentile_from_sorted_pair",
    "queue_snapshot",
    "review_queue_page",
    "review_queue_reasons",
    "route_threshold_what_if",
    "utc_date",
]
