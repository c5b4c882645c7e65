"""What may leave the process: the keys and value shapes each part of an event may keep.

Tags, breadcrumb data and contexts are allow-lists of keys *and* value shapes (ids,
counts, numbers, lower-case enum words), not a denylist of personal keys; the personal
keys listed here are dropped even where free-form data is otherwise kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

MAX_BREADCRUMBS: Final = 50
"""Breadcrumbs kept per scope: enough to see what one email's processing did."""

SAFE_TAG_KEYS: Final = frozenset(
    {
        "actor",
        "agent",
        "alert_state",
        "component",
        "confidence_route",
        "correlation_id",
        "email_id",
        "field",
        "intent",
        "metric",
        "model",
        "page",
        "report_id",
        "route",
        "rule",
        "severity",
        "stage",
        "status",
    }
)
"""Tags that may be sent. Any other tag is dropped: tags are indexed and searchable.

Each key also has a value shape (see ``TAG_SHAPES``): a tag whose value does not fit it
(an email address as ``actor``, a name as ``intent``) is dropped too.
"""

# Value shapes. Enum words are what stages, agents, routes, intents and outcomes look like:
# no spaces, no "@", no upper case, so free text, names and addresses do not fit.
NUMERIC_ID: Final = re.compile(r"[0-9]{1,20}")
TOKEN_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
ENUM_WORD: Final = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")
ROUTE: Final = re.compile(r"high|medium|low")
PAGE_PATH: Final = re.compile(r"/?[A-Za-z0-9][A-Za-z0-9_/-]{0,63}")
TAG_SHAPES: Final[Mapping[str, re.Pattern[str]]] = {
    "actor": ENUM_WORD,
    "agent": ENUM_WORD,
    "alert_state": ENUM_WORD,
    "component": ENUM_WORD,
    "confidence_route": ROUTE,
    "correlation_id": TOKEN_ID,
    "email_id": NUMERIC_ID,
    "field": ENUM_WORD,
    "intent": ENUM_WORD,
    "metric": ENUM_WORD,
    "model": ENUM_WORD,
    "page": PAGE_PATH,
    "report_id": NUMERIC_ID,
    "route": ROUTE,
    "rule": ENUM_WORD,
    "severity": ENUM_WORD,
    "stage": ENUM_WORD,
    "status": ENUM_WORD,
}

ALERT_NUMBER_KEYS: Final = frozenset(
    {"value", "threshold", "baseline", "volume", "min_volume", "window_hours", "baseline_days"}
)
"""Keys of the ``alert`` context kept when they are numbers (or None): figures only."""
ALERT_TEXT_KEYS: Final = frozenset(
    {"rule", "metric", "state", "severity", "comparison", "intent", "route", "field",
     "window_start", "window_end", "link"}
)
"""Keys of the ``alert`` context kept when they are short text: names, filters, times and
the dashboard link (its query names dates, intents and routes only)."""
MAX_LINK: Final = 1000

BREADCRUMB_NUMBER_KEYS: Final = frozenset(
    {
        "attachments",
        "attempt",
        "attempts",
        "batch_size",
        "confidence",
        "count",
        "duration_ms",
        "elapsed_ms",
        "fields",
        "missing_count",
        "overall_confidence",
        "processing_time_ms",
        "retries",
        "rows",
        "size",
        "sources_processed",
        "status_code",
        "tokens",
        "total_tokens_used",
    }
)
"""Breadcrumb ``data`` keys whose values may be sent when they are numbers or flags."""

BREADCRUMB_ID_KEYS: Final = frozenset(
    {"correlation_id", "decision_id", "email_id", "job", "report_id", "trace_id"}
)
"""Breadcrumb ``data`` keys whose values may be sent when they are whole numbers or
token-shaped ids (letters, digits, ``_ . : -``)."""

BREADCRUMB_ENUM_KEYS: Final = frozenset(
    {
        "action",
        "agent",
        "component",
        "confidence_route",
        "field",
        "intent",
        "kind",
        "missing",
        "model",
        "operation",
        "outcome",
        "route",
        "source_kind",
        "stage",
        "status",
        "verdict",
    }
)
"""Breadcrumb ``data`` keys whose values may be sent when they are lower-case enum words
(or lists of them, at most 50), numbers or flags."""

OWN_LOGGERS: Final = ("reportlib", "dashboard")
"""Loggers whose records keep their message template; every other logger's message is
withheld (logger name and level only)."""

LOG_MESSAGE_WITHHELD: Final = "(log message withheld)"
MAX_TEXT: Final = 200
MAX_MESSAGE: Final = 500
MAX_LIST: Final = 50

# Keys whose values are personal by nature. Settings.key_fields is added at init.
PERSONAL_KEYS: Final = frozenset(
    {
        "address",
        "amount",
        "body",
        "client_name",
        "comment",
        "corrected_value",
        "creditor_name",
        "db.params",
        "debt_amount",
        "debtor_name",
        "email",
        "email_body",
        "extracted_data",
        "extracted_fields",
        "extracted_value",
        "iban",
        "name",
        "note",
        "parameters",
        "params",
        "phone",
        "raw",
        "reference_number",
        "reference_numbers",
        "sender",
        "subject",
        "text",
        "value",
        "values",
    }
)

SDK_CONTEXTS: Final = frozenset(
    {"app", "browser", "cloud_resource", "culture", "device", "os", "profile", "runtime"}
)
SPAN_DATA_KEYS: Final = frozenset(
    {
        "blocked_main_thread",
        "code.filepath",
        "code.function",
        "code.lineno",
        "code.namespace",
        "db.driver.name",
        "db.executemany",
        "db.name",
        "db.namespace",
        "db.operation",
        "db.operation.name",
        "db.system",
        "db.system.name",
        "http.method",
        "http.request.method",
        "http.response.status_code",
        "http.status_code",
        "sentry.op",
        "sentry.origin",
        "sentry.sample_rate",
        "sentry.source",
        "server.address",
        "server.port",
        "thread.id",
        "thread.name",
    }
)
DSC_KEYS: Final = frozenset(
    {
        "environment",
        "org_id",
        "public_key",
        "release",
        "sample_rand",
        "sample_rate",
        "sampled",
        "trace_id",
        "transaction",
    }
)
FRAME_KEYS: Final = (
    "filename",
    "abs_path",
    "function",
    "module",
    "lineno",
    "colno",
    "pre_context",
    "context_line",
    "post_context",
    "in_app",
    "package",
    "platform",
)
MECHANISM_KEYS: Final = (
    "type",
    "handled",
    "synthetic",
    "exception_id",
    "parent_id",
    "source",
    "is_exception_group",
)
EVENT_TEXT_KEYS: Final = (
    "event_id",
    "timestamp",
    "start_timestamp",
    "level",
    "platform",
    "logger",
    "transaction",
    "server_name",
    "release",
    "dist",
    "environment",
    "type",
)
