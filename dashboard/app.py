"""Entry point: ``streamlit run dashboard/app.py``.

Sets up the page and error reporting, lets in only known users (OIDC login when
``[auth]`` is configured, otherwise the labelled local mode), builds the navigation for
the user's role, checks that the database answers, draws the global filters in the
sidebar, then runs the chosen page inside the error boundary. Pages live in ``dashboard/views``:
a folder named ``pages/`` beside the entry point would make Streamlit treat the app as a
legacy multipage app on a fresh process, bypassing this file.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path; the package imports need
# the repository root.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import auth, boundary  # noqa: E402
from reportlib.access import can_see_alerts, can_see_audit  # noqa: E402
from reportlib.config import get_settings  # noqa: E402
from reportlib.errors import DatabaseUnavailableError  # noqa: E402

st.set_page_config(
    page_title="Processing reports",
    layout="wide",
    initial_sidebar_state="expanded",
)
# Settings are read inside the error boundary, before any module that reads them when it
# is imported (dashboard.data): a malformed variable ends in the boundary's message, which
# names the variable but never repeats its value.
boundary.run_page(get_settings, page="settings", filters=dict)
boundary.start_error_reporting()

from dashboard import data, filters, ui  # noqa: E402 - read settings when imported

# Nothing below runs for a visitor who is not let in: require_user stops the script with
# the login prompt or the refusal, and a broken login configuration ends in its message.
user = boundary.run_page(auth.require_user, page="login", filters=dict)
auth.sidebar_identity(user)

# No page icons: Streamlit turns the current page's icon into the favicon, fetched from a
# font CDN; the dashboard must not call out to third parties.
PAGES = [
    st.Page(
        "views/overview.py",
        title="Overview",
        url_path="",
        default=True,
    ),
    st.Page(
        "views/confidence.py",
        title="Confidence",
        url_path="confidence",
    ),
    st.Page(
        "views/missing_fields.py",
        title="Missing fields",
        url_path="missing-fields",
    ),
    st.Page(
        "views/review.py",
        title="Review queue",
        url_path="review",
    ),
    st.Page("views/quality.py", title="Quality", url_path="quality"),
]
# Only admins get the audit page; for everyone else /audit is an unknown page (and the
# page refuses them itself as well).
if can_see_audit(user.role):
    PAGES.append(st.Page("views/audit.py", title="Audit log", url_path="audit"))

# Alerts: every role (ops and above).
if can_see_alerts(user.role):
    PAGES.append(st.Page("views/alerts.py", title="Alerts", url_path="alerts"))

page = st.navigation(PAGES)
page_name = page.url_path or "overview"
if page_name != "review" and "email_id" in st.query_params:
    del st.query_params["email_id"]  # a drill-down link belongs to the review page only


def _no_intents(start: dt.date, end: dt.date) -> list[str]:
    del start, end
    return []


def _view_toggle() -> None:
    with st.sidebar:
        ui.view_toggle(default_interactive=get_settings().dashboard_view == "interactive")


def _filters_and_page() -> None:
    data.start_run()
    reports = page_name != "audit"
    try:
        lag = data.check_available()
    except DatabaseUnavailableError:
        # Draw the filters anyway (widgets left out of a run lose their state, and the
        # filters must survive an outage), without waiting for the database a second time.
        filters.sidebar(today=filters.utc_today(), load_intents=_no_intents, reports=reports)
        _view_toggle()
        raise
    filters.sidebar(today=filters.utc_today(), load_intents=data.intents, reports=reports)
    _view_toggle()
    if lag is not None:
        ui.replica_lag_notice(lag)
    page.run()


boundary.run_page(
    _filters_and_page,
    page=page_name,
    filters=lambda: filters.describe(filters.current()),
)
