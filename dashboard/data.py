"""Cached access to reportlib's query functions: the only module pages get data from.

The engine is a ``st.cache_resource`` per database URL; query results are
``st.cache_data`` entries that live ``DASHBOARD_CACHE_TTL_S`` seconds. Every cached
function takes the database key first, so two databases never share results.

Reads use the dashboard's database (a read replica when ``DASHBOARD_DATABASE_URL`` is
set); audit rows go to the primary (``DATABASE_URL``). Three things here are never
cached, because each call must reach the database: :func:`check_available` (an outage
must not hide behind cached numbers), :func:`report_detail` (each opening of unmasked
values is audited) and the audit log itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar, cast

import pandas as pd
import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dashboard import auth
from dashboard.values import mask_detail
from reportlib import jsoncodec, queries, rollups
from reportlib.access import DashboardUser, can_see_audit, can_see_values
from reportlib.alerts.status import get_alert_status
from reportlib.audit import AuditEntry, count_audit_events, list_audit_events, record_audit_event
from reportlib.config import get_settings
from reportlib.db import make_engine, make_sessionmaker
from reportlib.dialect import single_writer
from reportlib.health import ReplicaLag, check_database, translate_db_errors
from reportlib.queries import (
    OverviewKpis,
    QueueSnapshot,
    ReportDetail,
    ReportFilter,
)

log = logging.getLogger("dashboard.data")
TTL_S = get_settings().dashboard_cache_ttl_s
T = TypeVar("T")


def database_key() -> str:
    """Identifies the dashboard's database (read replica if configured) for caching."""
    return get_settings().dashboard_sqlalchemy_url.render_as_string(hide_password=False)


def primary_key() -> str:
    """Identifies the primary database (``DATABASE_URL``), where audit rows are written."""
    return get_settings().sqlalchemy_url.render_as_string(hide_password=False)


@st.cache_resource(show_spinner=False)
def _engine(db: str) -> Engine:
    # pool_pre_ping (set by make_engine for PostgreSQL) replaces connections that died in
    # an outage, so this cached engine keeps working once the server is back.
    return make_engine(db)


def check_available() -> ReplicaLag | None:
    """Raise DatabaseUnavailableError unless the dashboard's database answers now; return
    how far behind it is when it is a read replica lagging more than
    ``DASHBOARD_REPLICA_MAX_LAG_S`` (None otherwise).

    Runs before every page, uncached: without it a page whose numbers are all cached
    would keep showing them through an outage as if nothing were wrong. Also starts a
    background rollup refresh, on the primary, when one is due.
    """
    lag = check_database(_engine(database_key()))
    _rollup_refresher(primary_key()).start_if_due()
    if lag is None or lag.behind.total_seconds() <= get_settings().dashboard_replica_max_lag_s:
        return None
    return lag


class RollupRefresher:
    """Folds changed days into the rollups in a background thread, at most once every
    ``ROLLUP_REFRESH_INTERVAL_S`` seconds, so that no page load waits for it.

    Reads are exact without it (dirty days are read from the raw rows); it keeps them
    cheap. Failures are logged by type only and retried at the next interval.
    """

    def __init__(self, engine: Engine, interval_s: int) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._running = False
        self._last = -math.inf

    def start_if_due(self) -> None:
        # Not on SQLite: a second writer there makes the dashboard's own writes (claims,
        # decisions, audit rows) fail with "database is locked" when their transaction
        # began before the refresh committed. The demo is refreshed by the CLI
        # (seed-demo, rollups refresh), and its reads stay exact without it.
        if self._interval_s <= 0 or single_writer(self._engine):
            return
        with self._lock:
            if self._running or time.monotonic() - self._last < self._interval_s:
                return
            self._running = True
            self._last = time.monotonic()
        threading.Thread(target=self._run, name="rollup-refresh", daemon=True).start()

    def _run(self) -> None:
        try:
            factory = make_sessionmaker(self._engine)
            while rollups.refresh_with_retries(factory, max_days=REFRESH_CHUNK_DAYS):
                pass
        except Exception as exc:  # noqa: BLE001 - a failed refresh only leaves reads slower
            log.warning("rollup refresh failed: %s", type(exc).__name__)
        finally:
            with self._lock:
                self._running = False


