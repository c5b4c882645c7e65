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
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard import round2_data as r2
from tests.dashboard.helpers import CHROMIUM_ARGS, SeededDatabase, free_port

pytestmark = pytest.mark.browser
expect.set_options(timeout=60_000)

ROOT = Path(__file__).resolve().parents[2]
LOCAL_ONLY = "answers only on this machine"
LOCAL_LABEL = "Local mode: no login configured"
AUTH_TOML = """[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "a-test-cookie-secret-that-is-long-enough-0123456789"
client_id = "reports-dashboard"
client_secret = "a-test-client-secret"
server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"
"""


@dataclass(frozen=True)
class Server:
    base: str
    port: int
    log: Path


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DASHBOARD_DATABASE_URL", "SENTRY_DSN", "DASHBOARD_ROLES", "ENVIRONMENT"}
        and not key.startswith("STREAMLIT_")
    }
    env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


@contextmanager
def serve(
    command: Sequence[str], *, cwd: Path, env: dict[str, str], port: int, log: Path
) -> Iterator[Server]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *command], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Server(base, port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def _run(port: int, *flags: str, secrets: Path | None = None, app: Path | None = None) -> list[str]:
    command = [
        "-m",
        "streamlit",
        "run",
        str(app or ROOT / "dashboard" / "app.py"),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        *flags,
    ]
    if secrets is not None:
        command += ["--secrets.files", str(secrets)]
    return command


@pytest.fixture(scope="module")
def round2_url(seeded_sqlite: SeededDatabase, tmp_path_factory: pytest.TempPathFactory) -> str:
    return r2.private_copy(seeded_sqlite.url, tmp_path_factory.mktemp("round2_browser"))


@pytest.fixture(scope="module")
def local_server(round2_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("round2_local")
    port = free_port()
    command = _run(port, "--server.address", "127.0.0.1", secrets=folder / "no-secrets.toml")
    with serve(
        command, cwd=ROOT, env=_env(round2_url), port=port, log=folder / "server.log"
    ) as server:
        yield server


def _idle(page: Page) -> None:
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText"
        ".includes('Running')"
    )
    page.wait_for_timeout(800)


# -- 4: DNS rebinding --------------------------------------------------------------------


def test_dns_rebinding_gets_the_refusal_and_no_data(
    chromium_path: str, local_server: Server, artifacts_dir: Path
) -> None:
    from playwright.sync_api import sync_playwright

    rules = "--host-resolver-rules=MAP attacker.example 127.0.0.1"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, args=[*CHROMIUM_ARGS, rules]
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"http://attacker.example:{local_server.port}/review?email_id={r2.OPEN_ID}")
            expect(page.get_by_text(LOCAL_ONLY)).to_be_visible()
            _idle(page)
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
    browser: Browser, round2_url: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    port = free_port()
    command = _run(port, "--server.address", "0.0.0.0", secrets=tmp_path / "no-secrets.toml")
    with serve(command, cwd=ROOT, env=_env(round2_url), port=port, log=tmp_path / "s.log") as srv:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(srv.base)
        expect(page.get_by_text("listens beyond this machine")).to_be_visible()
        _idle(page)
        page.screenshot(path=str(artifacts_dir / "round2_bind_all.png"))
        assert LOCAL_LABEL not in page.locator("body").inner_text()
        assert page.locator('[data-testid="stMetric"]').count() == 0
        page.close()


# -- 1: started from another directory ---------------------------------------------------------


@pytest.fixture
def deployed_copy(tmp_path: Path) -> Path:
    """The dashboard and its .streamlit/ (with an [auth] section) in a fresh tree."""
    tree = tmp_path / "srv" / "app"
    shutil.copytree(
        ROOT / "dashboard", tree / "dashboard", ignore=shutil.ignore_patterns("__pycache__")
    )
    # The same reportlib as the dashboard under test, whatever is installed.
    (tree / "reportlib").symlink_to(ROOT / "reportlib", target_is_directory=True)
    (tree / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", tree / ".streamlit" / "config.toml")
    return tree


def test_launcher_from_another_directory_keeps_the_login(
    browser: Browser, round2_url: str, deployed_copy: Path, tmp_path: Path, artifacts_dir: Path
) -> None:
    port = free_port()
    (deployed_copy / ".streamlit" / "secrets.toml").write_text(AUTH_TOML.format(port=port))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env(round2_url, PYTHONPATH=str(deployed_copy))
    command = ["-m", "dashboard", "--server.port", str(port), "--server.headless", "true"]
    with serve(command, cwd=elsewhere, env=env, port=port, log=tmp_path / "s.log") as srv:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(srv.base)
        expect(page.get_by_text("Please log in to see the dashboard.")).to_be_visible()
        _idle(page)
        page.screenshot(path=str(artifacts_dir / "round2_launcher_login.png"))
        assert LOCAL_LABEL not in page.locator("body").inner_text()
        page.close()


def test_plain_run_from_another_directory_refuses(
    browser: Browser, round2_url: str, deployed_copy: Path, tmp_path: Path, artifacts_dir: Path
) -> None:
    port = free_port()
    (deployed_copy / ".streamlit" / "secrets.toml").write_text(AUTH_TOML.format(port=port))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = _run(port, "--server.address", "127.0.0.1", app=deployed_copy / "dashboard/app.py")
    with serve(
        command, cwd=elsewhere, env=_env(round2_url), port=port, log=tmp_path / "s.log"
    ) as srv:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(srv.base)
        expect(page.get_by_text("started outside its project directory")).to_be_visible()
        _idle(page)
        page.screenshot(path=str(artifacts_dir / "round2_started_elsewhere.png"))
        body = page.locator("body").inner_text()
        assert LOCAL_LABEL not in body and "Erika" not in body
        assert page.locator('[data-testid="stMetric"]').count() == 0
        page.close()


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
    browser: Browser, local_server: Server, tmp_path: Path, artifacts_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
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
        _idle(page)
        if path == "review":
            files.update(_download_all(page, tmp_path, "review_queue", 1))
            page.get_by_role("tab", name="Statistics").click()
            _idle(page)
            page.screenshot(path=str(artifacts_dir / "round2_review_statistics.png"))
            files.update(_download_all(page, tmp_path, "review_statistics", 1))
        else:
            key = path or "overview"
            files.update(_download_all(page, tmp_path, key, expected_exports[key]))
    context.close()
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
