"""Real browser against ``streamlit run``: a reviewer claims, decides and moves on, and the
queue, its statistics and the quality page follow. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reportlib import migrate, quality, review
from reportlib.db import make_engine
from reportlib.demo import seed_demo
from reportlib.demo_review import seed_review_history
from reportlib.review import ReviewItem
from tests.clock import clear_of_utc_midnight
from tests.dashboard.server import screenshot, streamlit_server, wait_idle

pytestmark = pytest.mark.browser

REVIEWER = "Rita Reviewer"
CORRECTED = "Hanse Inkasso GmbH"
QUEUE_CAPTION = re.compile(r"^([\d,]+) open items created")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, demo_now: dt.datetime) -> Iterator[Engine]:
    """A seeded SQLite file of its own (this test writes): 25 days of reports before
    ``demo_now``, so normally all within the dashboard's default 30-day window."""
    url = f"sqlite:///{tmp_path_factory.mktemp('review_browser') / 'review.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with Session(engine) as session:
        seed_demo(session, count=240, seed=31, days=25, now=demo_now)
        seed_review_history(session, rng=random.Random(3), now=demo_now, share=0.7)
        session.commit()
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def server(database: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` on 127.0.0.1 against the module's database."""
    with streamlit_server(
        database.url.render_as_string(hide_password=False),
        tmp_path_factory.mktemp("review_streamlit"),
    ) as running:
        yield running.base


# --------------------------------------------------------------------------- helpers


def assert_no_error(page: Page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0


def queue_count(page: Page) -> int:
    caption = page.get_by_text(QUEUE_CAPTION)
    expect(caption).to_be_visible()
    match = QUEUE_CAPTION.match(caption.inner_text().strip())
    assert match is not None
    return int(match.group(1).replace(",", ""))


def metric_value(page: Page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(f"^{label}$"))
    )
    expect(metric).to_have_count(1)
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def item_of(database: Engine, email_id: int) -> ReviewItem:
    with Session(database) as session:
        item = review.get_review_item(session, email_id=email_id)
    assert item is not None
    return item


def prefix_of(item: ReviewItem) -> str:
    return f"rv_{item.report_id}_{int(item.created_at.timestamp() * 1_000_000)}"


def option(page: Page, key: str, label: str) -> Locator:
    return page.locator(f".st-key-{key}").get_by_role("radio", name=label, exact=True)


def open_email(page: Page) -> int:
    # The page sets ?email_id= through the history API after a rerun; poll the address
    # rather than wait for a navigation event a loaded machine may deliver late.
    page.wait_for_function("() => /[?&]email_id=\\d+/.test(window.location.href)")
    match = re.search(r"email_id=(\d+)", page.url)
    assert match is not None
    email_id = int(match.group(1))
    expect(page.locator(".st-key-drilldown").get_by_text(f"Email {email_id}")).to_be_visible()
    wait_idle(page)
    return email_id


def default_window() -> tuple[dt.datetime, dt.datetime]:
    """The dashboard's default window today: the last 30 UTC days."""
    today = dt.datetime.now(dt.UTC).date()
    start = dt.datetime.combine(today - dt.timedelta(days=29), dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    return start, end


def verdicts_in_window(database: Engine) -> int:
    start, end = default_window()
    with Session(database) as session:
        return quality.get_calibration(session, start=start, end=end).overall.n


# --------------------------------------------------------------------------- the walk


def test_claim_decide_next_item_in_the_browser(
    server: str, page: Page, database: Engine, artifacts_dir: Path
) -> None:
    # The server's "today" and this test's must be the same UTC day throughout.
    clear_of_utc_midnight(300)
    # The quality page before any work.
    page.goto(f"{server}/quality")
    expect(page.locator("h1", has_text="Quality")).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible()
    wait_idle(page)
    verdicts_before = verdicts_in_window(database)
    assert metric_value(page, "Verdicts") == f"{verdicts_before:,}"

    # The queue; the reviewer gives their name once.
    page.goto(f"{server}/review")
    expect(page.locator("h1", has_text="Review queue")).to_be_visible()
    expect(page.locator('[data-testid="stDataFrame"] canvas').first).to_be_visible()
    wait_idle(page)
    open_before = queue_count(page)
    next_button = page.locator(".st-key-review_next").get_by_role("button", name="Next item")
    expect(next_button).to_be_disabled()
    name = page.get_by_role("textbox", name="Your name, recorded with your review decisions")
    name.fill(REVIEWER)
    name.press("Enter")
    expect(page.locator(".st-key-review_identity").get_by_text(REVIEWER)).to_be_visible()
    expect(next_button).to_be_enabled()

    # Next item claims the oldest free item and opens it.
    wait_idle(page)  # the rerun after the name must finish before the click lands
    next_button.click()
    email_id = open_email(page)
    item = item_of(database, email_id)
    assert item.claim is not None and item.claim.reviewer == REVIEWER
    # The oldest item lies in the default window unless --demo-now is far back; the
    # queue count and the verdicts on the quality page count only what the window holds.
    start, end = default_window()
    in_window = start <= item.created_at < end
    panel = page.locator(".st-key-review_panel")
    expect(panel.get_by_text("You hold this report until")).to_be_visible()

    # Verdicts: the first text value is wrong and gets corrected, the rest are right;
    # fields marked missing are truly absent.
    prefix = prefix_of(item)
    corrected_index = next(
        i for i, f in enumerate(item.fields) if not f.was_missing and isinstance(f.value, str)
    )
    for index, field in enumerate(item.fields):
        key = f"{prefix}_verdict_{index}"
        if index == corrected_index:
            option(page, key, "Wrong: correct it").click()
            value_input = page.locator(f".st-key-{prefix}_value_{index} input")
            expect(value_input).to_be_visible()
            value_input.fill(CORRECTED)
            value_input.press("Enter")
        elif field.was_missing:
            option(page, key, "Truly absent").click()
        else:
            option(page, key, "Correct").click()
        wait_idle(page)
    expect(panel.get_by_text("From your verdicts: Corrected.")).to_be_visible()
    option(page, f"{prefix}_outcome", "Corrected").click()
    wait_idle(page)
    note = page.locator(f".st-key-{prefix}_note textarea")
    note.fill("Name taken from the letterhead.")
    note.press("Tab")
    wait_idle(page)
    assert_no_error(page)
    panel.scroll_into_view_if_needed()
    screenshot(page, artifacts_dir, "review_panel")

    page.locator(f".st-key-{prefix}_submit").get_by_role("button", name="Submit decision").click()
    expect(panel.get_by_text("Decision recorded: Corrected.")).to_be_visible()
    wait_idle(page)
    assert_no_error(page)
    field_name = item.fields[corrected_index].name
    expect(panel.get_by_text(f"{field_name} → {CORRECTED}", exact=True)).to_be_visible()
    with Session(database) as session:
        history = review.get_review_history(session, report_id=item.report_id)
    assert [(d.reviewer, d.outcome) for d in history] == [(REVIEWER, "corrected")]
    assert {v.field_name: v.verdict for v in history[0].verdicts} == {
        f.name: "corrected" if i == corrected_index else ("absent" if f.was_missing else "correct")
        for i, f in enumerate(item.fields)
    }
    # The decided report left the queue.
    assert queue_count(page) == open_before - in_window

    # Next item from the success message opens the next free item.
    with Session(database) as session:
        expected = review.list_review_queue(session, claimed=False, limit=1)[0].email_id
    panel.get_by_role("button", name="Next item").click()
    page.wait_for_url(re.compile(rf"email_id={expected}(&|$)"))
    assert open_email(page) == expected
    expect(panel.get_by_text("You hold this report until")).to_be_visible()
    assert_no_error(page)

    # Queue statistics: resolved today counts the decision, the reviewer appears.
    page.get_by_role("tab", name="Statistics").click()
    expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible()
    wait_idle(page)
    with Session(database) as session:
        stats = review.get_queue_stats(session)
    assert metric_value(page, "Resolved today") == f"{stats.resolved_today:,}"
    assert metric_value(page, "Open now") == f"{stats.open_count:,}"
    assert metric_value(page, "Claimed now") == "1"
    assert REVIEWER in [r.reviewer for r in stats.throughput]
    assert_no_error(page)
    screenshot(page, artifacts_dir, "queue_stats")

    # The quality page counts the new verdicts.
    page.goto(f"{server}/quality")
    expect(page.locator("h1", has_text="Quality")).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible()
    wait_idle(page)
    extracted = sum(1 for f in item.fields if not f.was_missing and f.confidence is not None)
    added = extracted if in_window else 0
    assert verdicts_in_window(database) == verdicts_before + added
    assert metric_value(page, "Verdicts") == f"{verdicts_before + added:,}"
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(3)
    for chart in page.locator('[data-testid="stPlotlyChart"]').all():
        assert chart.locator(".gtitle").count() == 1
        assert chart.locator(".trace").count() >= 1
    assert_no_error(page)
    screenshot(page, artifacts_dir, "quality")
    # The what-if of every field, built when its button is clicked: one row per threshold
    # for all fields together and for each field.
    with page.expect_download() as caught:
        page.get_by_role("button", name="Threshold what-if, every field (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(caught.value.path()).read_text("utf-8"))))
    thresholds: dict[str, list[str]] = {}
    for row in rows:
        thresholds.setdefault(row["field"], []).append(row["threshold"])
    assert "All fields" in thresholds and len(thresholds) > 1
    assert all(found == thresholds["All fields"] for found in thresholds.values())
