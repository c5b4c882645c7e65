"""How extracted values become text on screen, and who sees them unmasked.

Every extracted (or corrected) value the dashboard shows goes through
:func:`display_value`. Values come from untrusted emails: the result is plain text and
must only be handed to text-only elements (``st.text``, ``st.code``, dataframe cells),
never to ``st.markdown`` or HTML. Masking lives here too, so no caller can forget it:
a role without value rights (``ops``, or nobody) gets :data:`reportlib.access.MASK`.

:func:`mask_detail` does the same for a whole drill-down before a page sees it: values,
the email's subject and sender, and the detail of each source.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from typing import Any, Final

from reportlib import jsoncodec
from reportlib.access import can_see_values, mask_value, source_kind
from reportlib.config import Role
from reportlib.queries import FieldDetail, ReportDetail

EMPTY = "—"
#: Shown instead of an audit sample's confidences and route before its decision.
HIDDEN: Final = "hidden"

# Bidirectional controls reorder what is shown around them: "invoice\u202egpj.exe"
# displays as "invoiceexe.jpg". Every one is replaced by a visible marker like [U+202E].
BIDI_CONTROLS: Final = frozenset(
    {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
)
_BIDI_TABLE: Final = {code: f"[U+{code:04X}]" for code in BIDI_CONTROLS}
_MARKDOWN_TABLE: Final = {
    **{ord(ch): "\\" + ch for ch in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"},
    ord("\n"): " ",
    ord("\r"): " ",
    **_BIDI_TABLE,
}


def plain_text(text: object) -> str:
    """``text`` as a string with every bidi control made visible (``[U+202E]``).

    Every untrusted string the dashboard shows (values, subjects, senders, intents, review
    reasons, field names, reviewer names) goes through this before a text element, a
    table cell or a chart label.
    """
    return str(text).translate(_BIDI_TABLE)


def markdown_text(text: object) -> str:
    """``text`` for an element that renders Markdown (``st.error``, ``st.info``...).

    Every ASCII punctuation character is backslash-escaped, so nothing in it can become
    emphasis, a link, an autolinked URL or address, an image, HTML, a colour or an icon
    directive; line breaks become spaces and bidi controls are made visible. Use it for
    messages that name fields or people; prefer ``st.text`` for anything longer.
    """
    return str(text).translate(_MARKDOWN_TABLE)


def plain_frame(frame: Any) -> Any:
    """A copy of a display table (``pandas.DataFrame``) with bidi controls made visible
    in every text cell and header. Numbers, dates and flags are left as they are."""
    import pandas as pd  # local import: the rest of this module does not need pandas

    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_object_dtype(shown[column]) or pd.api.types.is_string_dtype(
            shown[column]
        ):
            shown[column] = shown[column].map(
                lambda cell: plain_text(cell) if isinstance(cell, str) else cell
            )
    shown.columns = [plain_text(name) if isinstance(name, str) else name for name in shown.columns]
    return shown


class _CurrentRole:
    def __repr__(self) -> str:
        return "CURRENT_ROLE"


CURRENT_ROLE: Final = _CurrentRole()
"""Default of ``role``: ask :func:`dashboard.auth.current_user` who is looking."""


def _current_role() -> Role | None:
    from dashboard import auth  # local import: auth needs Streamlit's script context

    user = auth.current_user()
    return None if user is None else user.role


def display_value(
    field: str, value: Any, *, role: Role | None | _CurrentRole = CURRENT_ROLE
) -> str:
    """The plain-text form of ``value`` extracted for ``field``, as ``role`` may see it.

    Lists are joined with ", "; numbers keep their exact decimal form; nested objects
    are shown as JSON. ``None`` and empty values show as a dash. Roles without value
    rights get the fixed mask instead, whatever the value (even an empty one, so the
    mask says nothing about it). ``role`` defaults to the current user's.
    """
    del field  # masking is per role, not per field: every extracted value is personal
    shown_role = _current_role() if isinstance(role, _CurrentRole) else role
    if not can_see_values(shown_role):
        return mask_value(value)
    return _as_text(value)


def mask_detail(detail: ReportDetail) -> ReportDetail:
    """``detail`` as a role without value rights may see it.

    Values become the mask, sources their kind (``attachment``, not the file name), and
    the email's subject and sender are masked; names, confidences, routes, intent,
    review reason and missing fields stay, because they are what ops leads work with.
    """
    return dataclasses.replace(
        detail,
        subject=None if detail.subject is None else mask_value(detail.subject),
        sender=None if detail.sender is None else mask_value(detail.sender),
        fields=tuple(
            FieldDetail(
                name=item.name,
                value=mask_value(item.value),
                confidence=item.confidence,
                source=None if item.source is None else source_kind(item.source),
            )
            for item in detail.fields
        ),
    )


def _as_text(value: Any) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return plain_text(value) if value.strip() else EMPTY
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
        return plain_text(jsoncodec.dumps(value))
    return plain_text(value)
