"""Rollups: what the dashboard's pages sum, kept exact by rebuilding whole hours and days.

Each rollup table (see :mod:`reportlib.models`) holds, per UTC day of ``created_at`` (or
per hour of it, for recent days) and per intent and route, counts and sums over those
raw rows. The SQL that fills a day or an hour is the same SQL that reads one which has
not been rolled up yet (:func:`plan_source`), so the two paths cannot disagree.

**Freshness: every write is visible on the next read.** Database triggers (migrations
0003 and 0005) put the UTC day and hour of every row that a write adds, changes or
removes into ``rollup_dirty_days``: inserts, re-processing that moves a report to a new
time, intent, route or missing set, deletions, review decisions (which close a queue
item) and verdicts. A read takes unchanged hours and days from the rollups and changed
ones from the raw rows, in one statement. Today is read by the hour (a busy day costs one
raw hour per read); an older day that changed is read whole. :func:`refresh_rollups`
folds changes back into the rollups, keeping today and yesterday as hourly rows and
folding older days into whole-day rows; that only makes reads cheaper, never more
correct. The dashboard runs it every ``ROLLUP_REFRESH_INTERVAL_S`` seconds;
``python -m reportlib rollups refresh`` does the same from cron.

**Writers never wait on a hot row.** A write's only rollup work is one ``INSERT ...
SELECT ... WHERE NOT EXISTS`` of its hour into ``rollup_dirty_days`` (no unique key, so a
writer never waits for another writer's uncommitted mark; an hour listed twice is
harmless). A refresh takes ``rollup_dirty_days`` in EXCLUSIVE mode on PostgreSQL:
writers that already marked an hour finish first, so the rebuild sees their rows, and
writers arriving meanwhile wait until it commits, then mark their hour again. The
refresh waits at most ``REFRESH_LOCK_TIMEOUT_MS`` and otherwise gives way.

**Reads cost the same at any traffic.** Histograms (confidence bins and centiles,
processing-time buckets, verdict centiles) are columns of one row per day (or hour),
intent, route and flag, not rows per bucket, so a 30-day window reads a few thousand
short rows whether a day holds ten reports or a hundred thousand.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Date,
    Float,
    Integer,
    Select,
    SmallInteger,
    Subquery,
    Table,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from reportlib.dialect import (
    as_date,
    confidence_bin,
    confidence_centile,
    json_array_texts,
    json_member_confidence,
    json_member_is_object,
    json_object_members,
    json_text,
    lock_for_refresh,
    utc_date,
    utc_hour,
    utcnow,
)
from reportlib.errors import ReportlibError
from reportlib.models import (
    CENTILES,
    CONFIDENCE_BINS,
    OPEN_DAY,
    PROCESSING_TIME_BUCKET_MS,
    PROCESSING_TIME_BUCKETS,
    ROLLUP_TABLES,
    ProcessingReport,
    ReviewDecision,
    ReviewFieldVerdict,
    bin_column,
    centile_column,
    centile_sum_column,
    ms_bucket_column,
    rollup_dirty_days,
    rollup_fields,
    rollup_missing_sets,
    rollup_processing_time_values,
    rollup_reports,
    rollup_review_queue,
    rollup_verdicts,
)
from reportlib.service import utc_day_bounds

#: How long a refresh waits for in-flight writers before giving up (PostgreSQL). Shorter
#: than PostgreSQL's deadlock_timeout (1 s): a writer that waits behind a refresh which
#: waits for another writer is released by the refresh giving way, never by a writer
#: being chosen as a deadlock victim.
REFRESH_LOCK_TIMEOUT_MS: Final = 250
#: Days rebuilt per transaction by :func:`rebuild_rollups`.
REBUILD_CHUNK_DAYS: Final = 14

Where = Callable[[Any], ColumnElement[bool]]


# --------------------------------------------------------------------------------------
# The raw SQL of each rollup: rows grouped exactly as the table stores them.
# --------------------------------------------------------------------------------------


def _time_keys(column: Any, hourly: bool) -> list[Any]:
    """``day`` and ``hour`` of a timestamp: the UTC hour for hourly rows, NULL for a
    whole day's."""
    hour = utc_hour(column) if hourly else cast(null(), SmallInteger)
    return [utc_date(column).label("day"), hour.label("hour")]


def _report_keys(hourly: bool) -> list[Any]:
    r = ProcessingReport
    return [
        *_time_keys(r.created_at, hourly),
        r.intent.label("intent"),
        r.confidence_route.label("route"),
    ]