#: Days folded per transaction: writers wait only while one chunk is rebuilt.
REFRESH_CHUNK_DAYS = 3


@st.cache_resource(show_spinner=False)
def _rollup_refresher(db: str) -> RollupRefresher:
    return RollupRefresher(_engine(db), get_settings().rollup_refresh_interval_s)


@contextmanager
def session(db: str) -> Iterator[Session]:
    """A read-only unit of work: rolled back at the end, never committed."""
    # Outages surface as DatabaseUnavailableError with fixed text: no SQL, no values.
    with translate_db_errors(), make_sessionmaker(_engine(db))() as s:
        try:
            yield s
        finally:
            s.rollback()


@contextmanager
def write_session(db: str) -> Iterator[Session]:
    """A unit of work that the caller commits; rolled back if it does not."""
    with translate_db_errors(), make_sessionmaker(_engine(db))() as s:
        try:
            yield s
        finally:
            s.rollback()  # a no-op after a commit


def now_minute() -> dt.datetime:
    """The next full minute in UTC: cached results are reused within a minute, and a
    snapshot "as of" it already includes everything written so far."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


#: Query functions whose results may be cached: each returns aggregates or queue rows,
#: never personal values. The drill-down (audited on every opening) and the audit log
#: are read through their own uncached functions below.
CACHED_QUERIES: Final = frozenset(
    {
        queries.has_reports,
        queries.list_intents,
        queries.overview_kpis,
        queries.daily_trends,
        queries.confidence_histogram,
        queries.field_confidence_summary,
        queries.field_confidence_histogram,
        queries.confidence_by_intent,
        queries.route_threshold_what_if,
        queries.missing_field_frequency,
        queries.missing_fields_daily,
        queries.missing_fields_by_intent,
        queries.missing_field_cooccurrence,
        queries.missing_count_distribution,
        queries.review_queue_page,
        queries.review_queue_reasons,
        queries.count_review_queue_in_window,
        queries.queue_snapshot,
        # Rule names, metrics and figures only (reportlib.alerts.status).
        get_alert_status,
    }
)


def read(query: Callable[..., T], /, **kwargs: Any) -> T:
    """``query(session, **kwargs)`` on the dashboard's database, cached for ``TTL_S``
    seconds by the function itself, the database and the arguments.

    Pages name the reportlib function they show, so its SQL is one go-to-definition
    away: ``data.read(queries.daily_trends, flt=flt)``.
    """
    if query not in CACHED_QUERIES:
        raise ValueError(f"{query.__qualname__} is not a cached dashboard query")
    return cast("T", _read(database_key(), query, tuple(sorted(kwargs.items()))))


def _function_key(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


@st.cache_data(
    ttl=TTL_S,
    show_spinner=False,
    max_entries=512,
    hash_funcs={types.FunctionType: _function_key},
)
def _read(db: str, query: Callable[..., Any], kwargs: tuple[tuple[str, Any], ...]) -> Any:
    with session(db) as s:
        return query(s, **dict(kwargs))


def has_reports() -> bool:
    """Whether the database holds any report at all."""
    return read(queries.has_reports)


def intents(start: dt.date, end: dt.date) -> list[str]:
    """Intent options for the date range, most frequent first."""
    return read(queries.list_intents, flt=ReportFilter(start, end))


def overview_kpis(flt: ReportFilter) -> OverviewKpis:
    """KPIs of the period and the previous one (queue snapshots as of this minute)."""
    return read(queries.overview_kpis, flt=flt, now=now_minute())


def open_queue_now(flt: ReportFilter) -> QueueSnapshot:
    """The open queue of any age for the filter's intents and routes, as of this minute."""
    return read(
        queries.queue_snapshot, as_of=now_minute(), intents=flt.intents, routes=flt.routes
    )


