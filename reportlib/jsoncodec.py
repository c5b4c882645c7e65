"""JSON encoding shared by both backends and every driver.

Money must keep its exact digits, so non-integer numbers are written from ``Decimal``
unchanged and read back as ``Decimal``. Confidences are read back as ``float``: they are
probabilities, and callers do arithmetic with them.

The JSON columns call this codec themselves (:class:`reportlib.models.JSONDocument`);
it is never set on an engine, so a host's own engine reads and writes the same values.
"""

from __future__ import annotations

import decimal
from typing import Any

import simplejson


def dumps(value: Any) -> str:
    """Serialize for a JSON column; raises ``TypeError``/``ValueError`` on what JSON cannot hold."""
    return simplejson.dumps(
        value, use_decimal=True, allow_nan=False, ensure_ascii=False, separators=(",", ":")
    )


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
