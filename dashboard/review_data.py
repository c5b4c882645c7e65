"""The review workflow's data access: cached reads for statistics and quality, and the writes.

Reads that only aggregate (queue statistics, calibration, threshold what-if, missed vs
absent) are ``st.cache_data`` entries with a short TTL, keyed by database and window.
Everything a reviewer acts on (the review item with its claim, who holds which item) is
read from the primary database, because a lagging replica would show stale claims. The
writers (claim, next item, release, decide) open a session on the primary through
:func:`dashboard.data.write_session`, commit, and clear the cached results so the queue, its
statistics and the quality page show the change on the next run.

Frames for tables and charts are built by the small pure functions at the end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.values import plain_text
from reportlib import quality, review
from reportlib.config import get_settings
from reportlib.quality import CalibrationReport, MissingReport, ReviewThresholdWhatIf
from reportlib.queries import ReportFilter
from reportlib.review import Claim, DecisionRecord, FieldVerdict, QueueStats, ReviewItem

TTL_S = 15
ALL_FIELDS = "All fields"
# The most claims the queue can show a holder for; held items are few (claims expire).
MAX_HELD = 1000
_cache = st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=256)


def primary_key() -> str:
    """The primary database (``DATABASE_URL``): claims and decisions are written there."""
    return get_settings().sqlalchemy_url.render_as_string(hide_password=False)


def window(flt: ReportFilter) -> tuple[dt.datetime, dt.datetime]:
    """The filter's UTC days as ``[start 00:00, day after end 00:00)``."""
    start = dt.datetime.combine(flt.start, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(flt.end + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    return start, end


# --------------------------------------------------------------------------- cached reads


@_cache
def _queue_stats(db: str, start: dt.date, end: dt.date) -> QueueStats:
    flt = ReportFilter(start, end)
    window_start, window_end = window(flt)
    # A window ending today ends now (the database clock), so decisions per day are not
    # diluted by the hours still to come.
    open_ended = window_end > dt.datetime.now(dt.UTC)
    with data.session(db) as s:
        return review.get_queue_stats(s, start=window_start, end=None if open_ended else window_end)


def queue_stats(flt: ReportFilter) -> QueueStats:
    """Queue size now, and review work done in the filter's date range."""
    return _queue_stats(primary_key(), flt.start, flt.end)


@_cache
def _held_items(db: str) -> dict[int, tuple[str, dt.datetime]]:
    with data.session(db) as s:
        held = review.list_review_queue(s, claimed=True, limit=MAX_HELD)
    return {
        item.email_id: (item.claimed_by, item.claim_expires_at)
        for item in held
        if item.claimed_by is not None and item.claim_expires_at is not None
    }


def held_items() -> dict[int, tuple[str, dt.datetime]]:
    """Who holds which open item: email id -> (reviewer, claim expiry)."""
    return _held_items(primary_key())


@_cache
def _calibration(db: str, start: dt.date, end: dt.date) -> CalibrationReport:
    window_start, window_end = window(ReportFilter(start, end))
    with data.session(db) as s:
        return quality.get_calibration(s, start=window_start, end=window_end)


def calibration(flt: ReportFilter) -> CalibrationReport:
    """Reliability diagram and ECE, overall and per field, for verdicts on processings
    created in the filter's date range."""
    return _calibration(data.database_key(), flt.start, flt.end)


@_cache
def _review_threshold_what_if(db: str, start: dt.date, end: dt.date) -> ReviewThresholdWhatIf:
    window_start, window_end = window(ReportFilter(start, end))
    with data.session(db) as s:
        return quality.get_review_threshold_what_if(s, start=window_start, end=window_end)


def review_threshold_what_if(flt: ReportFilter) -> ReviewThresholdWhatIf:
    """Projected review volume and wrong values passing, per candidate threshold."""
    return _review_threshold_what_if(data.database_key(), flt.start, flt.end)


@_cache
def _missing_outcomes(db: str, start: dt.date, end: dt.date) -> MissingReport:
    window_start, window_end = window(ReportFilter(start, end))
    with data.session(db) as s:
        return quality.get_missing_outcomes(s, start=window_start, end=window_end)


def missing_outcomes(flt: ReportFilter) -> MissingReport:
    """Missed vs truly absent, for fields the pipeline marked missing."""
    return _missing_outcomes(data.database_key(), flt.start, flt.end)


# --------------------------------------------------------------------------- uncached


def review_item(email_id: int) -> ReviewItem | None:
    """The review form's data for one email, with its claim and history. Not cached: the
    claim must be current."""
    with data.session(primary_key()) as s:
        return review.get_review_item(s, email_id=email_id)


def _written() -> None:
    # Every cached page result may include the changed report (queue, counts, stats,
    # quality); clearing all is simplest and cheap next to a human decision. A refused
    # write clears them too: it usually means another reviewer changed the queue.
    st.cache_data.clear()


def claim(*, report_id: int, reviewer: str) -> Claim:
    """Claim one report for ``reviewer`` and commit."""
    try:
        with data.write_session(primary_key()) as s:
            result = review.claim_report(s, report_id=report_id, reviewer=reviewer)
            s.commit()
    finally:
        _written()
    return result


def claim_next(*, reviewer: str) -> Claim | None:
    """Claim the oldest open report nobody holds (or the one ``reviewer`` already holds)."""
    try:
        with data.write_session(primary_key()) as s:
            result = review.claim_next_report(s, reviewer=reviewer)
            s.commit()
    finally:
        _written()
    return result


def release(*, report_id: int, reviewer: str) -> bool:
    """Give up ``reviewer``'s claim on one report and commit; False when there was none."""
    try:
        with data.write_session(primary_key()) as s:
            result = review.release_claim(s, report_id=report_id, reviewer=reviewer)
            s.commit()
    finally:
        _written()
    return result


def decide(
    *,
    report_id: int,
    reviewer: str,
    outcome: str,
    verdicts: Mapping[str, FieldVerdict | str],
    note: str | None,
    report_created_at: dt.datetime,
) -> DecisionRecord:
    """Record one decision in a single transaction (all or nothing) and commit."""
    try:
        with data.write_session(primary_key()) as s:
            result = review.decide_report(
                s,
                report_id=report_id,
                reviewer=reviewer,
                outcome=outcome,
                verdicts=verdicts,
                note=note,
                report_created_at=report_created_at,
            )
            s.commit()
    finally:
        _written()
    return result


# --------------------------------------------------------------------------- frames


def field_label(name: str | None) -> str:
    """``All fields`` for the overall rows, else the field name (bidi controls visible)."""
    return ALL_FIELDS if name is None else plain_text(name)


def calibration_bins(report: CalibrationReport, field_name: str | None) -> pd.DataFrame:
    """Bins of one reliability diagram (columns ``bin``, ``lower``, ``upper``, ``n``,
    ``correct``, ``mean_confidence``, ``accuracy``, ``gap``)."""
    part = report.overall
    if field_name is not None:
        part = next((f for f in report.fields if f.field_name == field_name), report.overall)
    rows: list[dict[str, Any]] = [
        {
            "bin": f"{b.lower:.2f}–{b.upper:.2f}",
            "lower": b.lower,
            "upper": b.upper,
            "n": b.n,
            "correct": b.correct,
            "mean_confidence": b.mean_confidence,
            "accuracy": b.accuracy,
            "gap": None
            if b.accuracy is None or b.mean_confidence is None
            else b.accuracy - b.mean_confidence,
        }
        for b in part.bins
    ]
    return pd.DataFrame.from_records(
        rows,
        columns=["bin", "lower", "upper", "n", "correct", "mean_confidence", "accuracy", "gap"],
    ).astype({"mean_confidence": "float64", "accuracy": "float64", "gap": "float64"})


def calibration_summary(report: CalibrationReport) -> pd.DataFrame:
    """One row per field (overall first): verdicts, mean confidence, share correct, ECE."""
    rows = [
        {
            "field": field_label(part.field_name),
            "n": part.n,
            "correct": part.correct,
            "mean_confidence": part.mean_confidence,
            "accuracy": part.accuracy,
            "ece": part.ece,
        }
        for part in (report.overall, *report.fields)
    ]
    return pd.DataFrame.from_records(
        rows, columns=["field", "n", "correct", "mean_confidence", "accuracy", "ece"]
    ).astype({"mean_confidence": "float64", "accuracy": "float64", "ece": "float64"})


def whatif_table(whatif: ReviewThresholdWhatIf, field_name: str | None) -> pd.DataFrame:
    """Threshold outcomes of one field (None: all fields), threshold ascending."""
    rows = [
        {
            "threshold": row.threshold,
            "n": row.n,
            "wrong": row.wrong,
            "sent_to_review": row.sent_to_review,
            "review_share": row.review_share,
            "passed": row.passed,
            "wrong_passed": row.wrong_passed,
            "wrong_escape_share": row.wrong_escape_share,
            "wrong_passed_share": row.wrong_passed_share,
        }
        for row in whatif.rows
        if row.field_name == field_name
    ]
    columns = [
        "threshold",
        "n",
        "wrong",
        "sent_to_review",
        "review_share",
        "passed",
        "wrong_passed",
        "wrong_escape_share",
        "wrong_passed_share",
    ]
    return pd.DataFrame.from_records(rows, columns=columns).astype(
        {
            "threshold": "float64",
            "review_share": "float64",
            "wrong_escape_share": "float64",
            "wrong_passed_share": "float64",
        }
    )


def missing_table(report: MissingReport) -> pd.DataFrame:
    """Missed vs truly absent per field, overall first."""
    rows = [
        {
            "field": field_label(row.field_name),
            "n": row.n,
            "missed": row.missed,
            "truly_absent": row.truly_absent,
            "missed_share": row.missed_share,
            "absent_share": row.absent_share,
        }
        for row in report.rows()
    ]
    return pd.DataFrame.from_records(
        rows, columns=["field", "n", "missed", "truly_absent", "missed_share", "absent_share"]
    ).astype({"missed_share": "float64", "absent_share": "float64"})


def throughput_table(stats: QueueStats) -> pd.DataFrame:
    """Per-reviewer decisions in the statistics window, busiest first."""
    rows = [
        {
            "reviewer": row.reviewer,
            "decisions": row.decisions,
            "approved": row.approved,
            "corrected": row.corrected,
            "rejected": row.rejected,
            "decisions_per_day": row.decisions_per_day,
            "median_hours_to_decision": None
            if row.median_seconds_to_decision is None
            else row.median_seconds_to_decision / 3600,
            "items_per_active_hour": row.items_per_active_hour,
            "median_minutes_per_item": None
            if row.median_seconds_per_item is None
            else row.median_seconds_per_item / 60,
            "changed_share": row.changed_share,
        }
        for row in stats.throughput
    ]
    columns = [
        "reviewer",
        "decisions",
        "approved",
        "corrected",
        "rejected",
        "decisions_per_day",
        "median_hours_to_decision",
        "changed_share",
        "items_per_active_hour",
        "median_minutes_per_item",
    ]
    return pd.DataFrame.from_records(rows, columns=columns).astype(
        {
            name: "float64"
            for name in (
                "decisions_per_day",
                "median_hours_to_decision",
                "items_per_active_hour",
                "median_minutes_per_item",
                "changed_share",
            )
        }
    )