# ---- Audited reads ---------------------------------------------------------------------
# "Each drill-down opened" is one audit row, not one per rerun: every widget click reruns
# the page, and a reviewer working through one report must not write dozens of rows.
# app.py calls start_run() before each page; something shown in the previous run and
# again in this one is the same opening. Closing it (or visiting another page) for one
# run ends the opening, so showing it again writes a new row.
_SHOWN_THIS_RUN = "_audit_shown_this_run"
_SHOWN_LAST_RUN = "_audit_shown_last_run"


def start_run() -> None:
    """Mark the start of a script run for the audit of openings (called by app.py)."""
    st.session_state[_SHOWN_LAST_RUN] = st.session_state.get(_SHOWN_THIS_RUN, frozenset())
    st.session_state[_SHOWN_THIS_RUN] = frozenset()


def _already_open(what: tuple[str, int]) -> bool:
    """Whether ``what`` was shown in the previous run or earlier in this one."""
    this_run: frozenset[tuple[str, int]] = st.session_state.get(_SHOWN_THIS_RUN, frozenset())
    last_run: frozenset[tuple[str, int]] = st.session_state.get(_SHOWN_LAST_RUN, frozenset())
    return what in this_run or what in last_run


def _mark_shown(what: tuple[str, int]) -> None:
    # Only after its audit row is committed: a failed write must be retried next run,
    # never counted as an opening that was already recorded.
    this_run: frozenset[tuple[str, int]] = st.session_state.get(_SHOWN_THIS_RUN, frozenset())
    st.session_state[_SHOWN_THIS_RUN] = this_run | {what}


def _page_path(page: str) -> str:
    return "/" + page.strip("/")


def report_detail(email_id: int, *, page: str = "review") -> ReportDetail | None:
    """The drill-down of one email, as the current user may see it.

    Not cached: reviewers must see the current report, and every opening is audited.
    Users with value rights get the values, and the first time this opening is shown a
    ``drilldown_viewed`` row is committed before the values are returned, so values are
    never shown without their audit row (if the row cannot be written, the page fails
    instead). Everyone else gets :func:`dashboard.values.mask_detail` and no row.
    """
    user = auth.current_user()
    if user is None or not can_see_values(user.role):
        with session(database_key()) as s:
            detail = queries.get_report_detail(s, email_id=email_id)
        return None if detail is None else mask_detail(detail)
    opening = ("drilldown", email_id)
    if database_key() == primary_key():
        # One transaction: the report is read and its viewing recorded together.
        with write_session(primary_key()) as s:
            detail = queries.get_report_detail(s, email_id=email_id)
            if detail is not None and not _already_open(opening):
                _record_view(s, user, email_id=email_id, page=page)
            s.commit()
    else:
        with session(database_key()) as s:  # a read replica: read there, audit the primary
            detail = queries.get_report_detail(s, email_id=email_id)
        if detail is not None and not _already_open(opening):
            with write_session(primary_key()) as s:
                _record_view(s, user, email_id=email_id, page=page)
                s.commit()
    if detail is not None:
        _mark_shown(opening)
    return detail


def _record_view(s: Session, user: DashboardUser, *, email_id: int, page: str) -> None:
    record_audit_event(
        s,
        actor=user.actor,
        action="drilldown_viewed",
        email_id=email_id,
        details={"role": user.role, "page": _page_path(page), "masked": False},
    )


def record_export(user: DashboardUser, *, page: str, rows: int) -> None:
    """Commit a ``csv_exported`` audit row (who, which page, how many rows; no values).

    Safe to call outside a script run: Streamlit builds deferred downloads in a worker
    thread, and the file is only handed out once this row is committed.
    """
    with write_session(primary_key()) as s:
        record_audit_event(
            s,
            actor=user.actor,
            action="csv_exported",
            details={"role": user.role, "page": _page_path(page), "rows": rows},
        )
        s.commit()


# ---- The audit log (admins) ---------------------------------------------------------------
AUDIT_EXPORT_MAX_ROWS = 10_000
_AUDIT_PAGE_ROWS = 1000  # reportlib.audit.MAX_LIST_LIMIT


