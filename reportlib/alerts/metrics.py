"""What alert rules measure, over whole UTC hours, read the way the rollups are built.

Windowed metrics read the hourly rows of :mod:`reportlib.rollups` (``Rollup.raw`` with
``hourly=True``: the same SQL that fills an hourly rollup row, so a figure here equals
the dashboard's for the same hours) over one range or several (a baseline's days).
The queue metrics read :func:`reportlib.queries.queue_snapshot` at the evaluation
instant, and ECE reads :func:`reportlib.quality.get_calibration` for the window.

Each metric returns a :class:`Reading`: the value (None when there is nothing to measure)
and the volume it rests on (reports, open items or verdicts), which a rule's
``min_volume`` compares against.

Extension point: a metric is one entry of :data:`METRICS`. The accuracy of auto-approved
values (a separate issue) is added there once that data exists; until then it is not
listed, so a rule naming it is a configuration error rather than a silent zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, Subquery, case, func, literal_column, select
from sqlalchemy.orm import Session

from reportlib.checks import check_aware
from reportlib.errors import ReportValidationError
from reportlib.quality import get_calibration
from reportlib.queries import queue_snapshot
from reportlib.rollups import BY_TABLE, on_ranges

Ranges = Sequence[tuple[dt.datetime, dt.datetime]]


@dataclass(frozen=True, slots=True)
class Scope:
    """What a rule looks at: optional intent, route and field."""

    intent: str | None = None
    route: str | None = None
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """A metric's value over some hours (None: nothing to measure) and the volume
    (reports, open items or verdicts) it rests on."""

    value: float | None
    volume: int


Reader = Callable[[Session, Ranges, Scope, dt.datetime], Reading]


def hour_window(now: dt.datetime, hours: int) -> tuple[dt.datetime, dt.datetime]:
    """The ``hours`` whole UTC hours that ended at or before ``now``."""
    check_aware(now, "now")
    end = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return end - dt.timedelta(hours=hours), end


def baseline_ranges(
    start: dt.datetime, end: dt.datetime, days: int
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The same hours on each of the ``days`` previous days."""
    return [(start - dt.timedelta(days=k), end - dt.timedelta(days=k)) for k in range(1, days + 1)]


def _hourly(name: str, ranges: Ranges, columns: Sequence[str]) -> Subquery:
    return BY_TABLE[name].raw(on_ranges(tuple(ranges)), columns, hourly=True).subquery(name)


def _dims(source: Subquery, scope: Scope) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if scope.intent is not None:
        conditions.append(source.c.intent == scope.intent)
    if scope.route is not None:
        conditions.append(source.c.route == scope.route)
    return conditions


def _report_sums(db: Session, ranges: Ranges, scope: Scope) -> Any:
    s = _hourly("rollup_reports", ranges, ("reports", "confidence_sum"))
    zero: Any = literal_column("0")
    return db.execute(
        select(
            func.coalesce(func.sum(s.c.reports), zero).label("reports"),
            func.coalesce(func.sum(case((s.c.needs_review, s.c.reports), else_=0)), zero).label(
                "flagged"
            ),
            func.coalesce(func.sum(s.c.confidence_sum), 0.0).label("confidence_sum"),
            func.coalesce(func.sum(case((s.c.route == "low", s.c.reports), else_=0)), zero).label(
                "low"
            ),
        ).where(*_dims(s, scope))
    ).one()


def _share(part: float, whole: int) -> Reading:
    return Reading(part / whole if whole else None, int(whole))


def needs_review_rate(db: Session, ranges: Ranges, scope: Scope, now: dt.datetime) -> Reading:
    """Share of reports flagged for review."""
    sums = _report_sums(db, ranges, scope)
    return _share(int(sums.flagged), int(sums.reports))


def mean_confidence(db: Session, ranges: Ranges, scope: Scope, now: dt.datetime) -> Reading:
    """Mean overall confidence of the reports."""
    sums = _report_sums(db, ranges, scope)
    return _share(float(sums.confidence_sum), int(sums.reports))


