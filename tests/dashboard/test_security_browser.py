"""Hostile email content in the real browser: nothing runs, nothing is fetched, and the
text shows as text on every page, in tables, the drill-down, chart labels and hovers.

The hostile strings point at a small HTTP receiver started by the test; it must receive
no request at all. Values, field names, subjects, senders, intents and review reasons
all carry payloads, because intents and field names become chart labels and every one
of them comes from an email. The same server (local mode: full rights) also checks that
the audit log's CSV export is audited and holds no values.
"""

from __future__ import annotations

import csv
import datetime as dt
import http.server
import io
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from reportlib import create_processing_report, ensure_incoming_email, migrate
from reportlib.audit import list_audit_events
from reportlib.db import make_engine
from reportlib.demo import seed_demo
from reportlib.demo_review import seed_review_history
from tests.dashboard.server import open_filters, screenshot, streamlit_server, wait_idle

pytestmark = pytest.mark.browser

FIRST_ID = 1_950_000_001


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                receiver.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Hostile:
    """The payloads of one seeded database (they name the receiver's port)."""

    port: int

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.png"

    @property
    def field_name(self) -> str:
        return f"![f]({self.url('field')})"

    def values(self) -> list[dict[str, object]]:
        return [
            {
                "client_name": "<img src=x onerror=window.__xss=1>",
                "creditor_name": "javascript:alert(1)",
                "debt_amount": f"![x]({self.url('value')})",
                "reference_numbers": [
                    "<script>window.__xss=2</script>",
                    "[ref](javascript:alert(1))",
                ],
                self.field_name: f"<img src={self.url('value2')}>",
            },
            {
                "client_name": "[click me](javascript:window.__xss=5)",
                "creditor_name": "<a href='javascript:window.__xss=6'>creditor</a>",
                "debt_amount": "<iframe src=javascript:window.__xss=11></iframe>",
            },
            {
                "client_name": "<svg onload=window.__xss=12>",
                "creditor_name": f"<img src=x onerror=\"fetch('{self.url('fetch')}')\">",
                "debt_amount": "**bold** _it_ `code` # heading",
                "reference_numbers": [f"![y]({self.url('list')})"],
            },
        ]

    @property
    def intents(self) -> list[str]:
        return [
            "<img src=x onerror=window.__xss=3>",
            f"![i]({self.url('intent')})",
            "javascript:window.__xss=7",
        ]

    @property
    def reasons(self) -> list[str]:
        return [
            f"![r]({self.url('reason')})",
            f"<img src={self.url('reason2')}>",
            "<script>window.__xss=10</script>",
        ]

    @property
    def subjects(self) -> list[str]:
        return [
            f"**Mahnung** <img src=x onerror=window.__xss=4> ![s]({self.url('subject')})",
            "[Rechnung](javascript:window.__xss=8)",
            "<b>plain</b>",
        ]

    @property
    def senders(self) -> list[str]:
        return [
            "<a href='javascript:alert(1)'>x</a>@example.test",
            f"![m]({self.url('sender')})",
            "javascript:window.__xss=9",
        ]


@dataclass(frozen=True)
class Setup:
    base: str
    static_base: str  # the same database in the default static view
    receiver: Receiver
    hostile: Hostile
    db_url: str
    email_ids: tuple[int, ...]