def _grouped(
    keys: list[Any], measures: list[Any], where: ColumnElement[bool], hourly: bool
) -> Select[Any]:
    # A whole day's NULL hour is a constant, not a grouping expression.
    grouping = [key.element for key in keys if hourly or key.name != "hour"]
    return select(*keys, *measures).where(where).group_by(*grouping)


def _count_where(column: Any, value: int) -> Any:
    return func.sum(case((column == value, 1), else_=0))


def _pivot(
    keys: Sequence[str],
    groups: Sequence[Select[Any]],
    columns: Sequence[tuple[str, Any]],
) -> Select[Any]:
    """Turn narrow groups into one wide row per key.

    Each of ``groups`` selects the ``keys``, a ``kind`` tag, a bucket ``v``, a count ``n``
    and further measures, already grouped; ``columns`` are ``(name, aggregate over the
    union)``. Counting each report once per histogram and pivoting the few hundred
    groups a day holds costs far less than a CASE per report per column.
    """
    union = union_all(*groups).subquery()
    key_columns = [union.c[name] for name in keys]
    return select(
        *key_columns, *(aggregate(union).label(name) for name, aggregate in columns)
    ).group_by(*key_columns)


def _kind_count(kind: str, value: int) -> Callable[[Any], Any]:
    def aggregate(union: Any) -> Any:
        return func.sum(case((and_(union.c.kind == kind, union.c.v == value), union.c.n), else_=0))

    return aggregate


def _reports_rows(where: Where, hourly: bool) -> Select[Any]:
    r = ProcessingReport
    ms = r.processing_time_ms
    per_report = (
        select(
            *_report_keys(hourly),
            r.needs_review.label("needs_review"),
            r.overall_confidence.label("confidence"),
            r.total_tokens_used.label("tokens"),
            ms.label("ms"),
            confidence_bin(r.overall_confidence).label("bin"),
            confidence_centile(r.overall_confidence).label("centile"),
            processing_time_bucket(ms).label("bucket"),
        )
        .where(where(r.created_at))
        .cte("per_report")
    )
    p = per_report.c
    keys = ["day", "hour", "intent", "route", "needs_review"]
    key_columns = [p[name] for name in keys]
    none: Any = literal_column("NULL")

    def group(kind: str, value: Any, *measures: Any) -> Select[Any]:
        # Every branch has the same columns: keys, kind, v, n, then the totals' measures.
        filler = [none.label(name) for name in ("confidence_sum", "tokens", "timed")]
        return (
            select(
                *key_columns,
                literal_column(f"'{kind}'").label("kind"),
                value.label("v"),
                func.count().label("n"),
                *(measures or filler),
            )
            .select_from(per_report)
            .group_by(*key_columns, *([] if kind == "t" else [value]))
        )

    groups = [
        group(
            "t",
            literal_column("0"),
            func.sum(p.confidence).label("confidence_sum"),
            func.sum(p.tokens).label("tokens"),
            func.count(p.ms).label("timed"),
        ),
        group("b", p.bin),
        group("c", p.centile),
        group("m", p.bucket),
    ]
    columns: list[tuple[str, Any]] = [
        ("reports", lambda u: func.sum(case((u.c.kind == "t", u.c.n), else_=0))),
        ("confidence_sum", lambda u: func.sum(u.c.confidence_sum)),
        ("tokens", lambda u: func.sum(u.c.tokens)),
        ("timed_reports", lambda u: func.sum(case((u.c.kind == "t", u.c.timed), else_=0))),
        *((bin_column(i), _kind_count("b", i)) for i in range(CONFIDENCE_BINS)),
        *((centile_column(c), _kind_count("c", c)) for c in range(CENTILES)),
        *((ms_bucket_column(b), _kind_count("m", b)) for b in range(PROCESSING_TIME_BUCKETS)),
    ]
    return _pivot(keys, groups, columns)


def processing_time_bucket(column: Any) -> ColumnElement[int]:
    """The bucket of a processing time: ``ms // PROCESSING_TIME_BUCKET_MS``, the last
    bucket also holding every longer time (NULL for NULL)."""
    last = PROCESSING_TIME_BUCKETS - 1
    # Literals, not bound values: GROUP BY and CASE repeat the very same expression.
    quotient = type_coerce(column.op("/")(literal_column(str(PROCESSING_TIME_BUCKET_MS))), Integer)
    return case(
        (
            column >= literal_column(str(last * PROCESSING_TIME_BUCKET_MS)),
            literal_column(str(last)),
        ),
        else_=quotient,
    )


