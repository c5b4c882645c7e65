"""Daily rollups: what the dashboard's pages sum, kept exact by rebuilding whole days.

Each rollup table (see :mod:`reportlib.models`) holds, per UTC day of ``created_at`` and
per intent and route, counts and sums over that day's raw rows. The SQL that fills a day
is the same SQL that reads a day which has not been rolled up yet
(:func:`rollup_source`), so the two paths cannot disagree.

**Freshness: every write is visible on the next read.** Database triggers (migration
0003) put the UTC day of every row that a write adds, changes or removes into
``rollup_dirty_days``: inserts, re-processing that moves a report to a new day, intent,
route or missing set, deletions, and review decisions (which close a queue item). Reads
take clean days from the rollups and dirty days from the raw rows, in one statement.
:func:`refresh_rollups` folds dirty days back into the rollups; that only makes reads
cheaper, never more correct. The dashboard runs it every
``ROLLUP_REFRESH_INTERVAL_S`` seconds; ``python -m reportlib rollups refresh`` does the
same from cron.

**Writers never wait on a hot row.** A write's only rollup work is one ``INSERT ...
SELECT ... WHERE NOT EXISTS`` of its day into ``rollup_dirty_days`` (no unique key, so a
writer never waits for another writer's uncommitted day; a day listed twice is harmless).
A refresh takes ``rollup_dirty_days`` in EXCLUSIVE mode on PostgreSQL: writers that
already marked a day finish first, so the rebuild sees their rows, and writers arriving
meanwhile wait until it commits, then mark their day again. The refresh waits at most
``REFRESH_LOCK_TIMEOUT_MS`` and otherwise gives way.

**Reads cost the same at any traffic.** Histograms (confidence bins and centiles,
processing-time buckets, verdict centiles) are columns of one row per day, intent, route
and flag, not rows per bucket, so a 30-day window reads about a thousand short rows
whether a day holds ten reports or a hundred thousand.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Subquery,
    Table,
    and_,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from reportlib.dialect import (
    confidence_bin,
    confidence_centile,
    json_text,
    lock_for_refresh,
    utc_date,
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
    ReportField,
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


def _report_keys() -> list[Any]:
    r = ProcessingReport
    return [
        utc_date(r.created_at).label("day"),
        r.intent.label("intent"),
        r.confidence_route.label("route"),
    ]


def _grouped(keys: list[Any], measures: list[Any], where: ColumnElement[bool]) -> Select[Any]:
    return select(*keys, *measures).where(where).group_by(*(key.element for key in keys))


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


def _reports_rows(where: Where) -> Select[Any]:
    r = ProcessingReport
    ms = r.processing_time_ms
    per_report = (
        select(
            *_report_keys(),
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
    keys = ["day", "intent", "route", "needs_review"]
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
    quotient = type_coerce(
        column.op("/")(literal_column(str(PROCESSING_TIME_BUCKET_MS))), Integer
    )
    return case(
        (column >= literal_column(str(last * PROCESSING_TIME_BUCKET_MS)), literal_column(str(last))),
        else_=quotient,
    )


def _processing_time_value_rows(where: Where) -> Select[Any]:
    r = ProcessingReport
    return _grouped(
        [utc_date(r.created_at).label("day"), r.processing_time_ms.label("processing_time_ms")],
        [func.count().label("reports")],
        and_(where(r.created_at), r.processing_time_ms.is_not(None)),
    )


def _fields_rows(where: Where) -> Select[Any]:
    rf = ReportField
    scored_bin = case(
        (or_(rf.is_missing, rf.confidence.is_(None)), None), else_=confidence_bin(rf.confidence)
    )
    per_field = (
        select(
            utc_date(rf.created_at).label("day"),
            rf.intent.label("intent"),
            rf.confidence_route.label("route"),
            rf.field_name.label("field_name"),
            rf.is_missing.label("is_missing"),
            rf.confidence.label("confidence"),
            scored_bin.label("bin"),
        )
        .where(where(rf.created_at))
        .subquery()
    )
    f = per_field.c
    keys = [f.day, f.intent, f.route, f.field_name]
    return (
        select(
            *keys,
            func.sum(case((f.is_missing, 0), else_=1)).label("extracted"),
            func.sum(case((f.is_missing, 1), else_=0)).label("missing"),
            func.count(f.confidence).label("scored"),
            func.sum(f.confidence).label("confidence_sum"),
            func.min(f.confidence).label("confidence_min"),
            func.max(f.confidence).label("confidence_max"),
            *(_count_where(f.bin, i).label(bin_column(i)) for i in range(CONFIDENCE_BINS)),
        )
        .group_by(*keys)
    )


def _missing_set_rows(where: Where) -> Select[Any]:
    r = ProcessingReport
    return _grouped(
        [*_report_keys(), json_text(r.missing_fields).label("missing_set")],
        [func.count().label("reports")],
        where(r.created_at),
    )


def _review_queue_rows(where: Where) -> Select[Any]:
    r = ProcessingReport
    closed_day = func.coalesce(utc_date(r.review_closed_at), literal(OPEN_DAY, type_=utc_date.type))
    return _grouped(
        [*_report_keys(), closed_day.label("closed_day")],
        [func.count().label("items")],
        and_(where(r.created_at), r.needs_review),
    )


def _verdict_rows(where: Where) -> Select[Any]:
    v = ReviewFieldVerdict
    d = ReviewDecision
    confidence = v.extracted_confidence
    per_verdict = (
        select(
            utc_date(d.report_created_at).label("day"),
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
    keys = ["day", "field_name", "was_missing", "verdict"]
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
    raw rows."""

    table: Table
    keys: tuple[str, ...]
    raw_rows: Callable[[Where], Select[Any]]

    def columns(self, names: Sequence[str] | None) -> list[str]:
        """The table's column names, in order: all of them, or the keys plus ``names``."""
        if names is None:
            return [column.name for column in self.table.c]
        wanted = set(self.keys) | set(names)
        return [column.name for column in self.table.c if column.name in wanted]

    def raw(self, where: Where, names: Sequence[str] | None = None) -> Select[Any]:
        """The raw rows under ``where`` grouped like the table, in its column order (only
        the keys and ``names`` when given)."""
        rows = self.raw_rows(where).subquery()
        return select(*(rows.c[name] for name in self.columns(names)))


