"""Confidence page: histograms, per-field summaries, confidence by intent and the
route-threshold what-if."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
from sqlalchemy import (
    Float,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import Session

from reportlib.checks import (
    share,
)
from reportlib.dialect import BINS
from reportlib.errors import ReportValidationError
from reportlib.models import (
    ROUTES,
    ProcessingReport,
    bin_column,
    centile_column,
)
from reportlib.queries.window import (
    MAX_GROUPS,
    NONE_LABEL,
    Dims,
    ReportFilter,
    bin_edges,
    bin_label,
    dim_conditions,
    filter_params,
    key_field_names,
    most_frequent_first,
    ordered_fields,
    records_frame,
    report_window,
    rollup_read,
    sum_or_zero,
    with_truncation,
)
from reportlib.rollups import STATEMENT_CACHE_SIZE, SourceShape, source_rows

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


def confidence_histogram(session: Session, *, flt: ReportFilter) -> pd.DataFrame:
    """Overall confidence in :data:`BINS` fixed bins, per route.

    One row per (bin, route) for every bin and every route in the filter (all three
    when unfiltered), zeros included. Columns: ``bin``, ``lower``, ``upper``, ``label``,
    ``route``, ``reports``.
    """
    read = rollup_read(session, "rollup_reports", flt, columns=BIN_COLUMNS)
    rows = session.execute(_histogram_statement(read.shape, Dims.of(flt)), read.params).all()
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


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _histogram_statement(shape: SourceShape, dims: Dims) -> Select[Any]:
    s = source_rows(shape)
    return (
        select(s.c.route, *(sum_or_zero(s.c[name]) for name in BIN_COLUMNS))
        .where(*dim_conditions(dims, s))
        .group_by(s.c.route)
        .order_by(s.c.route)
        .limit(len(ROUTES))
    )


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
    read = rollup_read(session, "rollup_fields", flt, columns=FIELD_SUMMARY_COLUMNS)
    read.params["row_limit"] = MAX_GROUPS + len(keys) + 1
    rows = session.execute(_summary_statement(read.shape, Dims.of(flt)), read.params).all()
    truncated = len(rows) > MAX_GROUPS + len(keys)
    found = {row[0]: row for row in rows[: MAX_GROUPS + len(keys)]}
    names = ordered_fields(list(found) + list(keys), keys)[: MAX_GROUPS + len(keys)]
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
                share(float(total or 0.0), int(scored or 0)),
                None if low is None else float(low),
                None if high is None else float(high),
            )
        )
    frame = records_frame(
        records,
        ["field", "extracted", "missing", "avg_confidence", "min_confidence", "max_confidence"],
        floats=("avg_confidence", "min_confidence", "max_confidence"),
    )
    return with_truncation(frame, truncated)


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _summary_statement(shape: SourceShape, dims: Dims) -> Select[Any]:
    s = source_rows(shape)
    seen = func.sum(s.c.extracted) + func.sum(s.c.missing)
    return (
        select(
            s.c.field_name,
            func.sum(s.c.extracted),
            func.sum(s.c.missing),
            func.sum(s.c.confidence_sum),
            func.sum(s.c.scored),
            func.min(s.c.confidence_min),
            func.max(s.c.confidence_max),
        )
        .where(*dim_conditions(dims, s))
        .group_by(s.c.field_name)
        .order_by(seen.desc(), s.c.field_name)
        .limit(bindparam("row_limit", type_=Integer()))
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
        read = rollup_read(session, "rollup_fields", flt, columns=BIN_COLUMNS)
        read.params.update(field_names=names, row_limit=len(names))
        rows = session.execute(
            _field_histogram_statement(read.shape, Dims.of(flt)), read.params
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
            share(counts.get((name, i), 0), totals[name]),
        )
        for name in names
        for i in range(BINS)
    ]
    return records_frame(
        records,
        ["field", "bin", "lower", "upper", "label", "values", "share"],
        floats=("share",),
    )


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _field_histogram_statement(shape: SourceShape, dims: Dims) -> Select[Any]:
    s = source_rows(shape)
    return (
        select(s.c.field_name, *(sum_or_zero(s.c[name]) for name in BIN_COLUMNS))
        .where(
            *dim_conditions(dims, s),
            s.c.field_name.in_(bindparam("field_names", expanding=True)),
        )
        .group_by(s.c.field_name)
        .order_by(s.c.field_name)
        .limit(bindparam("row_limit", type_=Integer()))
    )


def confidence_by_intent(session: Session, *, flt: ReportFilter) -> pd.DataFrame:
    """Per intent (most reports first, at most :data:`MAX_GROUPS`): reports, mean overall
    confidence, reports per route and flagged reports.

    Columns: ``intent`` (:data:`NONE_LABEL` for none), ``reports``, ``avg_confidence``,
    ``high``, ``medium``, ``low``, ``flagged``, ``needs_review_rate``.
    """
    read = rollup_read(session, "rollup_reports", flt, columns=("reports", "confidence_sum"))
    rows = session.execute(_by_intent_statement(read.shape, Dims.of(flt)), read.params).all()
    truncated = len(rows) > MAX_GROUPS
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
        for intent, count, confidence_sum, high, medium, low, flagged in rows[:MAX_GROUPS]
    ]
    frame = pd.DataFrame.from_records(
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
    return with_truncation(frame, truncated)


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _by_intent_statement(shape: SourceShape, dims: Dims) -> Select[Any]:
    s = source_rows(shape)

    def per_route(route: str) -> Any:
        return sum_or_zero(case((s.c.route == route, s.c.reports), else_=0))

    n = func.sum(s.c.reports)
    return (
        select(
            s.c.intent,
            n,
            func.sum(s.c.confidence_sum),
            per_route("high"),
            per_route("medium"),
            per_route("low"),
            sum_or_zero(case((s.c.needs_review, s.c.reports), else_=0)),
        )
        .where(*dim_conditions(dims, s))
        .group_by(s.c.intent)
        .order_by(*most_frequent_first(s.c.intent, n))
        .limit(MAX_GROUPS + 1)
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
        read = rollup_read(session, "rollup_reports", flt, columns=("reports", *CENTILE_COLUMNS))
        # Per flag: reports, and those below the threshold (the centiles under it).
        by_flag = {
            bool(flagged): (int(n), int(n_under))
            for flagged, n, n_under in session.execute(
                _centile_what_if_statement(read.shape, Dims.of(flt), centile), read.params
            )
        }
        flagged_n, flagged_below = by_flag.get(True, (0, 0))
        unflagged_n, unflagged_below = by_flag.get(False, (0, 0))
        row: Any = (
            flagged_n + unflagged_n,
            flagged_below + unflagged_below,
            unflagged_below,
            flagged_n - flagged_below,
        )
    else:
        params = {**filter_params(flt), "threshold": t}
        row = session.execute(_raw_what_if_statement(Dims.of(flt)), params).one()
    reports, n_below, below_unflagged, flagged_above = row
    return RouteThresholdWhatIf(
        threshold=t,
        reports=int(reports),
        below=int(n_below),
        below_not_flagged=int(below_unflagged),
        flagged_at_or_above=int(flagged_above),
    )


@functools.lru_cache(maxsize=128)
def _centile_what_if_statement(shape: SourceShape, dims: Dims, centile: int) -> Select[Any]:
    # The centiles under the threshold are columns, not values: one statement per grid
    # point the slider offers.
    s = source_rows(shape)
    below: Any = sum((s.c[centile_column(c)] for c in range(centile)), start=literal_column("0"))
    return (
        select(s.c.needs_review, sum_or_zero(s.c.reports), sum_or_zero(below))
        .where(*dim_conditions(dims, s))
        .group_by(s.c.needs_review)
    )


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _raw_what_if_statement(dims: Dims) -> Select[Any]:
    r = ProcessingReport.__table__.c
    raw_below = r.overall_confidence < bindparam("threshold", type_=Float())
    return select(
        func.count(),
        sum_or_zero(case((raw_below, 1), else_=0)),
        sum_or_zero(case((and_(raw_below, ~r.needs_review), 1), else_=0)),
        sum_or_zero(case((and_(~raw_below, r.needs_review), 1), else_=0)),
    ).where(*report_window(dims))
