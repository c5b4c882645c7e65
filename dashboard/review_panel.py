"""The review actions: who is reviewing, claim / release, the decision, and the history.

Shown inside the drill-down to roles that may review (``reportlib.access.can_review``).
The decision form itself (verdicts, outcome, note) is :mod:`dashboard.review_form`.
Every action runs in a widget callback, before the page is drawn again, so the page
then shows the state the action left behind. A reportlib error ends up as ``st.error``
with reportlib's message, which names fields and reports, never values; the form keeps
its values (``persist_state="session"``), so nothing typed is lost.

Untrusted text (field names, reviewer names, corrected values, notes) is only handed to
``st.text`` and dataframe cells, never to Markdown, labels or HTML.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import auth, boundary, review_data, review_form, ui
from dashboard.review_form import OUTCOMES
from dashboard.values import EMPTY, display_value, markdown_text, plain_frame, plain_text
from reportlib.access import can_review
from reportlib.errors import ReportlibError
from reportlib.queries import ReportDetail
from reportlib.review import DecisionRecord, ReviewItem, check_reviewer

REVIEWER_KEY = "review_reviewer"
NAME_INPUT_KEY = "review_name_input"
FLASH_KEY = "review_flash"
DONE_KEY = "review_done"
QUEUE_NONCE_KEY = "queue_nonce"
TAB_KEY = "review_tab"
QUEUE_TAB = "Queue"

VERDICT_NAMES = {"correct": "correct", "corrected": "corrected", "absent": "absent"}

# --------------------------------------------------------------------------- identity


def reviewer() -> str | None:
    """Who reviews in this session, or None (no review rights, or no name entered yet).

    Logged in: the user's actor (their email). Local mode: the name entered once per
    session with :func:`render_identity`.
    """
    user = auth.current_user()
    if user is None or not can_review(user.role):
        return None
    if not user.local_mode:
        return user.actor
    name = st.session_state.get(REVIEWER_KEY)
    return name if isinstance(name, str) and name else None


def may_review() -> bool:
    """Whether the current user's role may claim and decide."""
    user = auth.current_user()
    return user is not None and can_review(user.role)


def _set_name() -> None:
    raw = st.session_state.get(NAME_INPUT_KEY, "")
    try:
        st.session_state[REVIEWER_KEY] = check_reviewer(raw)
    except ReportlibError as exc:
        _flash(None, "error", _sentence(f"Your name cannot be used: {exc}"))


def _change_name() -> None:
    st.session_state.pop(REVIEWER_KEY, None)


def render_identity() -> str | None:
    """Who is reviewing, and the "Next item" button; returns the reviewer (or None).

    In local mode this asks for a name once per session: decisions are recorded under it.
    Draws nothing for roles that may not review.
    """
    user = auth.current_user()
    if user is None or not can_review(user.role):
        return None
    who = reviewer()
    with st.container(border=True, key="review_identity"):
        left, middle, right = st.columns([5, 2, 2], vertical_alignment="bottom")
        if who is None:
            left.text_input(
                "Your name, recorded with your review decisions",
                key=NAME_INPUT_KEY,
                max_chars=200,
                placeholder="e.g. Anna Keller",
                on_change=_set_name,
                help="Local mode has no login: the name is not verified.",
            )
            middle.button("Start reviewing", key="review_set_name", on_click=_set_name)
        else:
            with left:
                st.caption(
                    "Reviewing as" + (" (local mode, not verified)" if user.local_mode else "")
                )
                st.text(plain_text(who))
            if user.local_mode:
                middle.button("Change name", key="review_change_name", on_click=_change_name)
        right.button(
            "Next item",
            key="review_next",
            type="primary",
            icon=":material/skip_next:",
            on_click=_next_item,
            disabled=who is None,
            help="Claim the oldest open item nobody holds (whatever the filters) and open it. "
            "If you already hold one, you get that one back.",
            width="stretch",
        )
    return who


# --------------------------------------------------------------------------- messages


def _flash(email_id: int | None, kind: str, text: str) -> None:
    """Keep a message for the next run: ``email_id`` None shows it at the page top."""
    st.session_state[FLASH_KEY] = {"email_id": email_id, "kind": kind, "text": text}


def _md(text: str) -> str:
    # Messages come from reportlib and name fields (and people): st.error renders
    # Markdown, so every punctuation mark is escaped and no URL becomes a link.
    return markdown_text(text)


