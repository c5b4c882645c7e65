"""The filters every event, transaction and breadcrumb passes before it is sent.

Each one rebuilds what it is given from known-safe parts (:mod:`.allowlists`) instead of
deleting known-bad ones, replaces exception messages by a summary, redacts SQL literals,
and fails closed: what cannot be checked is withheld or dropped.
"""

# Catching every Exception is the point of this module: telemetry must never break the host.
# ruff: noqa: BLE001

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from reportlib.errors import ReportValidationError
from reportlib.monitoring.allowlists import (
    ALERT_NUMBER_KEYS,
    ALERT_TEXT_KEYS,
    BREADCRUMB_ENUM_KEYS,
    BREADCRUMB_ID_KEYS,
    BREADCRUMB_NUMBER_KEYS,
    DSC_KEYS,
    ENUM_WORD,
    EVENT_TEXT_KEYS,
    FRAME_KEYS,
    LOG_MESSAGE_WITHHELD,
    MAX_LINK,
    MAX_LIST,
    MAX_MESSAGE,
    MAX_TEXT,
    MECHANISM_KEYS,
    OWN_LOGGERS,
    SAFE_TAG_KEYS,
    SDK_CONTEXTS,
    SPAN_DATA_KEYS,
    TAG_SHAPES,
    TOKEN_ID,
)
from reportlib.monitoring.state import internal_failure, sentry_state

if TYPE_CHECKING:
    from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event, Hint


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

_DROP: Final = object()


# -- what may leave the process ------------------------------------------------------


def _safe_text(value: Any, limit: int = MAX_TEXT) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _safe_value(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if depth >= 2:
        return _DROP
    if isinstance(value, Mapping):
        return _safe_mapping(value, depth + 1)
    if isinstance(value, (list, tuple)):
        items = (_safe_value(item, depth + 1) for item in value[:MAX_LIST])
        return [item for item in items if item is not _DROP]
    return _DROP


def _safe_mapping(mapping: Mapping[Any, Any], depth: int = 0) -> dict[str, Any]:
    personal = sentry_state.personal_keys
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
    return url.split("?", 1)[0].split("#", 1)[0][:MAX_MESSAGE]


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
    return msg[:MAX_MESSAGE] if isinstance(msg, str) else f"<{type(msg).__name__}>"


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
            keep = (_number(value) and not isinstance(value, float)) or _shaped(value, TOKEN_ID)
        elif key in BREADCRUMB_ENUM_KEYS:
            if isinstance(value, (list, tuple)):
                value = list(value[:MAX_LIST])
                keep = all(_shaped(item, ENUM_WORD) for item in value)
            else:
                keep = _number(value) or _shaped(value, ENUM_WORD)
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
        text = _safe_text(message, MAX_MESSAGE)
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
        text = _safe_text(message, MAX_MESSAGE)
        if text is not None:
            out["message"] = text
        if isinstance(data, Mapping):
            out["data"] = _breadcrumb_data(data)
    return out


def before_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb | None:
    """The SDK's ``before_breadcrumb``: the breadcrumb rebuilt from safe parts, or None."""
    try:
        record = hint.get("log_record") if isinstance(hint, Mapping) else None
        if not isinstance(record, logging.LogRecord):
            record = None
        return _scrub_breadcrumb(crumb, record)
    except Exception as exc:
        internal_failure("breadcrumb filter", exc)
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
            frames.append({key: frame[key] for key in FRAME_KEYS if key in frame})
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
            scrubbed["mechanism"] = {k: mechanism[k] for k in MECHANISM_KEYS if k in mechanism}
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
        if key in SPAN_DATA_KEYS and (value is None or isinstance(value, (str, int, float)))
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
    return description[:MAX_TEXT]


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
            key: value for key, value in dsc.items() if key in DSC_KEYS and isinstance(value, str)
        }
    return out


def _scrub_alert_context(context: Mapping[str, Any]) -> dict[str, Any]:
    # Figures, names, filters and the link; nothing else an alert could be handed.
    out: dict[str, Any] = {}
    for key, value in context.items():
        if key in ALERT_NUMBER_KEYS and (value is None or _number(value)):
            out[key] = value
        elif key in ALERT_TEXT_KEYS and isinstance(value, str):
            out[key] = value[: MAX_LINK if key == "link" else MAX_TEXT]
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
        elif name == "alert":
            out[name] = _scrub_alert_context(context)
        elif name == "trace":
            out[name] = _scrub_trace_context(context)
        elif name == "response":
            status = context.get("status_code")
            out[name] = {"status_code": status} if isinstance(status, int) else {}
        elif name == "flags" and isinstance(context.get("values"), list):
            out[name] = {
                "values": [
                    {"flag": flag["flag"][:MAX_TEXT], "result": flag["result"]}
                    for flag in context["values"]
                    if isinstance(flag, Mapping)
                    and isinstance(flag.get("flag"), str)
                    and isinstance(flag.get("result"), bool)
                ]
            }
        elif name in SDK_CONTEXTS:
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
        shape = TAG_SHAPES.get(key)
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
    for key in EVENT_TEXT_KEYS:
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
        template = _safe_text(logentry.get("message"), MAX_MESSAGE)
        if not _own_logger(event.get("logger")):
            template = LOG_MESSAGE_WITHHELD
        if template is not None and not logentry.get("params"):
            out["logentry"] = {"message": template}
    message = event.get("message")
    if "logentry" not in event and isinstance(message, str):
        out["message"] = message[:MAX_MESSAGE]
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


def before_send(event: Event, hint: Hint) -> Event | None:
    """The SDK's ``before_send``: the event rebuilt from safe parts, or a bare notice."""
    try:
        return cast("Event", _scrub_error_event(event, hint or {}))
    except Exception as exc:
        internal_failure("event filter", exc)
        try:
            return cast("Event", _withheld(event))
        except Exception:
            return None


def before_send_transaction(event: Event, hint: Hint) -> Event | None:
    """The SDK's ``before_send_transaction``: the transaction rebuilt, or None."""
    try:
        return cast("Event", _scrub_transaction(event))
    except Exception as exc:
        internal_failure("transaction filter", exc)
        return None  # performance data is not worth a risk
