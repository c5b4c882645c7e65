"""The filter every page shares (a UTC date range, intents, routes), its SQL
conditions, and the helpers that read the rollups through it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Subquery,
    and_,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from reportlib.checks import check_aware
from reportlib.config import get_settings
from reportlib.dialect import BINS
from reportlib.errors import ReportValidationError
from reportlib.models import (
    ROUTES,
    ProcessingReport,
)
from reportlib.rollups import BY_TABLE, Dirty, rollup_source
from reportlib.service import INTENT_MAX, utc_day_bounds

#: Stand-in for a NULL intent or review reason in filters and results.
NONE_LABEL: Final = "(none)"
#: Longest date range a filter may span, in days (inclusive of both ends).
MAX_RANGE_DAYS: Final = 366
#: At most this many distinct fields, intents or reasons appear in one breakdown.
MAX_GROUPS: Final = 50


def clean_labels(values: Iterable[str], name: str, max_length: int) -> tuple[str, ...]:
    cleaned: set[str] = set()
    for value in values:
        if not isinstance(value, str) or not value or len(value) > max_length:
            raise ReportValidationError(
                name, f"values must be text of 1 to {max_length} characters"
            )
        cleaned.add(value)
    return tuple(sorted(cleaned))


def clean_routes(values: Iterable[str]) -> tuple[str, ...]:
    routes = set(clean_labels(values, "routes", 20))
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
        object.__setattr__(self, "routes", clean_routes(self.routes))
        object.__setattr__(self, "intents", clean_labels(self.intents, "intents", INTENT_MAX))

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


def label_condition(column: Any, labels: tuple[str, ...]) -> ColumnElement[bool]:
    named = [label for label in labels if label != NONE_LABEL]
    parts: list[ColumnElement[bool]] = []
    if named:
        parts.append(column.in_(named))
    if NONE_LABEL in labels:
        parts.append(column.is_(None))
    return or_(*parts)


def report_window(flt: ReportFilter) -> list[ColumnElement[bool]]:
    """The filter as conditions on ``processing_reports``."""
    r = ProcessingReport
    start, end = flt.bounds()
    conditions: list[ColumnElement[bool]] = [r.created_at >= start, r.created_at < end]
    if flt.intents:
        conditions.append(label_condition(r.intent, flt.intents))
    if flt.routes:
        conditions.append(r.confidence_route.in_(flt.routes))
    return conditions


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
        check_aware(as_of, "as_of")
        conditions += [
            r.created_at < as_of,
            or_(r.review_closed_at.is_(None), r.review_closed_at >= as_of),
        ]
    return and_(*conditions)


def most_frequent_first(column: Any, count: Any = None) -> tuple[Any, ...]:
    # NULL sorts first on SQLite and last on PostgreSQL: put it last explicitly on both.
    return ((func.count() if count is None else count).desc(), column.is_(None), column)


def bin_edges(index: int) -> tuple[float, float]:
    """Lower and upper edge of confidence bin ``index`` (the last bin includes 1.0)."""
    return index / BINS, (index + 1) / BINS


def bin_label(index: int) -> str:
    """``"0.85–0.90"``: a bin's range for axis labels."""
    low, high = bin_edges(index)
    return f"{low:.2f}–{high:.2f}"


def rollup_rows(
    session: Session,
    name: str,
    flt: ReportFilter,
    dirty: Dirty | None = None,
    columns: Sequence[str] = (),
) -> Subquery:
    return rollup_source(
        session, BY_TABLE[name], start=flt.start, end=flt.end, dirty=dirty, columns=columns
    )


def dim_conditions(flt: ReportFilter, source: Subquery) -> list[ColumnElement[bool]]:
    """The filter's intents and routes as conditions on a rollup source."""
    conditions: list[ColumnElement[bool]] = []
    if flt.intents:
        conditions.append(label_condition(source.c.intent, flt.intents))
    if flt.routes:
        conditions.append(source.c.route.in_(flt.routes))
    return conditions


def sum_or_zero(column: Any) -> Any:
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
    s = rollup_rows(session, "rollup_reports", flt, columns=("reports",))
    n = func.sum(s.c.reports)
    rows = session.execute(
        select(s.c.intent, n)
        .group_by(s.c.intent)
        .order_by(*most_frequent_first(s.c.intent, n))
        .limit(200)
    ).all()
    return [NONE_LABEL if intent is None else intent for intent, _ in rows]


def ordered_fields(names: Iterable[str], key_fields: Sequence[str]) -> list[str]:
    present = set(names)
    return [f for f in key_fields if f in present] + sorted(present - set(key_fields))


def key_field_names(key_fields: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(key_fields) if key_fields is not None else get_settings().key_fields


def with_truncation(frame: pd.DataFrame, truncated: bool) -> pd.DataFrame:
    """``frame`` saying whether its bound cut groups off (``frame.attrs["truncated"]``):
    bounded reads fetch one row more than they return, as Datasette's facets do, so a
    page can say that more exist instead of showing a partial list as the whole."""
    frame.attrs["truncated"] = bool(truncated)
    return frame


def is_truncated(frame: pd.DataFrame) -> bool:
    """Whether :func:`with_truncation` marked ``frame`` as cut off by its bound."""
    return bool(frame.attrs.get("truncated", False))