def render_flash(email_id: int | None) -> None:
    """Show (once) the message an action left for this place."""
    flash = st.session_state.get(FLASH_KEY)
    if not isinstance(flash, dict) or flash.get("email_id") != email_id:
        return
    del st.session_state[FLASH_KEY]
    text = _md(str(flash.get("text", "")))
    if flash.get("kind") == "error":
        st.error(text, icon=":material/error:")
    else:
        st.info(text, icon=":material/info:")


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _failed(exc: Exception, email_id: int | None, suffix: str = "") -> None:
    if isinstance(exc, ReportlibError):
        _flash(email_id, "error", _sentence(str(exc)) + suffix)
        return
    # A callback runs outside the page's error boundary: report it the same way, once.
    event_id = boundary.report_error(exc, page="review", filters={})
    _flash(email_id, "error", boundary.unexpected_message(event_id) + suffix)


# --------------------------------------------------------------------------- navigation


def open_email(email_id: int | None) -> None:
    """Show ``email_id``'s drill-down (None closes it) and clear the queue's row selection,
    whose row numbers may point elsewhere once the queue changed."""
    if email_id is None:
        if "email_id" in st.query_params:
            del st.query_params["email_id"]
    else:
        st.query_params["email_id"] = str(email_id)
    st.session_state[QUEUE_NONCE_KEY] = st.session_state.get(QUEUE_NONCE_KEY, 0) + 1
    if st.session_state.get(TAB_KEY) not in (None, QUEUE_TAB):
        st.session_state[TAB_KEY] = QUEUE_TAB


def _next_item() -> None:
    who = reviewer()
    if who is None:
        _flash(None, "error", "Enter your name before claiming items.")
        return
    try:
        claim = review_data.claim_next(reviewer=who)
    except Exception as exc:  # noqa: BLE001 - shown to the reviewer, see _failed
        _failed(exc, None)
        return
    if claim is None:
        _flash(None, "info", "Nothing left to claim: every open item is decided or held.")
        return
    st.session_state.pop(DONE_KEY, None)
    open_email(claim.email_id)


# --------------------------------------------------------------------------- claim


def _claim(report_id: int, email_id: int) -> None:
    who = reviewer()
    if who is None:
        _flash(email_id, "error", "Enter your name before claiming items.")
        return
    try:
        review_data.claim(report_id=report_id, reviewer=who)
    except Exception as exc:  # noqa: BLE001 - shown to the reviewer, see _failed
        _failed(exc, email_id)


def _release(report_id: int, email_id: int) -> None:
    who = reviewer()
    if who is None:
        return
    try:
        released = review_data.release(report_id=report_id, reviewer=who)
    except Exception as exc:  # noqa: BLE001 - shown to the reviewer, see _failed
        _failed(exc, email_id)
        return
    if not released:
        _flash(email_id, "info", "You held no claim on this report.")


def _render_claim(item: ReviewItem, who: str | None) -> bool:
    """The claim line and its buttons; True when ``who`` holds the report now."""
    if not item.needs_review:
        st.caption("This report is not flagged for review.")
        return False
    if not item.is_open:
        st.caption("This report is decided for its current processing. See the history below.")
        return False
    if item.values_erased_at is not None:
        st.caption(
            f"Its values were erased on {item.values_erased_at:%Y-%m-%d}: there is nothing "
            "left to check, so it cannot be claimed or decided. It stays in the queue's "
            "figures until the email is processed again."
        )
        return False
    claim = item.claim
    mine = claim is not None and who is not None and claim.reviewer == who
    left, right = st.columns([5, 3], vertical_alignment="center")
    with left:
        if claim is None:
            st.text("Open. Nobody holds this report.")
        elif mine:
            st.text(f"You hold this report until {ui.utc_text(claim.expires_at)}.")
        else:
            st.text(f"Held by {plain_text(claim.reviewer)} until {ui.utc_text(claim.expires_at)}.")
    with right, st.container(horizontal=True, horizontal_alignment="right"):
        if mine:
            st.button(
                "Renew claim",
                key="review_renew",
                on_click=_claim,
                args=(item.report_id, item.email_id),
                icon=":material/update:",
            )
            st.button(
                "Release",
                key="review_release",
                on_click=_release,
                args=(item.report_id, item.email_id),
                icon=":material/lock_open:",
            )
        else:
            st.button(
                "Claim this report",
                key="review_claim",
                type="primary",
                on_click=_claim,
                args=(item.report_id, item.email_id),
                icon=":material/lock:",
                disabled=who is None or claim is not None,
                help=None if who is not None else "Enter your name at the top of the page first.",
            )
    if who is None:
        st.caption("Enter your name at the top of the page to claim and review this report.")
    elif claim is not None and not mine:
        st.caption("You can claim it once the claim is released or expires.")
    return mine


