"""Cached access to reportlib's query functions: the only module pages get data from.

The engine is a ``st.cache_resource`` per database URL; query results are
``st.cache_data`` entries that live ``DASHBOARD_CACHE_TTL_S`` seconds. Every cached
function takes the database key first, so two databases never share results.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reportlib import queries
from reportlib.config import get_settings
from reportlib.db import make_engine, make_sessionmaker
from reportlib.health import translate_db_errors
from reportlib.queries import (
    OverviewKpis,
    QueueSnapshot,
    ReportDetail,
    ReportFilter,
    ThresholdWhatIf,
)

TTL_S = get_settings().dashboard_cache_ttl_s
_cache = st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=512)


def database_key() -> str:
    """Identifies the dashboard's database (read replica if configured) for caching."""
    return get_settings().dashboard_sqlalchemy_url.render_as_string(hide_password=False)


@st.cache_resource(show_spinner=False)
def _engine(db: str) -> Engine:
    return make_engine(db)


@contextmanager
def session(db: str) -> Iterator[Session]:
    """A read-only unit of work: rolled back at the end, never committed."""
    # Outages surface as DatabaseUnavailableError with fixed text: no SQL, no values.
    with translate_db_errors(), make_sessionmaker(_engine(db))() as s:
        try:
            yield s
        finally:
            s.rollback()


def now_minute() -> dt.datetime:
    """The next full minute in UTC: cached results are reused within a minute, and a
    snapshot "as of" it already includes everything written so far."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


@_cache
def _has_reports(db: str) -> bool:
    with session(db) as s:
        return queries.has_reports(s)


def has_reports() -> bool:
    """Whether the database holds any report at all."""
    return _has_reports(database_key())


@_cache
def _intents(db: str, start: dt.date, end: dt.date) -> list[str]:
    with session(db) as s:
        return queries.list_intents(s, flt=ReportFilter(start, end))


def intents(start: dt.date, end: dt.date) -> list[str]:
    """Intent options for the date range, most frequent first."""
    return _intents(database_key(), start, end)


@_cache
def _overview_kpis(db: str, flt: ReportFilter, now: dt.datetime) -> OverviewKpis:
    with session(db) as s:
        return queries.overview_kpis(s, flt=flt, now=now)


def overview_kpis(flt: ReportFilter) -> OverviewKpis:
    """KPIs of the period and the previous one (queue snapshots as of this minute)."""
    return _overview_kpis(database_key(), flt, now_minute())


def _frame(name: str, flt: ReportFilter, **kwargs: Any) -> pd.DataFrame:
    return _query_frame(database_key(), name, flt, tuple(sorted(kwargs.items())))


# Only these query functions may be called through _query_frame.
_FRAME_QUERIES = {
    "daily_trends": queries.daily_trends,
    "confidence_histogram": queries.confidence_histogram,
    "field_confidence_summary": queries.field_confidence_summary,
    "field_confidence_histogram": queries.field_confidence_histogram,
    "confidence_by_intent": queries.confidence_by_intent,
    "missing_field_frequency": queries.missing_field_frequency,
    "missing_fields_daily": queries.missing_fields_daily,
    "missing_fields_by_intent": queries.missing_fields_by_intent,
    "missing_field_cooccurrence": queries.missing_field_cooccurrence,
    "missing_count_distribution": queries.missing_count_distribution,
    "review_queue_page": queries.review_queue_page,
    "review_queue_reasons": queries.review_queue_reasons,
}


@_cache
def _query_frame(
    db: str, name: str, flt: ReportFilter, kwargs: tuple[tuple[str, Any], ...]
) -> pd.DataFrame:
    function: Any = _FRAME_QUERIES[name]
    with session(db) as s:
        frame: pd.DataFrame = function(s, flt=flt, **dict(kwargs))
        return frame


def daily_trends(flt: ReportFilter) -> pd.DataFrame:
    return _frame("daily_trends", flt)


def confidence_histogram(flt: ReportFilter) -> pd.DataFrame:
    return _frame("confidence_histogram", flt)


def field_confidence_summary(flt: ReportFilter) -> pd.DataFrame:
    return _frame("field_confidence_summary", flt)


def field_confidence_histogram(flt: ReportFilter, fields: tuple[str, ...]) -> pd.DataFrame:
    return _frame("field_confidence_histogram", flt, fields=fields)


def confidence_by_intent(flt: ReportFilter) -> pd.DataFrame:
    return _frame("confidence_by_intent", flt)


def missing_field_frequency(flt: ReportFilter) -> pd.DataFrame:
    return _frame("missing_field_frequency", flt)


def missing_fields_daily(flt: ReportFilter) -> pd.DataFrame:
    return _frame("missing_fields_daily", flt)


def missing_fields_by_intent(flt: ReportFilter) -> pd.DataFrame:
    return _frame("missing_fields_by_intent", flt)


def missing_field_cooccurrence(flt: ReportFilter) -> pd.DataFrame:
    return _frame("missing_field_cooccurrence", flt)


def missing_count_distribution(flt: ReportFilter) -> pd.DataFrame:
    return _frame("missing_count_distribution", flt)


def review_queue_page(
    flt: ReportFilter, *, sort: str, limit: int, offset: int, reasons: tuple[str, ...]
) -> pd.DataFrame:
    return _frame("review_queue_page", flt, sort=sort, limit=limit, offset=offset, reasons=reasons)


def review_queue_reasons(flt: ReportFilter) -> pd.DataFrame:
    return _frame("review_queue_reasons", flt)


@_cache
def _count_review_queue(db: str, flt: ReportFilter, reasons: tuple[str, ...]) -> int:
    with session(db) as s:
        return queries.count_review_queue(s, flt=flt, reasons=reasons)


def count_review_queue(flt: ReportFilter, reasons: tuple[str, ...]) -> int:
    return _count_review_queue(database_key(), flt, reasons)


@_cache
def _threshold_what_if(db: str, flt: ReportFilter, threshold: float) -> ThresholdWhatIf:
    with session(db) as s:
        return queries.threshold_what_if(s, flt=flt, threshold=threshold)


def threshold_what_if(flt: ReportFilter, threshold: float) -> ThresholdWhatIf:
    return _threshold_what_if(database_key(), flt, threshold)


@_cache
def _open_queue_now(
    db: str, intents: tuple[str, ...], routes: tuple[str, ...], now: dt.datetime
) -> QueueSnapshot:
    with session(db) as s:
        return queries.queue_snapshot(s, as_of=now, intents=intents, routes=routes)


def open_queue_now(flt: ReportFilter) -> QueueSnapshot:
    """The open queue of any age for the filter's intents and routes, as of this minute."""
    return _open_queue_now(database_key(), flt.intents, flt.routes, now_minute())


def report_detail(email_id: int) -> ReportDetail | None:
    """The drill-down of one email. Not cached: reviewers must see the current report,
    and a colleague's later audit of each opening must see every one."""
    with session(database_key()) as s:
        return queries.get_report_detail(s, email_id=email_id)


def export_review_queue(flt: ReportFilter, *, sort: str, reasons: tuple[str, ...]) -> pd.DataFrame:
    """The whole filtered queue (up to ``MAX_QUEUE_ROWS``) for the CSV export."""
    with session(database_key()) as s:
        return queries.review_queue_page(
            s, flt=flt, sort=sort, limit=queries.MAX_QUEUE_ROWS, offset=0, reasons=reasons
        )