def low_route_share(db: Session, ranges: Ranges, scope: Scope, now: dt.datetime) -> Reading:
    """Share of reports routed ``low``."""
    sums = _report_sums(db, ranges, scope)
    return _share(int(sums.low), int(sums.reports))


def report_volume(db: Session, ranges: Ranges, scope: Scope, now: dt.datetime) -> Reading:
    """Reports written, per range (a baseline's value is its mean day)."""
    reports = int(_report_sums(db, ranges, scope).reports)
    return Reading(reports / len(ranges), reports)


def missing_rate(db: Session, ranges: Ranges, scope: Scope, now: dt.datetime) -> Reading:
    """Share of reports whose ``missing_fields`` name the field."""
    if scope.field is None:
        raise ReportValidationError("field", "is required for missing_rate")
    reports = int(_report_sums(db, ranges, scope).reports)
    s = _hourly("rollup_fields", ranges, ("missing",))
    missing = db.execute(
        select(func.coalesce(func.sum(s.c.missing), literal_column("0"))).where(
            s.c.field_name == scope.field, *_dims(s, scope)
        )
    ).scalar_one()
    return _share(int(missing), reports)


def _snapshot(db: Session, scope: Scope, now: dt.datetime) -> Any:
    return queue_snapshot(
        db,
        as_of=now,
        intents=() if scope.intent is None else (scope.intent,),
        routes=() if scope.route is None else (scope.route,),
    )


def open_queue_size(db: Session, ranges: Ranges, scope: Scope, now: dt.datetime) -> Reading:
    """Open review items at the evaluation instant (all dates)."""
    size = int(_snapshot(db, scope, now).size)
    return Reading(float(size), size)


def oldest_open_age_hours(db: Session, ranges: Ranges, scope: Scope, now: dt.datetime) -> Reading:
    """Hours the oldest open review item has waited at the evaluation instant."""
    snapshot = _snapshot(db, scope, now)
    age = snapshot.oldest_age_s
    return Reading(None if age is None else age / 3600.0, int(snapshot.size))


def ece(db: Session, ranges: Ranges, scope: Scope, now: dt.datetime) -> Reading:
    """Expected calibration error of reviewed fields (one field, or all) for the reports
    written in the window; the volume is the verdicts it rests on."""
    ((start, end),) = ranges
    report = get_calibration(
        db, start=start, end=end, fields=None if scope.field is None else [scope.field]
    )
    part = report.overall
    if scope.field is not None:
        part = next((f for f in report.fields if f.field_name == scope.field), part)
        if part.field_name != scope.field:
            return Reading(None, 0)
    return Reading(part.ece, int(part.n))


@dataclass(frozen=True, slots=True)
class Metric:
    """A measurable figure: how to read it, which dashboard page shows it, and which
    rule keys apply to it."""

    name: str
    read: Reader
    page: str
    field: str  # "required", "optional" or "no"
    routes: bool = True
    intents: bool = True
    baseline: bool = True


METRICS: Final[dict[str, Metric]] = {
    metric.name: metric
    for metric in (
        Metric("needs_review_rate", needs_review_rate, "", "no"),
        Metric("mean_confidence", mean_confidence, "confidence", "no"),
        Metric("missing_rate", missing_rate, "missing-fields", "required"),
        Metric("open_queue_size", open_queue_size, "review", "no", baseline=False),
        Metric("oldest_open_age_hours", oldest_open_age_hours, "review", "no", baseline=False),
        Metric("low_route_share", low_route_share, "confidence", "no", routes=False),
        Metric("report_volume", report_volume, "", "no"),
        Metric("ece", ece, "quality", "optional", routes=False, intents=False, baseline=False),
        # Extension point: "auto_approved_accuracy" joins here once auto-approval exists.
    )
}


def read_metric(
    db: Session, metric: str, ranges: Ranges, scope: Scope, *, now: dt.datetime
) -> Reading:
    """``metric`` over ``ranges`` (whole hours) for ``scope``, at instant ``now``."""
    check_aware(now, "now")
    if metric not in METRICS:
        raise ReportValidationError("metric", "is not a known metric")
    if not ranges:
        raise ReportValidationError("ranges", "must name at least one window")
    return METRICS[metric].read(db, ranges, scope, now)