def _seed(url: str, hostile: Hostile, now: dt.datetime) -> tuple[int, ...]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    ids = []
    with Session(engine) as session:
        seed_demo(session, count=150, seed=3, days=30, now=now)
        seed_review_history(session, rng=random.Random(2), now=now, share=0.5)
        for index, values in enumerate(hostile.values()):
            email_id = FIRST_ID + index
            ensure_incoming_email(
                session,
                email_id,
                subject=hostile.subjects[index],
                sender=hostile.senders[index],
                received_at=now - dt.timedelta(hours=2 + index),
            )
            metadata = {
                name: {"confidence": 0.35 + 0.1 * n, "source": f"attachment:{name}.pdf"}
                for n, name in enumerate(values)
            }
            create_processing_report(
                session,
                email_id,
                {**values, "extraction_metadata": metadata},
                {
                    "agent_1_intent": {"intent": hostile.intents[index], "confidence": 0.9},
                    "agent_2_extraction": {"sources_processed": 2, "total_tokens_used": 999},
                },
                0.3 + 0.05 * index,
                "low",
                True,
                hostile.reasons[index],
                1500 + index,
            )
            ids.append(email_id)
        session.commit()
    engine.dispose()
    return tuple(ids)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, demo_now: dt.datetime) -> Iterator[Setup]:
    receiver = Receiver()
    hostile = Hostile(receiver.port)
    folder = tmp_path_factory.mktemp("security_browser")
    url = f"sqlite:///{folder / 'hostile.db'}"
    (folder / "static").mkdir()
    try:
        email_ids = _seed(url, hostile, demo_now)
        # Local mode: every page, every right.
        with (
            streamlit_server(url, folder) as server,
            streamlit_server(url, folder / "static", env={"DASHBOARD_VIEW": "static"}) as static,
        ):
            yield Setup(server.base, static.base, receiver, hostile, url, email_ids)
    finally:
        receiver.close()


@pytest.fixture
def page(page: Page, setup: Setup) -> Iterator[Page]:
    """The shared tab, watched: no request may leave the server, no dialog may open."""
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            outside.append(request.url)
            if not request.url.startswith((setup.base, setup.static_base))
            else None
        ),
    )
    page.on(
        "dialog", lambda dialog: (outside.append(f"dialog: {dialog.message}"), dialog.dismiss())
    )
    yield page
    # Closed before the check, so a request the tab makes while it ends is counted too.
    page.context.close()
    assert outside == []
    assert setup.receiver.requests == []


def _assert_inert(page: Page, setup: Setup) -> None:
    """Nothing ran, no element came from a payload, nothing was fetched."""
    assert page.evaluate("() => window.__xss") is None
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator("a[href^='javascript' i], iframe, svg[onload]").count() == 0
    assert page.locator(f"img[src='x'], img[src*='{setup.receiver.port}']").count() == 0
    assert page.locator("script:has-text('__xss')").count() == 0
    images = page.evaluate("() => Array.from(document.images).map(i => i.src)")
    assert [
        src
        for src in images
        if not src.startswith((setup.base, setup.static_base)) and not src.startswith("data:")
    ] == []
    assert setup.receiver.requests == []


PAGES = [
    ("", "Overview", 3),
    ("confidence", "Confidence", 5),
    ("missing-fields", "Missing fields", 5),
    ("review", "Review queue", 0),
    ("quality", "Quality", None),
    ("audit", "Audit log", 0),
]


@pytest.mark.parametrize(("path", "title", "charts"), PAGES)
def test_every_page_keeps_hostile_text_inert(
    page: Page, setup: Setup, path: str, title: str, charts: int | None
) -> None:
    page.goto(f"{setup.base}/{path}")
    expect(page.locator("h1", has_text=title)).to_be_visible()
    if charts:
        expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible()
        expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(charts)
    wait_idle(page)
    _assert_inert(page, setup)
    # Intents and field names are chart labels: the hostile ones show literally.
    if path == "confidence":
        labels = _chart_texts(page)
        for label in [*setup.hostile.intents, setup.hostile.field_name]:
            assert label in labels
    if path == "missing-fields":
        labels = _chart_texts(page)
        for label in setup.hostile.intents:
            assert label in labels


