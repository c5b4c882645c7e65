"""JSON encoding shared by both backends and every driver.

Money must keep its exact digits, so non-integer numbers are written from ``Decimal``
unchanged and read back as ``Decimal``. Confidences are read back as ``float``: they are
probabilities, and callers do arithmetic with them.

The JSON columns call this codec themselves (:class:`reportlib.models.JSONDocument`);
it is never set on an engine, so a host's own engine reads and writes the same values.
"""

from __future__ import annotations

import decimal
import math
from typing import Any

import simplejson
import simplejson.encoder


def dumps(value: Any) -> str:
    """Serialize for a JSON column; raises ``TypeError``/``ValueError`` on what JSON cannot hold."""
    return simplejson.dumps(
        value, use_decimal=True, allow_nan=False, ensure_ascii=False, separators=(",", ":")
    )


#: A text as a JSON string, exactly as :func:`dumps` writes it.
quote = simplejson.encoder.encode_basestring


def dumps_plain(value: Any) -> str:
    """:func:`dumps` for the documents reportlib's validation returns, without simplejson's
    set-up for every call (a batch writes two documents per report).

    Dicts with text keys, lists, text, whole numbers, finite floats and decimals, booleans
    and None are written here, exactly as :func:`dumps` writes them; anything else is
    handed to :func:`dumps`, so the text (or the error) is the same for any value.
    """
    kind = type(value)
    if kind is str:
        return quote(value)
    if kind is dict:
        if all(type(key) is str for key in value):
            return (
                "{"
                + ",".join([quote(key) + ":" + dumps_plain(item) for key, item in value.items()])
                + "}"
            )
    elif kind is list:
        return "[" + ",".join([dumps_plain(item) for item in value]) + "]"
    elif kind is int:
        return int.__repr__(value)
    elif kind is float:
        if math.isfinite(value):
            return float.__repr__(value)
    elif kind is decimal.Decimal:
        if value.is_finite():
            return str(value)
    elif value is None:
        return "null"
    elif kind is bool:
        return "true" if value else "false"
    return dumps(value)


def _confidences_as_float(document: Any) -> Any:
    # Only a field entry's own confidence: the same key inside an extracted value is data.
    if isinstance(document, dict):
        for entry in document.values():
            if isinstance(entry, dict) and isinstance(entry.get("confidence"), decimal.Decimal):
                entry["confidence"] = float(entry["confidence"])
    return document


def loads(text: str | bytes, *, float_confidences: bool = True) -> Any:
    """Parse a JSON column; non-integers become ``Decimal``, field confidences ``float``.

    ``float_confidences=False`` leaves every number exact (documents without confidences).
    """
    document = simplejson.loads(text, use_decimal=True)
    return _confidences_as_float(document) if float_confidences else document


def dumps_pretty(value: Any) -> str:
    """Human-readable JSON with exact numbers and ISO timestamps (for the CLI)."""
    return simplejson.dumps(
        value,
        use_decimal=True,
        allow_nan=False,
        ensure_ascii=False,
        indent=2,
        default=lambda obj: obj.isoformat() if hasattr(obj, "isoformat") else str(obj),
    )
