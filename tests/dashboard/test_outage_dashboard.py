"""The dashboard through a database outage: a private TCP proxy in front of the real
PostgreSQL, switched off, black-holed and back on by the test (the shared server itself
is never touched).

Every page must show a clear message within seconds, with no traceback, SQL, host or
value, even when its numbers are still cached; and the next run after the database is
back must work in the same process, with the same cached engine. The time bounds check
that the timeouts fire at all; they are not speed targets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from streamlit.testing.v1 import AppTest

from dashboard import boundary
from reportlib.health import TIMEOUT_MESSAGE, UNREACHABLE_MESSAGE
from tests.dashboard.helpers import HOSTILE_SUBJECT, HOSTILE_VALUES, SeededDatabase, new_app
from tests.dashboard.server import streamlit_server
from tests.test_outage import TcpProxy

pytestmark = pytest.mark.postgres

CONNECT_TIMEOUT_S = 2
STATEMENT_TIMEOUT_MS = 1500
OUTAGE_BOUND_S = 15.0  # "a clear message within seconds", with room for a busy machine
PAGES = {
    "views/overview.py": "Overview",
    "views/confidence.py": "Confidence",
    "views/missing_fields.py": "Missing fields",
    "views/review.py": "Review queue",
    "views/quality.py": "Quality",
    "views/audit.py": "Audit log",
}


@pytest.fixture
def proxy(seeded_postgres: SeededDatabase) -> Iterator[TcpProxy]:
    url = make_url(seeded_postgres.url)
    tcp_proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    tcp_proxy.start()
    yield tcp_proxy
    tcp_proxy.stop()


def proxied_url(database: SeededDatabase, proxy: TcpProxy) -> str:
    url = make_url(database.url).set(host="127.0.0.1", port=proxy.port)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def through_proxy(
    seeded_postgres: SeededDatabase,
    proxy: TcpProxy,
    use_database: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """Point the in-process dashboard at the proxy, with short timeouts."""
    url = proxied_url(seeded_postgres, proxy)
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", str(CONNECT_TIMEOUT_S))
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", str(STATEMENT_TIMEOUT_MS))
    use_database(url)  # re-reads the settings
    return url


def assert_outage_message(at: AppTest, expected: str, proxy: TcpProxy) -> None:
    """One calm error, nothing else of the page, nothing leaked."""
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == [f"{expected} {boundary.RETRY}"]
    assert len(at.dataframe) == 0 and len(at.get("plotly_chart")) == 0
    shown = " ".join(
        str(element.value)
        for element in [*at.error, *at.warning, *at.info, *at.markdown, *at.text, *at.code]
    )
    for leak in ("SELECT", "Traceback", "psycopg2", str(proxy.port), "127.0.0.1", "postgres"):
        assert leak not in shown
    for value in [*HOSTILE_VALUES.values(), HOSTILE_SUBJECT]:
        assert str(value) not in shown


def assert_page_works(at: AppTest, title: str) -> None:
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == []
    assert [t.value for t in at.title] == [title]


def timed_run(at: AppTest) -> float:
    started = time.monotonic()
    at.run()
    return time.monotonic() - started


def test_every_page_reports_a_refused_database_and_recovers(
    through_proxy: str, proxy: TcpProxy
) -> None:
    at = new_app()
    at.run()
    assert_page_works(at, "Overview")  # numbers now cached, engine pooled
    proxy.stop()  # refuses new connections and resets the pooled ones
    for script, _title in PAGES.items():
        at.switch_page(script)
        elapsed = timed_run(at)
        assert_outage_message(at, UNREACHABLE_MESSAGE, proxy)
        assert elapsed < OUTAGE_BOUND_S, f"{script}: {elapsed:.1f} s"
        # The filters survive the outage (widgets left out of a run would lose them).
        assert at.date_input(key="filter_dates").value is not None
    proxy.forward()
    for script, title in PAGES.items():
        at.switch_page(script).run()  # the next run just works: same process, same engine
        assert_page_works(at, title)
    assert len(at.dataframe) >= 1


def test_cached_numbers_do_not_hide_an_outage(through_proxy: str, proxy: TcpProxy) -> None:
    at = new_app()
    at.run()
    assert_page_works(at, "Overview")
    first = [m.value for m in at.metric]
    at.run()  # served from the cache now
    assert [m.value for m in at.metric] == first
    proxy.stop()
    at.run()
    assert_outage_message(at, UNREACHABLE_MESSAGE, proxy)
    assert len(at.metric) == 0
    proxy.forward()
    at.run()
    assert_page_works(at, "Overview")
    assert [m.value for m in at.metric] == first


def test_an_unanswered_connection_ends_at_the_connect_timeout(
    through_proxy: str, proxy: TcpProxy
) -> None:
    at = new_app()
    at.run()
    assert_page_works(at, "Overview")
    proxy.blackhole()  # connections are accepted and never answered
    elapsed = timed_run(at)
    assert_outage_message(at, UNREACHABLE_MESSAGE, proxy)
    assert CONNECT_TIMEOUT_S - 0.5 <= elapsed < OUTAGE_BOUND_S
    proxy.forward()
    at.run()
    assert_page_works(at, "Overview")


def test_a_stuck_query_is_cancelled_by_the_statement_timeout(
    seeded_postgres: SeededDatabase, through_proxy: str, proxy: TcpProxy
) -> None:
    at = new_app()
    at.run()  # the overview, so the page below has nothing cached yet
    at.switch_page("views/missing_fields.py")
    locker = create_engine(make_url(seeded_postgres.url).set(drivername="postgresql+psycopg2"))
    try:
        with locker.connect() as connection:
            transaction = connection.begin()
            # Everything that reads the reports now waits for this lock, as behind a slow
            # migration or a runaway query; SELECT 1 still answers.
            connection.execute(text("LOCK TABLE processing_reports IN ACCESS EXCLUSIVE MODE"))
            elapsed = timed_run(at)
            transaction.rollback()
    finally:
        locker.dispose()
    assert_outage_message(at, TIMEOUT_MESSAGE, proxy)
    assert STATEMENT_TIMEOUT_MS / 1000 - 0.5 <= elapsed < OUTAGE_BOUND_S
    at.run()
    assert_page_works(at, "Missing fields")


# ---- the real server ---------------------------------------------------------------------


@pytest.mark.browser
def test_streamlit_server_survives_an_outage(
    seeded_postgres: SeededDatabase,
    proxy: TcpProxy,
    page: Page,
    tmp_path: Path,
) -> None:
    timeouts = {
        "DB_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
        "DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS),
    }
    with streamlit_server(proxied_url(seeded_postgres, proxy), tmp_path, env=timeouts) as server:
        page.goto(f"{server.base}/missing-fields")
        _expect_charts(page)

        proxy.stop()
        started = time.monotonic()
        page.reload()
        alert = page.locator('[data-testid="stAlertContentError"]')
        expect(alert).to_be_visible()
        elapsed = time.monotonic() - started
        message = alert.inner_text()
        assert UNREACHABLE_MESSAGE in message and "try again" in message
        assert elapsed < OUTAGE_BOUND_S + 5  # plus the page load itself
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stPlotlyChart"]').count() == 0
        body = page.locator("body").inner_text()
        for leak in ("SELECT", "Traceback", str(proxy.port), "psycopg2"):
            assert leak not in body

        proxy.forward()
        page.reload()  # same server process, same cached engine
        _expect_charts(page)
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    log_text = server.log.read_text()
    assert "SELECT" not in log_text, log_text[-3000:]


def _expect_charts(page: Page) -> None:
    expect(page.locator("h1", has_text="Missing fields")).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible()