def _processing_time_value_rows(where: Where, hourly: bool) -> Select[Any]:
    r = ProcessingReport
    return _grouped(
        [*_time_keys(r.created_at, hourly), r.processing_time_ms.label("processing_time_ms")],
        [func.count().label("reports")],
        and_(where(r.created_at), r.processing_time_ms.is_not(None)),
        hourly,
    )


def report_field_rows(where: ColumnElement[bool]) -> CompoundSelect[Any]:
    """Each field of each report under ``where`` (a condition on ``processing_reports``),
    read from the report's JSON: ``report_id``, ``field_name``, ``created_at``,
    ``intent``, ``confidence_route``, ``confidence`` and ``is_missing``.

    An extracted field is a member of ``extracted_fields`` whose value is an object, with
    that object's ``confidence`` as a float. A missing field is an element of
    ``missing_fields`` (when it is an array), counted once per report, and not at all
    when the same name is extracted: one row per report and field name.
    """
    r = ProcessingReport

    def columns(field_name: Any, confidence: Any, is_missing: Any) -> list[Any]:
        return [
            r.id.label("report_id"),
            field_name.label("field_name"),
            r.created_at.label("created_at"),
            r.intent.label("intent"),
            r.confidence_route.label("confidence_route"),
            confidence.label("confidence"),
            is_missing.label("is_missing"),
        ]

    member = json_object_members(r.extracted_fields, name="member")
    extracted = (
        select(*columns(member.c.key, json_member_confidence(member), false()))
        .select_from(r)
        .join(member, true())
        .where(where, json_member_is_object(member))
    )
    name = json_array_texts(r.missing_fields, name="missing_name")
    same = json_object_members(r.extracted_fields, name="same_name")
    also_extracted = exists().where(same.c.key == name.c.value, json_member_is_object(same))
    missing = (
        select(*columns(name.c.value, cast(null(), Float), true()))
        .select_from(r)
        .join(name, true())
        .where(where, ~also_extracted)
        .distinct()
    )
    return union_all(extracted, missing)


def _fields_rows(where: Where, hourly: bool) -> Select[Any]:
    rf = report_field_rows(where(ProcessingReport.created_at)).subquery("report_fields").c
    scored_bin = case(
        (or_(rf.is_missing, rf.confidence.is_(None)), None), else_=confidence_bin(rf.confidence)
    )
    per_field = select(
        *_time_keys(rf.created_at, hourly),
        rf.intent.label("intent"),
        rf.confidence_route.label("route"),
        rf.field_name.label("field_name"),
        rf.is_missing.label("is_missing"),
        rf.confidence.label("confidence"),
        scored_bin.label("bin"),
    ).subquery()
    f = per_field.c
    keys = [f.day, f.hour, f.intent, f.route, f.field_name]
    return select(
        *keys,
        func.sum(case((f.is_missing, 0), else_=1)).label("extracted"),
        func.sum(case((f.is_missing, 1), else_=0)).label("missing"),
        func.count(f.confidence).label("scored"),
        func.sum(f.confidence).label("confidence_sum"),
        func.min(f.confidence).label("confidence_min"),
        func.max(f.confidence).label("confidence_max"),
        *(_count_where(f.bin, i).label(bin_column(i)) for i in range(CONFIDENCE_BINS)),
    ).group_by(*keys)


def _missing_set_rows(where: Where, hourly: bool) -> Select[Any]:
    r = ProcessingReport
    return _grouped(
        [*_report_keys(hourly), json_text(r.missing_fields).label("missing_set")],
        [func.count().label("reports")],
        where(r.created_at),
        hourly,
    )


def _review_queue_rows(where: Where, hourly: bool) -> Select[Any]:
    r = ProcessingReport
    closed_day = func.coalesce(utc_date(r.review_closed_at), literal(OPEN_DAY, type_=utc_date.type))
    return _grouped(
        [
            *_report_keys(hourly),
            r.review_reason.label("review_reason"),
            closed_day.label("closed_day"),
        ],
        [func.count().label("items")],
        and_(where(r.created_at), r.needs_review),
        hourly,
    )