def _audit_window(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return (
        dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
    )


def _require_audit_rights(user: DashboardUser | None) -> None:
    # The page checks too; this keeps any other caller from reading the log by accident.
    if user is None or not can_see_audit(user.role):
        raise PermissionError("the audit log is for admins only")


def audit_log_opened(user: DashboardUser, *, filtered: bool) -> None:
    """Commit an ``audit_log_viewed`` row the first run the audit page is shown."""
    _require_audit_rights(user)
    opening = ("audit_log", 0)
    if not _already_open(opening):
        with write_session(primary_key()) as s:
            record_audit_event(
                s,
                actor=user.actor,
                action="audit_log_viewed",
                details={"role": user.role, "page": "/audit", "is_filtered": filtered},
            )
            s.commit()
    _mark_shown(opening)


def audit_events(
    user: DashboardUser,
    start: dt.date,
    end: dt.date,
    *,
    actor: str | None,
    action: str | None,
    email_id: int | None,
    limit: int,
    offset: int,
    before: dt.datetime | None = None,
) -> list[AuditEntry]:
    """Audit rows of the UTC days ``start`` to ``end`` (and before ``before``, if given),
    newest first. ``user`` must be an admin."""
    _require_audit_rights(user)
    first, after = _audit_window(start, end)
    if before is not None:
        after = min(after, before)
    with session(primary_key()) as s:
        return list_audit_events(
            s,
            start=first,
            end=after,
            actor=actor,
            action=action,
            email_id=email_id,
            limit=limit,
            offset=offset,
        )


def count_audit(
    user: DashboardUser,
    start: dt.date,
    end: dt.date,
    *,
    actor: str | None,
    action: str | None,
    email_id: int | None,
) -> int:
    """How many audit rows match. ``user`` must be an admin."""
    _require_audit_rights(user)
    first, after = _audit_window(start, end)
    with session(primary_key()) as s:
        return count_audit_events(
            s, start=first, end=after, actor=actor, action=action, email_id=email_id
        )


def audit_frame(entries: list[AuditEntry]) -> pd.DataFrame:
    """Audit rows as a table: time (UTC), actor, action, email and details as JSON text."""
    return pd.DataFrame(
        {
            "occurred_at": [entry.occurred_at.astimezone(dt.UTC) for entry in entries],
            "actor": [entry.actor for entry in entries],
            "action": [entry.action for entry in entries],
            "email_id": pd.array([entry.email_id for entry in entries], dtype="Int64"),
            "details": [
                "" if entry.details is None else jsoncodec.dumps(entry.details) for entry in entries
            ],
        },
        columns=["occurred_at", "actor", "action", "email_id", "details"],
    )


def export_audit_events(
    user: DashboardUser,
    start: dt.date,
    end: dt.date,
    *,
    actor: str | None,
    action: str | None,
    email_id: int | None,
) -> pd.DataFrame:
    """Every matching audit row, newest first, up to :data:`AUDIT_EXPORT_MAX_ROWS`.

    Pages are read up to the moment the export started, so rows written meanwhile
    cannot shift one page onto the next.
    """
    before = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    entries: list[AuditEntry] = []
    while len(entries) < AUDIT_EXPORT_MAX_ROWS:
        chunk = audit_events(
            user,
            start,
            end,
            actor=actor,
            action=action,
            email_id=email_id,
            limit=min(_AUDIT_PAGE_ROWS, AUDIT_EXPORT_MAX_ROWS - len(entries)),
            offset=len(entries),
            before=before,
        )
        entries.extend(chunk)
        if len(chunk) < _AUDIT_PAGE_ROWS:
            break
    return audit_frame(entries)


def export_review_queue(flt: ReportFilter, *, sort: str, reasons: tuple[str, ...]) -> pd.DataFrame:
    """The whole filtered queue (up to ``MAX_QUEUE_ROWS``) for the CSV export."""
    with session(database_key()) as s:
        return queries.review_queue_page(
            s, flt=flt, sort=sort, limit=queries.MAX_QUEUE_ROWS, offset=0, reasons=reasons
        )
