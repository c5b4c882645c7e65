"""Shared constants and helpers of the dashboard tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from dashboard import filters
from dashboard.static_view import INTERACTIVE_KEY
from reportlib.queries import ReportFilter

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"

HOSTILE_EMAIL_ID = 1_900_000_001
HOSTILE_VALUES = {
    "client_name": "<img src=x onerror=window.__xss=1>",
    "creditor_name": "javascript:alert(1)",
    "debt_amount": "![x](http://127.0.0.1:9/p.png)",
    "reference_numbers": ["<script>window.__xss=2</script>", "[link](javascript:alert(1))"],
}
HOSTILE_INTENT = "<img src=x onerror=window.__xss=3>"
HOSTILE_REASON = "![r](http://127.0.0.1:9/r.png)"
HOSTILE_SUBJECT = "**Mahnung** <b>dringend</b> <img src=x onerror=window.__xss=4>"


@dataclass(frozen=True)
class SeededDatabase:
    """A committed, migrated database the dashboard can be pointed at."""

    url: str
    engine: Engine
    hostile_email_id: int


def new_app(*, interactive: bool = True) -> AppTest:
    """An AppTest of the real entry point (pages are switched with ``switch_page``).

    ``interactive`` (the sidebar toggle) draws Plotly charts, data grids and metric
    cards, whose contents AppTest can read; the default static view draws HTML, which
    tests/dashboard/test_static_view.py checks."""
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[INTERACTIVE_KEY] = interactive
    return at


def applied_filter(at: AppTest) -> ReportFilter:
    """The filter the page applied in its last run, as the sidebar stored it.

    Expectations are computed from this rather than from today's date, so a run that
    crosses UTC midnight between the page and the assertion still compares like with like.
    """
    flt = at.session_state["report_filter"]
    assert isinstance(flt, ReportFilter)
    return flt


def assert_default_filter(flt: ReportFilter) -> None:
    """``flt`` is the default (last 30 UTC days, everything) of the day the page ran:
    today, or yesterday if UTC midnight passed since."""
    today = filters.utc_today()
    assert flt.end in (today, today - dt.timedelta(days=1)), (flt, today)
    assert flt == filters.default_filter(flt.end)


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
