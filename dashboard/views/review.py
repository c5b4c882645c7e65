"""Review queue: open flagged reports, who holds them, the drill-down with the review
panel, and the queue's statistics.

``/review?email_id=N`` opens the drill-down of email N directly; selecting a row does
the same and puts the id in the URL, so the view can be shared. "Next item" claims the
oldest free item and opens it. The Statistics tab is only computed when it is open.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data, drilldown, filters, quality_charts, review_data, review_panel, ui
from dashboard.values import plain_frame, plain_text
from reportlib import queries
from reportlib.queries import MAX_QUEUE_ROWS, QUEUE_SORTS, ReportFilter
from reportlib.sampling import AUDIT_REASON

PAGE_SIZE = 50
ROUTE_NAMES = {"high": "High", "medium": "Medium", "low": "Low"}


def _queue_table(
    frame: pd.DataFrame, now: dt.datetime, held: dict[int, tuple[str, dt.datetime]]
) -> pd.DataFrame:
    ages = [(now - created).total_seconds() for created in frame["created_at"]]
    holders = [held.get(int(email_id)) for email_id in frame["email_id"]]
    # Audit samples are reviewed blind: no confidence and no route before the decision.
    blind = frame["review_reason"] == AUDIT_REASON
    return pd.DataFrame(
        {
            "Email": frame["email_id"],
            "Age": [ui.fmt_age(age) for age in ages],
            "Created (UTC)": frame["created_at"].dt.tz_convert("UTC").dt.tz_localize(None),
            "Review reason": frame["review_reason"].fillna("—"),
            "Intent": frame["intent"].fillna("—"),
            "Route": frame["confidence_route"].map(ROUTE_NAMES).mask(blind, "—"),
            "Overall confidence": frame["overall_confidence"].mask(blind),
            "Missing fields": frame["missing_fields"],
            "Held by": [
                f"{holder[0]} (until {holder[1].astimezone(dt.UTC):%H:%M})" if holder else "—"
                for holder in holders
            ],
        }
    )


def _queue_columns() -> dict[str, Any]:
    # Widths add up to the main column of a 1440-px window, so nothing scrolls.
    return {
        "Email": st.column_config.NumberColumn(format="%d", width=60),
        "Age": st.column_config.TextColumn(width=75),
        "Created (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", width=125),
        "Review reason": st.column_config.TextColumn(width=160),
        "Intent": st.column_config.TextColumn(width=120),
        "Route": st.column_config.TextColumn(width=62),
        "Overall confidence": st.column_config.ProgressColumn(
            "Confidence", min_value=0.0, max_value=1.0, format="%.2f", width=90
        ),
        "Missing fields": st.column_config.NumberColumn(
            "Missing", format="%d", width=60, help="Number of missing fields"
        ),
        "Held by": st.column_config.TextColumn(
            width=185, help="The reviewer holding the item, and until when (UTC)"
        ),
    }


#: The statistics tables' columns and their headers.
OUTCOME_COLUMNS = {
    "reviewer": "Reviewer",
    "decisions": "Decisions",
    "approved": "Approved",
    "corrected": "Corrected",
    "rejected": "Rejected",
    "decisions_per_day": "Per day",
    "median_hours_to_decision": "Hours to decision",
}
PRODUCTIVITY_COLUMNS = {
    "reviewer": "Reviewer",
    "decisions": "Decisions",
    "changed_share": "Changed",
    "items_per_active_hour": "Per active hour",
    "median_minutes_per_item": "Minutes per item",
}


def _export(flt: ReportFilter, sort: str, reasons: tuple[str, ...]) -> bytes:
    return ui.csv_bytes(data.export_review_queue(flt, sort=sort, reasons=reasons))


def _render_queue(flt: ReportFilter) -> int | None:
    """Draw the queue; returns the email id of the selected row, if any."""
    reasons_frame = data.read(queries.review_queue_reasons, flt=flt)
    ui.truncation_note("review reasons", queries.MAX_GROUPS, queries.is_truncated(reasons_frame))
    left, middle, right = st.columns([2, 3, 1])
    sort = left.selectbox(
        "Sort", options=list(QUEUE_SORTS), format_func=QUEUE_SORTS.__getitem__, key="queue_sort"
    )
    counts = dict(zip(reasons_frame["review_reason"], reasons_frame["items"], strict=True))
    reasons = tuple(
        middle.multiselect(
            "Review reason",
            options=list(counts),
            format_func=lambda reason: f"{plain_text(reason)} ({counts.get(reason, 0):,})",
            key="queue_reasons",
            placeholder="All reasons",
        )
    )
    total = data.read(queries.count_review_queue_in_window, flt=flt, reasons=reasons)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if st.session_state.get("queue_page", 1) > pages:
        st.session_state["queue_page"] = pages
    page = int(right.number_input("Page", min_value=1, max_value=pages, step=1, key="queue_page"))

    snapshot = data.open_queue_now(flt)
    outside = snapshot.size - data.read(queries.count_review_queue_in_window, flt=flt, reasons=())
    note = (
        f" {outside:,} more open items were created outside the date range." if outside > 0 else ""
    )
    st.caption(
        f"{total:,} open items created {flt.start.isoformat()} to {flt.end.isoformat()} (UTC), "
        f"page {page} of {pages}.{note}"
    )
    if total == 0:
        st.info("No open review items match the filters.", icon=":material/task_alt:")
        return None

    frame = data.read(
        queries.review_queue_page,
        flt=flt,
        sort=sort,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        reasons=reasons,
    )
    nonce = st.session_state.get("queue_nonce", 0)
    table = plain_frame(_queue_table(frame, dt.datetime.now(dt.UTC), review_data.held_items()))
    if ui.interactive():
        event = st.dataframe(
            table,
            hide_index=True,
            on_select="rerun",
            selection_mode="single-row",
            key=f"queue_table_{nonce}",
            column_config=_queue_columns(),
        )
        rows = event.selection.rows if event is not None else []
        selected = (
            int(frame["email_id"].iloc[rows[0]]) if rows and 0 <= rows[0] < len(frame) else None
        )
    else:
        # A data grid costs the browser about 0.7 s (BENCHMARKS.md): the static view draws
        # the page as HTML and opens a row through a list of the page's emails.
        ui.table(table, key=f"queue_table_{nonce}", column_config=_queue_columns())
        ages = dict(zip(table["Email"], table["Age"], strict=True))
        selected = st.selectbox(
            "Open an email from this page",
            options=[int(email_id) for email_id in frame["email_id"]],
            index=None,
            format_func=lambda email_id: f"Email {email_id} ({ages.get(email_id, '—')} old)",
            placeholder="Choose an email",
            key=f"queue_pick_{nonce}",
            width=420,
        )
    cap = f" (at most {MAX_QUEUE_ROWS:,} rows)" if total > MAX_QUEUE_ROWS else ""
    ui.csv_download(
        lambda: _export(flt, sort, reasons),
        label=f"Download the filtered queue (CSV){cap}",
        file_name=ui.file_stem("review_queue", flt) + ".csv",
        key="csv_queue",
    )
    return selected


def _close_drilldown() -> None:
    review_panel.open_email(None)


def _render_drilldown(raw: str) -> None:
    email_id, problem = drilldown.parse_email_id(raw)
    st.divider()
    if email_id is None:
        st.warning(problem, icon=":material/link_off:")
        return
    detail = data.report_detail(email_id)
    if detail is None:
        st.warning(
            f"There is no processing report for email {email_id}. "
            "The link may be mistyped, or the email was never processed.",
            icon=":material/search_off:",
        )
        return
    drilldown.render(detail)
    st.button("Close", key="close_drilldown", on_click=_close_drilldown, icon=":material/close:")


def _render_queue_tab(flt: ReportFilter) -> None:
    with st.spinner("Loading the review queue…"):
        selected = _render_queue(flt)
    if selected is not None and st.query_params.get("email_id") != str(selected):
        st.query_params["email_id"] = str(selected)
    raw = st.query_params.get("email_id")
    if raw is not None:
        _render_drilldown(raw)
    else:
        where = "Select a row" if ui.interactive() else "Choose an email below the table"
        st.caption(f"{where} to see what was extracted from that email.")


def _fmt_duration(seconds: float | None) -> str:
    """Short enough for a metric tile: ``45 min``, ``12.8 h``, ``3.2 d``."""
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _render_stats(flt: ReportFilter) -> None:
    stats = review_data.queue_stats(flt)
    everything = "All open items, whatever the filters."
    oldest = (
        None
        if stats.oldest_open_created_at is None
        else (stats.now - stats.oldest_open_created_at).total_seconds()
    )
    ui.cards(
        [
            ui.Card("Open now", ui.fmt_int(stats.open_count), help=everything),
            ui.Card(
                "Claimed now",
                ui.fmt_int(stats.claimed_count),
                help="Open items a reviewer holds right now (claims expire).",
            ),
            ui.Card("Oldest open item", ui.fmt_age(oldest), help=everything),
            ui.Card(
                "Resolved today",
                ui.fmt_int(stats.resolved_today),
                help="Decisions made since midnight UTC.",
            ),
            ui.Card(
                "Median to decision",
                _fmt_duration(stats.median_seconds_to_decision),
                help="From the flag (the processing that was reviewed) to the decision, over "
                "the decisions made in the period.",
            ),
        ],
        per_row=5,
    )
    st.caption(
        f"{stats.decisions_in_window:,} decisions made {ui.utc_text(stats.window_start)} to "
        f"{ui.utc_text(stats.window_end)}."
    )
    throughput = review_data.throughput_table(stats)
    if throughput.empty:
        st.info("No review decisions in this period yet.", icon=":material/inbox:")
        return
    ui.chart(quality_charts.reviewer_throughput, throughput, key="chart_throughput")
    shown = ui.as_percent(plain_frame(throughput), "changed_share")
    ui.table(
        shown[list(OUTCOME_COLUMNS)].rename(columns=OUTCOME_COLUMNS),
        column_config={
            "Per day": st.column_config.NumberColumn(format="%.2f"),
            "Hours to decision": st.column_config.NumberColumn(
                format="%.1f", help="The median time from the report's processing to the decision."
            ),
        },
        key="table_throughput",
    )
    st.markdown("**Productivity**")
    ui.table(
        shown[list(PRODUCTIVITY_COLUMNS)].rename(columns=PRODUCTIVITY_COLUMNS),
        column_config={
            "Changed": ui.percent_column(),
            "Per active hour": st.column_config.NumberColumn(
                format="%.1f",
                help="Decisions made within 10 minutes of the reviewer's previous one, per "
                "hour of those gaps: longer gaps are breaks and count neither way.",
            ),
            "Minutes per item": st.column_config.NumberColumn(
                format="%.1f", help="The median of those gaps of 10 minutes or less."
            ),
        },
        key="table_productivity",
    )
    st.caption(
        "Changed: the share of a reviewer's decisions that corrected or rejected something. "
        "A reviewer who changes nothing on many items is worth a look. Per active hour and "
        "minutes per item count only decisions made within 10 minutes of the previous one."
    )
    ui.csv_download(
        throughput,
        label="Reviewer throughput (CSV)",
        file_name=ui.file_stem("review_throughput", flt) + ".csv",
        key="csv_throughput",
    )


def render() -> None:
    """The page's single entry point (the error boundary wraps it)."""
    flt = filters.current()
    st.title("Review queue")
    ui.stop_if_empty_database(data.has_reports())
    review_panel.render_identity()
    review_panel.render_flash(None)
    queue_tab, stats_tab = st.tabs(
        [review_panel.QUEUE_TAB, "Statistics"], key=review_panel.TAB_KEY, on_change="rerun"
    )
    # Only the open tab runs: the statistics cost queries the queue does not need.
    if queue_tab.open is not False:
        with queue_tab:
            _render_queue_tab(flt)
    if stats_tab.open:
        with stats_tab:
            _render_stats(flt)


render()
