"""AppTest: an audit sample is reviewed blind. Before its decision the queue, the drill-down
and the form show neither its confidences nor its route; after the decision they do, and
the audit samples have their own entry in the queue's reason filter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dashboard.drilldown import BLIND_NOTE
from dashboard.values import HIDDEN
from reportlib import migrate
from reportlib.config import get_settings
from reportlib.db import make_engine
from reportlib.demo import seed_demo
from reportlib.sampling import AUDIT_REASON
from tests.dashboard.server import screenshot, streamlit_server, wait_idle
from tests.dashboard.test_review_flow import (
    assert_clean,
    choose_outcome,
    fill_form,
    item_of,
    plan_verdicts,
    review_page,
    submit,
)
from tests.factories import checkpoints, extracted, make_report

FIELD_CONFIDENCES = ("0.92", "0.88", "0.81", "0.77")  # tests.factories.extracted()


@pytest.fixture
def database(
    tmp_path: Path,
    demo_now: dt.datetime,
    use_database: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Engine, int]]:
    """Demo reports, then one report the pipeline did not flag, written while every
    unflagged report is drawn (rate 1): an audit sample for certain."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with Session(engine) as session:
        seed_demo(session, count=80, seed=5, days=20, now=demo_now)
        monkeypatch.setenv("AUDIT_SAMPLE_RATE", "1")
        get_settings.cache_clear()
        report = make_report(
            session,
            extracted_data=extracted(),
            agent_checkpoints=checkpoints("debt_claim"),
            overall_confidence=0.93,
            confidence_route="high",
            needs_review=False,
        )
        session.commit()
        email_id = report.email_id
    monkeypatch.delenv("AUDIT_SAMPLE_RATE")
    use_database(url)
    yield engine, email_id
    engine.dispose()


def texts(at: object) -> list[str]:
    return [t.value for t in at.text]  # type: ignore[attr-defined]


def metric(at: object, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]  # type: ignore[attr-defined]
    assert len(values) == 1, label
    return str(values[0])


def test_an_audit_sample_is_reviewed_blind_until_its_decision(
    database: tuple[Engine, int],
) -> None:
    engine, email_id = database
    item = item_of(engine, email_id)
    assert (item.review_reason, item.audit_rate, item.blind) == (AUDIT_REASON, 1.0, True)

    at = review_page()
    # Its own entry in the reason filter; the queue shows no confidence and no route.
    reasons = at.multiselect(key="queue_reasons")
    assert any(option.startswith(f"{AUDIT_REASON} (") for option in reasons.options)
    reasons.set_value([AUDIT_REASON]).run()
    assert_clean(at)
    queue = at.dataframe[0].value.set_index("Email")
    assert list(queue.index) == [email_id]
    assert queue.loc[email_id, "Route"] == "—"
    assert queue["Overall confidence"].isna().all()

    # The drill-down and the form: the note, no score, no route, no field confidence.
    at.query_params["email_id"] = str(email_id)
    at.run()
    at.button(key="review_claim").click().run()
    assert_clean(at)
    assert BLIND_NOTE in [i.value for i in at.info]
    assert metric(at, "Overall confidence") == HIDDEN
    assert metric(at, "Route") == HIDDEN
    shown = " ".join(texts(at))
    assert not any(c in shown for c in FIELD_CONFIDENCES)
    assert "0.93" not in shown and "0.93" not in " ".join(m.value for m in at.metric)

    plan, outcome = plan_verdicts(item_of(engine, email_id))
    claimed = item_of(engine, email_id)
    fill_form(at, claimed, plan)
    choose_outcome(at, claimed, outcome)
    submit(at, claimed)
    assert_clean(at)

    # Decided: everything is shown again.
    at.query_params["email_id"] = str(email_id)
    at.run()
    assert BLIND_NOTE not in [i.value for i in at.info]
    assert metric(at, "Overall confidence") == "0.93"
    assert metric(at, "Route") == "High"
    assert item_of(engine, email_id).blind is False


@pytest.mark.browser
def test_the_blind_review_in_the_browser(
    database: tuple[Engine, int], page: Page, tmp_path: Path, artifacts_dir: Path
) -> None:
    engine, email_id = database
    with streamlit_server(engine.url.render_as_string(hide_password=False), tmp_path) as server:
        page.goto(f"{server.base}/review?email_id={email_id}")
        drilldown = page.locator(".st-key-drilldown")
        expect(drilldown.get_by_text("Audit sample: the pipeline did not flag")).to_be_visible()
        expect(drilldown.get_by_text(HIDDEN, exact=True).first).to_be_visible()
        wait_idle(page)
        for confidence in FIELD_CONFIDENCES:
            expect(drilldown.get_by_text(confidence, exact=True)).to_have_count(0)
        drilldown.scroll_into_view_if_needed()
        screenshot(page, artifacts_dir, "audit_sample_blind")
