"""A real OIDC login in the browser: ``streamlit run`` with an ``[auth]`` section that
points at a local OpenID Connect provider (``oidc-provider-mock`` on 127.0.0.1).

The provider offers two predefined users; ``DASHBOARD_ROLES`` makes one an admin, and
the default role makes the other ops. The test logs in through the provider's own page,
as a person would, then checks what each role sees and what the audit log records.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect
from sqlalchemy.orm import Session

from reportlib.access import MASK
from reportlib.audit import list_audit_events
from reportlib.db import make_engine
from tests.conftest import require
from tests.dashboard.helpers import HOSTILE_VALUES, SeededDatabase
from tests.dashboard.server import free_port, http_process, streamlit_server, wait_idle

pytestmark = pytest.mark.browser

ADMIN = {"sub": "lead", "email": "lead@example.com", "email_verified": True, "name": "Lea Lead"}
OPS = {"sub": "otto", "email": "otto@ops.example.com", "email_verified": True, "name": "Otto Ops"}


@dataclass(frozen=True)
class Dashboard:
    base: str
    db_url: str
    hostile_email_id: int


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The OIDC provider's base URL."""
    require(
        importlib.util.find_spec("oidc_provider_mock") is not None,
        "oidc-provider-mock is not installed (pip install -r requirements-dev.txt)",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = ["-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    for user in (ADMIN, OPS):
        command += ["--user-claims", json.dumps(user)]
    with http_process(
        command,
        ready_url=f"{base}/.well-known/openid-configuration",
        log=tmp_path_factory.mktemp("oidc") / "provider.log",
    ):
        yield base


@pytest.fixture(scope="module")
def dashboard(
    provider: str, seeded_sqlite: SeededDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    """``streamlit run`` with login on, on a private copy of the seeded database."""
    folder = tmp_path_factory.mktemp("login_e2e")
    database = folder / "copy.db"
    with sqlite3.connect(seeded_sqlite.url.removeprefix("sqlite:///")) as src:
        with sqlite3.connect(database) as dst:
            src.backup(dst)
    port = free_port()
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(48)}"\n'
        'client_id = "reports-dashboard"\n'
        f'client_secret = "{secrets.token_urlsafe(24)}"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    roles = {"DASHBOARD_ROLES": f"{ADMIN['email']}=admin", "DASHBOARD_DEFAULT_ROLE": "ops"}
    with streamlit_server(
        f"sqlite:///{database}", folder, port=port, secrets=secrets_file, env=roles
    ) as server:
        yield Dashboard(server.base, f"sqlite:///{database}", seeded_sqlite.hostile_email_id)


@pytest.fixture
def page(page: Page) -> Page:
    """The shared tab (a fresh context per test: no cookie, so every test starts logged
    out), kept on this machine."""

    def local_only(route: Route) -> None:
        # The provider's page links a stylesheet from a CDN; nothing leaves the machine.
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            route.abort()

    page.context.route("**/*", local_only)
    return page


def _log_in(page: Page, dashboard: Dashboard, provider: str, sub: str) -> None:
    page.goto(dashboard.base)
    expect(page.get_by_text("Please log in to see the dashboard.")).to_be_visible()
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{provider}/oauth2/authorize**")
    expect(page.get_by_role("heading", name="Authorize Client")).to_be_visible()
    page.get_by_role("button", name=sub, exact=True).click()
    page.wait_for_url(f"{dashboard.base}/**")
    expect(page.locator("h1", has_text="Overview")).to_be_visible()
    wait_idle(page)


def _sidebar(page: Page) -> str:
    return page.locator('[data-testid="stSidebar"]').inner_text()


def _drilldown_events(dashboard: Dashboard, actor: str) -> list[tuple[str, int | None, object]]:
    engine = make_engine(dashboard.db_url)
    try:
        with Session(engine) as session:
            events = list_audit_events(session, actor=actor, action="drilldown_viewed")
    finally:
        engine.dispose()
    return [(e.action, e.email_id, e.details) for e in events]


def test_admin_logs_in_sees_values_and_the_audit_log(
    page: Page, dashboard: Dashboard, provider: str, artifacts_dir: Path
) -> None:
    _log_in(page, dashboard, provider, "lead")
    sidebar = _sidebar(page)
    assert "Lea Lead" in sidebar and ADMIN["email"] in sidebar and "Role: Admin" in sidebar
    assert "Local mode" not in sidebar
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav.get_by_role("link", name="Audit log")).to_be_visible()

    email_id = dashboard.hostile_email_id
    page.goto(f"{dashboard.base}/review?email_id={email_id}")
    drilldown = page.locator(".st-key-drilldown")
    expect(drilldown).to_be_visible()
    expect(drilldown.get_by_text(str(HOSTILE_VALUES["client_name"]), exact=True)).to_be_visible()
    assert drilldown.get_by_text(MASK, exact=True).count() == 0
    wait_idle(page)
    assert _drilldown_events(dashboard, ADMIN["email"]) == [
        ("drilldown_viewed", email_id, {"role": "admin", "page": "/review", "masked": False})
    ]

    page.goto(f"{dashboard.base}/audit")
    expect(page.locator("h1", has_text="Audit log")).to_be_visible()
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    wait_idle(page)
    page.screenshot(path=str(artifacts_dir / "login-admin-audit.png"), full_page=True)

    page.get_by_role("button", name="Log out").click()
    # Streamlit drops its cookie and sends the browser to the provider's end-session
    # endpoint (this provider stops there; a real one returns to the dashboard).
    page.wait_for_url(f"{provider}/oauth2/end_session**")
    page.goto(f"{dashboard.base}/audit")  # the cookie is gone: back to the prompt
    expect(page.get_by_text("Please log in to see the dashboard.")).to_be_visible()
    assert page.locator("h1", has_text="Audit log").count() == 0


def test_ops_logs_in_and_sees_masked_values_and_no_audit_log(
    page: Page, dashboard: Dashboard, provider: str, artifacts_dir: Path
) -> None:
    _log_in(page, dashboard, provider, "otto")
    sidebar = _sidebar(page)
    assert "Otto Ops" in sidebar and "Role: Ops" in sidebar
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav.get_by_role("link", name="Review queue")).to_be_visible()
    assert nav.get_by_role("link", name="Audit log").count() == 0

    email_id = dashboard.hostile_email_id
    page.goto(f"{dashboard.base}/review?email_id={email_id}")
    drilldown = page.locator(".st-key-drilldown")
    expect(drilldown).to_be_visible()
    wait_idle(page)
    expect(drilldown.get_by_text(MASK, exact=True).first).to_be_visible()
    text = drilldown.inner_text()
    for value in HOSTILE_VALUES.values():
        for part in value if isinstance(value, list) else [value]:
            assert str(part) not in text
    assert "client_name" in text  # field names stay
    assert page.locator(".st-key-review_panel").count() == 0
    assert _drilldown_events(dashboard, OPS["email"]) == []
    # Every value cell holds the mask (code blocks load lazily; wait for all of them).
    expect(drilldown.locator("code", has_text=MASK)).to_have_count(len(HOSTILE_VALUES))
    expect(drilldown.locator('[data-testid="stMetricValue"]').first).to_be_visible()
    wait_idle(page)
    drilldown.screenshot(path=str(artifacts_dir / "login-ops-drilldown.png"))

    # A direct visit to the audit page finds no such page for this role.
    page.goto(f"{dashboard.base}/audit")
    expect(page.get_by_text("Page not found")).to_be_visible()  # Streamlit's own notice
    expect(page.locator("h1", has_text="Overview")).to_be_visible()
    wait_idle(page)
    assert page.locator("h1", has_text="Audit log").count() == 0
    page.screenshot(path=str(artifacts_dir / "login-ops-audit-refused.png"))
    assert page.locator('[data-testid="stException"]').count() == 0
