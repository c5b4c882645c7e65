"""What a person waits for in the browser: each dashboard page against a hello-world app.

Two ``streamlit run`` servers on 127.0.0.1, started the same way: the dashboard
(``dashboard/app.py``, local mode, ``DATABASE_URL`` = the benchmark database) and a
one-line script (``st.write("hello")``). Debian's Chromium, driven by Playwright, opens
pages in one browser context (static assets cached, as for someone who has the dashboard
open):

* **new filter**: the page's URL with a date range the dashboard's result cache has not
  seen (``?start=...&end=today``, a start date no earlier load used), so every query
  goes to the database;
* **repeated view**: the same URL again, right after (the results come from the cache);
* **hello-world**: the hello-world app, loaded the same way next to each page view: what
  Streamlit itself costs (new session, websocket, script run, render) on this machine.

A load is timed from navigation start (``performance.now()`` in the page) until the app
is idle: the app container is there, the status widget does not say it is running, no
spinner (``stSpinner``) and no skeleton (``stSkeleton``) is shown, the page's main
content is present (its ``h1``; for hello-world the text), every Plotly chart has drawn
its SVG and every data frame its canvas. The instant recorded is the start of the final
idle stretch: the app must then stay idle for ``QUIET_MS`` (not counted) before the load
counts as done, so a pause between two script steps is not taken for the end.

Before timing, every page (and hello-world) is loaded once untimed with the default
filters: the servers have imported their modules, the browser has Streamlit's chart and
table code. Figures are medians over ``runs``; one full-page screenshot per page goes to
the results directory for a person to look at. The dashboard server's peak resident set
size (``VmHWM``) is recorded at the end.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP = "dashboard/app.py"
HELLO_SCRIPT = 'import streamlit as st\n\nst.write("hello")\n'
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Page name (as in bench.dashboard_queries) -> URL path (dashboard/app.py's url_path).
# Every page a non-admin sees; the admin-only Audit log is a paged, indexed list.
PAGES: dict[str, str] = {
    "overview": "",
    "confidence": "confidence",
    "missing_fields": "missing-fields",
    "review": "review",
    "quality": "quality",
}
QUIET_MS = 500
LOAD_TIMEOUT_MS = 180_000
START_TIMEOUT_S = 120

# Runs in every document from its start: keeps window.__benchIdleSince, the
# performance.now() at which the app last became idle (null while it is busy).
IDLE_TRACKER = """
(() => {
  const content = %s;
  const busy = () => {
    if (!document.querySelector('[data-testid="stAppViewContainer"]')) return true;
    const status = document.querySelector('[data-testid="stStatusWidget"]');
    if (status && /running|connecting/i.test(status.innerText || '')) return true;
    if (document.querySelector('[data-testid="stSpinner"]')) return true;
    if (document.querySelectorAll('[data-testid="stSkeleton"]').length) return true;
    if (!content()) return true;
    for (const chart of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
      if (!chart.querySelector('.main-svg')) return true;
    }
    for (const chart of document.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
      if (!chart.querySelector('canvas, svg.marks')) return true;
    }
    for (const frame of document.querySelectorAll('[data-testid="stDataFrame"]')) {
      if (!frame.querySelector('canvas')) return true;
    }
    return false;
  };
  window.__benchIdleSince = null;
  const tick = () => {
    const now = performance.now();
    if (busy()) {
      window.__benchIdleSince = null;
    } else if (window.__benchIdleSince === null) {
      window.__benchIdleSince = now;
    }
  };
  const loop = () => { tick(); setTimeout(loop, 10); };
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', loop);
  } else {
    loop();
  }
})();
"""
DASHBOARD_CONTENT = (
    "() => !!document.querySelector('[data-testid=\"stMain\"] h1')"
)
HELLO_CONTENT = (
    "() => Array.from(document.querySelectorAll('[data-testid=\"stMarkdown\"]'))"
    ".some(e => (e.innerText || '').includes('hello'))"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A running ``streamlit run`` process."""

    base: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def memory_mb(self) -> dict[str, float]:
        """Peak and current resident set size of the server process (Linux)."""
        out: dict[str, float] = {}
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[{"VmHWM": "peak_mb", "VmRSS": "rss_mb"}[key]] = (
                        int(value.split()[0]) / 1024
                    )
        except OSError:
            pass
        return out