# --------------------------------------------------------------------------- decide


def _submit(sub: review_form.Submission) -> None:
    who = reviewer()
    if who is None:
        _flash(sub.email_id, "error", "Enter your name before deciding.")
        return
    kept = " Nothing was saved; your entries are kept."
    try:
        verdicts = review_form.read_verdicts(sub)
        outcome = st.session_state.get(sub.keys.outcome)
        if outcome is None:
            raise review_form.FormIncomplete("Choose an outcome: approved, corrected or rejected.")
        record = review_data.decide(
            report_id=sub.report_id,
            reviewer=who,
            outcome=str(outcome),
            verdicts=verdicts,
            note=st.session_state.get(sub.keys.note) or None,
            report_created_at=sub.created_at,
        )
    except Exception as exc:  # noqa: BLE001 - shown to the reviewer, see _failed
        _failed(exc, sub.email_id, "" if isinstance(exc, review_form.FormIncomplete) else kept)
        return
    for key in sub.keys.all():
        st.session_state.pop(key, None)
    st.session_state[DONE_KEY] = _done_summary(record)
    # The decided report leaves the queue: row numbers of the selection move.
    st.session_state[QUEUE_NONCE_KEY] = st.session_state.get(QUEUE_NONCE_KEY, 0) + 1


def _done_summary(record: DecisionRecord) -> dict[str, Any]:
    counts = {kind: 0 for kind in VERDICT_NAMES}
    for verdict in record.verdicts:
        counts[verdict.verdict] = counts.get(verdict.verdict, 0) + 1
    return {
        "email_id": record.email_id,
        "outcome": record.outcome,
        "counts": counts,
        "corrections": [
            (v.field_name, display_value(v.field_name, v.corrected_value))
            for v in record.verdicts
            if v.verdict == "corrected"
        ],
    }


def _render_done(email_id: int) -> None:
    done = st.session_state.get(DONE_KEY)
    if not isinstance(done, dict) or done.get("email_id") != email_id:
        return
    counts = done["counts"]
    st.success(
        f"Decision recorded: {OUTCOMES[done['outcome']]}. {counts['correct']} correct, "
        f"{counts['corrected']} corrected, {counts['absent']} absent. "
        "The report has left the queue.",
        icon=":material/task_alt:",
    )
    for field_name, value in done["corrections"]:
        st.text(plain_text(f"{field_name} → {value}"))
    st.button(
        "Next item",
        key="review_next_after",
        type="primary",
        icon=":material/skip_next:",
        on_click=_next_item,
    )


# --------------------------------------------------------------------------- history


def _history_frame(decision: DecisionRecord) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Field": [v.field_name for v in decision.verdicts],
            "Verdict": [v.verdict for v in decision.verdicts],
            "Corrected value": [
                display_value(v.field_name, v.corrected_value) if v.verdict == "corrected" else ""
                for v in decision.verdicts
            ],
            "Pipeline said": [
                "missing"
                if v.was_missing
                else (EMPTY if v.extracted_confidence is None else f"{v.extracted_confidence:.2f}")
                for v in decision.verdicts
            ],
        }
    )


def _render_history(item: ReviewItem) -> None:
    if not item.history:
        st.caption("No earlier decisions on this report.")
        return
    st.markdown("**Decisions on this report**")
    for position, decision in enumerate(item.history):
        which = "this processing" if decision.for_current_processing else "an earlier processing"
        with st.expander(
            f"{OUTCOMES.get(decision.outcome, decision.outcome)} on "
            f"{ui.utc_text(decision.decided_at)}, for {which}",
            expanded=position == 0,
            key=f"review_history_{decision.id}",
        ):
            st.text(
                f"Reviewer: {plain_text(decision.reviewer)}\n"
                f"Processing of {ui.utc_text(decision.report_created_at)}"
            )
            if decision.note:
                st.text(plain_text(f"Note: {decision.note}"))
            if decision.verdicts:
                st.dataframe(
                    plain_frame(_history_frame(decision)),
                    hide_index=True,
                    key=f"review_history_table_{decision.id}",
                )


# --------------------------------------------------------------------------- panel


def render(detail: ReportDetail) -> None:
    """The review panel of one report (nothing for roles that may not review)."""
    if not may_review():
        return
    item = review_data.review_item(detail.email_id)
    if item is None:
        return
    who = reviewer()
    with st.container(key="review_panel"):
        st.divider()
        st.markdown("**Review**")
        render_flash(item.email_id)
        _render_done(item.email_id)
        if _render_claim(item, who) and who is not None:
            review_form.render(item, on_submit=_submit)
        _render_history(item)
