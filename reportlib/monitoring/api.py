"""The helpers the pipeline and the dashboard call: start-up and shut-down, processing
context, breadcrumbs and captures. None of them ever raises into the caller."""

# Catching every Exception is the point of this module: telemetry must never break the host.
# ruff: noqa: BLE001

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

import sentry_sdk

from reportlib.config import Settings, get_settings
from reportlib.monitoring.allowlists import MAX_BREADCRUMBS, MAX_TEXT, PERSONAL_KEYS
from reportlib.monitoring.scrubber import (
    before_breadcrumb,
    before_send,
    before_send_transaction,
)
from reportlib.monitoring.state import internal_failure, log, sentry_state

if TYPE_CHECKING:
    from sentry_sdk._types import LogLevelStr
    from sentry_sdk.integrations import Integration
    from sentry_sdk.types import DataCollectionUserOptions


_LEVELS: Final = frozenset({"fatal", "error", "warning", "info", "debug"})

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

_lock = threading.RLock()


# -- start-up ------------------------------------------------------------------------


def init_sentry(settings: Settings | None = None) -> bool:
    """Start error reporting when ``SENTRY_DSN`` is set; return whether it is on.

    Without a DSN, logs one warning, sends nothing and returns False; the SDK's own
    fallback to the ``SENTRY_DSN`` environment variable is not used. With one, starts
    sentry-sdk with the FastAPI, SQLAlchemy and logging integrations and the filters of
    this package. Calling it again with the same settings keeps the running client; with
    changed settings it replaces it. Never raises.
    """
    try:
        with _lock:
            return _init_locked(settings if settings is not None else get_settings())
    except Exception as exc:
        log.warning(
            "Sentry could not be started (%s); no errors will be reported", type(exc).__name__
        )
        return False


def _init_locked(settings: Settings) -> bool:
    dsn = (settings.sentry_dsn or "").strip()
    if not dsn:
        _close_ours(timeout=2.0)
        if not sentry_state.warned_disabled:
            log.warning("Sentry is off: SENTRY_DSN is not set, so no errors are reported")
            sentry_state.warned_disabled = True
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
        sentry_state.client is not None
        and sentry_state.signature == signature
        and sentry_sdk.get_client() is sentry_state.client
    ):
        return True

    _close_ours(timeout=2.0)
    sentry_state.personal_keys = PERSONAL_KEYS | {name.lower() for name in settings.key_fields}
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
            before_send=before_send,
            before_send_transaction=before_send_transaction,
            before_breadcrumb=before_breadcrumb,
            enable_logs=False,
            debug=False,
            spotlight=False,
        )
    except Exception as exc:
        # A malformed DSN raises here; its text is a credential, so only the type is logged.
        log.warning(
            "Sentry is off: SENTRY_DSN could not be used (%s), so no errors are reported",
            type(exc).__name__,
        )
        sentry_state.warned_disabled = True
        return False
    sentry_state.client = sentry_sdk.get_client()
    sentry_state.signature = signature
    sentry_state.warned_disabled = False
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
    client = sentry_state.client
    sentry_state.client = None
    sentry_state.signature = None
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
            sentry_state.warned_disabled = False
    except Exception as exc:
        internal_failure("shutdown", exc)


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
        internal_failure("set_processing_context", exc)


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
        internal_failure("processing_scope", exc)
    else:
        try:
            scope.clear_breadcrumbs()
            _apply_processing_context(scope, email_id, actor, correlation_id)
        except Exception as exc:
            internal_failure("processing_scope", exc)
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
                internal_failure("processing_scope", exc)


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
        internal_failure("add_breadcrumb", exc)


def capture_message(message: str, level: str = "info") -> str | None:
    """Report ``message`` (a constant sentence, no values); return the event id or None."""
    try:
        return sentry_sdk.capture_message(message, level=_level(level))
    except Exception as exc:
        internal_failure("capture_message", exc)
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
        internal_failure("capture_exception", failure)
        return None


def capture_page_error(exc: BaseException, *, page: str, filters: Mapping[str, str]) -> str | None:
    """Report an uncaught dashboard page error; return the event id, or None when off.

    Adds context ``dashboard`` = {page, filters} and tag ``page``. Filters are dates,
    intents and routes, never personal values; they are sent as short strings.
    """
    try:
        safe_filters = {str(key): str(value)[:MAX_TEXT] for key, value in filters.items()}
        with sentry_sdk.new_scope() as scope:
            scope.set_context("dashboard", {"page": page, "filters": safe_filters})
            scope.set_tag("page", page)
            return scope.capture_exception(exc)
    except Exception as failure:
        internal_failure("capture_page_error", failure)
        return None


def capture_alert(
    message: str,
    *,
    level: str,
    fingerprint: list[str],
    tags: Mapping[str, str | None],
    context: Mapping[str, Any],
) -> str | None:
    """Report an alert's state change; return the event id, or None when off.

    ``message`` names the rule, metric and figures; ``fingerprint`` groups every event of
    one rule in Sentry; ``tags`` (None values left out) and the ``alert`` context carry
    names, filters, figures and the dashboard link, never extracted values.
    """
    try:
        with sentry_sdk.new_scope() as scope:
            scope.fingerprint = list(fingerprint)
            for key, value in tags.items():
                if value is not None:
                    scope.set_tag(key, value)
            scope.set_context("alert", dict(context))
            return scope.capture_message(message, level=_level(level))
    except Exception as failure:
        internal_failure("capture_alert", failure)
        return None
