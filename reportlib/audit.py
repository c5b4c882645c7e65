"""The audit trail: who saw or changed what, and when, without the values themselves.

``details`` is not free-form. Each key belongs to a small grammar (ids, counts, field
names, outcomes, verdicts, role, page, flags, dates), and its value must have the matching
shape, so text copied from a report can never land in an audit row by accident. Anything
else is refused with :class:`ReportValidationError` naming the key, and nothing is written.
The audit table is append-only (database triggers refuse UPDATE and DELETE).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from sqlalchemy import ColumnElement, Select, func, insert, select
from sqlalchemy.orm import Session

from reportlib.checks import check_aware, check_identity
from reportlib.config import Role
from reportlib.errors import ReportValidationError
from reportlib.models import FIELD_VERDICTS, REVIEW_OUTCOMES, AuditEvent
from reportlib.service import INT32_MAX

ACTOR_MAX = 200
MAX_LIST_LIMIT = 1000
MAX_OFFSET = 1_000_000
MAX_DETAIL_KEYS = 30
MAX_DETAIL_ITEMS = 1000

AUDIT_ACTIONS = (
    "review_claimed",
    "review_claim_released",
    "review_decided",
    "drilldown_viewed",
    "csv_exported",
    "audit_log_viewed",
    "values_purged",
    "values_erased",
)
"""Every action the audit trail knows. New actions are added here, never invented ad hoc."""

ROLES: tuple[str, ...] = get_args(Role)

_KEY = re.compile(r"[a-z][a-z0-9_]{0,49}")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,99}")
_PAGE = re.compile(r"/|/?[a-z0-9][a-z0-9_\-/]{0,99}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ID_KEY = re.compile(r"(?:[a-z0-9_]+_)?id")
_IDS_KEY = re.compile(r"(?:[a-z0-9_]+_)?ids")
_COUNT_KEY = re.compile(r"count|rows|limit|offset|[a-z0-9_]+_(?:count|minutes|seconds|days)")
_FIELDS_KEY = re.compile(r"fields|field_names|[a-z0-9_]+_fields")
_FLAG_KEY = re.compile(r"masked|(?:is|has|was)_[a-z0-9_]+")
_DATE_KEY = re.compile(r"[a-z0-9_]+_date|date")
#: What a purge or an erasure covered (``details.scope``): never the address or the values.
SCOPES = ("retention", "email", "sender")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row as the audit page shows it."""

    id: int
    occurred_at: dt.datetime
    actor: str
    action: str
    email_id: int | None
    details: dict[str, Any] | None


def is_field_name(value: object) -> bool:
    """Whether ``value`` looks like a field name the audit trail accepts (not like a value)."""
    return isinstance(value, str) and _FIELD_NAME.fullmatch(value) is not None


def check_actor(value: object, field: str = "actor") -> str:
    """Return the identity ``value`` stripped, or raise naming ``field``.

    An identity is 1 to 200 characters of text without control or formatting characters.
    """
    return check_identity(value, field, max_length=ACTOR_MAX)


def _check_action(action: object) -> str:
    if not isinstance(action, str) or action not in AUDIT_ACTIONS:
        raise ReportValidationError("action", "must be one of " + ", ".join(AUDIT_ACTIONS))
    return action


