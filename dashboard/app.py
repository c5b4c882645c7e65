"""Entry point: ``streamlit run dashboard/app.py``.

Sets up the page, error reporting, the global filters in the sidebar and navigation,
then runs the chosen page inside the error boundary. Pages live in ``dashboard/views``:
a folder named ``pages/`` beside the entry point would make Streamlit treat the app as a
legacy multipage app on a fresh process, bypassing this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path; the package imports need
# the repository root.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import boundary, data, filters  # noqa: E402

st.set_page_config(
    page_title="Processing reports",
    layout="wide",
    initial_sidebar_state="expanded",
)
boundary.start_error_reporting()

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

page = st.navigation(PAGES)
page_name = page.url_path or "overview"
if page_name != "review" and "email_id" in st.query_params:
    del st.query_params["email_id"]  # a drill-down link belongs to the review page only


def _filters_and_page() -> None:
    filters.sidebar(today=filters.utc_today(), load_intents=data.intents)
    page.run()


boundary.run_page(
    _filters_and_page,
    page=page_name,
    filters=lambda: filters.describe(filters.current()),
)
