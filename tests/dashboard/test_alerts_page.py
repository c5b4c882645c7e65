"""The Alerts page: AppTest on both backends, a malformed or absent rules file, roles, and
the page in Chromium with its link followed to the view it watches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from reportlib import migrate
from reportlib.access import ROLES, can_see_alerts
from reportlib.alerts import load_rules
from reportlib.alerts.check import check_alerts
from reportlib.alerts.status import get_alert_status
from reportlib.config import get_settings
from reportlib.db import make_engine
from reportlib.demo import plant_missing_amount_spike, seed_demo
from tests.dashboard.helpers import new_app
from tests.dashboard.server import open_filters, screenshot, streamlit_server, wait_idle

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "alert_rules.example.toml"


def _seed(url: str) -> str:
    """Demo data with the planted incident, and the scheduled check run once (so the
    firing rule has a recorded state change)."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session:
        seed_demo(session, count=300, seed=4, days=20, now=now)
        plant_missing_amount_spike(session, seed=4, now=now)
        check_alerts(session, load_rules(EXAMPLE).enabled, now=now, base_url="")
        session.commit()
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def alerts_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _seed(f"sqlite:///{tmp_path_factory.mktemp('alerts') / 'alerts.db'}")


@pytest.fixture
def rules_path(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path | None], None]:
    def point(path: Path | None) -> None:
        if path is None:
            monkeypatch.delenv("ALERT_RULES_PATH", raising=False)
        else:
            monkeypatch.setenv("ALERT_RULES_PATH", str(path))
        get_settings.cache_clear()

    return point


def _open_alerts() -> object:
    at = new_app()
    at.run()
    at.switch_page("views/alerts.py")
    at.run()
    return at


def _check_page(url: str) -> None:
    at = _open_alerts()
    assert [e.value for e in at.exception] == []  # type: ignore[attr-defined]
    assert [e.value for e in at.error] == []  # type: ignore[attr-defined]
    assert [t.value for t in at.title] == ["Alerts"]  # type: ignore[attr-defined]
    assert "**1 of 2 rules firing.**" in [m.value for m in at.markdown]  # type: ignore[attr-defined]
    assert len(at.get("plotly_chart")) == 2  # type: ignore[attr-defined]
    # The firing rule lists its recorded change; the other has none yet.
    assert len(at.dataframe) == 1  # type: ignore[attr-defined]
    changes = at.dataframe[0].value  # type: ignore[attr-defined]
    assert list(changes["state"]) == ["firing"]
    # Each figure is what reportlib computes for the same instant.
    engine = make_engine(url)
    with Session(engine) as session:
        expected = get_alert_status(
            session,
            rules=load_rules(EXAMPLE).enabled,
            now=at.session_state["report_filter"] and _page_now(at),
            base_url="",
        )
    engine.dispose()
    values = [m.value for m in at.metric]  # type: ignore[attr-defined]
    assert values == [
        "n/a" if s.evaluation.reading.value is None else f"{s.evaluation.reading.value:.4g}"
        for s in expected
    ]
    links = [button.proto.url for button in at.get("link_button")]  # type: ignore[attr-defined]
    assert links == [s.evaluation.link for s in expected]
    assert links[1].startswith("/missing-fields?start=") and links[1].endswith("&intent=debt_claim")
    states = [m.value for m in at.markdown if m.value.startswith("**") and "background" in m.value]  # type: ignore[attr-defined]
    assert states == [
        "**pipeline_stopped** :green-background[ok]",
        "**debt_amount_missing_spike** :red-background[**firing**]",
    ]


def _page_now(at: object) -> dt.datetime:
    caption = next(c.value for c in at.caption if c.value.startswith("As of "))  # type: ignore[attr-defined]
    return dt.datetime.strptime(caption[6:22], "%Y-%m-%d %H:%M").replace(tzinfo=dt.UTC)


def test_the_alerts_page_shows_each_rule(
    alerts_sqlite: str,
    use_database: Callable[[str], None],
    rules_path: Callable[[Path | None], None],
) -> None:
    use_database(alerts_sqlite)
    rules_path(EXAMPLE)
    _check_page(alerts_sqlite)


@pytest.mark.postgres
def test_the_alerts_page_on_postgresql(
    pg_databases: object,
    use_database: Callable[[str], None],
    rules_path: Callable[[Path | None], None],
) -> None:
    url = _seed(pg_databases.create("reportlib_alerts_page"))  # type: ignore[attr-defined]
    use_database(url)
    rules_path(EXAMPLE)
    _check_page(url)


def test_a_malformed_rules_file_is_named_on_the_page(
    alerts_sqlite: str,
    use_database: Callable[[str], None],
    rules_path: Callable[[Path | None], None],
    tmp_path: Path,
) -> None:
    use_database(alerts_sqlite)
    bad = tmp_path / "rules.toml"
    bad.write_text('[[rule]]\nname = "spike"\nmetric = "missing_rate"\nwindow_hours = 6\n')
    rules_path(bad)
    at = _open_alerts()
    assert [e.value for e in at.exception] == []  # type: ignore[attr-defined]
    assert [e.value for e in at.error] == [  # type: ignore[attr-defined]
        "The alert rules cannot be used: alert rule 'spike', key 'threshold': "
        "is required (or baseline_days with factor)"
    ]
    rules_path(None)
    at = _open_alerts()
    assert [i.value for i in at.info][0].startswith("No alert rules are enabled.")  # type: ignore[attr-defined]


def test_ops_and_above_see_alerts() -> None:
    assert [can_see_alerts(role) for role in ROLES] == [True] * len(ROLES)
    assert can_see_alerts(None) is False


@pytest.fixture(scope="module")
def alerts_server(alerts_sqlite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with streamlit_server(
        alerts_sqlite,
        tmp_path_factory.mktemp("streamlit_alerts"),
        env={"ALERT_RULES_PATH": str(EXAMPLE)},
    ) as running:
        yield running.base


def test_the_alerts_page_in_the_browser(
    alerts_server: str, page: Page, artifacts_dir: Path
) -> None:
    page.goto(f"{alerts_server}/alerts")
    expect(page.locator("h1", has_text="Alerts")).to_be_visible()
    expect(page.get_by_text("1 of 2 rules firing.")).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(2)
    wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    for chart in page.locator('[data-testid="stPlotlyChart"]').all():
        assert chart.locator(".trace").count() >= 1
    screenshot(page, artifacts_dir, "alerts")
    # The firing rule's link opens the Missing fields page with its dates and intent.
    link = page.get_by_role("link", name="Open the view it watches").nth(1)
    href = link.get_attribute("href")
    assert href is not None and href.startswith("/missing-fields?start=")
    page.goto(f"{alerts_server}{href}")
    expect(page.locator("h1", has_text="Missing fields")).to_be_visible()
    wait_idle(page)
    assert "intent=debt_claim" in page.url
    expect(open_filters(page).get_by_text("debt_claim")).to_be_visible()
    screenshot(page, artifacts_dir, "alerts-link-missing-fields")