def server_env(database_url: str | None) -> dict[str, str]:
    """The environment a local-mode dashboard needs: the database, no Sentry, no login."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DASHBOARD_DATABASE_URL", "SENTRY_DSN"}
    }
    env["ENVIRONMENT"] = "development"  # local mode is allowed only there (and demo, test)
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    # The harness refreshed the rollups before timing: the dashboard writes nothing.
    env["ROLLUP_REFRESH_INTERVAL_S"] = "0"
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


@contextmanager
def streamlit_server(script: str, env: dict[str, str], log_path: Path) -> Iterator[Server]:
    """``python -m streamlit run <script>`` on a free port of 127.0.0.1, until exit."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script,
             "--server.headless", "true", "--server.address", "127.0.0.1",
             "--server.port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"streamlit run {script} did not start:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.3)
        yield Server(base=base, process=process, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def timed_load(page: Any, url: str) -> float:
    """Open ``url`` in ``page``; ms from navigation start until the app is idle."""
    page.goto(url, wait_until="commit", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function(
        f"() => window.__benchIdleSince !== null && window.__benchIdleSince !== undefined"
        f" && performance.now() - window.__benchIdleSince >= {QUIET_MS}",
        timeout=LOAD_TIMEOUT_MS,
        polling=50,
    )
    return float(page.evaluate("() => window.__benchIdleSince"))


def page_url(base: str, path: str, start: dt.date | None = None,
             end: dt.date | None = None) -> str:
    url = f"{base}/{path}"
    if start is not None and end is not None:
        url += f"?start={start.isoformat()}&end={end.isoformat()}"
    return url


@dataclass
class BrowserResult:
    runs: int
    new_filter_ms: dict[str, list[float]] = field(default_factory=dict)
    repeated_ms: dict[str, list[float]] = field(default_factory=dict)
    hello_ms: dict[str, list[float]] = field(default_factory=dict)
    screenshots: dict[str, str] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    server_tracebacks: int = 0

    def as_dict(self) -> dict[str, Any]:
        every_hello = [v for values in self.hello_ms.values() for v in values]
        hello = statistics.median(every_hello)
        pages: dict[str, Any] = {}
        for name in self.new_filter_ms:
            new = statistics.median(self.new_filter_ms[name])
            repeated = statistics.median(self.repeated_ms[name])
            pages[name] = {
                "new_filter_ms": round(new, 1),
                "repeated_ms": round(repeated, 1),
                "hello_ms": round(statistics.median(self.hello_ms[name]), 1),
                "new_filter_over_hello_ms": round(new - hello, 1),
                "repeated_over_hello_ms": round(repeated - hello, 1),
                "new_filter_runs_ms": [round(v, 1) for v in self.new_filter_ms[name]],
                "repeated_runs_ms": [round(v, 1) for v in self.repeated_ms[name]],
            }
        return {
            "runs": self.runs,
            "quiet_ms": QUIET_MS,
            "hello_ms": round(hello, 1),
            "hello_runs_ms": [round(v, 1) for v in every_hello],
            "pages": pages,
            "screenshots": self.screenshots,
            "dashboard_server_memory": {k: round(v, 1) for k, v in self.memory.items()},
            "server_tracebacks": self.server_tracebacks,
        }


def _screenshot(page: Any, path: Path) -> None:
    height = page.evaluate(
        "() => Math.max(document.body.scrollHeight,"
        " (document.querySelector('[data-testid=\"stMain\"]') || document.body).scrollHeight)"
    )
    page.set_viewport_size({"width": 1440, "height": min(max(int(height) + 40, 1000), 9000)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})


def run_browser(
    database_url: str,
    *,
    runs: int = 5,
    results_dir: Path,
    label: str = "",
    chromium: str = CHROMIUM,
    pages: dict[str, str] | None = None,
    today: dt.date | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time every page's new-filter and repeated views against hello-world (median of
    ``runs``); screenshots into ``results_dir``."""
    from playwright.sync_api import sync_playwright

    pages = pages or PAGES
    today = today or dt.datetime.now(dt.UTC).date()
    results_dir.mkdir(parents=True, exist_ok=True)
    result = BrowserResult(runs=runs)
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        tmp_dir = Path(tmp)
        hello_script = tmp_dir / "hello.py"
        hello_script.write_text(HELLO_SCRIPT)
        with streamlit_server(APP, server_env(database_url), tmp_dir / "dashboard.log") as app, \
                streamlit_server(str(hello_script), server_env(None),
                                 tmp_dir / "hello.log") as hello, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1440, "height": 1000})
                app_tab = context.new_page()
                app_tab.add_init_script(IDLE_TRACKER % DASHBOARD_CONTENT)
                hello_tab = context.new_page()
                hello_tab.add_init_script(IDLE_TRACKER % HELLO_CONTENT)
                # Untimed warm-up: imports on the servers, chart and table code in the browser.
                timed_load(hello_tab, hello.base + "/")
                for path in pages.values():
                    timed_load(app_tab, page_url(app.base, path))
                # Every timed new-filter load gets a start date no load used before: one
                # more day back each time, the end stays today.
                shift = 0
                for run in range(runs):
                    for name, path in pages.items():
                        shift += 1
                        start = today - dt.timedelta(days=29 + shift)
                        url = page_url(app.base, path, start, today)
                        new = timed_load(app_tab, url)
                        repeated = timed_load(app_tab, url)
                        hello_ms = timed_load(hello_tab, hello.base + "/")
                        result.new_filter_ms.setdefault(name, []).append(new)
                        result.repeated_ms.setdefault(name, []).append(repeated)
                        result.hello_ms.setdefault(name, []).append(hello_ms)
                        log(f"  run {run + 1} {name:<16} new filter {new:7.0f} ms   "
                            f"repeated {repeated:7.0f} ms   hello-world {hello_ms:7.0f} ms")
                        if run == runs - 1:
                            shot = results_dir / f"browser{label}-{name}.png"
                            _screenshot(app_tab, shot)
                            result.screenshots[name] = str(shot)
                context.close()
            finally:
                browser.close()
            result.memory = app.memory_mb()
            result.server_tracebacks = app.log_text().count("Traceback")
            if result.server_tracebacks:
                log(f"  WARNING: the dashboard server logged {result.server_tracebacks} "
                    f"tracebacks:\n{app.log_text()[-3000:]}")
    out = result.as_dict()
    log(f"  hello-world median {out['hello_ms']:.0f} ms; dashboard server peak RSS "
        f"{out['dashboard_server_memory'].get('peak_mb', 0):.0f} MB")
    for name, figures in out["pages"].items():
        log(f"  {name:<16} new filter {figures['new_filter_ms']:7.0f} ms "
            f"(hello-world +{figures['new_filter_over_hello_ms']:.0f} ms, target +600)   "
            f"repeated {figures['repeated_ms']:7.0f} ms "
            f"(hello-world +{figures['repeated_over_hello_ms']:.0f} ms, target +300)")
    return out
