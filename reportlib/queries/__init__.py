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

from reportlib.dialect import BINS, confidence_bin, utc_date
from reportlib.queries.confidence import (
    RouteThresholdWhatIf,
    confidence_by_intent,
    confidence_histogram,
    field_confidence_histogram,
    field_confidence_summary,
    route_threshold_what_if,
)
from reportlib.queries.missing_fields import (
    MAX_MISSING_SETS,
    count_reports,
    missing_count_distribution,
    missing_field_cooccurrence,
    missing_field_frequency,
    missing_fields_by_intent,
    missing_fields_daily,
)
from reportlib.queries.overview import (
    DAILY_COLUMNS,
    PERCENTILES,
    OverviewKpis,
    PeriodKpis,
    QueueSnapshot,
    daily_trends,
    overview_kpis,
    percentile_from_sorted_pair,
    queue_snapshot,
)
from reportlib.queries.review_queue import (
    MAX_QUEUE_ROWS,
    QUEUE_COLUMNS,
    QUEUE_SORTS,
    FieldDetail,
    ReportDetail,
    count_review_queue_in_window,
    get_report_detail,
    review_queue_page,
    review_queue_reasons,
)
from reportlib.queries.window import (
    MAX_GROUPS,
    MAX_RANGE_DAYS,
    NONE_LABEL,
    ReportFilter,
    bin_edges,
    bin_label,
    has_reports,
    is_truncated,
    list_intents,
    open_review_condition,
)

__all__ = [
    "is_truncated",
    "DAILY_COLUMNS",
    "PERCENTILES",
    "MAX_GROUPS",
    "MAX_MISSING_SETS",
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