def _check_id(value: object, field: str, *, maximum: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ReportValidationError(field, "must be a non-negative whole number")
    return value


def _check_list(value: object, field: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ReportValidationError(field, "must be a list")
    if len(value) > MAX_DETAIL_ITEMS:
        raise ReportValidationError(field, f"must have at most {MAX_DETAIL_ITEMS} items")
    return list(value)


def _check_field_name(value: object, field: str) -> str:
    if not is_field_name(value):
        raise ReportValidationError(field, "must be a field name, not free text")
    assert isinstance(value, str)
    return value


def _check_detail(key: str, value: object) -> Any:
    where = f"details.{key}"
    if _ID_KEY.fullmatch(key):
        return _check_id(value, where)
    if _IDS_KEY.fullmatch(key):
        return [_check_id(item, where) for item in _check_list(value, where)]
    if _COUNT_KEY.fullmatch(key):
        return _check_id(value, where)
    if key in {"field", "field_name"}:
        return _check_field_name(value, where)
    if _FIELDS_KEY.fullmatch(key):
        return [_check_field_name(item, where) for item in _check_list(value, where)]
    if key == "outcome":
        if value not in REVIEW_OUTCOMES:
            raise ReportValidationError(where, "must be a review outcome")
        return value
    if key == "verdict":
        if value not in FIELD_VERDICTS:
            raise ReportValidationError(where, "must be a field verdict")
        return value
    if key == "verdicts":
        if not isinstance(value, Mapping) or len(value) > MAX_DETAIL_ITEMS:
            raise ReportValidationError(where, "must map field names to verdicts")
        verdicts: dict[str, str] = {}
        for name, verdict in value.items():
            _check_field_name(name, where)
            if verdict not in FIELD_VERDICTS:
                raise ReportValidationError(where, "must map field names to verdicts")
            verdicts[name] = verdict
        return verdicts
    if key == "scope":
        if value not in SCOPES:
            raise ReportValidationError(where, "must be one of " + ", ".join(SCOPES))
        return value
    if key == "role":
        if value not in ROLES:
            raise ReportValidationError(where, "must be one of " + ", ".join(ROLES))
        return value
    if key == "page":
        if not isinstance(value, str) or _PAGE.fullmatch(value) is None:
            raise ReportValidationError(where, "must be a page path such as /review")
        return value
    if _FLAG_KEY.fullmatch(key):
        if not isinstance(value, bool):
            raise ReportValidationError(where, "must be true or false")
        return value
    if _DATE_KEY.fullmatch(key):
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value.isoformat()
        if not isinstance(value, str) or _DATE.fullmatch(value) is None:
            raise ReportValidationError(where, "must be a date (YYYY-MM-DD)")
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ReportValidationError(where, "must be a date (YYYY-MM-DD)") from None
        return value
    raise ReportValidationError(where, "is not an allowed audit detail")


def check_audit_details(details: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return ``details`` as they will be stored, or raise naming the offending key.

    Allowed keys and values: ``*_id`` (a whole number), ``*_ids`` (a list of them),
    ``count``/``rows``/``limit``/``offset``/``*_count``/``*_minutes``/``*_seconds``/``*_days``
    (non-negative whole numbers), ``scope`` (retention, email or sender),
    ``field``/``field_name`` (one field name),
    ``fields``/``field_names``/``*_fields`` (field names), ``outcome``, ``verdict``,
    ``verdicts`` (field name to verdict), ``role``, ``page`` (a path such as ``/review``),
    ``masked``/``is_*``/``has_*``/``was_*`` (true or false) and ``date``/``*_date``
    (YYYY-MM-DD). Field names must look like identifiers, never like free text.
    """
    if details is None:
        return None
    if not isinstance(details, Mapping):
        raise ReportValidationError("details", "must be a mapping")
    if len(details) > MAX_DETAIL_KEYS:
        raise ReportValidationError("details", f"must have at most {MAX_DETAIL_KEYS} keys")
    checked: dict[str, Any] = {}
    for key, value in details.items():
        if not isinstance(key, str) or _KEY.fullmatch(key) is None:
            # Do not echo the key: whatever it is, it is not one of ours.
            raise ReportValidationError("details", "has a key that is not an allowed audit detail")
        checked[key] = _check_detail(key, value)
    return checked or None


def record_audit_event(
    db: Session,
    *,
    actor: str,
    action: str,
    email_id: int | None = None,
    details: Mapping[str, Any] | None = None,
    occurred_at: dt.datetime | None = None,
) -> int:
    """Append one audit row and return its id. Flushes; never commits.

    ``actor`` is the identity (1 to 200 characters, no control characters), ``action`` one
    of :data:`AUDIT_ACTIONS`, ``details`` restricted as :func:`check_audit_details` says.
    ``occurred_at`` defaults to the database clock; review services pass their own ``now``
    so the audit row and the decision carry the same time. Invalid arguments raise
    :class:`ReportValidationError` naming the argument, and nothing is written.
    """
    values: dict[str, Any] = {
        "actor": check_actor(actor),
        "action": _check_action(action),
        "details": check_audit_details(details),
    }
    if email_id is not None:
        values["email_id"] = _check_id(email_id, "email_id", maximum=INT32_MAX)
    if occurred_at is not None:
        values["occurred_at"] = check_aware(occurred_at, "occurred_at")
    db.flush()
    new_id = db.scalars(insert(AuditEvent).values(values).returning(AuditEvent.id)).one()
    return int(new_id)


def _audit_filters(
    *,
    start: dt.datetime | None,
    end: dt.datetime | None,
    actor: str | None,
    action: str | None,
    email_id: int | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(AuditEvent.occurred_at >= check_aware(start, "start"))
    if end is not None:
        conditions.append(AuditEvent.occurred_at < check_aware(end, "end"))
    if start is not None and end is not None and end < start:
        raise ReportValidationError("end", "must not be before start")
    if actor is not None:
        # Regardless of case: logged-in actors are stored lower-cased, but local-mode
        # reviewer names keep the case they were typed in. The database lowers both sides,
        # so they agree (SQLite's lower() folds ASCII letters only).
        conditions.append(func.lower(AuditEvent.actor) == func.lower(check_actor(actor)))
    if action is not None:
        conditions.append(AuditEvent.action == _check_action(action))
    if email_id is not None:
        conditions.append(AuditEvent.email_id == _check_id(email_id, "email_id", maximum=INT32_MAX))
    return conditions


def list_audit_events(
    db: Session,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    email_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEntry]:
    """Audit rows in ``[start, end)``, newest first, at most ``limit`` (1 to 1000).

    Filters are exact: ``actor`` (an identity, compared regardless of case), ``action``
    (one of :data:`AUDIT_ACTIONS`), ``email_id``. ``offset`` pages through older rows.
    """
    limit = _check_id(limit, "limit")
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ReportValidationError("limit", f"must be between 1 and {MAX_LIST_LIMIT}")
    offset = _check_id(offset, "offset", maximum=MAX_OFFSET)
    stmt: Select[Any] = (
        select(AuditEvent)
        .where(*_audit_filters(start=start, end=end, actor=actor, action=action, email_id=email_id))
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [
        AuditEntry(
            id=row.id,
            occurred_at=row.occurred_at,
            actor=row.actor,
            action=row.action,
            email_id=row.email_id,
            details=row.details,
        )
        for row in db.scalars(stmt)
    ]


def count_audit_events(
    db: Session,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    email_id: int | None = None,
) -> int:
    """How many audit rows :func:`list_audit_events` would page through with these filters."""
    stmt = (
        select(func.count())
        .select_from(AuditEvent)
        .where(*_audit_filters(start=start, end=end, actor=actor, action=action, email_id=email_id))
    )
    return int(db.scalar(stmt) or 0)


__all__ = [
    "AUDIT_ACTIONS",
    "AuditEntry",
    "check_actor",
    "check_audit_details",
    "count_audit_events",
    "is_field_name",
    "list_audit_events",
    "record_audit_event",
]