def _verdict_rows(where: Where, hourly: bool) -> Select[Any]:
    v = ReviewFieldVerdict
    d = ReviewDecision
    confidence = v.extracted_confidence
    per_verdict = (
        select(
            *_time_keys(d.report_created_at, hourly),
            v.field_name.label("field_name"),
            v.was_missing.label("was_missing"),
            v.verdict.label("verdict"),
            confidence.label("confidence"),
            case((confidence.is_(None), None), else_=confidence_centile(confidence)).label(
                "centile"
            ),
        )
        .select_from(v)
        .join(d, d.id == v.decision_id)
        .where(where(d.report_created_at))
        .cte("per_verdict")
    )
    p = per_verdict.c
    keys = ["day", "hour", "field_name", "was_missing", "verdict"]
    key_columns = [p[name] for name in keys]
    # One narrow group per key and centile (NULL: no confidence), then pivoted.
    groups = [
        select(
            *key_columns,
            literal_column("'c'").label("kind"),
            p.centile.label("v"),
            func.count().label("n"),
            func.sum(p.confidence).label("confidence_sum"),
        ).group_by(*key_columns, p.centile)
    ]

    def centile_sum(centile: int) -> Callable[[Any], Any]:
        def aggregate(union: Any) -> Any:
            return func.coalesce(
                func.sum(case((union.c.v == centile, union.c.confidence_sum), else_=0.0)),
                literal_column("0.0"),
            )

        return aggregate

    columns: list[tuple[str, Any]] = [
        ("verdicts", lambda u: func.sum(u.c.n)),
        ("unscored", lambda u: func.sum(case((u.c.v.is_(None), u.c.n), else_=0))),
        *((centile_column(c), _kind_count("c", c)) for c in range(CENTILES)),
        *((centile_sum_column(c), centile_sum(c)) for c in range(CENTILES)),
    ]
    return _pivot(keys, groups, columns)


@dataclass(frozen=True, slots=True)
class Rollup:
    """A rollup table, its grouping columns and the SQL that computes its rows from the
    raw rows (grouped by day and hour, or by whole day)."""

    table: Table
    keys: tuple[str, ...]
    raw_rows: Callable[[Where, bool], Select[Any]]

    def columns(self, names: Sequence[str] | None) -> list[str]:
        """The table's column names, in order: all of them, or the keys plus ``names``."""
        if names is None:
            return [column.name for column in self.table.c]
        wanted = set(self.keys) | set(names)
        return [column.name for column in self.table.c if column.name in wanted]

    def raw(
        self, where: Where, names: Sequence[str] | None = None, *, hourly: bool = False
    ) -> Select[Any]:
        """The raw rows under ``where`` grouped like the table, in its column order (only
        the keys and ``names`` when given); by hour with ``hourly``, else by whole day."""
        rows = self.raw_rows(where, hourly).subquery()
        return select(*(rows.c[name] for name in self.columns(names)))


_DIMS = ("day", "hour", "intent", "route")
ROLLUPS: Final[tuple[Rollup, ...]] = (
    Rollup(rollup_reports, (*_DIMS, "needs_review"), _reports_rows),
    Rollup(
        rollup_processing_time_values,
        ("day", "hour", "processing_time_ms"),
        _processing_time_value_rows,
    ),
    Rollup(rollup_fields, (*_DIMS, "field_name"), _fields_rows),
    Rollup(rollup_missing_sets, (*_DIMS, "missing_set"), _missing_set_rows),
    Rollup(rollup_review_queue, (*_DIMS, "review_reason", "closed_day"), _review_queue_rows),
    Rollup(rollup_verdicts, ("day", "hour", "field_name", "was_missing", "verdict"), _verdict_rows),
)
assert tuple(rollup.table for rollup in ROLLUPS) == ROLLUP_TABLES

BY_TABLE: Final[dict[str, Rollup]] = {rollup.table.name: rollup for rollup in ROLLUPS}


# --------------------------------------------------------------------------------------
# Days
# --------------------------------------------------------------------------------------


