"""How extracted values become text on screen.

Every extracted (or corrected) value the dashboard shows goes through
:func:`display_value`. Values come from untrusted emails: the result is plain text and
must only be handed to text-only elements (``st.text``, ``st.code``, dataframe cells),
never to ``st.markdown`` or HTML. Masking for roles that may not see personal data
belongs here, so no caller can forget it.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from typing import Any

from reportlib import jsoncodec

EMPTY = "—"


def display_value(field: str, value: Any) -> str:
    """The plain-text form of ``value`` extracted for ``field``.

    Lists are joined with ", "; numbers keep their exact decimal form; nested objects
    are shown as JSON. ``None`` and empty values show as a dash.
    """
    del field  # the seam for per-field masking; unused while every viewer may see values
    return _as_text(value)


def _as_text(value: Any) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value.strip() else EMPTY
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Sequence):
        parts = [_as_text(item) for item in value]
        return ", ".join(parts) if parts else EMPTY
    if isinstance(value, Mapping):
        return jsoncodec.dumps(value)
    return str(value)
