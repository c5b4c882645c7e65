"""Audit log (admins only): who opened which email's values, decided reviews, exported.

The page is registered in the navigation for admins only; a direct visit by anyone else
ends at the refusal below. Audit rows hold no extracted values, so neither does the
table nor its CSV export; the export itself is audited.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from dashboard import auth, data, drilldown, filters, ui
from dashboard.values import plain_frame
from reportlib.access import can_see_audit
from reportlib.audit import AUDIT_ACTIONS, check_actor
from reportlib.errors import ReportValidationError

PAGE_SIZE = 50
ACTION_NAMES = {
    "review_claimed": "Review claimed",
    "review_claim_released": "Review claim released",
    "review_decided": "Review decided",
    "drilldown_viewed": "Drill-down viewed (values shown)",
    "csv_exported": "CSV exported",
    "audit_log_viewed": "Audit log viewed",
}
ALL_ACTIONS = ""
REFUSED = "The audit log is for admins only."


def _filters(left: Any, middle: Any, right: Any) -> tuple[str | None, str | None, int | None, bool]:
    """Actor, action and email filters as typed; the flag says whether they are usable."""
    raw_actor = left.text_input(
        "Actor",
        key="audit_actor",
        placeholder="Anyone",
        help="The exact identity (upper or lower case): an email address, a local-mode "
        "reviewer name, or local-mode.",
    )
    action = middle.selectbox(
        "Action",
        options=[ALL_ACTIONS, *AUDIT_ACTIONS],
        format_func=lambda name: ACTION_NAMES.get(name, name) if name else "All actions",
        key="audit_action",
    )
    raw_email = right.text_input("Email", key="audit_email", placeholder="Any email")
    usable = True
    actor: str | None = None
    if raw_actor.strip():
        try:
            actor = check_actor(raw_actor).lower()
        except ReportValidationError:
            st.warning(
                "The actor filter is not a valid identity (at most 200 characters, no "
                "control characters).",
                icon=":material/person_off:",
            )
            usable = False
    email_id: int | None = None
    if raw_email.strip():
        email_id, problem = drilldown.parse_email_id(raw_email)
        if email_id is None:
            st.warning(problem.replace("The link's", "The"), icon=":material/filter_alt_off:")
            usable = False
    return actor, action or None, email_id, usable


def render() -> None:
    """The page's single entry point (the error boundary wraps it)."""
    user = auth.current_user()
    if user is None or not can_see_audit(user.role):
        st.error(REFUSED, icon=":material/block:")
        st.stop()
    flt = filters.current()
    st.title("Audit log")
    st.caption(
        f"Events on {flt.start.isoformat()} to {flt.end.isoformat()} (UTC, the sidebar's "
        "date range), newest first. Rows record who, when, which email and what, never "
        "the values themselves."
    )
    left, middle, right, last = st.columns([3, 3, 2, 1])
    actor, action, email_id, usable = _filters(left, middle, right)
    data.audit_log_opened(user, filtered=bool(actor or action or email_id))
    if not usable:
        st.stop()
    total = data.count_audit(
        user, flt.start, flt.end, actor=actor, action=action, email_id=email_id
    )
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if st.session_state.get("audit_page", 1) > pages:
        st.session_state["audit_page"] = pages
    page = int(last.number_input("Page", min_value=1, max_value=pages, step=1, key="audit_page"))
    st.caption(f"{total:,} events, page {page} of {pages}.")
    if total == 0:
        st.info("No audit events match the filters.", icon=":material/manage_search:")
        return
    entries = data.audit_events(
        user,
        flt.start,
        flt.end,
        actor=actor,
        action=action,
        email_id=email_id,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    frame = data.audit_frame(entries)
    st.dataframe(
        plain_frame(frame).assign(
            occurred_at=frame["occurred_at"].dt.tz_localize(None),
            email_id=[ui.fmt_email_id(value) for value in frame["email_id"]],
        ),
        hide_index=True,
        key="audit_table",
        column_config={
            "occurred_at": st.column_config.DatetimeColumn(
                "Time (UTC)", format="YYYY-MM-DD HH:mm:ss", width=160
            ),
            "actor": st.column_config.TextColumn("Actor", width=240),
            "action": st.column_config.TextColumn("Action", width=170),
            "email_id": st.column_config.TextColumn("Email", width=110),
            "details": st.column_config.TextColumn("Details", width="large"),
        },
    )
    cap = (
        f" (at most {data.AUDIT_EXPORT_MAX_ROWS:,} rows)"
        if total > data.AUDIT_EXPORT_MAX_ROWS
        else ""
    )
    ui.csv_download(
        lambda: data.export_audit_events(
            user, flt.start, flt.end, actor=actor, action=action, email_id=email_id
        ),
        label=f"Download the filtered audit log (CSV){cap}",
        file_name=ui.file_stem("audit_log", flt) + ".csv",
        key="csv_audit",
        audit_page="audit",
    )


render()
