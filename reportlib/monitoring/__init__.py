"""Error tracking with Sentry, built so that personal data never leaves the process.

The pipeline calls :func:`init_sentry` once, wraps each email's processing in
:func:`processing_scope`, and leaves breadcrumbs with :func:`add_breadcrumb`. The dashboard
calls :func:`init_sentry` at start-up and :func:`capture_page_error` from its error boundary.

What may be sent is decided here, structurally, not by trusting callers: the SDK is told to
collect nothing personal (``data_collection`` with every category off, no local variables,
no request bodies), and every event, transaction and breadcrumb passes through allow-list
filters that rebuild it from known-safe parts. Exception messages are replaced by a summary
(exception type, SQLSTATE, constraint and table names, the name of a bad field), because
SQLAlchemy and psycopg messages embed SQL parameters and "Failing row contains (...)". Log
records of reportlib's and the dashboard's own loggers keep their unformatted template; their
arguments and ``extra`` are dropped. Records of any other logger (the host's, libraries')
are sent as logger name and level only, because their message may have been formatted
before logging (an f-string). Breadcrumb data and tags are allow-lists of keys *and* value
shapes (ids, counts, numbers, lower-case enum words), not a denylist of personal keys.

None of these helpers ever raises into the caller: a Sentry failure must not break
processing. Failures are logged at debug level without values.

The package: :mod:`.api` holds these helpers, :mod:`.scrubber` the filters, and
:mod:`.allowlists` what the filters let through. Import from ``reportlib.monitoring``.
"""

from __future__ import annotations

from reportlib.monitoring.allowlists import (
    BREADCRUMB_ENUM_KEYS,
    BREADCRUMB_ID_KEYS,
    BREADCRUMB_NUMBER_KEYS,
    LOG_MESSAGE_WITHHELD,
    MAX_BREADCRUMBS,
    OWN_LOGGERS,
    SAFE_TAG_KEYS,
)
from reportlib.monitoring.api import (
    add_breadcrumb,
    capture_alert,
    capture_exception,
    capture_message,
    capture_page_error,
    init_sentry,
    processing_scope,
    set_processing_context,
    shutdown_sentry,
)

# Tests check the filters and the client state under the names they had before the split.
from reportlib.monitoring.scrubber import before_breadcrumb as _before_breadcrumb  # noqa: F401
from reportlib.monitoring.scrubber import before_send as _before_send  # noqa: F401
from reportlib.monitoring.scrubber import (
    before_send_transaction as _before_send_transaction,  # noqa: F401
)
from reportlib.monitoring.state import sentry_state as _state  # noqa: F401

__all__ = [
    "BREADCRUMB_ENUM_KEYS",
    "BREADCRUMB_ID_KEYS",
    "BREADCRUMB_NUMBER_KEYS",
    "LOG_MESSAGE_WITHHELD",
    "MAX_BREADCRUMBS",
    "OWN_LOGGERS",
    "SAFE_TAG_KEYS",
    "add_breadcrumb",
    "capture_alert",
    "capture_exception",
    "capture_message",
    "capture_page_error",
    "init_sentry",
    "processing_scope",
    "set_processing_context",
    "shutdown_sentry",
]
