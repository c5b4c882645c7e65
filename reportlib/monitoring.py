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
"""

# Catching every Exception is the point of this module: telemetry must never break the host.
# ruff: noqa: BLE001

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import re
import sqlite3
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

import sentry_sdk
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from reportlib.config import Settings, get_settings
from reportlib.errors import ReportValidationError

if TYPE_CHECKING:
    from sentry_sdk._types import LogLevelStr
    from sentry_sdk.integrations import Integration
    from sentry_sdk.types import (
        Breadcrumb,
        BreadcrumbHint,
        DataCollectionUserOptions,
        Event,
        Hint,
    )

__all__ = [
    "BREADCRUMB_ENUM_KEYS",
    "BREADCRUMB_ID_KEYS",
    "BREADCRUMB_NUMBER_KEYS",
    "LOG_MESSAGE_WITHHELD",
    "MAX_BREADCRUMBS",
    "OWN_LOGGERS",
    "SAFE_TAG_KEYS",
    "add_breadcrumb",
    "capture_exception",
    "capture_message",
    "capture_page_error",
    "init_sentry",
    "processing_scope",
    "set_processing_context",
    "shutdown_sentry",
]

_log = logging.getLogger(__name__)

MAX_BREADCRUMBS: Final = 50
"""Breadcrumbs kept per scope: enough to see what one email's processing did."""

SAFE_TAG_KEYS: Final = frozenset(
    {
        "actor",
        "agent",
        "component",
        "confidence_route",
        "correlation_id",
        "email_id",
        "intent",
        "model",
        "page",
        "report_id",
        "route",
        "stage",
        "status",
    }
)
"""Tags that may be sent. Any other tag is dropped: tags are indexed and searchable.

Each key also has a value shape (see ``_TAG_SHAPES``): a tag whose value does not fit it
(an email address as ``actor``, a name as ``intent``) is dropped too.
"""

# Value shapes. Enum words are what stages, agents, routes, intents and outcomes look like:
# no spaces, no "@", no upper case, so free text, names and addresses do not fit.
_NUMERIC_ID: Final = re.compile(r"[0-9]{1,20}")
_TOKEN_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
_ENUM_WORD: Final = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")
_ROUTE: Final = re.compile(r"high|medium|low")
_PAGE_PATH: Final = re.compile(r"/?[A-Za-z0-9][A-Za-z0-9_/-]{0,63}")
_TAG_SHAPES: Final[Mapping[str, re.Pattern[str]]] = {
    "actor": _ENUM_WORD,
    "agent": _ENUM_WORD,
    "component": _ENUM_WORD,
    "confidence_route": _ROUTE,
    "correlation_id": _TOKEN_ID,
    "email_id": _NUMERIC_ID,
    "intent": _ENUM_WORD,
    "model": _ENUM_WORD,
    "page": _PAGE_PATH,
    "report_id": _NUMERIC_ID,
    "route": _ROUTE,
    "stage": _ENUM_WORD,
    "status": _ENUM_WORD,
}

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

_LEVELS: Final = frozenset({"fatal", "error", "warning", "info", "debug"})
_MAX_TEXT: Final = 200
_MAX_MESSAGE: Final = 500
_MAX_LIST: Final = 50