@pytest.mark.parametrize(("path", "title", "charts"), PAGES)
def test_every_static_page_keeps_hostile_text_inert(
    page: Page, setup: Setup, path: str, title: str, charts: int | None
) -> None:
    """The static view draws charts as inline SVG through a raw HTML block: every label
    and hover text in it must still be text."""
    page.goto(f"{setup.static_base}/{path}")
    expect(page.locator("h1", has_text=title)).to_be_visible()
    if charts:
        expect(page.locator("figure.rl-chart svg").first).to_be_visible()
        expect(page.locator("figure.rl-chart svg")).to_have_count(charts)
    wait_idle(page)
    _assert_inert(page, setup)
    # Only the renderer's own elements are in the charts: no payload became markup.
    tags = page.locator("figure.rl-chart *").evaluate_all(
        "elements => Array.from(new Set(elements.map(e => e.tagName.toLowerCase())))"
    )
    assert set(tags) <= {"svg", "text", "rect", "circle", "polyline", "line", "title"}
    if path in ("confidence", "missing-fields"):
        labels = _chart_texts(page, "figure.rl-chart text")
        tips = _chart_texts(page, "figure.rl-chart title")
        for intent in setup.hostile.intents:
            assert intent in labels
            assert any(tip.startswith(intent) for tip in tips)
        if path == "confidence":
            assert setup.hostile.field_name in labels


def _chart_texts(page: Page, selector: str = '[data-testid="stPlotlyChart"] text') -> list[str]:
    """The text content of every element ``selector`` matches (by default, Plotly's labels)."""
    return page.locator(selector).evaluate_all("elements => elements.map(e => e.textContent)")


@pytest.mark.parametrize("path", ["no-such-page", "%3Cimg%20src=x%3E"])
def test_unknown_routes_fall_back_to_the_overview(page: Page, setup: Setup, path: str) -> None:
    page.goto(f"{setup.base}/{path}")
    expect(page.get_by_text("Page not found")).to_be_visible()
    expect(page.locator("h1", has_text="Overview")).to_be_visible()
    wait_idle(page)
    _assert_inert(page, setup)


def test_chart_hover_shows_a_hostile_intent_as_text(page: Page, setup: Setup) -> None:
    page.goto(f"{setup.base}/confidence")
    expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible()
    wait_idle(page)
    intent = setup.hostile.intents[0]
    label = page.locator('[data-testid="stPlotlyChart"] .ytick text', has_text=intent).first
    label.scroll_into_view_if_needed()
    wait_idle(page)
    box = label.bounding_box()
    assert box is not None
    chart = page.locator('[data-testid="stPlotlyChart"]').filter(
        has=page.locator(".ytick text", has_text=intent)
    )
    plot = chart.locator(".nsewdrag").first.bounding_box()
    assert plot is not None
    hover = chart.locator(".hoverlayer .hovertext")
    # Sweep along the bar's row until plotly shows its hover label.
    for fraction in (0.05, 0.15, 0.3, 0.5):
        page.mouse.move(plot["x"] + plot["width"] * fraction, box["y"] + box["height"] / 2)
        page.wait_for_timeout(300)
        if hover.count():
            break
    assert hover.count() >= 1
    texts = " ".join(hover.evaluate_all("elements => elements.map(e => e.textContent)"))
    assert intent in texts
    assert hover.locator("img, a").count() == 0
    _assert_inert(page, setup)


def test_drilldowns_show_every_payload_as_text(
    page: Page, setup: Setup, artifacts_dir: Path
) -> None:
    hostile = setup.hostile
    for index, email_id in enumerate(setup.email_ids):
        page.goto(f"{setup.base}/review?email_id={email_id}")
        drilldown = page.locator(".st-key-drilldown")
        expect(drilldown).to_be_visible()
        expect(drilldown.get_by_text(f"Email {email_id}")).to_be_visible()
        wait_idle(page)
        expected = [
            hostile.subjects[index],
            hostile.senders[index],
            hostile.intents[index],
            hostile.reasons[index],
        ]
        for name, value in hostile.values()[index].items():
            expected.append(name)
            expected.append(", ".join(value) if isinstance(value, list) else str(value))
        for text in expected:
            expect(drilldown.get_by_text(text, exact=True).first).to_be_visible()
        _assert_inert(page, setup)
        if index == 0:
            screenshot(page, artifacts_dir, "security_xss")


