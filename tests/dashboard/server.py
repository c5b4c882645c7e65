"""What the browser tests share: a real ``streamlit run`` server, Debian's Chromium driven by
Playwright, a fresh tab per test and the wait for an idle app.

``tests/dashboard/conftest.py`` makes the fixtures here (``playwright``, ``browser``,
``page``) available to every dashboard test. Chromium comes from the ``chromium_path``
fixture of ``tests/conftest.py``, the one place that decides between a skip on a
developer's machine and a failure under ``CI=true``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import (
    Browser,
    Locator,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from reportlib.config import Settings
from tests.dashboard.helpers import APP, CHROMIUM_ARGS

ROOT = APP.parents[1]
TIMEOUT_MS = 60_000
VIEWPORT: ViewportSize = {"width": 1440, "height": 1000}
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 15
LOG_TAIL = 3000

# Streamlit loads chart and table code on demand; on a busy 2-core machine that can take
# several seconds the first time. The option is global to the process, so it is set where
# every browser test module gets it, including tests that launch a browser of their own.
expect.set_options(timeout=TIMEOUT_MS)

# While a script runs, the status widget says "Running..." next to its running icon; a
# spinner is up while a cached query computes.
_IDLE = """() => {
    const status = document.querySelector('[data-testid="stStatusWidget"]');
    const running = status !== null && (
        status.innerText.includes('Running')
        || status.querySelector('[data-testid="stStatusWidgetRunningIcon"]') !== null
    );
    return !running && document.querySelector('[data-testid="stSpinner"]') === null;
}"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------- processes

# Logs of the server processes running now, by log file, with what each serves; a failed
# test's report shows them (see ``pytest_runtest_makereport`` in conftest.py).
_RUNNING: dict[Path, str] = {}


def running_logs() -> list[tuple[str, str]]:
    """``(title, tail)`` of the log of every server process running now."""
    return [(f"log of {name}", _tail(log)) for log, name in _RUNNING.items()]


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL:]


@contextmanager
def http_process(
    args: Sequence[str],
    *,
    ready_url: str,
    log: Path,
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """``python *args`` for the duration of the block, entered once ``ready_url`` answers 200.

    Output goes to ``log``; its tail is in the failure when the process does not come up,
    when the block raises, and in the report of a test that fails while it runs. At the end
    the process gets SIGTERM, then SIGKILL if it has not exited within 15 s.
    """
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    _RUNNING[log] = ready_url
    try:
        _wait_until_ready(ready_url, process, log)
        try:
            yield
        except BaseException as error:
            # A test that starts its server inside its body has stopped it by the time
            # pytest writes the report, so the log rides on the exception instead.
            error.add_note(f"log of {ready_url}:\n{_tail(log)}")
            raise
    finally:
        del _RUNNING[log]
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{url} did not come up:\n{_tail(log)}")
        time.sleep(0.5)


@dataclass(frozen=True)
class StreamlitServer:
    """A running dashboard: its address, port and log file."""

    base: str
    port: int
    log: Path


def _server_env(database_url: str, extra: Mapping[str, str]) -> dict[str, str]:
    # The developer's own settings (a DASHBOARD_DATABASE_URL, a SENTRY_DSN, roles, a
    # production ENVIRONMENT) and STREAMLIT_* overrides would change what the server shows;
    # it sees only what the test gives it.
    settings = {name.upper() for name in Settings.model_fields}
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in settings and not key.upper().startswith("STREAMLIT_")
    }
    env["DATABASE_URL"] = database_url
    # The browser tests check Plotly charts and data grids unless they ask for the
    # default static view (tests/dashboard/test_static_view.py does).
    env["DASHBOARD_VIEW"] = "interactive"
    env.update(extra)
    return env


@contextmanager
def streamlit_server(
    database_url: str,
    folder: Path,
    *,
    port: int | None = None,
    address: str | None = "127.0.0.1",
    secrets: Path | Literal["none", "streamlit"] = "none",
    entry: Sequence[str] = ("-m", "streamlit", "run", str(APP)),
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
) -> Iterator[StreamlitServer]:
    """The dashboard, headless, on ``port`` (a free one by default), reading ``database_url``;
    its log is ``folder/streamlit.log``, and a traceback in it fails the test.

    ``secrets``: ``"none"`` is local mode, whatever the developer keeps in ``.streamlit/``;
    ``"streamlit"`` leaves the lookup to Streamlit (``.streamlit/`` of the working
    directory), for the tests of that lookup. ``entry`` is what follows ``python``
    (``("-m", "dashboard")`` for the launcher), and ``address=None`` leaves the address to
    it. ``env`` adds settings.
    """
    port = free_port() if port is None else port
    args = [*entry, "--server.headless", "true", "--server.port", str(port)]
    if address is not None:
        args += ["--server.address", address]
    if secrets != "streamlit":
        missing = folder / "no-secrets.toml"
        args += ["--secrets.files", str(missing if secrets == "none" else secrets)]
    base = f"http://127.0.0.1:{port}"
    log = folder / "streamlit.log"
    with http_process(
        args,
        ready_url=f"{base}/_stcore/health",
        log=log,
        cwd=cwd,
        env=_server_env(database_url, env or {}),
    ):
        yield StreamlitServer(base, port, log)
    log_text = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log_text, log_text[-LOG_TAIL:]


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def playwright(chromium_path: str) -> Iterator[Playwright]:
    """Playwright's driver, shared by a module's browser tests (only with a Chromium)."""
    with sync_playwright() as driver:
        yield driver


def launch_chromium(playwright: Playwright, chromium_path: str, *args: str) -> Browser:
    """Debian's Chromium with the test flags, plus ``args``."""
    return playwright.chromium.launch(executable_path=chromium_path, args=[*CHROMIUM_ARGS, *args])


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium_path: str) -> Iterator[Browser]:
    """Debian's Chromium, shared by a module's browser tests."""
    chromium = launch_chromium(playwright, chromium_path)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A tab in a fresh context (no cookies, no storage) that accepts downloads."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    yield tab
    context.close()


def wait_idle(page: Page) -> None:
    """Wait until the app is idle: no script running, no spinner."""
    page.wait_for_timeout(300)  # let a rerun triggered by the last action begin
    page.wait_for_function(_IDLE)
    page.wait_for_timeout(800)  # let plotly finish its transitions


def open_filters(page: Page) -> Locator:
    """Open the sidebar's filter popover and return its body, which holds the widgets."""
    # The page can hold a second, hidden copy of the button: click the one shown.
    button = page.locator('.st-key-filters_popover [data-testid="stPopoverButton"]')
    button.filter(visible=True).click()
    body = page.locator('[data-testid="stPopoverBody"]').filter(visible=True)
    expect(body).to_be_visible()
    return body


def screenshot(page: Page, artifacts_dir: Path, name: str) -> None:
    """A full-page screenshot ``artifacts_dir/name.png`` that holds every element."""
    # The app scrolls inside its main container; make the viewport as tall as the content.
    height = page.evaluate(
        "() => Math.max(document.body.scrollHeight,"
        " (document.querySelector('[data-testid=\"stMain\"]') || document.body).scrollHeight)"
    )
    page.set_viewport_size({"width": 1440, "height": min(max(int(height) + 40, 1000), 9000)})
    page.wait_for_timeout(800)
    page.screenshot(path=str(artifacts_dir / f"{name}.png"), full_page=True)
    page.set_viewport_size(VIEWPORT)
