"""AppTest: a reviewer works through the queue (name, claim, verdicts, decision, next item),
errors leave the database untouched and the form filled, the queue shows who holds what,
the statistics move with decisions, and the quality page shows reportlib.quality's numbers.

Every test gets its own copy of a seeded SQLite file, because these tests write.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import sentry_sdk
import streamlit as st
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from dashboard import boundary, filters, quality_charts, review_data, ui
from reportlib import create_processing_report, migrate, quality, queries, review
from reportlib.config import get_settings
from reportlib.db import make_engine
from reportlib.demo import seed_demo
from reportlib.demo_review import seed_review_history
from reportlib.models import AuditEvent, ReviewClaim, ReviewDecision, ReviewFieldVerdict
from reportlib.monitoring import shutdown_sentry
from reportlib.queries import ReportFilter
from reportlib.review import ReviewItem
from tests.clock import clear_of_utc_midnight
from tests.dashboard.helpers import (
    SeededDatabase,
    applied_filter,
    assert_default_filter,
    new_app,
)

if TYPE_CHECKING:
    from tests.sentry_receiver import SentryReceiver

pytest_plugins = ["tests.sentry_receiver"]

REVIEWER = "Rita Reviewer"
OTHER = "other.reviewer@inkasso.example"
CORRECTED_NAME = "Hanse Inkasso GmbH & Co. KG"


# --------------------------------------------------------------------------- fixtures


def _seed_file(path: Path, *, reviews: bool, now: dt.datetime) -> None:
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    with Session(engine) as session:
        seed_demo(session, count=300, seed=23, days=45, now=now)
        if reviews:
            seed_review_history(session, rng=random.Random(7), now=now, share=0.7)
        session.commit()
    engine.dispose()


@pytest.fixture(scope="module")
def review_template(tmp_path_factory: pytest.TempPathFactory, demo_now: dt.datetime) -> Path:
    path = tmp_path_factory.mktemp("review_flow") / "template.db"
    _seed_file(path, reviews=True, now=demo_now)
    return path


@pytest.fixture(scope="module")
def unreviewed_template(tmp_path_factory: pytest.TempPathFactory, demo_now: dt.datetime) -> Path:
    path = tmp_path_factory.mktemp("review_flow_unreviewed") / "template.db"
    _seed_file(path, reviews=False, now=demo_now)
    return path


def _copy(template: Path, target: Path, use_database: Callable[[str], None]) -> Iterator[Engine]:
    shutil.copyfile(template, target)
    url = f"sqlite:///{target}"
    use_database(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(
    review_template: Path, tmp_path: Path, use_database: Callable[[str], None]
) -> Iterator[Engine]:
    """A private, writable copy of the seeded database; the dashboard points at it."""
    yield from _copy(review_template, tmp_path / "review.db", use_database)


@pytest.fixture
def unreviewed_db(
    unreviewed_template: Path, tmp_path: Path, use_database: Callable[[str], None]
) -> Iterator[Engine]:
    yield from _copy(unreviewed_template, tmp_path / "unreviewed.db", use_database)


# --------------------------------------------------------------------------- helpers


def review_page(name: str | None = REVIEWER, *, interactive: bool = True) -> AppTest:
    at = new_app(interactive=interactive)
    at.run()
    at.switch_page("views/review.py").run()
    assert_clean(at)
    if name is not None:
        at.text_input(key="review_name_input").set_value(name).run()
        assert_clean(at)
    return at


def error_text(at: AppTest) -> str:
    """The single error shown, with Markdown escapes removed."""
    assert len(at.error) == 1, [e.value for e in at.error]
    return str(at.error[0].value).replace("\\", "")


def assert_clean(at: AppTest) -> None:
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == []


def in_db(engine: Engine, work: Callable[[Session], Any]) -> Any:
    with Session(engine) as session:
        return work(session)


def commit(engine: Engine, work: Callable[[Session], Any]) -> Any:
    with Session(engine) as session:
        result = work(session)
        session.commit()
        return result


def item_of(engine: Engine, email_id: int) -> ReviewItem:
    item = in_db(engine, lambda s: review.get_review_item(s, email_id=email_id))
    assert item is not None
    return item


def counts(engine: Engine) -> tuple[int, int, int]:
    """Decisions, verdicts and claims stored."""

    def work(s: Session) -> tuple[int, int, int]:
        return (
            int(s.scalar(select(func.count()).select_from(ReviewDecision)) or 0),
            int(s.scalar(select(func.count()).select_from(ReviewFieldVerdict)) or 0),
            int(s.scalar(select(func.count()).select_from(ReviewClaim)) or 0),
        )

    return in_db(engine, work)


def queue_emails(at: AppTest) -> list[int]:
    return [int(e) for e in at.dataframe[0].value["Email"]]


def queue_table(at: AppTest) -> pd.DataFrame:
    return at.dataframe[0].value


def held_text(reviewer: str, expires_at: dt.datetime) -> str:
    return f"{reviewer} (until {expires_at.astimezone(dt.UTC):%H:%M})"


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert len(values) == 1, f"no single metric {label!r}"
    return values[0]


def form_key(item: ReviewItem) -> str:
    return f"rv_{item.report_id}_{int(item.created_at.timestamp() * 1_000_000)}"


def plan_verdicts(item: ReviewItem) -> tuple[dict[str, tuple[str, str | None]], str]:
    """Verdicts to give in the form: the first text field extracted is corrected, the
    other extracted ones correct, fields marked missing absent. Returns (per field name:
    (verdict, typed text)), outcome)."""
    plan: dict[str, tuple[str, str | None]] = {}
    corrected = False
    for field in item.fields:
        if field.was_missing:
            plan[field.name] = ("absent", None)
        elif not corrected and isinstance(field.value, str) and field.value != CORRECTED_NAME:
            plan[field.name] = ("corrected", CORRECTED_NAME)
            corrected = True
        else:
            plan[field.name] = ("correct", None)
    return plan, "corrected" if corrected else "approved"


def fill_form(at: AppTest, item: ReviewItem, plan: dict[str, tuple[str, str | None]]) -> None:
    prefix = form_key(item)
    for index, field in enumerate(item.fields):
        verdict, _text = plan[field.name]
        at.button_group(key=f"{prefix}_verdict_{index}").set_value(verdict).run()
    for index, field in enumerate(item.fields):
        verdict, text = plan[field.name]
        if verdict == "corrected":
            at.text_input(key=f"{prefix}_value_{index}").set_value(text).run()
    assert_clean(at)


def choose_outcome(at: AppTest, item: ReviewItem, outcome: str, note: str = "") -> None:
    prefix = form_key(item)
    at.button_group(key=f"{prefix}_outcome").set_value(outcome).run()
    if note:
        at.text_area(key=f"{prefix}_note").set_value(note).run()


def submit(at: AppTest, item: ReviewItem) -> None:
    at.button(key=f"{form_key(item)}_submit").click().run()


def expected_next(engine: Engine) -> int:
    """The email "Next item" must open: the oldest open item nobody holds."""
    free = in_db(engine, lambda s: review.list_review_queue(s, claimed=False, limit=1))
    assert free, "the seeded queue ran dry"
    return int(free[0].email_id)


# --------------------------------------------------------------------------- the walk


def test_claim_decide_and_next_item(db: Engine) -> None:
    at = review_page()
    assert [t.value for t in at.text if t.value == REVIEWER] == [REVIEWER]

    # Claim a row selected in the queue.
    email_id = queue_emails(at)[1]
    table = at.dataframe[0]
    at.session_state[table.key] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()
    assert at.query_params["email_id"] == str(email_id)
    at.button(key="review_claim").click().run()
    assert_clean(at)
    item = item_of(db, email_id)
    assert item.claim is not None and item.claim.reviewer == REVIEWER
    assert f"You hold this report until {ui.utc_text(item.claim.expires_at)}." in [
        t.value for t in at.text
    ]
    shown = queue_table(at).set_index("Email")
    assert shown.loc[email_id, "Held by"] == held_text(REVIEWER, item.claim.expires_at)
    assert set(shown.drop(index=email_id)["Held by"]) == {"—"}

    # Per-field verdicts, outcome, note; the suggestion follows the verdicts.
    plan, outcome = plan_verdicts(item)
    assert outcome == "corrected", "the seeded item has no text field to correct"
    fill_form(at, item, plan)
    assert "From your verdicts: Corrected." in [c.value for c in at.caption]
    choose_outcome(at, item, outcome, note="checked against the letterhead")
    before = counts(db)
    submit(at, item)
    assert_clean(at)
    assert len(at.success) == 1
    assert at.success[0].value.startswith("Decision recorded: Corrected.")
    # The corrected value is echoed as plain text, never as Markdown.
    corrected_field = next(name for name, (v, _) in plan.items() if v == "corrected")
    assert f"{corrected_field} → {CORRECTED_NAME}" in [t.value for t in at.text]
    assert CORRECTED_NAME not in " ".join(m.value for m in [*at.markdown, *at.caption])

    # What was stored: one decision with exactly these verdicts, and no claim left.
    history = in_db(db, lambda s: review.get_review_history(s, report_id=item.report_id))
    assert len(history) == 1
    decision = history[0]
    assert (decision.reviewer, decision.outcome, decision.note) == (
        REVIEWER,
        "corrected",
        "checked against the letterhead",
    )
    assert {v.field_name: (v.verdict, v.corrected_value) for v in decision.verdicts} == {
        name: (verdict, text) for name, (verdict, text) in plan.items()
    }
    assert counts(db) == (before[0] + 1, before[1] + len(item.fields), before[2] - 1)

    # The report left the queue; its drill-down now says so and lists the decision.
    assert email_id not in queue_emails(at)
    assert "Decided" in [t.value for t in at.text]
    assert at.expander[0].label.startswith("Corrected on ")
    assert "for this processing" in at.expander[0].label

    # Next item claims the oldest free item and opens it.
    next_email = expected_next(db)
    at.button(key="review_next_after").click().run()
    assert_clean(at)
    assert at.query_params["email_id"] == str(next_email)
    assert [s.value for s in at.main.subheader] == [f"Email {next_email}"]
    claimed = item_of(db, next_email)
    assert claimed.claim is not None and claimed.claim.reviewer == REVIEWER
    assert len(at.success) == 0
    # The form of the new item starts empty.
    for index in range(len(claimed.fields)):
        assert at.button_group(key=f"{form_key(claimed)}_verdict_{index}").value is None


def test_top_next_item_resumes_the_held_item(db: Engine) -> None:
    at = review_page()
    first = expected_next(db)
    at.button(key="review_next").click().run()
    assert at.query_params["email_id"] == str(first)
    # Asking again gives the held item back instead of a second one.
    at.button(key="review_next").click().run()
    assert at.query_params["email_id"] == str(first)
    held = in_db(db, lambda s: review.list_review_queue(s, held_by=REVIEWER))
    assert [i.email_id for i in held] == [first]
    at.button(key="review_release").click().run()
    assert_clean(at)
    assert item_of(db, first).claim is None
    assert "Open. Nobody holds this report." in [t.value for t in at.text]


def test_mark_all_correct_and_approve(db: Engine) -> None:
    at = review_page()
    at.button(key="review_next").click().run()
    item = item_of(db, int(at.query_params["email_id"]))
    prefix = form_key(item)
    at.button(key=f"{prefix}_all_correct").click().run()
    values = [at.button_group(key=f"{prefix}_verdict_{i}").value for i in range(len(item.fields))]
    assert values == [None if f.was_missing else "correct" for f in item.fields]
    for index, field in enumerate(item.fields):
        if field.was_missing:
            at.button_group(key=f"{prefix}_verdict_{index}").set_value("absent").run()
    choose_outcome(at, item, "approved")
    submit(at, item)
    assert_clean(at)
    decision = in_db(db, lambda s: review.get_review_history(s, report_id=item.report_id))[0]
    assert decision.outcome == "approved"
    assert {v.field_name: v.verdict for v in decision.verdicts} == {
        f.name: "absent" if f.was_missing else "correct" for f in item.fields
    }


def test_reflagged_report_reopens_with_its_earlier_decision(db: Engine) -> None:
    decided = in_db(db, lambda s: review.list_decisions(s, limit=1))[0]
    commit(
        db,
        lambda s: create_processing_report(
            s,
            decided.email_id,
            {
                "client_name": "Erika Muster",
                "extraction_metadata": {
                    "client_name": {"confidence": 0.52, "source": "email_body"}
                },
            },
            {
                "agent_1_intent": {"intent": "debt_claim", "confidence": 0.9},
                "agent_2_extraction": {"sources_processed": 1, "total_tokens_used": 321},
            },
            0.5,
            "low",
            True,
            "low confidence on client_name",
            900,
        ),
    )
    at = new_app()
    at.run()
    at.switch_page("views/review.py")
    at.query_params["email_id"] = str(decided.email_id)
    at.run()
    at.text_input(key="review_name_input").set_value(REVIEWER).run()
    assert_clean(at)
    assert [s.value for s in at.main.subheader] == [f"Email {decided.email_id}"]
    assert "Open. Nobody holds this report." in [t.value for t in at.text]
    assert [e.label for e in at.expander] == [
        f"{decided.outcome.capitalize()} on {ui.utc_text(decided.decided_at)}, "
        "for an earlier processing"
    ]
    assert f"Reviewer: {decided.reviewer}" in at.expander[0].text[0].value
    # It can be claimed and decided again, for the new processing.
    at.button(key="review_claim").click().run()
    item = item_of(db, decided.email_id)
    plan, outcome = plan_verdicts(item)
    fill_form(at, item, plan)
    choose_outcome(at, item, outcome)
    submit(at, item)
    assert_clean(at)
    history = in_db(db, lambda s: review.get_review_history(s, report_id=item.report_id))
    assert [(d.reviewer, d.for_current_processing) for d in history] == [
        (REVIEWER, True),
        (decided.reviewer, False),
    ]
    assert [e.label.endswith("for this processing") for e in at.expander] == [True, False]


# --------------------------------------------------------------------------- errors


def _claimed_and_filled(db: Engine) -> tuple[AppTest, ReviewItem]:
    """Select the first queue row, claim it in the panel and fill the whole form."""
    at = review_page()
    table = at.dataframe[0]
    email_id = int(table.value["Email"].iloc[0])
    at.session_state[table.key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    at.button(key="review_claim").click().run()
    item = item_of(db, email_id)
    assert item.claim is not None and item.claim.reviewer == REVIEWER
    plan, outcome = plan_verdicts(item)
    fill_form(at, item, plan)
    choose_outcome(at, item, outcome, note="keep me")
    return at, item


def _form_values(at: AppTest, item: ReviewItem) -> dict[str, Any]:
    prefix = form_key(item)
    values: dict[str, Any] = {
        f.name: at.button_group(key=f"{prefix}_verdict_{i}").value
        for i, f in enumerate(item.fields)
    }
    values["outcome"] = at.button_group(key=f"{prefix}_outcome").value
    values["note"] = at.text_area(key=f"{prefix}_note").value
    return values


def test_deciding_without_a_claim_is_refused_and_keeps_the_form(db: Engine) -> None:
    at, item = _claimed_and_filled(db)
    filled = _form_values(at, item)
    # The claim disappears behind the reviewer's back (released elsewhere).
    commit(db, lambda s: review.release_claim(s, report_id=item.report_id, reviewer=REVIEWER))
    before = counts(db)
    submit(at, item)
    assert [e.value for e in at.exception] == []
    assert len(at.error) == 1
    message = at.error[0].value
    assert f"claim report {item.report_id} before deciding" in message
    assert "Nothing was saved" in message
    assert counts(db) == before
    assert in_db(db, lambda s: review.get_review_history(s, report_id=item.report_id)) == []
    # Claiming again brings the form back exactly as it was filled.
    at.button(key="review_claim").click().run()
    assert_clean(at)
    assert _form_values(at, item) == filled


def test_deciding_on_someone_elses_claim_is_refused(db: Engine) -> None:
    at, item = _claimed_and_filled(db)

    def steal(s: Session) -> review.Claim:
        review.release_claim(s, report_id=item.report_id, reviewer=REVIEWER)
        return review.claim_report(s, report_id=item.report_id, reviewer=OTHER)

    stolen = commit(db, steal)
    before = counts(db)
    audit_before = in_db(db, lambda s: s.scalar(select(func.count()).select_from(AuditEvent)))
    submit(at, item)
    assert [e.value for e in at.exception] == []
    assert len(at.error) == 1
    assert f"report {item.report_id} is claimed by another reviewer until" in at.error[0].value
    assert OTHER not in at.error[0].value
    assert counts(db) == before
    assert (
        in_db(db, lambda s: s.scalar(select(func.count()).select_from(AuditEvent))) == audit_before
    )
    texts = [t.value for t in at.text]
    assert f"Held by {OTHER} until {ui.utc_text(stolen.expires_at)}." in texts
    assert at.button(key="review_claim").disabled
    # The refusal refreshed the queue: it shows the new holder.
    shown = queue_table(at).set_index("Email")
    assert shown.loc[item.email_id, "Held by"] == held_text(OTHER, stolen.expires_at)


def test_incomplete_or_invalid_form_names_the_problem(db: Engine) -> None:
    at = review_page()
    at.button(key="review_next").click().run()
    item = item_of(db, int(at.query_params["email_id"]))
    before = counts(db)
    submit(at, item)
    assert len(at.error) == 1 and "Give a verdict for every field" in at.error[0].value
    # A corrected number that is not a number: reportlib names the field.
    number = next((i for i, f in enumerate(item.fields) if f.name == "debt_amount"), None)
    plan, outcome = plan_verdicts(item)
    fill_form(at, item, plan)
    choose_outcome(at, item, "approved" if outcome == "corrected" else "corrected")
    submit(at, item)
    assert len(at.error) == 1 and "outcome" in at.error[0].value
    if number is not None:
        prefix = form_key(item)
        at.button_group(key=f"{prefix}_verdict_{number}").set_value("corrected").run()
        at.text_input(key=f"{prefix}_value_{number}").set_value("twelve euros").run()
        choose_outcome(at, item, "corrected")
        submit(at, item)
        assert error_text(at) == (
            "verdicts.debt_amount.corrected_value: must be a number such as 1234.56. "
            "Nothing was saved; your entries are kept."
        )
    assert counts(db) == before
    assert item_of(db, item.email_id).claim is not None


def test_local_mode_needs_a_valid_name_before_claiming(db: Engine) -> None:
    at = review_page(name=None)
    assert at.button(key="review_next").disabled
    at.text_input(key="review_name_input").set_value("   ").run()
    assert len(at.error) == 1 and "reviewer" in at.error[0].value
    assert at.button(key="review_next").disabled
    at.text_input(key="review_name_input").set_value("Bea").run()
    assert_clean(at)
    assert not at.button(key="review_next").disabled
    at.button(key="review_change_name").click().run()
    assert at.button(key="review_next").disabled


# --------------------------------------------------------------------------- Sentry

# What a driver message may carry ("Failing row contains (...)"): never to leave the process.
PERSONAL_IN_ERROR = "Erika Mustermann owes 1234.56 EUR"


@pytest.fixture
def sentry(
    db: Engine, sentry_receiver: SentryReceiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SentryReceiver]:
    """Sentry on, sending to a local receiver; the app starts it itself from SENTRY_DSN."""
    # After ``db``: pointing the dashboard at a database unsets SENTRY_DSN.
    monkeypatch.setenv("SENTRY_DSN", sentry_receiver.dsn)
    monkeypatch.setenv("SENTRY_TRACES_SAMPLE_RATE", "0")
    get_settings.cache_clear()
    # An earlier app in this process may have started error reporting without a DSN.
    boundary.start_error_reporting.clear()
    try:
        with sentry_sdk.isolation_scope():
            yield sentry_receiver
    finally:
        shutdown_sentry()
        boundary.start_error_reporting.clear()
        get_settings.cache_clear()


def refuse_inserts(engine: Engine, table: str, when: str = "1") -> None:
    """Make ``table`` refuse new rows with an error that is not reportlib's."""
    with engine.begin() as connection:
        connection.execute(
            text(
                f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} WHEN {when} "
                f"BEGIN SELECT RAISE(ABORT, '{PERSONAL_IN_ERROR}'); END"
            )
        )


