"""The decision form of one claimed report: a verdict per field, corrected values, the
outcome and a note.

The form draws its widgets and reads them back; recording the decision is the review
panel's submit action, handed in as ``on_submit``, because it shares the panel's identity
and messages. Every widget keeps its value (``persist_state="session"``), so a refused
submit loses nothing typed.

Untrusted text (field names, corrected values, notes) is only handed to ``st.text`` and
input widgets, never to Markdown, labels or HTML.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import streamlit as st

from dashboard.values import EMPTY, HIDDEN, plain_text
from reportlib.errors import ReportlibError
from reportlib.review import (
    NOTE_MAX,
    FieldVerdict,
    ReviewField,
    ReviewItem,
    parse_corrected_value,
)

EXTRACTED_VERDICTS = {
    "correct": "Correct",
    "corrected": "Wrong: correct it",
    "absent": "Not in the email",
}
MISSING_VERDICTS = {"absent": "Truly absent", "corrected": "Missed: give the value"}
OUTCOMES = {"approved": "Approved", "corrected": "Corrected", "rejected": "Rejected"}


@dataclass(frozen=True)
class FormKeys:
    """Widget keys of one report's form; the processing time makes each processing's
    form its own, so a re-processed report never inherits stale verdicts."""

    prefix: str
    count: int

    @classmethod
    def of(cls, item: ReviewItem) -> FormKeys:
        stamp = int(item.created_at.timestamp() * 1_000_000)
        return cls(prefix=f"rv_{item.report_id}_{stamp}", count=len(item.fields))

    def verdict(self, index: int) -> str:
        return f"{self.prefix}_verdict_{index}"

    def value(self, index: int) -> str:
        return f"{self.prefix}_value_{index}"

    @property
    def outcome(self) -> str:
        return f"{self.prefix}_outcome"

    @property
    def note(self) -> str:
        return f"{self.prefix}_note"

    def all(self) -> list[str]:
        keys = [self.outcome, self.note]
        for index in range(self.count):
            keys += [self.verdict(index), self.value(index)]
        return keys


@dataclass(frozen=True)
class Submission:
    """What a submit needs from the form as it was drawn (the values stay in state)."""

    report_id: int
    email_id: int
    created_at: dt.datetime
    keys: FormKeys
    fields: tuple[ReviewField, ...]


class FormIncomplete(ReportlibError):
    """The form lacks a verdict or the outcome (checked before asking reportlib)."""


def read_verdicts(sub: Submission) -> dict[str, FieldVerdict | str]:
    """The verdicts from the form; raises ReviewInputError naming the first bad field."""
    state = st.session_state
    unset = [f.name for i, f in enumerate(sub.fields) if state.get(sub.keys.verdict(i)) is None]
    if unset:
        raise FormIncomplete(
            f"Give a verdict for every field ({len(unset)} still open: {', '.join(unset)})."
        )
    verdicts: dict[str, FieldVerdict | str] = {}
    for index, field in enumerate(sub.fields):
        verdict = state[sub.keys.verdict(index)]
        if verdict == "corrected":
            value = parse_corrected_value(
                field.name,
                state.get(sub.keys.value(index)) or "",
                like=None if field.was_missing else field.value,
            )
            verdicts[field.name] = FieldVerdict("corrected", value)
        else:
            verdicts[field.name] = str(verdict)
    return verdicts


def _suggested_outcome(item: ReviewItem, keys: FormKeys) -> str | None:
    chosen = [st.session_state.get(keys.verdict(i)) for i in range(len(item.fields))]
    if any(v is None for v in chosen):
        return None
    changed = any(
        v == "corrected" or (v == "absent" and not f.was_missing)
        for v, f in zip(chosen, item.fields, strict=True)
    )
    return "corrected" if changed else "approved"


def _all_correct(keys: FormKeys, fields: Sequence[ReviewField]) -> None:
    for index, field in enumerate(fields):
        if not field.was_missing and st.session_state.get(keys.verdict(index)) is None:
            st.session_state[keys.verdict(index)] = "correct"


def render(item: ReviewItem, *, on_submit: Callable[[Submission], None]) -> None:
    """The form of ``item``; its submit button calls ``on_submit`` with a :class:`Submission`."""
    keys = FormKeys.of(item)
    st.markdown("**Your decision**")
    st.caption(
        "For each field: is the extracted value right? For a field marked missing: is it "
        "truly absent from the email, or did the extractor miss it?"
    )
    if any(not f.was_missing for f in item.fields):
        st.button(
            "Mark unset extracted values correct",
            key=f"{keys.prefix}_all_correct",
            on_click=_all_correct,
            args=(keys, item.fields),
            type="tertiary",
            icon=":material/done_all:",
        )
    header = st.columns([2, 1, 4, 4])
    for column, title in zip(
        header, ("Field", "Confidence", "Verdict", "Corrected value"), strict=True
    ):
        column.caption(title)
    for index, field in enumerate(item.fields):
        name, confidence, verdict_col, value_col = st.columns(
            [2, 1, 4, 4], vertical_alignment="center"
        )
        name.text(plain_text(field.name))
        if field.was_missing:
            confidence.text("missing")
        else:
            confidence.text(
                HIDDEN
                if item.blind
                else (EMPTY if field.confidence is None else f"{field.confidence:.2f}")
            )
        labels = MISSING_VERDICTS if field.was_missing else EXTRACTED_VERDICTS
        verdict = verdict_col.segmented_control(
            f"Verdict for field {index + 1}",
            options=list(labels),
            format_func=labels.__getitem__,
            key=keys.verdict(index),
            label_visibility="collapsed",
            persist_state="session",
        )
        if verdict == "corrected":
            value_col.text_input(
                f"Corrected value for field {index + 1}",
                key=keys.value(index),
                label_visibility="collapsed",
                placeholder="The value in the email"
                + (" (several: separate with commas)" if isinstance(field.value, list) else ""),
                persist_state="session",
            )
    left, right = st.columns([1, 1], vertical_alignment="top")
    with left:
        st.segmented_control(
            "Outcome",
            options=list(OUTCOMES),
            format_func=OUTCOMES.__getitem__,
            key=keys.outcome,
            persist_state="session",
            help="Approved: every value right. Corrected: you corrected something. "
            "Rejected: the report is unusable (e.g. not a debt letter).",
        )
        suggested = _suggested_outcome(item, keys)
        if suggested is not None:
            st.caption(f"From your verdicts: {OUTCOMES[suggested]}.")
    right.text_area(
        "Note (optional)",
        key=keys.note,
        max_chars=NOTE_MAX,
        height=90,
        persist_state="session",
    )
    st.button(
        "Submit decision",
        key=f"{keys.prefix}_submit",
        type="primary",
        icon=":material/check:",
        on_click=on_submit,
        args=(
            Submission(
                report_id=item.report_id,
                email_id=item.email_id,
                created_at=item.created_at,
                keys=keys,
                fields=item.fields,
            ),
        ),
    )
