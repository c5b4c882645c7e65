"""The filter every page shares (a UTC date range, intents, routes), its SQL
conditions, and the helpers that read the rollups through it."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    and_,
    bindparam,
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
from reportlib.rollups import (
    BY_TABLE,
    STATEMENT_CACHE_SIZE,
    Dirty,
    SourceRead,
    SourceShape,
    plan_source,
    read_dirty,
    source_rows,
)
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


@dataclass(frozen=True, slots=True)
class Labels:
    """Which kinds of labels a label filter holds: named ones (bound as one list) and
    :data:`NONE_LABEL`. Filters of the same kinds share one statement."""

    named: bool = False
    none: bool = False

    @classmethod
    def of(cls, labels: tuple[str, ...]) -> Labels:
        return cls(any(label != NONE_LABEL for label in labels), NONE_LABEL in labels)

    def condition(self, column: Any, key: str) -> ColumnElement[bool] | None:
        """``column`` among the labels bound as ``key`` (see :func:`label_values`), or
        None when the filter holds none (no condition)."""
        parts: list[ColumnElement[bool]] = []
        if self.named:
            parts.append(column.in_(bindparam(key, expanding=True)))
        if self.none:
            parts.append(column.is_(None))
        return or_(*parts) if parts else None


def label_values(labels: tuple[str, ...]) -> list[str]:
    """The named labels, the value :meth:`Labels.condition` binds."""
    return [label for label in labels if label != NONE_LABEL]


@dataclass(frozen=True, slots=True)
class Dims:
    """Which intent and route conditions a filter puts on a statement; their values are
    bound (see :func:`filter_params`)."""

    intents: Labels = Labels()
    routes: bool = False

    @classmethod
    def of(cls, flt: ReportFilter) -> Dims:
        return cls(Labels.of(flt.intents), bool(flt.routes))

    def conditions(self, intent: Any, route: Any) -> list[ColumnElement[bool]]:
        """The filter's intents and routes as conditions on these two columns."""
        conditions: list[ColumnElement[bool]] = []
        by_intent = self.intents.condition(intent, "intents")
        if by_intent is not None:
            conditions.append(by_intent)
        if self.routes:
            conditions.append(route.in_(bindparam("routes", expanding=True)))
        return conditions


def dims_params(intents: tuple[str, ...], routes: tuple[str, ...]) -> dict[str, Any]:
    """The values of :meth:`Dims.conditions`."""
    return {"intents": label_values(intents), "routes": list(routes)}


def filter_params(flt: ReportFilter) -> dict[str, Any]:
    """The values of a filter's conditions (:class:`Dims`, :func:`report_window`)."""
    start, end = flt.bounds()
    return {**dims_params(flt.intents, flt.routes), "window_start": start, "window_end": end}


def report_window(dims: Dims) -> list[ColumnElement[bool]]:
    """The filter as conditions on ``processing_reports``, its values bound (see
    :func:`filter_params`)."""
    r = ProcessingReport.__table__.c
    return [
        r.created_at >= bindparam("window_start"),
        r.created_at < bindparam("window_end"),
        *dims.conditions(r.intent, r.confidence_route),
    ]


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


def rollup_read(
    session: Session,
    name: str,
    flt: ReportFilter,
    dirty: Dirty | None = None,
    columns: Sequence[str] = (),
) -> SourceRead:
    """The read of rollup ``name`` over the filter's days (changes read here when
    ``dirty`` is None); its parameters include the filter's (:func:`filter_params`)."""
    read = plan_source(
        BY_TABLE[name],
        start=flt.start,
        end=flt.end,
        dirty=dirty or read_dirty(session, start=flt.start, end=flt.end),
        columns=columns,
    )
    read.params.update(filter_params(flt))
    return read


def dim_conditions(dims: Dims, source: Subquery) -> list[ColumnElement[bool]]:
    """The filter's intents and routes as conditions on a rollup source."""
    return dims.conditions(source.c.intent, source.c.route)


def sum_or_zero(column: Any) -> Any:
    return func.coalesce(func.sum(column), literal_column("0"))


# --------------------------------------------------------------------------------------
# Filter options and emptiness
# --------------------------------------------------------------------------------------


_ANY_REPORT: Final = select(ProcessingReport.__table__.c.id).limit(1)


def has_reports(session: Session) -> bool:
    """Whether the database holds any report at all (to tell an empty database from an
    empty window)."""
    return session.execute(_ANY_REPORT).first() is not None


def list_intents(session: Session, *, flt: ReportFilter) -> list[str]:
    """Intents seen in the filter's date range (ignoring its intent and route choices),
    most frequent first; :data:`NONE_LABEL` stands for reports without one."""
    read = rollup_read(session, "rollup_reports", flt, columns=("reports",))
    rows = session.execute(_intents_statement(read.shape), read.params).all()
    return [NONE_LABEL if intent is None else intent for intent, _ in rows]


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _intents_statement(shape: SourceShape) -> Select[Any]:
    s = source_rows(shape)
    n = func.sum(s.c.reports)
    return (
        select(s.c.intent, n)
        .group_by(s.c.intent)
        .order_by(*most_frequent_first(s.c.intent, n))
        .limit(200)
    )


def ordered_fields(names: Iterable[str], key_fields: Sequence[str]) -> list[str]:
    present = set(names)
    return [f for f in key_fields if f in present] + sorted(present - set(key_fields))


def key_field_names(key_fields: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(key_fields) if key_fields is not None else get_settings().key_fields


def records_frame(
    records: Sequence[tuple[Any, ...]], columns: Sequence[str], floats: Collection[str] = ()
) -> pd.DataFrame:
    """``pd.DataFrame.from_records(records, columns=columns)`` with the ``floats`` columns
    as float64 (NaN for None). Built column by column: converting the columns afterwards
    (``astype``) cost more than a millisecond per frame, a page's figures several."""
    if not records:
        frame = pd.DataFrame.from_records(list(records), columns=list(columns))
        return frame.astype(dict.fromkeys(floats, "float64")) if floats else frame
    data: dict[str, Any] = {}
    for index, name in enumerate(columns):
        values = [record[index] for record in records]
        data[name] = np.array(values, dtype=np.float64) if name in floats else values
    return pd.DataFrame(data, columns=list(columns))


def with_truncation(frame: pd.DataFrame, truncated: bool) -> pd.DataFrame:
    """``frame`` saying whether its bound cut groups off (``frame.attrs["truncated"]``):
    bounded reads fetch one row more than they return, as Datasette's facets do, so a
    page can say that more exist instead of showing a partial list as the whole."""
    frame.attrs["truncated"] = bool(truncated)
    return frame


def is_truncated(frame: pd.DataFrame) -> bool:
    """Whether :func:`with_truncation` marked ``frame`` as cut off by its bound."""
    return bool(frame.attrs.get("truncated", False))