def only_event(receiver: SentryReceiver) -> dict[str, Any]:
    """The one event that arrived once everything queued was sent."""
    sentry_sdk.flush(timeout=5)
    assert not receiver.wait_for(lambda r: len(r.items("event")) > 1, timeout=1.0)
    events = receiver.events()
    assert len(events) == 1, [e.get("logentry") or e.get("exception") for e in events]
    return events[0]


def assert_reported_once(
    at: AppTest,
    receiver: SentryReceiver,
    caplog: pytest.LogCaptureFixture,
    *,
    page: str,
    filters: dict[str, str],
) -> None:
    """One log line and one Sentry event for the failure, the event referenced on screen,
    and the personal text of the error nowhere."""
    assert [e.value for e in at.exception] == []
    event = only_event(receiver)
    assert error_text(at).startswith(f"{boundary.UNEXPECTED} Reference: {event['event_id']}.")
    assert event["level"] == "error"
    assert [(e["type"], e["value"]) for e in event["exception"]["values"]] == [
        ("IntegrityError", "IntegrityError (sqlite=SQLITE_CONSTRAINT_TRIGGER; message withheld)"),
        (
            "IntegrityError",
            "IntegrityError (code=gkpj, sqlite=SQLITE_CONSTRAINT_TRIGGER; message withheld)",
        ),
    ]
    assert event["tags"] == {"page": page}
    assert event["contexts"]["dashboard"] == {"page": page, "filters": filters}
    # The log line travels with the event as its template, without the values.
    assert event["breadcrumbs"]["values"][-1]["message"] == "page %s failed: %s"
    dashboard_logs = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("dashboard")
    ]
    assert dashboard_logs == [("WARNING", f"page {page} failed: IntegrityError")]
    assert PERSONAL_IN_ERROR.encode() not in b"".join(receiver.raw_bodies())
    assert PERSONAL_IN_ERROR not in caplog.text
    assert receiver.errors == []