_DIMS = ("day", "intent", "route")
ROLLUPS: Final[tuple[Rollup, ...]] = (
    Rollup(rollup_reports, (*_DIMS, "needs_review"), _reports_rows),
    Rollup(rollup_processing_time_values, ("day", "processing_time_ms"), _processing_time_value_rows),
    Rollup(rollup_fields, (*_DIMS, "field_name"), _fields_rows),
    Rollup(rollup_missing_sets, (*_DIMS, "missing_set"), _missing_set_rows),
    Rollup(rollup_review_queue, (*_DIMS, "closed_day"), _review_queue_rows),
    Rollup(rollup_verdicts, ("day", "field_name", "was_missing", "verdict"), _verdict_rows),
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
    runs = day_runs(days)

    def where(column: Any) -> ColumnElement[bool]:
        if not runs:
            return false()
        parts = []
        for first, last in runs:
            start, end = utc_day_bounds(first, last)
            parts.append(and_(column >= start, column < end))
        return or_(*parts)

    return where


def dirty_days(
    session: Session, *, start: dt.date | None = None, end: dt.date | None = None
) -> list[dt.date]:
    """Days listed as changed since their last rebuild, within ``[start, end]``."""
    d = rollup_dirty_days.c.day
    stmt = select(d).distinct().order_by(d)
    if start is not None:
        stmt = stmt.where(d >= start)
    if end is not None:
        stmt = stmt.where(d <= end)
    return list(session.scalars(stmt))


def rollup_source(
    session: Session,
    rollup: Rollup,
    *,
    start: dt.date | None,
    end: dt.date,
    dirty: Sequence[dt.date] | None = None,
    columns: Sequence[str] | None = None,
) -> Subquery:
    """Rows of ``rollup`` for the days ``[start, end]`` (``start`` None: every day up to
    ``end``): from the table for clean days, computed from the raw rows for dirty ones.

    Callers aggregate over the result; a day's rows come from exactly one of the two.
    ``dirty``: the dirty days as the caller just read them with :func:`dirty_days`, so
    that one read serves several sources (read here when None). ``columns``: the measures
    the caller reads (every column when None); the keys always come along.
    """
    table = rollup.table
    if dirty is None:
        dirty = dirty_days(session, start=start, end=end)
    else:
        dirty = [d for d in dirty if d <= end and (start is None or d >= start)]
    in_range: list[ColumnElement[bool]] = [table.c.day <= end]
    if start is not None:
        in_range.append(table.c.day >= start)
    if dirty:
        in_range.append(table.c.day.not_in(dirty))
    names = rollup.columns(columns)
    stored = select(*(table.c[name] for name in names)).where(*in_range)
    if not dirty:
        return stored.subquery(table.name)
    return union_all(stored, rollup.raw(on_days(dirty), names)).subquery(table.name)


# --------------------------------------------------------------------------------------
# Maintenance
# --------------------------------------------------------------------------------------


def _rebuild_days(session: Session, days: Sequence[dt.date]) -> None:
    where = on_days(days)
    for rollup in ROLLUPS:
        table = rollup.table
        session.execute(delete(table).where(table.c.day.in_(list(days))))
        session.execute(
            insert(table).from_select([c.name for c in table.c], rollup.raw(where))
        )


def refresh_rollups(
    session: Session, *, max_days: int | None = None, lock_timeout_ms: int = REFRESH_LOCK_TIMEOUT_MS
) -> list[dt.date]:
    """Rebuild the rollups of dirty days (the oldest ``max_days`` of them, or all) from
    the raw rows and mark them clean. Returns those days.

    Flushes; the caller commits. On PostgreSQL writers wait while this runs (see the
    module docstring): keep ``max_days`` small on a busy database. When in-flight writers
    hold on longer than ``lock_timeout_ms`` it raises :class:`RefreshBusyError` and the
    caller's transaction must be rolled back; :func:`refresh_with_retries` retries.
    """
    try:
        lock_for_refresh(session, table=rollup_dirty_days.name, lock_timeout_ms=lock_timeout_ms)
    except OperationalError as exc:
        raise RefreshBusyError() from exc
    d = rollup_dirty_days.c.day
    oldest = select(d).distinct().order_by(d)
    if max_days is not None:
        oldest = oldest.limit(max_days)
    # DELETE first: on SQLite it takes the write lock before anything is read.
    days = sorted(
        set(
            session.scalars(
                delete(rollup_dirty_days).where(d.in_(oldest.scalar_subquery())).returning(d)
            )
        )
    )
    if days:
        _rebuild_days(session, days)
    session.flush()
    return days


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
    """List every day that has reports, or rollup rows, as dirty. Returns the count."""
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
    present = select(rollup_dirty_days.c.day).distinct()
    days = {day for day in session.scalars(select(wanted.c.day).distinct())}
    days -= set(session.scalars(present))
    if days:
        session.execute(insert(rollup_dirty_days), [{"day": day} for day in sorted(days)])
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
        day = mapping["day"]
        if isinstance(day, str):
            day = dt.date.fromisoformat(day)
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
        raw = _by_key(iter(session.execute(rollup.raw(lambda column: true()))), rollup, skip)
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
    "dirty_days",
    "mark_all_days_dirty",
    "on_days",
    "processing_time_bucket",
    "rebuild_rollups",
    "refresh_rollups",
    "refresh_with_retries",
    "rollup_source",
    "verify_rollups",
]
