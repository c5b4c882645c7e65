"""The drill-down of one report: everything a reviewer needs to judge it.

Untrusted text (values, field names, sources, subject, sender, intent, review reason)
is only ever handed to ``st.text``/``st.code`` or dataframe cells, and every extracted
value goes through :func:`dashboard.values.display_value`.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from dashboard import ui
from dashboard.values import EMPTY, HIDDEN, display_value, plain_text
from reportlib.queries import ReportDetail
from reportlib.service import INT32_MAX

ROUTE_NAMES = {"high": "High", "medium": "Medium", "low": "Low"}


BLIND_NOTE = (
    "Audit sample: the pipeline did not flag this report; it was drawn at random to measure "
    "the accuracy of what passes unreviewed. Its confidences and route stay hidden until a "
    "decision is recorded, so that the machine's score does not sway the verdicts."
)


def _labelled(label: str, value: str) -> None:
    # The label is ours (safe to style); the value is untrusted and stays plain text.
    st.caption(label)
    st.text(plain_text(value))


def erased_text(detail: ReportDetail) -> str:
    """The text "values erased on DATE" for a report whose values retention or an
    erasure request removed; empty when its values are there."""
    if detail.values_erased_at is None:
        return ""
    return f"values erased on {detail.values_erased_at.astimezone(dt.UTC):%Y-%m-%d}"


def render(detail: ReportDetail) -> None:
    """Show one report. The caller decides where (and whether) it appears."""
    erased = erased_text(detail)
    with st.container(border=True, key="drilldown"):
        st.subheader(f"Email {detail.email_id}")
        if erased:
            st.info(
                f"Personal data: {erased}. Confidences, field names, missing fields and "
                "the review history's verdicts remain."
            )
        left, middle, right = st.columns([3, 2, 2])
        with left:
            _labelled("Subject", detail.subject or erased or EMPTY)
        with middle:
            _labelled("Sender", detail.sender or erased or EMPTY)
        with right:
            _labelled("Received", ui.utc_text(detail.received_at))

        if detail.blind:
            st.info(BLIND_NOTE, icon=":material/visibility_off:")
        metrics = st.columns(5)
        if detail.blind:
            metrics[0].metric("Overall confidence", HIDDEN)
            metrics[1].metric("Route", HIDDEN)
        else:
            metrics[0].metric("Overall confidence", f"{detail.overall_confidence:.2f}")
            metrics[1].metric("Route", ROUTE_NAMES.get(detail.confidence_route, "Unknown"))
        metrics[2].metric("Sources processed", f"{detail.sources_processed:,}")
        metrics[3].metric("Tokens", f"{detail.total_tokens_used:,}")
        metrics[4].metric("Processing time", ui.fmt_ms(detail.processing_time_ms))
        if not detail.blind:
            st.progress(min(max(detail.overall_confidence, 0.0), 1.0))

        facts = st.columns(4)
        with facts[0]:
            _labelled("Intent", detail.intent or EMPTY)
        with facts[1]:
            _labelled("Review reason", detail.review_reason or EMPTY)
        with facts[2]:
            state = (
                "Open"
                if detail.open_for_review
                else ("Decided" if detail.needs_review else "Not flagged")
            )
            _labelled("Review status", state)
        with facts[3]:
            _labelled("Processed", ui.utc_text(detail.created_at))

        st.markdown("**Extracted fields**")
        if not detail.fields:
            st.info("Nothing was extracted from this email.")
        header = st.columns([2, 4, 2, 2])
        for column, title in zip(header, ("Field", "Value", "Confidence", "Source"), strict=True):
            column.caption(title)
        for item in detail.fields:
            name, value, confidence, source = st.columns([2, 4, 2, 2])
            name.text(plain_text(item.name))
            if erased:
                value.text(erased)
            else:
                value.code(display_value(item.name, item.value), language=None, wrap_lines=True)
            if detail.blind:
                confidence.text(HIDDEN)
            elif item.confidence is None:
                confidence.text(EMPTY)
            else:
                confidence.progress(min(max(item.confidence, 0.0), 1.0))
                confidence.text(f"{item.confidence:.2f}")
            source.text(plain_text(item.source or erased or EMPTY))

        st.markdown("**Missing fields**")
        st.text(plain_text(", ".join(detail.missing_fields)) if detail.missing_fields else "None")

        # ---- Review actions ------------------------------------------------------------
        # The review workflow's claim / decide panel goes here, e.g.
        # `review_panel.render(detail)`; it sees the same ReportDetail.
        render_review_actions(detail)


def render_review_actions(detail: ReportDetail) -> None:
    """The review actions (claim, per-field verdicts, outcome): see ``review_panel``."""
    # Imported here so the whole review hook sits in this one function.
    from dashboard import review_panel

    review_panel.render(detail)


def parse_email_id(raw: str) -> tuple[int | None, str]:
    """Read an ``email_id`` link parameter: ``(id, "")``, or ``(None, friendly problem)``.

    The problem text never repeats the parameter: links are untrusted too.
    """
    text = raw.strip()
    if not text.isascii() or not text.isdigit():
        return None, "The link's email_id is not a number, so no email can be shown."
    if len(text) > 10 or not 1 <= int(text) <= INT32_MAX:
        return None, "The link's email_id is out of range, so no email can be shown."
    return int(text), ""
