"""Review queue: open flagged reports, and the drill-down of one of them.

``/review?email_id=N`` opens the drill-down of email N directly; selecting a row does
the same and puts the id in the URL, so the view can be shared.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import streamlit as st

from dashboard import data, drilldown, filters, ui
from reportlib.queries import MAX_QUEUE_ROWS, QUEUE_SORTS, ReportFilter

PAGE_SIZE = 50
ROUTE_NAMES = {"high": "High", "medium": "Medium", "low": "Low"}


def _queue_table(frame: pd.DataFrame, now: dt.datetime) -> pd.DataFrame:
    ages = [(now - created).total_seconds() for created in frame["created_at"]]
    return pd.DataFrame(
        {
            "Email": frame["email_id"],
            "Age": [ui.fmt_age(age) for age in ages],
            "Created (UTC)": frame["created_at"].dt.tz_convert("UTC").dt.tz_localize(None),
            "Review reason": frame["review_reason"].fillna("—"),
            "Intent": frame["intent"].fillna("—"),
            "Route": frame["confidence_route"].map(ROUTE_NAMES),
            "Overall confidence": frame["overall_confidence"],
            "Missing fields": frame["missing_fields"],
        }
    )


def _export(flt: ReportFilter, sort: str, reasons: tuple[str, ...]) -> bytes:
    return ui.csv_bytes(data.export_review_queue(flt, sort=sort, reasons=reasons))


def _render_queue(flt: ReportFilter) -> int | None:
    """Draw the queue; returns the email id of the selected row, if any."""
    reasons_frame = data.review_queue_reasons(flt)
    left, middle, right = st.columns([2, 3, 1])
    sort = left.selectbox(
        "Sort", options=list(QUEUE_SORTS), format_func=QUEUE_SORTS.__getitem__, key="queue_sort"
    )
    counts = dict(zip(reasons_frame["review_reason"], reasons_frame["items"], strict=True))
    reasons = tuple(
        middle.multiselect(
            "Review reason",
            options=list(counts),
            format_func=lambda reason: f"{reason} ({counts.get(reason, 0):,})",
            key="queue_reasons",
            placeholder="All reasons",
        )
    )
    total = data.count_review_queue(flt, reasons)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if st.session_state.get("queue_page", 1) > pages:
        st.session_state["queue_page"] = pages
    page = int(right.number_input("Page", min_value=1, max_value=pages, step=1, key="queue_page"))

    snapshot = data.open_queue_now(flt)
    outside = snapshot.size - data.count_review_queue(flt, ())
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

    frame = data.review_queue_page(
        flt, sort=sort, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, reasons=reasons
    )
    nonce = st.session_state.get("queue_nonce", 0)
    event = st.dataframe(
        _queue_table(frame, dt.datetime.now(dt.UTC)),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=f"queue_table_{nonce}",
        # Widths add up to the main column of a 1440-px window, so nothing scrolls.
        column_config={
            "Email": st.column_config.NumberColumn(format="%d", width=70),
            "Age": st.column_config.TextColumn(width=80),
            "Created (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", width=130),
            "Review reason": st.column_config.TextColumn(width=230),
            "Intent": st.column_config.TextColumn(width=150),
            "Route": st.column_config.TextColumn(width=70),
            "Overall confidence": st.column_config.ProgressColumn(
                min_value=0.0, max_value=1.0, format="%.2f", width=120
            ),
            "Missing fields": st.column_config.NumberColumn(
                "Missing", format="%d", width=70, help="Number of missing fields"
            ),
        },
    )
    cap = f" (at most {MAX_QUEUE_ROWS:,} rows)" if total > MAX_QUEUE_ROWS else ""
    ui.csv_download(
        lambda: _export(flt, sort, reasons),
        label=f"Download the filtered queue (CSV){cap}",
        file_name=ui.file_stem("review_queue", flt) + ".csv",
        key="csv_queue",
    )
    rows = event.selection.rows if event is not None else []
    if rows and 0 <= rows[0] < len(frame):
        return int(frame["email_id"].iloc[rows[0]])
    return None


def _close_drilldown() -> None:
    if "email_id" in st.query_params:
        del st.query_params["email_id"]
    st.session_state["queue_nonce"] = st.session_state.get("queue_nonce", 0) + 1


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


def render() -> None:
    """The page's single entry point (the error boundary wraps it)."""
    flt = filters.current()
    st.title("Review queue")
    with st.spinner("Loading the review queue…"):
        ui.stop_if_empty_database(data.has_reports())
        selected = _render_queue(flt)
    if selected is not None and st.query_params.get("email_id") != str(selected):
        st.query_params["email_id"] = str(selected)
    raw = st.query_params.get("email_id")
    if raw is not None:
        _render_drilldown(raw)
    else:
        st.caption("Select a row to see what was extracted from that email.")


render()