# Keys whose values are personal by nature. Settings.key_fields is added at init.
_PERSONAL_KEYS: Final = frozenset(
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

_SDK_CONTEXTS: Final = frozenset(
    {"app", "browser", "cloud_resource", "culture", "device", "os", "profile", "runtime"}
)
_SPAN_DATA_KEYS: Final = frozenset(
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
_DSC_KEYS: Final = frozenset(
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
_FRAME_KEYS: Final = (
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
_MECHANISM_KEYS: Final = (
    "type",
    "handled",
    "synthetic",
    "exception_id",
    "parent_id",
    "source",
    "is_exception_group",
)
_EVENT_TEXT_KEYS: Final = (
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

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,127}(?:\.[A-Za-z_][A-Za-z0-9_$]{0,127})*")
_FIELD_PATH = re.compile(r"[A-Za-z0-9_.\[\]-]{1,120}")
_SQLSTATE = re.compile(r"[0-9A-Z]{5}")
_SQLALCHEMY_CODE = re.compile(r"[a-z0-9]{4}")
_SQLITE_ERRORNAME = re.compile(r"SQLITE_[A-Z_]{1,40}")
_SQLITE_CONSTRAINT = re.compile(
    r"(CHECK|UNIQUE|NOT NULL|FOREIGN KEY|PRIMARY KEY) constraint failed(?:: (.+))?"
)
# SQL literals: quoted strings (with E/N/B/X/U& prefixes, possibly cut off by truncation),
# dollar-quoted strings and numbers. Bound placeholders (%(name)s, ?, :name, $1) survive.
_SQL_DOLLAR = re.compile(r"\$([A-Za-z_]\w*)?\$.*?(?:\$\1\$|\Z)", re.S)
_SQL_STRING = re.compile(r"(?:\b[EeNnBbXx]|\b[Uu]&)?'(?:[^']|'')*(?:'|\Z)")
_SQL_NUMBER = re.compile(r"(?<![\w$.:%])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")

_DATA_COLLECTION: DataCollectionUserOptions = {
    "user_info": False,
    "cookies": {"mode": "off"},
    "http_headers": {"request": {"mode": "off"}},
    "http_bodies": [],
    "url_query_params": {"mode": "off"},
    "graphql": {"document": False, "variables": False},
    "gen_ai": {"inputs": False, "outputs": False},
    "database_query_data": False,
    "queues": False,
    "stack_frame_variables": False,
}


@dataclasses.dataclass
class _State:
    client: Any = None  # the client init_sentry created, if it is still ours
    signature: tuple[Any, ...] | None = None
    warned_disabled: bool = False
    personal_keys: frozenset[str] = _PERSONAL_KEYS


_state = _State()
_lock = threading.RLock()
_DROP: Final = object()


def _internal_failure(operation: str, exc: BaseException) -> None:
    # Type only: the message of an arbitrary exception may carry values.
    _log.debug("Sentry %s failed (%s)", operation, type(exc).__name__)


# -- start-up ------------------------------------------------------------------------


def init_sentry(settings: Settings | None = None) -> bool:
    """Start error reporting when ``SENTRY_DSN`` is set; return whether it is on.

    Without a DSN, logs one warning, sends nothing and returns False; the SDK's own
    fallback to the ``SENTRY_DSN`` environment variable is not used. With one, starts
    sentry-sdk with the FastAPI, SQLAlchemy and logging integrations and the filters of
    this module. Calling it again with the same settings keeps the running client; with
    changed settings it replaces it. Never raises.
    """
    try:
        with _lock:
            return _init_locked(settings if settings is not None else get_settings())
    except Exception as exc:
        _log.warning(
            "Sentry could not be started (%s); no errors will be reported", type(exc).__name__
        )
        return False


def _init_locked(settings: Settings) -> bool:
    dsn = (settings.sentry_dsn or "").strip()
    if not dsn:
        _close_ours(timeout=2.0)
        if not _state.warned_disabled:
            _log.warning("Sentry is off: SENTRY_DSN is not set, so no errors are reported")
            _state.warned_disabled = True
        return False

    environment = settings.effective_sentry_environment
    signature = (
        dsn,
        environment,
        settings.sentry_traces_sample_rate,
        settings.sentry_profiles_sample_rate,
        tuple(settings.key_fields),
    )
    if (
        _state.client is not None
        and _state.signature == signature
        and sentry_sdk.get_client() is _state.client
    ):
        return True

    _close_ours(timeout=2.0)
    _state.personal_keys = _PERSONAL_KEYS | {name.lower() for name in settings.key_fields}
    try:
        sentry_sdk.init(
            dsn=dsn,
            environment=environment,
            traces_sample_rate=settings.sentry_traces_sample_rate,
            # Continuous profiling while a trace runs: transaction-based profiling is
            # deprecated in sentry-sdk 2.x. The rate is the share of processes profiled.
            profile_session_sample_rate=settings.sentry_profiles_sample_rate,
            profile_lifecycle="trace",
            integrations=_integrations(),
            # Only integrations reviewed for what they collect; no surprises from whatever
            # else happens to be installed.
            auto_enabling_integrations=False,
            data_collection=copy.deepcopy(_DATA_COLLECTION),
            include_local_variables=False,
            max_request_body_size="never",
            max_breadcrumbs=MAX_BREADCRUMBS,
            attach_stacktrace=False,
            before_send=_before_send,
            before_send_transaction=_before_send_transaction,
            before_breadcrumb=_before_breadcrumb,
            enable_logs=False,
            debug=False,
            spotlight=False,
        )
    except Exception as exc:
        # A malformed DSN raises here; its text is a credential, so only the type is logged.
        _log.warning(
            "Sentry is off: SENTRY_DSN could not be used (%s), so no errors are reported",
            type(exc).__name__,
        )
        _state.warned_disabled = True
        return False
    _state.client = sentry_sdk.get_client()
    _state.signature = signature
    _state.warned_disabled = False
    return True


def _integrations() -> list[Integration]:
    from sentry_sdk.integrations import DidNotEnable
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration

    integrations: list[Integration] = [
        SqlalchemyIntegration(),
        LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
    ]
    try:
        from sentry_sdk.integrations.fastapi import FastApiIntegration
        from sentry_sdk.integrations.starlette import StarletteIntegration
    except DidNotEnable:  # FastAPI is optional for the library itself
        return integrations
    return [StarletteIntegration(), FastApiIntegration(), *integrations]


def _close_ours(timeout: float) -> None:
    client = _state.client
    _state.client = None
    _state.signature = None
    if client is None:
        return
    try:
        client.close(timeout=timeout)
    finally:
        if sentry_sdk.get_client() is client:
            sentry_sdk.get_global_scope().set_client(None)


def shutdown_sentry(timeout: float = 2.0) -> None:
    """Send what is queued (waiting up to ``timeout`` seconds) and stop reporting.

    Afterwards nothing is sent until :func:`init_sentry` is called again. Never raises.
    """
    try:
        with _lock:
            _close_ours(timeout)
            _state.warned_disabled = False
    except Exception as exc:
        _internal_failure("shutdown", exc)


# -- context and capture helpers -----------------------------------------------------


def _apply_processing_context(
    scope: sentry_sdk.Scope, email_id: int, actor: str, correlation_id: str | None
) -> None:
    scope.set_context(
        "processing",
        {"email_id": email_id, "actor": actor, "correlation_id": correlation_id or "none"},
    )
    scope.set_tag("email_id", str(email_id))
    scope.set_tag("actor", actor)
    if correlation_id:
        scope.set_tag("correlation_id", correlation_id)
    else:
        scope.remove_tag("correlation_id")


def set_processing_context(email_id: int, actor: str, correlation_id: str | None = None) -> None:
    """Attach the email, the acting agent and the correlation id to later events.

    Sets context ``processing`` = {email_id, actor, correlation_id or "none"} and tags
    ``email_id``, ``actor`` (and ``correlation_id`` when given) on the current isolation
    scope. Prefer :func:`processing_scope`, which confines them to one email.
    """
    try:
        _apply_processing_context(sentry_sdk.get_isolation_scope(), email_id, actor, correlation_id)
    except Exception as exc:
        _internal_failure("set_processing_context", exc)


@contextlib.contextmanager
def processing_scope(
    email_id: int, actor: str, correlation_id: str | None = None
) -> Iterator[None]:
    """Process one email in its own isolation scope.

    Context, tags and breadcrumbs set inside stay inside, so concurrent jobs (threads or
    asyncio tasks) never see each other's. Breadcrumbs start empty for each email. An
    exception escaping the block is reported with this email's context, then re-raised
    unchanged; reporting it again later is deduplicated by the SDK.
    """
    manager: contextlib.AbstractContextManager[sentry_sdk.Scope] | None = None
    try:
        manager = sentry_sdk.isolation_scope()
        scope = manager.__enter__()
    except Exception as exc:
        manager = None
        _internal_failure("processing_scope", exc)
    else:
        try:
            scope.clear_breadcrumbs()
            _apply_processing_context(scope, email_id, actor, correlation_id)
        except Exception as exc:
            _internal_failure("processing_scope", exc)
    try:
        yield
    except Exception as exc:
        capture_exception(exc)
        raise
    finally:
        if manager is not None:
            try:
                manager.__exit__(None, None, None)
            except Exception as exc:
                _internal_failure("processing_scope", exc)


def _level(level: str) -> LogLevelStr:
    return cast("LogLevelStr", level if level in _LEVELS else "info")


def add_breadcrumb(
    category: str, message: str, level: str = "info", data: Mapping[str, Any] | None = None
) -> None:
    """Record a step (``category`` like ``"extraction"``) shown before the next event.

    ``message`` should be a constant sentence; put ids, counts, confidences and routes in
    ``data``. Only keys on the allow-lists (:data:`BREADCRUMB_NUMBER_KEYS`,
    :data:`BREADCRUMB_ID_KEYS`, :data:`BREADCRUMB_ENUM_KEYS`) with a value of the
    matching shape are kept; everything else is dropped before the breadcrumb is stored.
    """
    try:
        sentry_sdk.add_breadcrumb(
            category=category,
            message=message,
            level=_level(level),
            data=dict(data) if data else None,
        )
    except Exception as exc:
        _internal_failure("add_breadcrumb", exc)


def capture_message(message: str, level: str = "info") -> str | None:
    """Report ``message`` (a constant sentence, no values); return the event id or None."""
    try:
        return sentry_sdk.capture_message(message, level=_level(level))
    except Exception as exc:
        _internal_failure("capture_message", exc)
        return None


def capture_exception(exc: BaseException | None = None) -> str | None:
    """Report ``exc`` (default: the one being handled); return the event id or None.

    The exception's message is replaced by a safe summary before sending.
    """
    try:
        if exc is None and sys.exc_info()[1] is None:
            return None  # the SDK would send an event with no exception in it
        return sentry_sdk.capture_exception(exc)
    except Exception as failure:
        _internal_failure("capture_exception", failure)
        return None


def capture_page_error(exc: BaseException, *, page: str, filters: Mapping[str, str]) -> str | None:
    """Report an uncaught dashboard page error; return the event id, or None when off.

    Adds context ``dashboard`` = {page, filters} and tag ``page``. Filters are dates,
    intents and routes, never personal values; they are sent as short strings.
    """
    try:
        safe_filters = {str(key): str(value)[:_MAX_TEXT] for key, value in filters.items()}
        with sentry_sdk.new_scope() as scope:
            scope.set_context("dashboard", {"page": page, "filters": safe_filters})
            scope.set_tag("page", page)
            return scope.capture_exception(exc)
    except Exception as failure:
        _internal_failure("capture_page_error", failure)
        return None


# -- what may leave the process ------------------------------------------------------


def _safe_text(value: Any, limit: int = _MAX_TEXT) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _safe_value(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if depth >= 2:
        return _DROP
    if isinstance(value, Mapping):
        return _safe_mapping(value, depth + 1)
    if isinstance(value, (list, tuple)):
        items = (_safe_value(item, depth + 1) for item in value[:_MAX_LIST])
        return [item for item in items if item is not _DROP]
    return _DROP


def _safe_mapping(mapping: Mapping[Any, Any], depth: int = 0) -> dict[str, Any]:
    personal = _state.personal_keys
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or key.lower() in personal:
            continue
        cleaned = _safe_value(value, depth)
        if cleaned is not _DROP:
            out[key] = cleaned
    return out


def _redact_sql(sql: Any) -> str | None:
    if not isinstance(sql, str):
        return None
    sql = _SQL_DOLLAR.sub("'?'", sql)
    sql = _SQL_STRING.sub("'?'", sql)
    return _SQL_NUMBER.sub("?", sql)


def _strip_url(url: Any) -> str | None:
    if not isinstance(url, str):
        return None
    return url.split("?", 1)[0].split("#", 1)[0][:_MAX_MESSAGE]


def _own_logger(name: object) -> bool:
    return isinstance(name, str) and any(
        name == own or name.startswith(own + ".") for own in OWN_LOGGERS
    )


def _log_template(record: logging.LogRecord) -> str:
    # The template is source code; the arguments and the formatted text carry values.
    # Another logger's "template" may be an f-string already holding values: withheld.
    if not _own_logger(record.name):
        return LOG_MESSAGE_WITHHELD
    msg = record.msg
    return msg[:_MAX_MESSAGE] if isinstance(msg, str) else f"<{type(msg).__name__}>"


def _shaped(value: Any, pattern: re.Pattern[str]) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _number(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float))


def _breadcrumb_data(data: Mapping[Any, Any]) -> dict[str, Any]:
    """Breadcrumb ``data`` reduced to allow-listed keys with values of the right shape."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        if key in BREADCRUMB_NUMBER_KEYS:
            keep = _number(value)
        elif key in BREADCRUMB_ID_KEYS:
            keep = (_number(value) and not isinstance(value, float)) or _shaped(value, _TOKEN_ID)
        elif key in BREADCRUMB_ENUM_KEYS:
            if isinstance(value, (list, tuple)):
                value = list(value[:_MAX_LIST])
                keep = all(_shaped(item, _ENUM_WORD) for item in value)
            else:
                keep = _number(value) or _shaped(value, _ENUM_WORD)
        else:
            keep = False
        if keep:
            out[key] = value
    return out


def _scrub_breadcrumb(crumb: Mapping[str, Any], record: logging.LogRecord | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("type", "category", "level"):
        text = _safe_text(crumb.get(key))
        if text is not None:
            out[key] = text
    if "timestamp" in crumb:
        out["timestamp"] = crumb["timestamp"]
    kind = out.get("type", "")
    category = out.get("category", "")
    message = crumb.get("message")
    data = crumb.get("data")
    if record is not None:
        if _own_logger(record.name):  # another logger's crumb: logger name and level only
            out["message"] = _log_template(record)
    elif kind == "log":
        # Already reduced to its template when it was recorded.
        text = _safe_text(message, _MAX_MESSAGE)
        if text is not None:
            out["message"] = text
    elif category == "query" or kind == "query":
        redacted = _redact_sql(message)
        if redacted is not None:
            out["message"] = redacted
    elif category == "subprocess":
        pass  # command lines carry arguments
    elif kind == "http" or category in {"httplib", "http"}:
        if isinstance(data, Mapping):
            http: dict[str, Any] = {}
            for key in ("method", "status_code", "reason"):
                if isinstance(data.get(key), (str, int)):
                    http[key] = data[key]
            url = _strip_url(data.get("url"))
            if url is not None:
                http["url"] = url
            out["data"] = http
    else:
        text = _safe_text(message, _MAX_MESSAGE)
        if text is not None:
            out["message"] = text
        if isinstance(data, Mapping):
            out["data"] = _breadcrumb_data(data)
    return out


def _before_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb | None:
    try:
        record = hint.get("log_record") if isinstance(hint, Mapping) else None
        if not isinstance(record, logging.LogRecord):
            record = None
        return _scrub_breadcrumb(crumb, record)
    except Exception as exc:
        _internal_failure("breadcrumb filter", exc)
        return None  # fail closed


def _exception_chain(exc_info: Any) -> list[BaseException]:
    """Every exception reachable from the captured one, as the SDK walks them."""
    root = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
    found: list[BaseException] = []
    seen: set[int] = set()
    pending: list[Any] = [root]
    while pending and len(found) < 100:
        exc = pending.pop()
        if not isinstance(exc, BaseException) or id(exc) in seen:
            continue
        seen.add(id(exc))
        found.append(exc)
        pending.append(exc.__cause__)
        if not exc.__suppress_context__:
            pending.append(exc.__context__)
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
    return found


def _dbapi_details(err: Any) -> list[str]:
    parts: list[str] = []
    code = getattr(err, "pgcode", None) or getattr(err, "sqlstate", None)
    if isinstance(code, str) and _SQLSTATE.fullmatch(code):
        parts.append(f"sqlstate={code}")
    diag = getattr(err, "diag", None)
    if diag is not None:
        for attr in ("constraint_name", "table_name", "column_name"):
            name = getattr(diag, attr, None)
            if isinstance(name, str) and _IDENTIFIER.fullmatch(name):
                parts.append(f"{attr.removesuffix('_name')}={name}")
    if isinstance(err, sqlite3.Error):
        errname = getattr(err, "sqlite_errorname", None)
        if isinstance(errname, str) and _SQLITE_ERRORNAME.fullmatch(errname):
            parts.append(f"sqlite={errname}")
        match = _SQLITE_CONSTRAINT.fullmatch(str(err))
        if match and match.group(2):
            names = [name.strip() for name in match.group(2).split(",")]
            if all(_IDENTIFIER.fullmatch(name) for name in names):
                parts.append(f"constraint={','.join(names)}")
    return parts


def _exception_summary(exc: BaseException | None, type_name: str) -> str:
    parts: list[str] = []
    if exc is not None:
        try:
            if isinstance(exc, ReportValidationError) and isinstance(exc.field, str):
                if _FIELD_PATH.fullmatch(exc.field):
                    parts.append(f"field={exc.field}")
            if isinstance(exc, SQLAlchemyError):
                code = getattr(exc, "code", None)
                if isinstance(code, str) and _SQLALCHEMY_CODE.fullmatch(code):
                    parts.append(f"code={code}")
            parts.extend(_dbapi_details(exc.orig if isinstance(exc, DBAPIError) else exc))
        except Exception:
            parts = []
    details = ", ".join(dict.fromkeys(parts))
    return (
        f"{type_name} ({details}; message withheld)"
        if details
        else f"{type_name} (message withheld)"
    )


def _scrub_stacktrace(stacktrace: Any) -> dict[str, Any] | None:
    if not isinstance(stacktrace, Mapping) or not isinstance(stacktrace.get("frames"), list):
        return None
    frames = []
    for frame in stacktrace["frames"]:
        if isinstance(frame, Mapping):
            # "vars" (local variables) is never copied.
            frames.append({key: frame[key] for key in _FRAME_KEYS if key in frame})
    return {"frames": frames}


def _scrub_exceptions(container: Any, hint: Mapping[str, Any]) -> dict[str, Any] | None:
    if not isinstance(container, Mapping) or not isinstance(container.get("values"), list):
        return None
    unmatched = _exception_chain(hint.get("exc_info"))
    values = []
    for entry in container["values"]:
        if not isinstance(entry, Mapping):
            continue
        type_name = _safe_text(entry.get("type")) or "Exception"
        module = _safe_text(entry.get("module"))
        match = next(
            (
                exc
                for exc in unmatched
                if type(exc).__name__ == type_name
                and (module is None or type(exc).__module__ == module)
            ),
            None,
        )
        if match is not None:
            unmatched.remove(match)
        scrubbed: dict[str, Any] = {
            "type": type_name,
            "value": _exception_summary(match, type_name),
        }
        if module is not None:
            scrubbed["module"] = module
        mechanism = entry.get("mechanism")
        if isinstance(mechanism, Mapping):
            scrubbed["mechanism"] = {k: mechanism[k] for k in _MECHANISM_KEYS if k in mechanism}
        stacktrace = _scrub_stacktrace(entry.get("stacktrace"))
        if stacktrace is not None:
            scrubbed["stacktrace"] = stacktrace
        values.append(scrubbed)
    return {"values": values}


def _scrub_threads(threads: Any) -> dict[str, Any] | None:
    if not isinstance(threads, Mapping) or not isinstance(threads.get("values"), list):
        return None
    values = []
    for thread in threads["values"]:
        if not isinstance(thread, Mapping):
            continue
        out: dict[str, Any] = {
            key: thread[key]
            for key in ("id", "name", "crashed", "current", "main")
            if isinstance(thread.get(key), (str, int, bool))
        }
        stacktrace = _scrub_stacktrace(thread.get("stacktrace"))
        if stacktrace is not None:
            out["stacktrace"] = stacktrace
        values.append(out)
    return {"values": values}


def _scrub_span_data(data: Any) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        return {}
    return {
        key: value
        for key, value in data.items()
        if key in _SPAN_DATA_KEYS and (value is None or isinstance(value, (str, int, float)))
    }


def _scrub_description(op: Any, description: Any) -> str | None:
    if not isinstance(description, str):
        return None
    op = op if isinstance(op, str) else ""
    if op.startswith("db"):
        return _redact_sql(description)
    if op.startswith("http"):
        return _strip_url(description)
    if op.startswith("subprocess"):
        return None
    return description[:_MAX_TEXT]


def _scrub_trace_context(trace: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        key: trace[key]
        for key in ("trace_id", "span_id", "parent_span_id", "op", "status", "origin", "sampled")
        if trace.get(key) is None or isinstance(trace.get(key), (str, bool, int, float))
        if key in trace
    }
    description = _scrub_description(trace.get("op"), trace.get("description"))
    if description is not None:
        out["description"] = description
    if "data" in trace:
        out["data"] = _scrub_span_data(trace["data"])
    dsc = trace.get("dynamic_sampling_context")
    if isinstance(dsc, Mapping):
        out["dynamic_sampling_context"] = {
            key: value for key, value in dsc.items() if key in _DSC_KEYS and isinstance(value, str)
        }
    return out


def _scrub_contexts(contexts: Any) -> dict[str, Any]:
    if not isinstance(contexts, Mapping):
        return {}
    out: dict[str, Any] = {}
    for name, context in contexts.items():
        if not isinstance(context, Mapping):
            continue
        if name == "processing":
            out[name] = {
                key: _safe_value(context[key])
                for key in ("email_id", "actor", "correlation_id")
                if key in context and _safe_value(context[key]) is not _DROP
            }
        elif name == "dashboard":
            dashboard: dict[str, Any] = {}
            page = _safe_text(context.get("page"))
            if page is not None:
                dashboard["page"] = page
            filters = context.get("filters")
            if isinstance(filters, Mapping):
                dashboard["filters"] = _safe_mapping(filters, depth=1)
            out[name] = dashboard
        elif name == "trace":
            out[name] = _scrub_trace_context(context)
        elif name == "response":
            status = context.get("status_code")
            out[name] = {"status_code": status} if isinstance(status, int) else {}
        elif name == "flags" and isinstance(context.get("values"), list):
            out[name] = {
                "values": [
                    {"flag": flag["flag"][:_MAX_TEXT], "result": flag["result"]}
                    for flag in context["values"]
                    if isinstance(flag, Mapping)
                    and isinstance(flag.get("flag"), str)
                    and isinstance(flag.get("result"), bool)
                ]
            }
        elif name in _SDK_CONTEXTS:
            out[name] = {
                key: value
                for key, value in context.items()
                if isinstance(key, str)
                and (value is None or isinstance(value, (str, int, float, bool)))
            }
    return out


def _scrub_tags(tags: Any) -> dict[str, str]:
    if isinstance(tags, Mapping):
        items: Sequence[Any] = list(tags.items())
    elif isinstance(tags, list):  # the protocol also allows [[key, value], ...]
        items = [pair for pair in tags if isinstance(pair, (list, tuple)) and len(pair) == 2]
    else:
        return {}
    out: dict[str, str] = {}
    for key, value in items:
        if key not in SAFE_TAG_KEYS or not isinstance(value, (str, int, float, bool)):
            continue
        text = str(value)
        shape = _TAG_SHAPES.get(key)
        if shape is not None and shape.fullmatch(text):
            out[key] = text
    return out


def _scrub_request(request: Any) -> dict[str, Any]:
    # The method only. No URL (its path and query may carry values; the transaction names
    # the route), headers, cookies, body or environment.
    if not isinstance(request, Mapping):
        return {}
    method = _safe_text(request.get("method"), 16)
    return {"method": method} if method is not None else {}


def _scrub_common(event: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _EVENT_TEXT_KEYS:
        value = event.get(key)
        if isinstance(value, (str, int, float)):
            out[key] = value
    info = event.get("transaction_info")
    if isinstance(info, Mapping) and isinstance(info.get("source"), str):
        out["transaction_info"] = {"source": info["source"]}
    sdk = event.get("sdk")
    if isinstance(sdk, Mapping):
        out["sdk"] = {
            key: sdk[key] for key in ("name", "version", "integrations", "packages") if key in sdk
        }
    if "contexts" in event:
        out["contexts"] = _scrub_contexts(event["contexts"])
    if "tags" in event:
        out["tags"] = _scrub_tags(event["tags"])
    if "request" in event:
        out["request"] = _scrub_request(event["request"])
    # Never copied: user, extra, _meta and anything this module does not know.
    return out


def _scrub_error_event(event: Mapping[str, Any], hint: Mapping[str, Any]) -> dict[str, Any]:
    out = _scrub_common(event)
    modules = event.get("modules")
    if isinstance(modules, Mapping):
        out["modules"] = {
            k: v for k, v in modules.items() if isinstance(k, str) and isinstance(v, str)
        }
    fingerprint = event.get("fingerprint")
    if isinstance(fingerprint, list) and all(isinstance(part, str) for part in fingerprint):
        out["fingerprint"] = fingerprint
    record = hint.get("log_record")
    logentry = event.get("logentry")
    if isinstance(record, logging.LogRecord):
        out["logentry"] = {"message": _log_template(record)}
    elif isinstance(logentry, Mapping):
        # A log entry without its record: keep only a template that was never formatted,
        # and only from our own loggers.
        template = _safe_text(logentry.get("message"), _MAX_MESSAGE)
        if not _own_logger(event.get("logger")):
            template = LOG_MESSAGE_WITHHELD
        if template is not None and not logentry.get("params"):
            out["logentry"] = {"message": template}
    message = event.get("message")
    if "logentry" not in event and isinstance(message, str):
        out["message"] = message[:_MAX_MESSAGE]
    exceptions = _scrub_exceptions(event.get("exception"), hint)
    if exceptions is not None:
        out["exception"] = exceptions
    threads = _scrub_threads(event.get("threads"))
    if threads is not None:
        out["threads"] = threads
    stacktrace = _scrub_stacktrace(event.get("stacktrace"))
    if stacktrace is not None:
        out["stacktrace"] = stacktrace
    crumbs = event.get("breadcrumbs")
    if isinstance(crumbs, Mapping) and isinstance(crumbs.get("values"), list):
        out["breadcrumbs"] = {
            "values": [
                _scrub_breadcrumb(crumb, None)
                for crumb in crumbs["values"]
                if isinstance(crumb, Mapping)
            ]
        }
    return out


def _scrub_transaction(event: Mapping[str, Any]) -> dict[str, Any]:
    out = _scrub_common(event)
    spans = event.get("spans")
    if isinstance(spans, list):
        cleaned = []
        for span in spans:
            if not isinstance(span, Mapping):
                continue
            item: dict[str, Any] = {
                key: span[key]
                for key in (
                    "trace_id",
                    "span_id",
                    "parent_span_id",
                    "same_process_as_parent",
                    "op",
                    "status",
                    "origin",
                    "start_timestamp",
                    "timestamp",
                )
                if key in span
                and (span[key] is None or isinstance(span[key], (str, int, float, bool)))
            }
            description = _scrub_description(span.get("op"), span.get("description"))
            if description is not None:
                item["description"] = description
            if "tags" in span:
                item["tags"] = _scrub_tags(span["tags"])
            if "data" in span:
                item["data"] = _scrub_span_data(span["data"])
            cleaned.append(item)
        out["spans"] = cleaned
    measurements = event.get("measurements")
    if isinstance(measurements, Mapping):
        out["measurements"] = {
            name: {"value": m["value"], "unit": m["unit"]} if "unit" in m else {"value": m["value"]}
            for name, m in measurements.items()
            if isinstance(m, Mapping) and isinstance(m.get("value"), (int, float))
        }
    return out


def _withheld(event: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        key: event[key]
        for key in ("event_id", "timestamp", "platform", "environment", "release", "type")
        if isinstance(event.get(key), str)
    }
    out["level"] = "error"
    out["message"] = "event withheld: it could not be checked for personal data"
    return out


def _before_send(event: Event, hint: Hint) -> Event | None:
    try:
        return cast("Event", _scrub_error_event(event, hint or {}))
    except Exception as exc:
        _internal_failure("event filter", exc)
        try:
            return cast("Event", _withheld(event))
        except Exception:
            return None


def _before_send_transaction(event: Event, hint: Hint) -> Event | None:
    try:
        return cast("Event", _scrub_transaction(event))
    except Exception as exc:
        _internal_failure("transaction filter", exc)
        return None  # performance data is not worth a risk
