"""Argument checks shared by reportlib's public functions.

Each check raises a typed error that names the argument (``error``, a
:class:`~reportlib.errors.ReportValidationError` unless the caller's module has its own
subclass) before anything is read or written.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable
from typing import Any

from reportlib.errors import ReportValidationError


def check_aware(
    value: Any, name: str, *, error: type[ReportValidationError] = ReportValidationError
) -> dt.datetime:
    """``value`` as a UTC datetime; it must be a timezone-aware datetime."""
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise error(name, "must be a timezone-aware datetime")
    return value.astimezone(dt.UTC)


def check_window(
    start: Any, end: Any, *, error: type[ReportValidationError] = ReportValidationError
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``[start, end)`` as UTC datetimes (None: open on that side); ``end`` must come
    after ``start``."""
    start = None if start is None else check_aware(start, "start", error=error)
    end = None if end is None else check_aware(end, "end", error=error)
    if start is not None and end is not None and end <= start:
        raise error("end", "must be after start")
    return start, end


def check_int(
    value: Any,
    name: str,
    low: int,
    high: int,
    *,
    error: type[ReportValidationError] = ReportValidationError,
) -> int:
    """``value``, a whole number (not a bool) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise error(name, f"must be a whole number from {low} to {high}")
    return value


def one_of(value: Any, allowed: Iterable[str], name: str) -> str:
    """``value``, which must be one of ``allowed``."""
    options = tuple(allowed)
    if value not in options:
        raise ReportValidationError(name, f"must be one of {', '.join(options)}")
    return str(value)


def share(part: float, whole: float) -> float | None:
    """``part / whole``, or None when ``whole`` is zero (an empty window has no share)."""
    return part / whole if whole else None


#: Unicode categories an identity or address may not contain: control, format, surrogate and
#: private-use characters, and line and paragraph separators.
CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def check_identity(
    value: Any,
    field: str,
    *,
    max_length: int,
    refused: frozenset[str] = CONTROL_CATEGORIES,
) -> str:
    """``value`` stripped: 1 to ``max_length`` characters of text, none of a category in
    ``refused``. Errors name ``field``, never the value."""
    if not isinstance(value, str):
        raise ReportValidationError(field, "must be text")
    stripped = value.strip()
    if not stripped:
        raise ReportValidationError(field, "must not be empty")
    if len(stripped) > max_length:
        raise ReportValidationError(field, f"must be at most {max_length} characters")
    if any(unicodedata.category(char) in refused for char in stripped):
        raise ReportValidationError(field, "must not contain control characters")
    return stripped
