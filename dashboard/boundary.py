"""The error boundary every page runs inside.

Expected problems end the page cleanly with a short message (``st.info``/``st.error``
then ``st.stop``); anything unexpected shows a friendly message without a traceback and
is reported to Sentry through ``reportlib.monitoring`` when that is configured. Messages
never contain SQL, parameters or extracted values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TypeVar

import sqlalchemy.exc
import streamlit as st

from dashboard.values import markdown_text
from reportlib.config import ConfigurationError
from reportlib.errors import (
    DatabaseUnavailableError,
    ReportlibError,
    ReportNotFoundError,
    ReportValidationError,
)
from reportlib.health import (
    ACCESS_MESSAGE,
    READ_ONLY_MESSAGE,
    is_database_access_error,
    is_database_unavailable,
    is_read_only_database,
)
from reportlib.monitoring import capture_page_error, init_sentry

logger = logging.getLogger(__name__)

RETRY = (
    "This page cannot be shown right now. Please try again in a minute: the dashboard "
    "recovers on its own once the database answers."
)
DATABASE_UNAVAILABLE = "The database is unavailable. " + RETRY
DATABASE_NOT_SET_UP = (
    "The database has no report tables yet. Run `python -m reportlib migrate` "
    "(and `python -m reportlib seed-demo` for demo data), then reload this page."
)
UNEXPECTED = "Something went wrong while building this page. The problem has been logged."
NOT_ALLOWED = "Your role does not give access to this page."

T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def start_error_reporting() -> bool:
    """Initialise Sentry once per process; False when it is off (no DSN)."""
    return init_sentry()


def report_error(exc: BaseException, *, page: str, filters: Mapping[str, str]) -> str | None:
    """Log ``exc`` and send it to Sentry (if configured), once; returns the event id.

    The one way the dashboard reports an error it did not expect, from the boundary and
    from widget callbacks alike. The log line names the page and the exception type only,
    because an exception's message may carry values. Never raises.
    """
    # A warning, not an error: the logging integration would turn an error record into a
    # second Sentry event next to this one.
    logger.warning("page %s failed: %s", page, type(exc).__name__)
    return capture_page_error(exc, page=page, filters=filters)


def unexpected_message(event_id: str | None) -> str:
    """What a viewer is told about an unexpected error: no details, the event to quote."""
    return UNEXPECTED + (f" Reference: {event_id}." if event_id else "")


def _is_missing_table(exc: BaseException) -> bool:
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return False
    original = exc.orig
    if getattr(original, "pgcode", None) == "42P01":  # undefined_table
        return True
    return "no such table" in str(original).lower()


def database_problem(exc: BaseException) -> str | None:
    """The message to show when ``exc`` means the database is down, slow or not set up."""
    if is_database_access_error(exc):
        return ACCESS_MESSAGE  # wrong credentials or no such database: waiting won't help
    if is_read_only_database(exc):
        return READ_ONLY_MESSAGE  # DATABASE_URL names a replica: waiting won't help either
    if isinstance(exc, DatabaseUnavailableError):
        return f"{exc} {RETRY}"  # fixed text from reportlib.health
    if is_database_unavailable(exc):  # raised outside a translated block
        return DATABASE_UNAVAILABLE
    if _is_missing_table(exc):
        return DATABASE_NOT_SET_UP
    return None


def run_page(render: Callable[[], T], *, page: str, filters: Callable[[], Mapping[str, str]]) -> T:
    """Run ``render`` inside the error boundary and return its result.

    On an error the page ends here (``st.stop``) with a message and nothing returns.
    ``filters`` returns the current filter values (dates, intents, routes: never
    extracted values) for the error report; it is only called when something failed.
    """
    try:
        return render()
    except ConfigurationError as exc:
        st.error(f"The dashboard is not configured correctly: {exc}")
        st.stop()
    except ReportValidationError as exc:
        # The field name may come from a report: Markdown-inert, like every message.
        st.warning(markdown_text(f"This view cannot be shown: {exc.field} {exc.problem}."))
        st.stop()
    except ReportNotFoundError:
        st.info("There is no processing report for that email.")
        st.stop()
    except PermissionError:  # a data function refused a role (the pages check first)
        st.error(NOT_ALLOWED, icon=":material/block:")
        st.stop()
    except Exception as exc:  # noqa: BLE001 - the boundary: no traceback reaches a viewer
        problem = database_problem(exc)
        if problem is None and isinstance(exc, ReportlibError):
            problem = markdown_text(f"This view cannot be shown: {exc}")
        safe_filters = _safe(filters)
        if problem == DATABASE_NOT_SET_UP:
            st.info(problem)
        elif problem is not None:
            report_error(exc, page=page, filters=safe_filters)
            st.error(problem, icon=":material/cloud_off:")
        else:
            event_id = report_error(exc, page=page, filters=safe_filters)
            st.error(unexpected_message(event_id), icon=":material/error:")
        st.stop()


def _safe(filters: Callable[[], Mapping[str, str]]) -> Mapping[str, str]:
    try:
        return dict(filters())
    except Exception:  # noqa: BLE001 - a broken filter must not hide the real error
        return {}
