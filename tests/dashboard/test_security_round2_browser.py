"""Security hardening, round 2, on real ``streamlit run`` servers in Chromium.

- DNS rebinding: a page served as ``http://attacker.example:PORT`` (Chromium resolves the
  name to 127.0.0.1) gets the local-only refusal and no data.
- A server bound to every interface refuses local mode.
- Started from another directory with ``[auth]`` configured: the launcher
  (``python -m dashboard``) shows the login prompt, and a plain ``streamlit run`` of the
  same tree refuses instead of opening up in local mode.
- Every CSV export, downloaded through the browser, neutralizes formula-leading cells.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright, expect

from tests.dashboard import round2_data as r2
from tests.dashboard.helpers import SeededDatabase
from tests.dashboard.server import (
    ROOT,
    StreamlitServer,
    free_port,
    launch_chromium,
    streamlit_server,
    wait_idle,
)

pytestmark = pytest.mark.browser

LOCAL_ONLY = "answers only on this machine"
LOCAL_LABEL = "Local mode: no login configured"
AUTH_TOML = """[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "a-test-cookie-secret-that-is-long-enough-0123456789"
client_id = "reports-dashboard"
client_secret = "a-test-client-secret"
server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"
"""


@pytest.fixture(scope="module")
def round2_url(seeded_sqlite: SeededDatabase, tmp_path_factory: pytest.TempPathFactory) -> str:
    return r2.private_copy(seeded_sqlite.url, tmp_path_factory.mktemp("round2_browser"))


@pytest.fixture(scope="module")
def local_server(
    round2_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StreamlitServer]:
    with streamlit_server(round2_url, tmp_path_factory.mktemp("round2_local")) as server:
        yield server


# -- 4: DNS rebinding --------------------------------------------------------------------


def test_dns_rebinding_gets_the_refusal_and_no_data(
    chromium_path: str, playwright: Playwright, local_server: StreamlitServer, artifacts_dir: Path
) -> None:
    rules = "--host-resolver-rules=MAP attacker.example 127.0.0.1"
    browser = launch_chromium(playwright, chromium_path, rules)
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"http://attacker.example:{local_server.port}/review?email_id={r2.OPEN_ID}")
        expect(page.get_by_text(LOCAL_ONLY)).to_be_visible()
        wait_idle(page)
        page.screenshot(path=str(artifacts_dir / "round2_dns_rebinding.png"), full_page=True)
        body = page.locator("body").inner_text()
        assert LOCAL_LABEL not in body
        assert "Erika" not in body and "Rechnung" not in body and "attacker" not in body
        assert page.locator('[data-testid="stDataFrame"]').count() == 0
        assert page.locator('[data-testid="stMetric"]').count() == 0
        assert page.locator('[data-testid="stSidebarNav"]').count() == 0

        # Control: the same browser under a loopback name gets the dashboard.
        page.goto(f"http://localhost:{local_server.port}/")
        expect(page.get_by_text(LOCAL_LABEL)).to_be_visible()
        page.close()
    finally:
        browser.close()


# -- 3: bound to every interface ------------------------------------------------------------


def test_local_mode_refuses_a_server_bound_to_every_interface(
    page: Page, round2_url: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    with streamlit_server(round2_url, tmp_path, address="0.0.0.0") as srv:
        page.goto(srv.base)
        expect(page.get_by_text("listens beyond this machine")).to_be_visible()
        wait_idle(page)
        page.screenshot(path=str(artifacts_dir / "round2_bind_all.png"))
        assert LOCAL_LABEL not in page.locator("body").inner_text()
        assert page.locator('[data-testid="stMetric"]').count() == 0


# -- 1: started from another directory ---------------------------------------------------------


@dataclass(frozen=True)
class DeployedCopy:
    """The dashboard in a fresh tree whose ``[auth]`` section expects ``port``, and a
    directory outside that tree to start it from."""

    tree: Path
    port: int
    elsewhere: Path


@pytest.fixture
def deployed_copy(tmp_path: Path) -> DeployedCopy:
    """The dashboard and its .streamlit/ (with an [auth] section) in a fresh tree."""
    tree = tmp_path / "srv" / "app"
    shutil.copytree(
        ROOT / "dashboard", tree / "dashboard", ignore=shutil.ignore_patterns("__pycache__")
    )
    # The same reportlib as the dashboard under test, whatever is installed.
    (tree / "reportlib").symlink_to(ROOT / "reportlib", target_is_directory=True)
    (tree / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", tree / ".streamlit" / "config.toml")
    port = free_port()
    (tree / ".streamlit" / "secrets.toml").write_text(AUTH_TOML.format(port=port))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return DeployedCopy(tree, port, elsewhere)


def test_launcher_from_another_directory_keeps_the_login(
    page: Page, round2_url: str, deployed_copy: DeployedCopy, tmp_path: Path, artifacts_dir: Path
) -> None:
    with streamlit_server(
        round2_url,
        tmp_path,
        port=deployed_copy.port,
        address=None,  # the launcher's own: loopback, loopback Host names only
        secrets="streamlit",
        entry=("-m", "dashboard"),
        cwd=deployed_copy.elsewhere,
        env={"PYTHONPATH": str(deployed_copy.tree)},
    ) as srv:
        page.goto(srv.base)
        expect(page.get_by_text("Please log in to see the dashboard.")).to_be_visible()
        wait_idle(page)
        page.screenshot(path=str(artifacts_dir / "round2_launcher_login.png"))
        assert LOCAL_LABEL not in page.locator("body").inner_text()


def test_plain_run_from_another_directory_refuses(
    page: Page, round2_url: str, deployed_copy: DeployedCopy, tmp_path: Path, artifacts_dir: Path
) -> None:
    app = deployed_copy.tree / "dashboard" / "app.py"
    with streamlit_server(
        round2_url,
        tmp_path,
        port=deployed_copy.port,
        secrets="streamlit",
        entry=("-m", "streamlit", "run", str(app)),
        cwd=deployed_copy.elsewhere,
    ) as srv:
        page.goto(srv.base)
        expect(page.get_by_text("started outside its project directory")).to_be_visible()
        wait_idle(page)
        page.screenshot(path=str(artifacts_dir / "round2_started_elsewhere.png"))
        body = page.locator("body").inner_text()
        assert LOCAL_LABEL not in body and "Erika" not in body
        assert page.locator('[data-testid="stMetric"]').count() == 0


# -- 5: CSV formula injection, every export ------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
EXPORT_PAGES = ["", "confidence", "missing-fields", "review", "quality", "audit"]


def _download_all(page: Page, folder: Path, name: str, expected: int) -> dict[str, list[list[str]]]:
    files: dict[str, list[list[str]]] = {}
    buttons = page.locator('[data-testid="stDownloadButton"] button:visible')
    expect(buttons).to_have_count(expected)
    for index in range(expected):
        button = buttons.nth(index)
        button.scroll_into_view_if_needed()
        with page.expect_download() as info:
            button.click()
        download = info.value
        target = folder / f"{name}_{index}_{download.suggested_filename}"
        download.save_as(target)
        files[target.name] = list(csv.reader(io.StringIO(target.read_text("utf-8"))))
    return files


def test_every_csv_export_neutralizes_formula_cells(
    page: Page, local_server: StreamlitServer, tmp_path: Path, artifacts_dir: Path
) -> None:
    expected_exports = {
        "overview": 1,
        "confidence": 3,
        "missing-fields": 3,
        "review_queue": 1,
        "review_statistics": 1,
        "quality": 4,
        "audit": 1,
    }
    files: dict[str, list[list[str]]] = {}
    for path in EXPORT_PAGES:
        page.goto(f"{local_server.base}/{path}")
        expect(page.get_by_text(LOCAL_LABEL)).to_be_visible()
        wait_idle(page)
        if path == "review":
            files.update(_download_all(page, tmp_path, "review_queue", 1))
            page.get_by_role("tab", name="Statistics").click()
            wait_idle(page)
            page.screenshot(path=str(artifacts_dir / "round2_review_statistics.png"))
            files.update(_download_all(page, tmp_path, "review_statistics", 1))
        else:
            key = path or "overview"
            files.update(_download_all(page, tmp_path, key, expected_exports[key]))
    counts = {
        key: sum(1 for name in files if name.startswith(key + "_")) for key in expected_exports
    }
    assert counts == expected_exports, sorted(files)

    dangerous = {
        name: cell
        for name, rows in files.items()
        for row in rows
        for cell in row
        if cell[:1] in {"=", "+", "-", "@", "\t", "\r"} and not _NUMBER.fullmatch(cell)
    }
    assert dangerous == {}
    cells = {name: {cell for row in rows for cell in row} for name, rows in files.items()}
    everything = set().union(*cells.values())
    # The hostile text did reach the exports, neutralized: intent, field name, review
    # reason and reviewer name.
    for neutralized in (
        "'" + r2.FORMULA_INTENT,
        "'" + r2.FORMULA_FIELD,
        "'" + r2.OPEN_REASON,
        "'" + r2.REVIEWER,
    ):
        assert neutralized in everything, neutralized
