"""Real browsers against real servers beyond one database and one process: the "Data as of"
notice of a lagging hot standby, and two dashboard servers on one database, each with its
own reviewer. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from reportlib import review
from reportlib.models import ProcessingReport, ReviewClaim
from reportlib.review import ReviewItem
from tests.clock import clear_of_utc_midnight
from tests.dashboard.server import (
    TIMEOUT_MS,
    VIEWPORT,
    screenshot,
    streamlit_server,
    wait_idle,
)
from tests.dashboard.test_review_browser import (
    assert_no_error,
    open_email,
    option,
    prefix_of,
    queue_count,
)
from tests.replica import StreamingPair, pause_replay, wait_for_lag, write_reports

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

FIRST, SECOND = "Rita Reviewer", "Bruno Reviewer"


def second_tab(browser: Browser) -> Page:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    return tab


def start_reviewing(page: Page, base: str, name: str) -> int:
    """Open the queue on ``base``, give ``name`` and take the next item; its email id."""
    page.goto(f"{base}/review")
    expect(page.locator("h1", has_text="Review queue")).to_be_visible()
    wait_idle(page)
    field = page.get_by_role("textbox", name="Your name, recorded with your review decisions")
    field.fill(name)
    field.press("Enter")
    expect(page.locator(".st-key-review_identity").get_by_text(name)).to_be_visible()
    wait_idle(page)
    page.locator(".st-key-review_next").get_by_role("button", name="Next item").click()
    return open_email(page)


def item_of(engine: Engine, email_id: int) -> ReviewItem:
    with Session(engine) as session:
        item = review.get_review_item(session, email_id=email_id)
    assert item is not None
    return item


def approve(page: Page, item: ReviewItem) -> None:
    """Every extracted value right, every missing field truly absent; submit."""
    prefix = prefix_of(item)
    for index, field in enumerate(item.fields):
        label = "Truly absent" if field.was_missing else "Correct"
        option(page, f"{prefix}_verdict_{index}", label).click()
        wait_idle(page)
    option(page, f"{prefix}_outcome", "Approved").click()
    wait_idle(page)
    page.locator(f".st-key-{prefix}_submit").get_by_role("button", name="Submit decision").click()
    expect(
        page.locator(".st-key-review_panel").get_by_text("Decision recorded: Approved.")
    ).to_be_visible()
    wait_idle(page)


def test_a_lagging_replica_says_as_of_when_in_the_browser(
    pair: StreamingPair,
    primary: Engine,
    standby: Engine,
    page: Page,
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    pause_replay(standby)  # resumed by the fixture
    write_reports(primary, 1)
    lag = wait_for_lag(standby, 1.5)
    env = {"DASHBOARD_DATABASE_URL": pair.standby_url, "DASHBOARD_REPLICA_MAX_LAG_S": "1"}
    with streamlit_server(pair.primary_url, tmp_path, env=env) as server:
        page.goto(server.base)
        expect(page.locator("h1", has_text="Overview")).to_be_visible()
        notice = page.get_by_text(re.compile(r"^Data as of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))
        expect(notice).to_be_visible()
        expect(notice).to_contain_text(f"{lag.as_of.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}")
        wait_idle(page)
        assert_no_error(page)
        screenshot(page, artifacts_dir, "replica_lag_notice")


def test_two_dashboard_servers_share_claims_and_decisions(
    pair: StreamingPair,
    primary: Engine,
    page: Page,
    browser: Browser,
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    clear_of_utc_midnight(300)
    # Each server keeps its own cache: with a 2-second TTL, the other's decision shows
    # there within 2 seconds of its next run.
    env = {"DASHBOARD_CACHE_TTL_S": "2", "DASHBOARD_VIEW": "static"}
    other = second_tab(browser)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    with (
        streamlit_server(pair.primary_url, tmp_path / "a", env=env) as server_a,
        streamlit_server(pair.primary_url, tmp_path / "b", env=env) as server_b,
    ):
        first = start_reviewing(page, server_a.base, FIRST)
        second = start_reviewing(other, server_b.base, SECOND)
        assert first != second  # one item, one reviewer, across servers

        with Session(primary) as session:
            holders = dict(
                session.execute(
                    select(ProcessingReport.email_id, ReviewClaim.reviewer).join(
                        ProcessingReport, ProcessingReport.id == ReviewClaim.report_id
                    )
                ).all()
            )
        assert holders == {first: FIRST, second: SECOND}

        # The second server shows who holds the first item, read from the database.
        other.goto(f"{server_b.base}/review?email_id={first}")
        expect(
            other.locator(".st-key-review_panel").get_by_text(f"Held by {FIRST} until")
        ).to_be_visible()
        wait_idle(other)
        other.goto(f"{server_b.base}/review")
        expect(other.locator("h1", has_text="Review queue")).to_be_visible()
        wait_idle(other)
        before = queue_count(other)

        approve(page, item_of(primary, first))
        assert_no_error(page)

        # The decision reaches the second server's queue within its cache's lifetime.
        deadline = time.monotonic() + 30
        while True:
            other.goto(f"{server_b.base}/review")
            expect(other.locator("h1", has_text="Review queue")).to_be_visible()
            wait_idle(other)
            if queue_count(other) == before - 1:
                break
            assert time.monotonic() < deadline, "the decision never reached the other server"
            time.sleep(1)
        assert_no_error(other)
        screenshot(other, artifacts_dir, "second_server_queue")
    other.context.close()