def test_review_form_keeps_hostile_text_inert(page: Page, setup: Setup) -> None:
    # A reviewer name is typed in (local mode), so it is untrusted text as well.
    name = f"![n]({setup.hostile.url('reviewer')}) <img src=x onerror=window.__xss=13>"
    email_id = setup.email_ids[0]
    page.goto(f"{setup.base}/review?email_id={email_id}")
    drilldown = page.locator(".st-key-drilldown")
    expect(drilldown).to_be_visible()
    wait_idle(page)
    page.get_by_placeholder("e.g. Anna Keller").fill(name)
    page.get_by_role("button", name="Start reviewing").click()
    expect(page.get_by_text(name, exact=True).first).to_be_visible()
    wait_idle(page)
    page.get_by_role("button", name="Claim this report").click()
    panel = page.locator(".st-key-review_panel")
    expect(panel.get_by_text("Your decision")).to_be_visible()
    wait_idle(page)
    for field in setup.hostile.values()[0]:
        expect(panel.get_by_text(field, exact=True).first).to_be_visible()
    _assert_inert(page, setup)
    page.get_by_role("button", name="Release").click()
    expect(panel.get_by_text("Open. Nobody holds this report.")).to_be_visible()
    wait_idle(page)
    _assert_inert(page, setup)


def test_hostile_intents_as_url_filters_stay_inert(page: Page, setup: Setup) -> None:
    for intent in setup.hostile.intents:
        page.goto(f"{setup.base}/missing-fields?intent={quote(intent)}")
        expect(page.locator("h1", has_text="Missing fields")).to_be_visible()
        wait_idle(page)
        expect(open_filters(page).get_by_text(intent, exact=True)).to_be_visible()
        page.keyboard.press("Escape")
        _assert_inert(page, setup)


def test_audit_export_is_audited_and_holds_no_values(
    page: Page, setup: Setup, artifacts_dir: Path
) -> None:
    page.goto(f"{setup.base}/review?email_id={setup.email_ids[0]}")
    expect(page.locator(".st-key-drilldown")).to_be_visible()
    wait_idle(page)
    page.goto(f"{setup.base}/audit")
    expect(page.locator("h1", has_text="Audit log")).to_be_visible()
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    wait_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_text("Local mode: no login configured")).to_be_visible()
    # The filter button names only the dates here: intents and routes do not apply.
    filter_button = page.locator('.st-key-filters_popover [data-testid="stPopoverButton"]')
    expect(filter_button.filter(visible=True)).to_contain_text(" – ")
    expect(filter_button.filter(visible=True)).not_to_contain_text("routes")
    screenshot(page, artifacts_dir, "audit")
    engine = make_engine(setup.db_url)
    try:
        with Session(engine) as session:
            exports_before = list_audit_events(session, action="csv_exported", limit=1000)
        with page.expect_download() as caught:
            page.get_by_role("button", name="Download the filtered audit log (CSV)").click()
        content = Path(caught.value.path()).read_text(encoding="utf-8")
        assert caught.value.suggested_filename.startswith("audit_log_")
        rows = list(csv.reader(io.StringIO(content)))
        assert rows[0] == ["occurred_at", "actor", "action", "email_id", "details"]
        actions = {row[2] for row in rows[1:]}
        assert {"drilldown_viewed", "audit_log_viewed"} <= actions
        viewed = [row for row in rows[1:] if row[2] == "drilldown_viewed"]
        assert str(setup.email_ids[0]) in [row[3] for row in viewed]
        for values in setup.hostile.values():
            for value in values.values():
                for part in value if isinstance(value, list) else [value]:
                    assert str(part) not in content
        with Session(engine) as session:
            exports = list_audit_events(session, action="csv_exported", limit=1000)
    finally:
        engine.dispose()
    assert len(exports) == len(exports_before) + 1
    newest = exports[0]
    assert (newest.actor, newest.email_id) == ("local-mode", None)
    assert newest.details == {"role": "admin", "page": "/audit", "rows": len(rows) - 1}
    _assert_inert(page, setup)