def test_a_failing_review_action_is_reported_once(
    db: Engine, sentry: SentryReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    refuse_inserts(db, "review_claims")
    at = review_page()
    assert sentry_sdk.get_client().is_active()
    before = counts(db)
    caplog.clear()
    at.button(key="review_next").click().run()
    assert_reported_once(at, sentry, caplog, page="review", filters={})
    assert counts(db) == before


def test_a_failing_page_is_reported_once(
    db: Engine, sentry: SentryReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    refuse_inserts(db, "audit_events", when="NEW.action = 'drilldown_viewed'")
    at = review_page()
    email_id = queue_emails(at)[0]
    caplog.clear()
    at.query_params["email_id"] = str(email_id)
    at.run()
    assert_reported_once(
        at, sentry, caplog, page="review", filters=filters.describe(applied_filter(at))
    )
    assert at.main.subheader.len == 0


# --------------------------------------------------------------------------- the queue


def test_queue_shows_who_holds_each_item(db: Engine) -> None:
    at = review_page()
    shown = queue_table(at)
    assert set(shown["Held by"]) == {"—"}
    target = int(shown["Email"].iloc[3])
    report_id = item_of(db, target).report_id
    claim = commit(db, lambda s: review.claim_report(s, report_id=report_id, reviewer=OTHER))
    # Claims made elsewhere show up once the short-lived holder cache expires.
    st.cache_data.clear()
    at.run()
    holder = held_text(OTHER, claim.expires_at)
    shown = queue_table(at).set_index("Email")
    assert shown.loc[target, "Held by"] == holder
    assert set(shown.drop(index=target)["Held by"]) == {"—"}
    # Sorting and filtering still follow reportlib.queries, holder column and all.
    flt = applied_filter(at)
    assert_default_filter(flt)
    at.selectbox(key="queue_sort").set_value("lowest_confidence").run()
    assert_clean(at)
    lowest = in_db(
        db, lambda s: queries.review_queue_page(s, flt=flt, sort="lowest_confidence", limit=50)
    )
    shown = queue_table(at)
    assert shown["Email"].tolist() == lowest["email_id"].tolist()
    assert shown.set_index("Email").loc[target, "Held by"] == holder
    route = item_of(db, target).confidence_route
    at.multiselect(key="filter_routes").set_value([route]).run()
    assert_clean(at)
    routed = ReportFilter(flt.start, flt.end, routes=(route,))
    expected = in_db(
        db, lambda s: queries.review_queue_page(s, flt=routed, sort="lowest_confidence", limit=50)
    )
    shown = queue_table(at)
    assert shown["Email"].tolist() == expected["email_id"].tolist()
    assert shown.set_index("Email").loc[target, "Held by"] == holder
    assert [b.key for b in at.get("download_button")] == ["csv_queue"]


def test_the_static_queue_opens_an_email_from_its_list(db: Engine) -> None:
    at = review_page(interactive=False)
    assert len(at.dataframe) == 0  # no data grid in the static view
    flt = applied_filter(at)
    first_page = in_db(db, lambda s: queries.review_queue_page(s, flt=flt, limit=50))
    emails = [int(e) for e in first_page["email_id"]]
    shown = "".join(str(block.proto.body) for block in at.get("html"))
    assert shown.count("<tr>") == len(emails) + 1
    pick = next(box for box in at.selectbox if str(box.key).startswith("queue_pick_"))
    assert [option.split(" (")[0] for option in pick.options] == [f"Email {e}" for e in emails]
    assert all(option.endswith(" old)") for option in pick.options)
    pick.set_value(emails[2]).run()
    assert_clean(at)
    assert at.query_params["email_id"] == str(emails[2])
    assert at.button(key="close_drilldown") is not None
    # Closing the drill-down empties the list's choice, so it does not reopen.
    at.button(key="close_drilldown").click().run()
    assert_clean(at)
    assert "email_id" not in at.query_params
    pick = next(box for box in at.selectbox if str(box.key).startswith("queue_pick_"))
    assert pick.value is None


def test_queue_statistics_move_with_a_decision(db: Engine) -> None:
    clear_of_utc_midnight(180)  # "resolved today" is compared before and after a decision
    at = review_page()
    at.session_state["review_tab"] = "Statistics"
    at.run()
    assert_clean(at)
    flt = applied_filter(at)
    assert_default_filter(flt)
    start, end = review_data.window(flt)
    stats = in_db(db, lambda s: review.get_queue_stats(s, start=start))
    assert {
        label: metric(at, label) for label in ("Open now", "Claimed now", "Resolved today")
    } == {
        "Open now": ui.fmt_int(stats.open_count),
        "Claimed now": ui.fmt_int(stats.claimed_count),
        "Resolved today": ui.fmt_int(stats.resolved_today),
    }
    median_hours = (stats.median_seconds_to_decision or 0) / 3600
    assert stats.median_seconds_to_decision is not None and 1 <= median_hours < 48
    assert metric(at, "Median to decision") == f"{median_hours:.1f} h"
    throughput = at.dataframe[0].value
    assert throughput["Reviewer"].tolist() == [r.reviewer for r in stats.throughput]
    assert throughput["Decisions"].tolist() == [r.decisions for r in stats.throughput]
    # Productivity: the library's figures, shown in the page's units, in their own table.
    productivity = at.dataframe[1].value
    assert productivity["Reviewer"].tolist() == [r.reviewer for r in stats.throughput]
    expected_rates = [
        math.nan if r.items_per_active_hour is None else r.items_per_active_hour
        for r in stats.throughput
    ]
    assert productivity["Per active hour"].tolist() == pytest.approx(expected_rates, nan_ok=True)
    assert productivity["Changed"].tolist() == pytest.approx(
        [100 * r.changed_share for r in stats.throughput]
    )
    minutes = [
        math.nan if r.median_seconds_per_item is None else r.median_seconds_per_item / 60
        for r in stats.throughput
    ]
    assert productivity["Minutes per item"].tolist() == pytest.approx(minutes, nan_ok=True)
    assert len(at.get("plotly_chart")) == 1
    assert REVIEWER not in throughput["Reviewer"].tolist()

    # Decide one item through the panel, then look again.
    at.button(key="review_next").click().run()
    assert at.session_state["review_tab"] == "Queue"
    item = item_of(db, int(at.query_params["email_id"]))
    plan, outcome = plan_verdicts(item)
    fill_form(at, item, plan)
    choose_outcome(at, item, outcome)
    submit(at, item)
    assert_clean(at)
    at.session_state["review_tab"] = "Statistics"
    at.run()
    after = in_db(db, lambda s: review.get_queue_stats(s, start=start))
    assert after.open_count == stats.open_count - 1
    assert after.resolved_today == stats.resolved_today + 1
    assert metric(at, "Open now") == ui.fmt_int(after.open_count)
    assert metric(at, "Resolved today") == ui.fmt_int(after.resolved_today)
    throughput = at.dataframe[0].value.set_index("Reviewer")
    assert throughput.loc[REVIEWER, "Decisions"] == 1
    assert throughput.loc[REVIEWER, outcome.capitalize()] == 1


# --------------------------------------------------------------------------- quality


def quality_page() -> AppTest:
    at = new_app()
    at.run()
    at.switch_page("views/quality.py").run()
    assert_clean(at)
    return at


def _window(at: AppTest) -> tuple[dt.datetime, dt.datetime]:
    """The UTC window of the filter the page applied (the default one)."""
    flt = applied_filter(at)
    assert_default_filter(flt)
    return review_data.window(flt)


def _default_window() -> tuple[dt.datetime, dt.datetime]:
    """The default window of today, for tests that compare no page with the database."""
    return review_data.window(filters.default_filter(filters.utc_today()))


def test_quality_page_shows_reportlib_numbers(db: Engine) -> None:
    at = quality_page()
    start, end = _window(at)
    calibration = in_db(db, lambda s: quality.get_calibration(s, start=start, end=end))
    whatif = in_db(db, lambda s: quality.get_review_threshold_what_if(s, start=start, end=end))
    missing = in_db(db, lambda s: quality.get_missing_outcomes(s, start=start, end=end))
    assert calibration.overall.n > 50 and missing.overall.n > 0
    assert [t.value for t in at.title] == ["Quality"]
    assert len(at.get("plotly_chart")) == 3
    overall = calibration.overall
    assert {
        label: metric(at, label)
        for label in (
            "Verdicts",
            "Mean confidence",
            "Verified correct",
            "Expected calibration error",
        )
    } == {
        "Verdicts": ui.fmt_int(overall.n),
        "Mean confidence": ui.fmt_confidence(overall.mean_confidence),
        "Verified correct": ui.fmt_pct(overall.accuracy),
        "Expected calibration error": ui.fmt_confidence(overall.ece),
    }
    bins = at.dataframe[0].value
    assert bins["Verdicts"].tolist() == [b.n for b in overall.bins]
    assert bins["Correct"].tolist() == [b.correct for b in overall.bins]
    per_field = at.dataframe[1].value
    assert per_field["Field"].tolist() == ["All fields"] + [
        f.field_name for f in calibration.fields
    ]
    assert per_field["Verdicts"].tolist() == [p.n for p in (overall, *calibration.fields)]
    assert per_field["ECE"].tolist() == pytest.approx(
        [p.ece for p in (overall, *calibration.fields)]
    )
    whatif_shown = at.dataframe[2].value
    rows = [r for r in whatif.rows if r.field_name is None]
    assert whatif_shown["Threshold"].tolist() == [r.threshold for r in rows]
    assert whatif_shown["Sent to review"].tolist() == [r.sent_to_review for r in rows]
    assert whatif_shown["Wrong passed"].tolist() == [r.wrong_passed for r in rows]
    at_08 = next(r for r in rows if r.threshold == 0.8)
    assert metric(at, "Sent to review") == ui.fmt_pct(at_08.review_share)
    assert metric(at, "Wrong values passing unreviewed") == ui.fmt_pct(at_08.wrong_escape_share)
    missing_shown = at.dataframe[3].value
    assert missing_shown["Field"].tolist() == ["All fields"] + [
        m.field_name for m in missing.fields
    ]
    assert missing_shown["Missed"].tolist() == [m.missed for m in missing.rows()]
    assert missing_shown["Truly absent"].tolist() == [m.truly_absent for m in missing.rows()]

    # One field, and another threshold.
    debt = next(f for f in calibration.fields if f.field_name == "debt_amount")
    at.selectbox(key="quality_field").set_value("debt_amount").run()
    assert metric(at, "Verdicts") == ui.fmt_int(debt.n)
    assert metric(at, "Expected calibration error") == ui.fmt_confidence(debt.ece)
    at.selectbox(key="whatif_field").set_value("debt_amount").run()
    at.select_slider(key="whatif_threshold").set_value(0.9).run()
    debt_09 = next(r for r in whatif.rows if r.field_name == "debt_amount" and r.threshold == 0.9)
    assert metric(at, "Sent to review") == ui.fmt_pct(debt_09.review_share)
    assert metric(at, "Wrong among passed values") == ui.fmt_pct(debt_09.wrong_passed_share)
    assert len(at.get("download_button")) == 4
    assert_clean(at)


def test_quality_verdict_count_rises_after_a_decision(db: Engine) -> None:
    at = quality_page()
    start, end = _window(at)
    before = in_db(db, lambda s: quality.get_calibration(s, start=start, end=end)).overall.n
    assert metric(at, "Verdicts") == ui.fmt_int(before)
    at.switch_page("views/review.py").run()
    at.text_input(key="review_name_input").set_value(REVIEWER).run()
    at.button(key="review_next").click().run()
    item = item_of(db, int(at.query_params["email_id"]))
    plan, outcome = plan_verdicts(item)
    fill_form(at, item, plan)
    choose_outcome(at, item, outcome)
    submit(at, item)
    assert_clean(at)
    at.switch_page("views/quality.py").run()
    after = in_db(db, lambda s: quality.get_calibration(s, start=start, end=end)).overall.n
    extracted = sum(1 for f in item.fields if not f.was_missing and f.confidence is not None)
    # The item may be older than the default window; count only what the window holds.
    in_window = start <= item.created_at < end
    assert after == before + (extracted if in_window else 0)
    assert metric(at, "Verdicts") == ui.fmt_int(after)


def test_quality_page_without_reviews_is_friendly(unreviewed_db: Engine) -> None:
    at = quality_page()
    assert [i.value for i in at.info] == [
        "No reviewed reports in this period yet. Once reviewers decide on flagged reports, "
        "this page shows how well the confidences match their verdicts. Widen the date "
        "range, or review some items in the Review queue."
    ]
    assert len(at.get("plotly_chart")) == 0 and len(at.dataframe) == 0


def test_quality_page_for_an_old_window_is_friendly(db: Engine) -> None:
    at = new_app()
    at.query_params.update({"start": "2020-01-01", "end": "2020-01-31"})
    at.run()
    at.switch_page("views/quality.py").run()
    assert_clean(at)
    assert len(at.info) == 1 and "No reviewed reports in this period yet" in at.info[0].value


def test_quality_page_on_an_empty_database(
    tmp_path: Path, use_database: Callable[[str], None]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    use_database(url)
    at = quality_page()
    assert len(at.info) == 1 and "no processing reports in the database yet" in at.info[0].value


def test_frames_for_tables_follow_reportlib(db: Engine) -> None:
    start, end = _default_window()
    calibration = in_db(db, lambda s: quality.get_calibration(s, start=start, end=end))
    bins = review_data.calibration_bins(calibration, "debt_amount")
    part = next(f for f in calibration.fields if f.field_name == "debt_amount")
    assert bins[["n", "correct"]].to_dict("records") == [
        {"n": b.n, "correct": b.correct} for b in part.bins
    ]
    gaps = [
        None if b.accuracy is None or b.mean_confidence is None else b.accuracy - b.mean_confidence
        for b in part.bins
    ]
    assert [None if pd.isna(g) else g for g in bins["gap"]] == pytest.approx(gaps)
    flt = ReportFilter(dt.date(2020, 1, 1), dt.date(2020, 1, 2))
    assert review_data.window(flt) == (
        dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2020, 1, 3, tzinfo=dt.UTC),
    )


# --------------------------------------------------------------------------- chart builders


def test_chart_builders_draw_what_the_frames_hold(db: Engine) -> None:
    start, end = _default_window()
    calibration = in_db(db, lambda s: quality.get_calibration(s, start=start, end=end))
    whatif = in_db(db, lambda s: quality.get_review_threshold_what_if(s, start=start, end=end))
    missing = in_db(db, lambda s: quality.get_missing_outcomes(s, start=start, end=end))

    bins = review_data.calibration_bins(calibration, None)
    figure = quality_charts.reliability_diagram(bins, title="All", ece=calibration.overall.ece)
    diagonal, points = figure.data
    filled = [b for b in calibration.overall.bins if b.n]
    assert list(diagonal.x) == [0, 1] and list(diagonal.y) == [0, 100]
    assert list(points.x) == pytest.approx([b.mean_confidence for b in filled])
    assert list(points.y) == pytest.approx([b.accuracy * 100 for b in filled])  # type: ignore[operator]
    assert list(points.text) == [f"n={b.n:,}" for b in filled]
    assert figure.layout.title.text == f"All · ECE {calibration.overall.ece:.3f}"

    table = review_data.whatif_table(whatif, None)
    figure = quality_charts.threshold_tradeoff(table, selected=0.8, title="Trade-off")
    line, chosen = figure.data
    rows = [r for r in whatif.rows if r.field_name is None]
    assert list(line.x) == pytest.approx([r.review_share * 100 for r in rows])  # type: ignore[operator]
    at_08 = next(r for r in rows if r.threshold == 0.8)
    assert list(chosen.x) == pytest.approx([at_08.review_share * 100])  # type: ignore[operator]
    labels = [text for text in line.text if text]
    assert "0.80" in labels and len(labels) == len(set(labels))
    # No two labelled points sit on top of each other.
    placed = [(x, y) for x, y, text in zip(line.x, line.y, line.text, strict=True) if text]
    gaps = [math.dist(a, b) for i, a in enumerate(placed) for b in placed[i + 1 :]]
    assert len(placed) >= 3 and min(gaps) >= 4.0

    frame = review_data.missing_table(missing)
    figure = quality_charts.missing_outcomes(frame)
    missed, absent = figure.data
    assert list(missed.x)[::-1] == [row.missed for row in missing.rows()]
    assert list(absent.x)[::-1] == [row.truly_absent for row in missing.rows()]
    assert list(missed.y)[::-1] == ["All fields"] + [row.field_name for row in missing.fields]


@pytest.mark.postgres
def test_statistics_and_quality_on_postgresql(
    seeded_postgres: SeededDatabase, use_database: Callable[[str], None]
) -> None:
    use_database(seeded_postgres.url)
    at = review_page(name=None)
    at.session_state["review_tab"] = "Statistics"
    at.run()
    assert_clean(at)
    stats = in_db(
        seeded_postgres.engine,
        lambda s: review.get_queue_stats(s, start=_window(at)[0]),
    )
    assert metric(at, "Open now") == ui.fmt_int(stats.open_count)
    assert at.dataframe[0].value["Decisions"].tolist() == [r.decisions for r in stats.throughput]
    at = quality_page()
    start, end = _window(at)
    calibration = in_db(
        seeded_postgres.engine, lambda s: quality.get_calibration(s, start=start, end=end)
    )
    assert calibration.overall.n > 0
    assert metric(at, "Verdicts") == ui.fmt_int(calibration.overall.n)
    assert metric(at, "Expected calibration error") == ui.fmt_confidence(calibration.overall.ece)
    assert len(at.get("plotly_chart")) == 3
