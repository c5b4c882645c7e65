"""Real browser against ``streamlit run``: pages render, downloads work, links open the
drill-down and hostile values stay inert text. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.helpers import (
    HOSTILE_INTENT,
    HOSTILE_REASON,
    HOSTILE_SUBJECT,
    HOSTILE_VALUES,
    SeededDatabase,
)
from tests.dashboard.server import open_filters, screenshot, streamlit_server, wait_idle

pytestmark = pytest.mark.browser

PAGES = {
    "overview": ("", "Overview", 3),
    "confidence": ("confidence", "Confidence", 5),
    "missing-fields": ("missing-fields", "Missing fields", 5),
    "review": ("review", "Review queue", 0),
}


@pytest.fixture(scope="module")
def server(
    seeded_sqlite: SeededDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` on 127.0.0.1 against the seeded database."""
    with streamlit_server(seeded_sqlite.url, tmp_path_factory.mktemp("streamlit")) as running:
        yield running.base


def _open(page: Page, url: str, title: str, charts: int, *, table: bool = True) -> None:
    page.goto(url)
    expect(page.locator("h1", has_text=title)).to_be_visible()
    if table:
        expect(page.locator('[data-testid="stDataFrame"] canvas').first).to_be_visible()
    if charts:
        expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible()
        expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(charts)
    wait_idle(page)


def _assert_no_exception(page: Page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0


@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_in_the_browser(
    server: str, page: Page, artifacts_dir: Path, name: str
) -> None:
    path, title, charts = PAGES[name]
    _open(page, f"{server}/{path}", title, charts)
    _assert_no_exception(page)
    assert page.locator('[data-testid="stDataFrame"]').count() >= 1
    for chart in page.locator('[data-testid="stPlotlyChart"]').all():
        # Every chart has a title and drew marks, so none is empty.
        assert chart.locator(".gtitle").count() == 1
        assert chart.locator(".trace, .hm, .heatmaplayer image").count() >= 1
    # The filters are in the URL, so the view can be shared.
    assert "start=" in page.url and "end=" in page.url
    screenshot(page, artifacts_dir, name)


def test_filters_survive_a_page_change(server: str, page: Page) -> None:
    _open(page, f"{server}/?route=low", "Overview", 3)
    page.get_by_role("link", name="Confidence").click()
    expect(page.locator("h1", has_text="Confidence")).to_be_visible()
    page.wait_for_url("**/confidence?**route=low**")
    wait_idle(page)
    assert "route=low" in page.url


def test_a_filter_change_updates_the_label_and_keeps_the_popover_open(
    server: str, page: Page, artifacts_dir: Path
) -> None:
    _open(page, f"{server}/", "Overview", 3)
    button = page.locator('.st-key-filters_popover [data-testid="stPopoverButton"]')
    expect(button.filter(visible=True)).to_contain_text("all routes")
    filters_body = open_filters(page)
    route = filters_body.locator('[data-testid="stMultiSelect"]').filter(has_text="Route")
    route.locator('[role="combobox"], input').first.click()
    page.get_by_role("option", name="Low").click()
    page.wait_for_url("**route=low**")
    wait_idle(page)
    expect(button.filter(visible=True)).to_contain_text("Low route")
    expect(filters_body).to_be_visible()
    screenshot(page, artifacts_dir, "filters-popover")
    page.locator("h1", has_text="Overview").click()  # a click outside closes it
    expect(filters_body).to_be_hidden()


def test_csv_downloads(server: str, page: Page) -> None:
    _open(page, f"{server}/", "Overview", 3)
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download daily figures (CSV)").click()
    download = caught.value
    assert download.suggested_filename.startswith("overview_daily_")
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows[0] == [
        "day",
        "reports",
        "high",
        "medium",
        "low",
        "flagged",
        "needs_review_rate",
        "avg_confidence",
    ]
    assert len(rows) == 31 and sum(int(row[1]) for row in rows[1:]) > 100

    _open(page, f"{server}/review", "Review queue", 0)
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download the filtered queue (CSV)").click()
    rows = list(csv.reader(io.StringIO(Path(caught.value.path()).read_text(encoding="utf-8"))))
    assert rows[0] == [
        "email_id",
        "created_at",
        "review_reason",
        "intent",
        "confidence_route",
        "overall_confidence",
        "missing_fields",
    ]
    assert len(rows) > 2


def test_deep_link_shows_drilldown_with_inert_values(
    server: str, page: Page, artifacts_dir: Path, seeded_sqlite: SeededDatabase
) -> None:
    outside_requests: list[str] = []
    page.on(
        "request",
        lambda request: (
            outside_requests.append(request.url) if not request.url.startswith(server) else None
        ),
    )
    page.on("dialog", lambda dialog: outside_requests.append(f"dialog:{dialog.message}"))
    email_id = seeded_sqlite.hostile_email_id
    _open(page, f"{server}/review?email_id={email_id}", "Review queue", 0)
    drilldown = page.locator(".st-key-drilldown")
    expect(drilldown).to_be_visible()
    expect(drilldown.get_by_text(f"Email {email_id}")).to_be_visible()
    for value in [
        HOSTILE_VALUES["client_name"],
        HOSTILE_VALUES["creditor_name"],
        HOSTILE_VALUES["debt_amount"],
        HOSTILE_SUBJECT,
        HOSTILE_INTENT,
        HOSTILE_REASON,
    ]:
        expect(drilldown.get_by_text(value, exact=True)).to_be_visible()
    expect(drilldown.get_by_text(", ".join(HOSTILE_VALUES["reference_numbers"]))).to_be_visible()
    _assert_no_exception(page)
    assert page.evaluate("() => window.__xss") is None
    assert (
        page.locator("img[src='x'], script:has-text('__xss'), a[href^='javascript']").count() == 0
    )
    assert page.locator("img[src*='127.0.0.1:9']").count() == 0
    assert "email_id=" in page.url
    screenshot(page, artifacts_dir, "review-drilldown")
    # The hostile intent as a selected filter (a tag in the filter popover), in chart labels
    # and tables: still nothing ran or loaded.
    _open(page, f"{server}/confidence?intent={quote(HOSTILE_INTENT)}", "Confidence", 5)
    expect(open_filters(page).get_by_text(HOSTILE_INTENT)).to_be_visible()
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("img[src='x']").count() == 0
    assert outside_requests == []


def test_selecting_a_row_opens_the_drilldown(server: str, page: Page) -> None:
    _open(page, f"{server}/review", "Review queue", 0)
    grid = page.locator('[data-testid="stDataFrame"]').first
    expect(grid).to_be_visible()
    box = grid.bounding_box()
    assert box is not None
    # The row-selection column is at the left edge; the first data row sits under the
    # header row (both about 35 px high).
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 17)
    page.wait_for_url("**email_id=**")
    expect(page.locator(".st-key-drilldown")).to_be_visible()
    wait_idle(page)
    _assert_no_exception(page)


@pytest.mark.parametrize("raw", ["abc", "99999999999", "123456789"])
def test_bad_deep_links_get_a_message(server: str, page: Page, raw: str) -> None:
    _open(page, f"{server}/review?email_id={raw}", "Review queue", 0)
    expect(page.locator('[data-testid="stAlertContentWarning"]')).to_be_visible()
    assert page.locator(".st-key-drilldown").count() == 0
    _assert_no_exception(page)