def day_runs(days: Sequence[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Sorted days as runs of consecutive days: ``[(first, last), ...]``."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if runs and day == runs[-1][1] + dt.timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def on_days(days: Sequence[dt.date]) -> Where:
    """A condition on a timestamp column: it falls on one of ``days`` (UTC)."""
    return on_ranges([utc_day_bounds(first, last) for first, last in day_runs(days)])


def on_ranges(ranges: Sequence[tuple[dt.datetime, dt.datetime]]) -> Where:
    """A condition on a timestamp column: it falls in one of the ``[start, end)`` ranges."""

    def where(column: Any) -> ColumnElement[bool]:
        if not ranges:
            return false()
        return or_(*(and_(column >= start, column < end) for start, end in ranges))

    return where


def _hour_range(day: dt.date, hour: int) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)
    return start, start + dt.timedelta(hours=1)


#: Days this recent (0: today) are read by the hour: a changed hour is computed from the
#: raw rows, not its whole day.
READ_HOURLY_DAYS: Final = 1
#: Days this recent are kept as hourly rows by a refresh; older days as whole-day rows.
#: One more than READ_HOURLY_DAYS: a read never sees a day change form under it.
KEEP_HOURLY_DAYS: Final = 2


@dataclass(frozen=True, slots=True)
class Dirty:
    """What changed since the last refresh, as read at one instant: ``today`` is the
    database's UTC date then; ``hours[day]`` the changed hours of each day (None: the
    whole day)."""

    today: dt.date | None
    hours: dict[dt.date, frozenset[int | None]]

    @property
    def days(self) -> list[dt.date]:
        return sorted(self.hours)

    def by_hour(self, day: dt.date) -> bool:
        """Whether ``day`` is read by the hour: recent, and not changed as a whole."""
        return (
            self.today is not None
            and day > self.today - dt.timedelta(days=READ_HOURLY_DAYS)
            and None not in self.hours[day]
        )

    def within(self, start: dt.date | None, end: dt.date) -> Dirty:
        return Dirty(
            self.today,
            {d: h for d, h in self.hours.items() if d <= end and (start is None or d >= start)},
        )


@functools.cache
def _dirty_statement(from_start: bool, to_end: bool) -> Select[Any]:
    d = rollup_dirty_days.c
    stmt = select(d.day, d.hour, utc_date(utcnow())).distinct()
    if from_start:
        stmt = stmt.where(d.day >= bindparam("dirty_start", type_=Date()))
    if to_end:
        stmt = stmt.where(d.day <= bindparam("dirty_end", type_=Date()))
    return stmt


def read_dirty(
    session: Session, *, start: dt.date | None = None, end: dt.date | None = None
) -> Dirty:
    """The changed hours within ``[start, end]``, with the database's date, in one read."""
    params = {"dirty_start": start, "dirty_end": end}
    stmt = _dirty_statement(start is not None, end is not None)
    hours: dict[dt.date, set[int | None]] = {}
    today = None
    for day, hour, now_day in session.execute(stmt, params):
        hours.setdefault(as_date(day), set()).add(None if hour is None else int(hour))
        today = as_date(now_day)
    return Dirty(today, {day: frozenset(h) for day, h in hours.items()})


def dirty_days(
    session: Session, *, start: dt.date | None = None, end: dt.date | None = None
) -> list[dt.date]:
    """Days with a change since their last rebuild, within ``[start, end]``."""
    return read_dirty(session, start=start, end=end).days


@dataclass(frozen=True, slots=True)
class SourceShape:
    """What the SQL of a rollup read depends on, apart from the values it binds.

    Reads of one shape share one statement, built once and compiled once per engine,
    whatever their days and changed hours: ``hour_days`` changed recent days read by the
    hour, ``whole_days`` whether changed days are read whole, ``raw_ranges`` the time
    ranges read from the raw rows.
    """

    table: str
    names: tuple[str, ...]
    from_start: bool
    day_list: bool
    hour_days: int
    whole_days: bool
    raw_ranges: int


@dataclass(frozen=True, slots=True)
class SourceRead:
    """A rollup read: its shape and the values to execute it with."""

    shape: SourceShape
    params: dict[str, Any]


def plan_source(
    rollup: Rollup,
    *,
    start: dt.date | None,
    end: dt.date,
    dirty: Dirty,
    columns: Sequence[str] | None = None,
    day_list: bool = False,
) -> SourceRead:
    """The read of ``rollup`` for the days ``[start, end]`` (``start`` None: every day up
    to ``end``) under the changes ``dirty`` (as read with :func:`read_dirty`): from the
    table where nothing changed since the last refresh, from the raw rows for the changed
    hours of recent days and the changed older days.

    Callers aggregate over ``source_rows(read.shape)``, executed with ``read.params``;
    every raw row is counted exactly once. ``columns``: the measures the caller reads
    (every column when None); the keys always come along. ``day_list``: name the days one
    by one (an index on ``(day, …)`` then reads one range per day).
    """
    changes = dirty.within(start, end)
    params: dict[str, Any] = {}
    listed = day_list and start is not None
    if day_list and start is not None:
        params["rollup_days"] = [
            start + dt.timedelta(days=i) for i in range((end - start).days + 1)
        ]
    else:
        params["rollup_end"] = end
        if start is not None:
            params["rollup_start"] = start
    ranges: list[tuple[dt.datetime, dt.datetime]] = []
    hour_days = 0
    whole_days: list[dt.date] = []
    for day in changes.days:
        if changes.by_hour(day):
            hours = sorted(h for h in changes.hours[day] if h is not None)
            params[f"changed_day_{hour_days}"] = day
            params[f"changed_hours_{hour_days}"] = hours
            hour_days += 1
            ranges += _hour_runs(day, hours)
        else:
            whole_days.append(day)
    if whole_days:
        params["whole_days"] = whole_days
        ranges += [utc_day_bounds(first, last) for first, last in day_runs(whole_days)]
    for index, (range_start, range_end) in enumerate(ranges):
        params[f"raw_start_{index}"] = range_start
        params[f"raw_end_{index}"] = range_end
    shape = SourceShape(
        table=rollup.table.name,
        names=tuple(rollup.columns(columns)),
        from_start=start is not None,
        day_list=listed,
        hour_days=hour_days,
        whole_days=bool(whole_days),
        raw_ranges=len(ranges),
    )
    return SourceRead(shape, params)


def _hour_runs(day: dt.date, hours: Sequence[int]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Sorted hours of ``day`` as ``[start, end)`` ranges, consecutive hours as one range."""
    runs: list[tuple[dt.datetime, dt.datetime]] = []
    for hour in hours:
        start, end = _hour_range(day, hour)
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def _bound_ranges(count: int) -> Where:
    """A condition on a timestamp column: it falls in one of ``count`` bound ranges."""

    def where(column: Any) -> ColumnElement[bool]:
        return or_(
            *(
                and_(
                    column >= bindparam(f"raw_start_{index}"),
                    column < bindparam(f"raw_end_{index}"),
                )
                for index in range(count)
            )
        )

    return where


#: Statements kept per query function, one per shape: enough for the filter kinds and
#: change patterns a running dashboard cycles through, so none is rebuilt on every read.
STATEMENT_CACHE_SIZE: Final = 64


@functools.lru_cache(maxsize=256)
def source_rows(shape: SourceShape) -> Subquery:
    """The rows of a rollup read of ``shape``, its values left to bind (see
    :func:`plan_source`); one object per shape, so statements built on it keep their
    cache key and column collections."""
    table = BY_TABLE[shape.table].table
    day = table.c.day
    conditions: list[ColumnElement[bool]] = []
    if shape.day_list:
        conditions.append(day.in_(bindparam("rollup_days", expanding=True)))
    else:
        conditions.append(day <= bindparam("rollup_end"))
        if shape.from_start:
            conditions.append(day >= bindparam("rollup_start"))
    for index in range(shape.hour_days):
        # The hourly rows of changed hours give way to the raw rows of those hours.
        hours = table.c.hour
        changed_hours: Any = bindparam(f"changed_hours_{index}", expanding=True)
        conditions.append(
            or_(
                day != bindparam(f"changed_day_{index}"),
                and_(hours.is_not(None), hours.not_in(changed_hours)),
            )
        )
    if shape.whole_days:
        conditions.append(day.not_in(bindparam("whole_days", expanding=True)))
    stored = select(*(table.c[name] for name in shape.names)).where(*conditions)
    if not shape.raw_ranges:
        rows = stored.subquery(table.name)
    else:
        raw = BY_TABLE[shape.table].raw(_bound_ranges(shape.raw_ranges), shape.names)
        rows = union_all(stored, raw).subquery(table.name)
    rows.c  # noqa: B018 - the column collection is made here, before threads share it
    return rows


# --------------------------------------------------------------------------------------
# Maintenance
# --------------------------------------------------------------------------------------


def _replace(
    session: Session, condition: Callable[[Table], Any], where: Where, hourly: bool
) -> None:
    for rollup in ROLLUPS:
        table = rollup.table
        session.execute(delete(table).where(condition(table)))
        session.execute(
            insert(table).from_select([c.name for c in table.c], rollup.raw(where, hourly=hourly))
        )


def _on_day(day: dt.date) -> Callable[[Table], Any]:
    return lambda table: table.c.day == day


def _rebuild_day(
    session: Session, day: dt.date, hours: frozenset[int | None], today: dt.date
) -> None:
    """Rebuild ``day``'s rollups: whole-day rows for an older day, hourly rows for a
    recent one (only the changed ``hours`` when its rows are hourly already)."""
    if day <= today - dt.timedelta(days=KEEP_HOURLY_DAYS):
        _replace(session, _on_day(day), on_days([day]), hourly=False)
        return
    whole = rollup_reports.c
    has_whole_day_rows = session.execute(
        select(whole.day).where(whole.day == day, whole.hour.is_(None)).limit(1)
    ).first()
    if None in hours or has_whole_day_rows is not None:
        _replace(session, _on_day(day), on_days([day]), hourly=True)
        return
    changed = sorted(h for h in hours if h is not None)
    _replace(
        session,
        lambda t: and_(t.c.day == day, t.c.hour.in_(changed)),
        on_ranges([_hour_range(day, hour) for hour in changed]),
        hourly=True,
    )


def refresh_rollups(
    session: Session, *, max_days: int | None = None, lock_timeout_ms: int = REFRESH_LOCK_TIMEOUT_MS
) -> list[dt.date]:
    """Rebuild the rollups of changed days (the oldest ``max_days`` of them, or all) from
    the raw rows and mark them clean; fold the hourly rows of days that are no longer
    recent into whole-day rows. Returns the days rebuilt.

    Flushes; the caller commits. On PostgreSQL writers wait while this runs (see the
    module docstring): keep ``max_days`` small on a busy database. When in-flight writers
    hold on longer than ``lock_timeout_ms`` it raises :class:`RefreshBusyError` and the
    caller's transaction must be rolled back; :func:`refresh_with_retries` retries.
    """
    try:
        lock_for_refresh(session, table=rollup_dirty_days.name, lock_timeout_ms=lock_timeout_ms)
    except OperationalError as exc:
        raise RefreshBusyError() from exc
    d = rollup_dirty_days.c
    oldest = select(d.day).distinct().order_by(d.day)
    if max_days is not None:
        oldest = oldest.limit(max_days)
    # DELETE first: on SQLite it takes the write lock before anything is read.
    changed: dict[dt.date, set[int | None]] = {}
    for day, hour in session.execute(
        delete(rollup_dirty_days)
        .where(d.day.in_(oldest.scalar_subquery()))
        .returning(d.day, d.hour)
    ):
        changed.setdefault(as_date(day), set()).add(None if hour is None else int(hour))
    today = as_date(session.scalar(select(utc_date(utcnow()))))
    for day in sorted(changed):
        _rebuild_day(session, day, frozenset(changed[day]), today)
    # Hourly rows of days no longer recent become whole-day rows (a few days at a time).
    cutoff = today - dt.timedelta(days=KEEP_HOURLY_DAYS - 1)
    stale = select(rollup_reports.c.day).where(
        rollup_reports.c.hour.is_not(None), rollup_reports.c.day < cutoff
    )
    if changed:
        stale = stale.where(rollup_reports.c.day.not_in(list(changed)))
    folded = [
        as_date(day)
        for day in session.scalars(
            stale.distinct().order_by(rollup_reports.c.day).limit(max_days or 31)
        )
    ]
    for day in folded:
        _replace(session, _on_day(day), on_days([day]), hourly=False)
    session.flush()
    return sorted(set(changed) | set(folded))


class RefreshBusyError(ReportlibError):
    """Writers held the rollup change list for longer than the refresh would wait."""

    def __init__(self) -> None:
        super().__init__("writers are busy; the rollup refresh gave way and can be retried")


def refresh_with_retries(
    session_factory: Callable[[], Session], *, max_days: int | None, attempts: int = 40
) -> list[dt.date]:
    """:func:`refresh_rollups` in its own committed transaction, retried (with a short,
    growing pause) while busy writers make it give way."""
    for attempt in range(attempts):
        try:
            with session_factory() as session, session.begin():
                return refresh_rollups(session, max_days=max_days)
        except RefreshBusyError:
            if attempt == attempts - 1:
                raise
            time.sleep(min(0.05 * (attempt + 1), 1.0))
    return []  # pragma: no cover - the loop returns or raises


def mark_all_days_dirty(session: Session) -> int:
    """Mark every day that has reports, verdicts or rollup rows as changed as a whole.
    Returns the number of changed days."""
    r = ProcessingReport
    d = ReviewDecision
    sources: list[Select[Any]] = [
        select(utc_date(r.created_at).label("day")).distinct(),
        select(utc_date(d.report_created_at).label("day"))
        .where(exists().where(ReviewFieldVerdict.decision_id == d.id))
        .distinct(),
    ]
    sources += [select(t.c.day).distinct() for t in ROLLUP_TABLES]
    wanted = union_all(*sources).subquery()
    days = {as_date(day) for day in session.scalars(select(wanted.c.day).distinct())}
    marked = read_dirty(session)
    days -= {day for day, hours in marked.hours.items() if None in hours}
    if days:
        session.execute(
            insert(rollup_dirty_days), [{"day": day, "hour": None} for day in sorted(days)]
        )
    return len(dirty_days(session))


def rebuild_rollups(
    session_factory: Callable[[], Session],
    *,
    chunk_days: int = REBUILD_CHUNK_DAYS,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Rebuild every day's rollups from the raw rows, ``chunk_days`` days per committed
    transaction, calling ``progress(done, total)`` after each. Returns the days rebuilt.

    Reads stay exact throughout: a day not rebuilt yet is dirty and read raw.
    """
    with session_factory() as session, session.begin():
        total = mark_all_days_dirty(session)
    done = 0
    if progress is not None:
        progress(done, total)
    while True:
        days = refresh_with_retries(session_factory, max_days=chunk_days)
        if not days:
            return done
        done += len(days)
        if progress is not None:
            progress(min(done, total), max(total, done))


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RollupDifference:
    """One group whose stored rollup row differs from the raw rows (ids and counts only)."""

    table: str
    day: dt.date
    key: tuple[Any, ...]
    stored: tuple[Any, ...] | None
    raw: tuple[Any, ...] | None


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def _by_key(rows: Iterator[Any], rollup: Rollup, skip: set[dt.date]) -> dict[tuple[Any, ...], Any]:
    measures = [c.name for c in rollup.table.c if c.name not in rollup.keys]
    out: dict[tuple[Any, ...], Any] = {}
    for row in rows:
        mapping = row._mapping
        day = as_date(mapping["day"])
        if day in skip:
            continue
        key = (day, *(mapping[k] for k in rollup.keys[1:]))
        out[key] = tuple(mapping[m] for m in measures)
    return out


def verify_rollups(session: Session, *, limit: int = 100) -> list[RollupDifference]:
    """Compare every clean day's rollup rows with the raw rows; the first ``limit``
    differences (an empty list when they agree). Floating-point sums agree to 1e-9."""
    skip = set(dirty_days(session))
    differences: list[RollupDifference] = []
    for rollup in ROLLUPS:
        table = rollup.table
        stored = _by_key(iter(session.execute(select(*table.c))), rollup, skip)
        # Each day is compared in the form its rows are stored in: by hour or whole.
        hourly_days = {key[0] for key in stored if key[1] is not None}
        everything = lambda column: true()  # noqa: E731 - a condition that keeps every row
        by_day = _by_key(iter(session.execute(rollup.raw(everything))), rollup, skip)
        by_hour = _by_key(iter(session.execute(rollup.raw(everything, hourly=True))), rollup, skip)
        raw = {k: v for k, v in by_day.items() if k[0] not in hourly_days}
        raw |= {k: v for k, v in by_hour.items() if k[0] in hourly_days}
        for key in sorted(set(stored) | set(raw), key=repr):
            a, b = stored.get(key), raw.get(key)
            if a is not None and b is not None and all(map(_close, a, b)):
                continue
            differences.append(RollupDifference(table.name, key[0], key[1:], a, b))
            if len(differences) >= limit:
                return differences
    return differences


__all__ = [
    "BY_TABLE",
    "ROLLUPS",
    "RefreshBusyError",
    "Rollup",
    "RollupDifference",
    "day_runs",
    "Dirty",
    "dirty_days",
    "mark_all_days_dirty",
    "on_days",
    "on_ranges",
    "read_dirty",
    "processing_time_bucket",
    "rebuild_rollups",
    "refresh_rollups",
    "report_field_rows",
    "refresh_with_retries",
    "STATEMENT_CACHE_SIZE",
    "SourceRead",
    "SourceShape",
    "plan_source",
    "source_rows",
    "verify_rollups",
]
