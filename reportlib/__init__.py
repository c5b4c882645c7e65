"""reportlib: processing reports for the debt-collection email pipeline.

The pipeline imports this package to write one report per email; the dashboard imports it
to read aggregates. ``reportlib`` never imports Streamlit.
"""

from reportlib.config import ConfigurationError, Settings, get_settings
from reportlib.db import make_engine, make_sessionmaker, session_scope
from reportlib.errors import (
    DatabaseUnavailableError,
    ReportlibError,
    ReportNotFoundError,
    ReportValidationError,
    ReviewError,
    UnknownEmailError,
)
from reportlib.models import (
    AuditEvent,
    Base,
    IncomingEmail,
    ProcessingReport,
    ReviewClaim,
    ReviewDecision,
    ReviewFieldVerdict,
)
from reportlib.monitoring import (
    add_breadcrumb,
    capture_exception,
    capture_message,
    capture_page_error,
    init_sentry,
    processing_scope,
    set_processing_context,
    shutdown_sentry,
)
from reportlib.service import (
    ReportInput,
    create_processing_report,
    create_processing_reports,
    ensure_incoming_email,
    get_processing_report,
    get_reports_by_date_range,
    get_reports_needing_review,
)

__version__ = "0.1.0"

__all__ = [
    "AuditEvent",
    "Base",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "IncomingEmail",
    "ProcessingReport",
    "ReportInput",
    "ReportNotFoundError",
    "ReportValidationError",
    "ReportlibError",
    "ReviewClaim",
    "ReviewDecision",
    "ReviewError",
    "ReviewFieldVerdict",
    "Settings",
    "UnknownEmailError",
    "add_breadcrumb",
    "capture_exception",
    "capture_message",
    "capture_page_error",
    "create_processing_report",
    "create_processing_reports",
    "ensure_incoming_email",
    "get_processing_report",
    "get_reports_by_date_range",
    "get_reports_needing_review",
    "get_settings",
    "init_sentry",
    "make_engine",
    "make_sessionmaker",
    "processing_scope",
    "session_scope",
    "set_processing_context",
    "shutdown_sentry",
]
