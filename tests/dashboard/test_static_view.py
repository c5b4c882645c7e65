"""The default static view: every chart builder's figure drawn as SVG with its hover
texts, tables and KPI cards as HTML, the pages in AppTest and in a real browser, and the
switch to the interactive view. Screenshots go to tests/artifacts/static-*.png."""

from __future__ import annotations

import datetime as dt
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest
from playwright.sync_api import Page, expect
from streamlit.testing.v1 import AppTest

from dashboard import alert_charts, charts, quality_charts, static_view, ui
from dashboard.static_view import INTERACTIVE_KEY, Card
from reportlib.config import get_settings
from reportlib.queries import BINS, bin_label
from tests.dashboard.helpers import APP, HOSTILE_INTENT, SeededDatabase, new_app
from tests.dashboard.server import screenshot, streamlit_server, wait_idle

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<img src=x onerror=alert(1)>"&'
DAYS = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(30)]


def _trends() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "day": DAYS,
            "high": [100 + i for i in range(30)],
            "medium": [50] * 30,
            "low": [1_000 + i for i in range(30)],
            "needs_review_rate": [0.1 + i / 100 for i in range(30)],
            "avg_confidence": [0.7] * 30,
        }
    )


def _histogram() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"bin": b, "label": bin_label(b), "route": route, "reports": (b + 1) * 10}
            for b in range(BINS)
            for route in ("high", "medium", "low")
        ]
    )


def _figures() -> dict[str, go.Figure]:
    """One figure from every chart builder the pages use, with a hostile label."""
    trends = _trends()
    fields = pd.DataFrame(
        [
            {"field": name, "label": bin_label(b), "values": b + 1, "share": (b + 1) / 210}
            for name in ("client_name", HOSTILE)
            for b in range(BINS)
        ]
    )
    by_intent = pd.DataFrame(
        {
            "intent": ["payment_promise", HOSTILE],
            "reports": [30, 10],
            "avg_confidence": [0.8, 0.6],
            "high": [20, 2],
            "medium": [5, 3],
            "low": [5, 5],
        }
    )
    missing = pd.DataFrame(
        {"field": ["debt_amount", HOSTILE], "missing": [12, 3], "share": [0.12, 0.03]}
    )
    daily_missing = pd.DataFrame(
        [{"day": d, "field": f, "share": 0.1, "missing": 3} for d in DAYS for f in ("a", HOSTILE)]
    )
    grid = pd.DataFrame(
        [
            {"intent": i, "field": f, "missing": 4, "share": 0.25}
            for i in ("payment_promise", HOSTILE)
            for f in ("debt_amount", "client_name")
        ]
    )
    together = pd.DataFrame(
        [
            {"field": f, "other": o, "reports": 5, "share": 1.0 if f == o else 0.4}
            for f in ("debt_amount", "client_name")
            for o in ("debt_amount", "client_name")
        ]
    )
    counts = pd.DataFrame({"missing_fields": [0, 1, 2], "reports": [50, 20, 5]})
    counts["share"] = counts["reports"] / counts["reports"].sum()
    bins = pd.DataFrame(
        {
            "bin": ["0.50–0.55", "0.95–1.00"],
            "n": [10, 100],
            "mean_confidence": [0.52, 0.97],
            "accuracy": [0.5, 0.93],
        }
    )
    tradeoff = pd.DataFrame(
        {
            "threshold": [0.5, 0.7, 0.9],
            "review_share": [0.1, 0.3, 0.6],
            "wrong_escape_share": [0.5, 0.2, 0.05],
            "sent_to_review": [10, 30, 60],
            "wrong_passed": [5, 2, 1],
        }
    )
    outcomes = pd.DataFrame(
        {
            "field": ["debt_amount", HOSTILE],
            "n": [10, 20],
            "missed": [3, 5],
            "truly_absent": [7, 15],
            "missed_share": [0.3, 0.25],
            "absent_share": [0.7, 0.75],
        }
    )
    reviewers = pd.DataFrame(
        {"reviewer": ["ann", HOSTILE], "approved": [5, 3], "corrected": [2, 1], "rejected": [0, 1]}
    )
    spark = pd.DataFrame(
        {
            "at": [dt.datetime(2026, 11, 1, h, tzinfo=dt.UTC) for h in range(5)],
            "value": [0.1, 0.2, None, 0.15, 0.3],
        }
    )
    return {
        "daily_volume": charts.daily_volume(trends),
        "daily_rate": charts.daily_rate(trends),
        "daily_confidence": charts.daily_confidence(trends),
        "confidence_histogram": charts.confidence_histogram(_histogram()),
        "threshold_curve": charts.threshold_curve(_histogram(), 0.7),
        "field_confidence_heatmap": charts.field_confidence_heatmap(fields),
        "confidence_by_intent": charts.confidence_by_intent(by_intent),
        "route_mix_by_intent": charts.route_mix_by_intent(by_intent),
        "missing_frequency": charts.missing_frequency(missing),
        "missing_daily": charts.missing_daily(daily_missing),
        "missing_by_intent": charts.missing_by_intent(grid),
        "missing_cooccurrence": charts.missing_cooccurrence(together),
        "missing_count_distribution": charts.missing_count_distribution(counts),
        "reliability_diagram": quality_charts.reliability_diagram(bins, title="Cal", ece=0.03),
        "threshold_tradeoff": quality_charts.threshold_tradeoff(
            tradeoff, selected=0.7, title="Trade-off"
        ),
        "missing_outcomes": quality_charts.missing_outcomes(outcomes),
        "reviewer_throughput": quality_charts.reviewer_throughput(reviewers),
        "sparkline": alert_charts.sparkline(spark, title="Rate", threshold=0.2),
    }


def _titles(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [element.text or "" for element in root.iter(f"{SVG}title")]


@pytest.mark.parametrize("name", list(_figures()))
def test_every_chart_builder_draws_as_well_formed_svg_with_its_title(name: str) -> None:
    figure = _figures()[name]
    svg = static_view.figure_svg(figure)
    root = ET.fromstring(svg)  # well-formed XML: every label was escaped
    assert root.tag == f"{SVG}svg"
    texts = " ".join(element.text or "" for element in root.iter(f"{SVG}text"))
    title = html.unescape(re.sub(r"<[^>]+>", "", figure.layout.title.text or ""))
    assert title in texts
    marks = [
        element
        for element in root.iter()
        if element.tag in (f"{SVG}rect", f"{SVG}circle", f"{SVG}polyline")
    ]
    assert marks, "the chart drew nothing"
    # No element or attribute came from the data: only what the renderer writes.
    allowed = {"svg", "text", "rect", "circle", "polyline", "line", "title"}
    assert {element.tag.removeprefix(SVG) for element in root.iter()} <= allowed
    assert not any(
        attribute.startswith("on") for element in root.iter() for attribute in element.attrib
    )


@pytest.mark.parametrize("name", list(_figures()))
def test_every_chart_builder_makes_a_valid_plotly_figure(name: str) -> None:
    """The builders skip Plotly's validation for speed; here it runs on what they built:
    an unknown property or a bad value raises."""
    built = _figures()[name].to_plotly_json()
    validated = go.Figure(data=built["data"], layout=built["layout"])
    assert len(validated.data) == len(built["data"])
    with pytest.raises(ValueError, match="notaproperty"):
        go.Figure(data=[{**built["data"][0], "notaproperty": 1}], layout=built["layout"])


def test_hostile_labels_stay_text_in_the_svg() -> None:
    svg = static_view.figure_svg(_figures()["confidence_by_intent"])
    assert "<img" not in svg and html.escape(HOSTILE, quote=True) in svg
    texts = [element.text for element in ET.fromstring(svg).iter(f"{SVG}text")]
    assert HOSTILE in texts  # shown literally, as the interactive chart shows it


def test_hover_texts_are_the_plotly_hovertemplates_filled_in() -> None:
    svg = static_view.figure_svg(_figures()["daily_volume"])
    titles = _titles(svg)
    assert len(titles) == 3 * 30  # one per bar
    assert "2026-10-01\n100 reports\nHigh" in titles
    assert "2026-10-30\n1,029 reports\nLow" in titles
    heat = _titles(static_view.figure_svg(_figures()["missing_by_intent"]))
    assert f"{HOSTILE} · client_name\n25.0% missing (4 reports)" in heat
    tradeoff = _titles(static_view.figure_svg(_figures()["threshold_tradeoff"]))
    assert (
        "threshold 0.70\n30.0% of values reviewed (30)\n20.0% of wrong values pass (2)" in tradeoff
    )


def test_hover_text_formats() -> None:
    point: dict[str, Any] = {
        "x": dt.date(2026, 11, 3),
        "y": 1234.0,
        "customdata": ("0.90–0.95", 5678),
        "z": 12.345,
    }
    template = (
        "%{x|%b %d}<br>%{y:,} reports<br>%{customdata[0]} · %{customdata[1]:,}<extra>A</extra>"
    )
    assert static_view.hover_text(template, point) == "Nov 03\n1,234 reports\n0.90–0.95 · 5,678\nA"
    assert static_view.hover_text("%{z:.1f}%<extra></extra>", point) == "12.3%"
    assert static_view.hover_text("%{missing}", point) == ""
    assert static_view.hover_text(None, point) == ""


def test_nice_ticks() -> None:
    assert static_view.nice_ticks(0, 1029) == [0, 250, 500, 750, 1000]
    assert static_view.nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert static_view.nice_ticks(0, 12.5) == [0, 2.5, 5, 7.5, 10, 12.5]


def test_a_figure_it_cannot_draw_is_refused() -> None:
    pie = go.Figure(go.Pie(values=[1, 2]))
    with pytest.raises(static_view.UnsupportedFigure):
        static_view.figure_svg(pie)


def test_table_html_formats_escapes_and_dashes_missing_values() -> None:
    frame = pd.DataFrame(
        {"Field": [HOSTILE, "debt_amount"], "Mean": [0.81234, None], "Count": [1234, 5]}
    )
    shown = static_view.table_html(
        frame, column_config={"Mean": {"type_config": {"format": "%.3f"}}}
    )
    assert "<img" not in shown and html.escape(HOSTILE, quote=True) in shown
    assert ">0.812<" in shown and ">—<" in shown and ">1,234<" in shown


def test_chart_svgs_are_cached_per_builder_and_data() -> None:
    built: list[int] = []

    def counted_histogram(frame: pd.DataFrame) -> go.Figure:
        built.append(len(frame))
        return charts.confidence_histogram(frame)

    ui._chart_svg.clear()
    frame = _histogram()
    first = ui._chart_svg(counted_histogram, (frame,), (), 1000)
    again = ui._chart_svg(counted_histogram, (frame.copy(),), (), 1000)
    assert first == again and len(built) == 1  # an equal frame is a cache hit
    changed = frame.copy()
    changed.loc[changed.index[0], "reports"] += 7
    other = ui._chart_svg(counted_histogram, (changed,), (), 1000)
    assert len(built) == 2 and other != first  # different data, a new chart


def test_table_html_wraps_long_texts_only() -> None:
    frame = pd.DataFrame(
        {
            "Age": ["25 d 17 h", "3 h"],
            "Reason": ["low confidence on reference_numbers", "missing debt_amount"],
            "Created": pd.to_datetime(["2026-11-05 16:52", "2026-11-30 08:01"]),
            "Count": [1, 2],
        }
    )
    shown = static_view.table_html(frame)
    cells = re.findall(r'<td style="([^"]*)">([^<]*)</td>', shown)
    one_line = {text for style, text in cells if "nowrap" in style}
    assert one_line == {"25 d 17 h", "3 h", "2026-11-05 16:52", "2026-11-30 08:01", "1", "2"}


def test_cards_colour_changes_as_st_metric_does() -> None:
    shown = static_view.cards_html(
        [
            Card("Reports", "1,234", "+10 (1.0%)", "off"),
            Card("Needing review", "12.0%", "-1.0 pp", "inverse", help=HOSTILE),
            Card("Confidence", "0.800", "-0.010"),
            Card("Unchanged", "5", 0),
        ]
    )
    assert f'{static_view.MUTED};font-size:14px">↑ 10 (1.0%)' in shown
    assert f'{static_view.GOOD};font-size:14px">↓ 1.0 pp' in shown
    assert f'{static_view.BAD};font-size:14px">↓ 0.010' in shown
    assert "<img" not in shown and f'title="{html.escape(HOSTILE, quote=True)}"' in shown


# -- the pages in AppTest -------------------------------------------------------------

APP_PAGES = {
    "views/overview.py": "Overview",
    "views/confidence.py": "Confidence",
    "views/missing_fields.py": "Missing fields",
    "views/quality.py": "Quality",
}


def _html(at: Any) -> str:
    """Everything the page drew as HTML: tables and cards (``st.html``) and charts
    (raw HTML blocks in ``st.markdown``)."""
    blocks = [element.proto.body for element in at.get("html")]
    blocks += [m.value for m in at.markdown if m.value.startswith('<figure class="rl-chart"')]
    return "".join(blocks)


@pytest.mark.parametrize("path", list(APP_PAGES))
def test_static_pages_draw_svg_and_html_and_no_interactive_element(
    seeded_sqlite: SeededDatabase, use_database: Callable[[str], None], path: str
) -> None:
    use_database(seeded_sqlite.url)
    at = new_app(interactive=False)
    at.run()
    at.switch_page(path).run()
    assert not at.exception
    assert [t.value for t in at.title] == [APP_PAGES[path]]
    assert len(at.get("plotly_chart")) == 0 and len(at.dataframe) == 0 and len(at.metric) == 0
    shown = _html(at)
    assert shown.count("<svg") >= 1 and "<table" in shown
    assert ("rl-card" in shown) is (path != "views/missing_fields.py")  # it has no KPIs
    assert "<img" not in shown
    assert at.toggle(key="interactive_view").value is False


def test_the_static_overview_shows_the_same_figures_as_the_interactive_one(
    seeded_sqlite: SeededDatabase, use_database: Callable[[str], None]
) -> None:
    use_database(seeded_sqlite.url)
    interactive = new_app(interactive=True)
    interactive.run()
    metrics = {m.label: m.value for m in interactive.metric}
    assert len(metrics) == 8 and len(interactive.get("plotly_chart")) == 3
    static = new_app(interactive=False)
    static.run()
    shown = _html(static)
    for label, value in metrics.items():
        assert f">{html.escape(label)}" in shown and f">{html.escape(value)}</div>" in shown
    # The daily table holds the same rows as the data grid.
    grid = interactive.dataframe[0].value
    assert shown.count("<tr>") == len(grid) + 1
    # Switching the toggle on draws the interactive elements in the same session.
    static.toggle(key="interactive_view").set_value(True).run()
    assert len(static.get("plotly_chart")) == 3 and len(static.metric) == 8


def test_the_hostile_intent_stays_text_in_the_static_confidence_page(
    seeded_sqlite: SeededDatabase, use_database: Callable[[str], None]
) -> None:
    use_database(seeded_sqlite.url)
    at = new_app(interactive=False)
    at.run()
    at.switch_page("views/confidence.py").run()
    shown = _html(at)
    assert html.escape(HOSTILE_INTENT, quote=True) in shown
    assert HOSTILE_INTENT not in shown


def test_the_view_setting_picks_the_first_view(
    seeded_sqlite: SeededDatabase,
    use_database: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_database(seeded_sqlite.url)
    for setting, expected in (("interactive", True), ("static", False)):
        monkeypatch.setenv("DASHBOARD_VIEW", setting)
        get_settings.cache_clear()
        at = AppTest.from_file(str(APP), default_timeout=90)
        at.run()
        assert at.session_state[INTERACTIVE_KEY] is expected
        assert (len(at.get("plotly_chart")) == 3) is expected
    get_settings.cache_clear()


# -- the pages in a browser -----------------------------------------------------------

BROWSER_PAGES = {
    "overview": ("", "Overview"),
    "confidence": ("confidence", "Confidence"),
    "missing-fields": ("missing-fields", "Missing fields"),
    "review": ("review", "Review queue"),
    "quality": ("quality", "Quality"),
}


# The review page keeps its statistics (five cards) in a tab that is not open.
CARDS = {"overview": 8, "confidence": 3, "missing-fields": 0, "review": 0, "quality": 7}


@pytest.fixture(scope="module")
def static_server(
    seeded_sqlite: SeededDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` in its default (static) view."""
    with streamlit_server(
        seeded_sqlite.url,
        tmp_path_factory.mktemp("streamlit-static"),
        env={"DASHBOARD_VIEW": "static"},
    ) as running:
        yield running.base


@pytest.mark.browser
@pytest.mark.parametrize("name", list(BROWSER_PAGES))
def test_static_page_in_the_browser(
    static_server: str, page: Page, artifacts_dir: Path, name: str
) -> None:
    path, title = BROWSER_PAGES[name]
    page.goto(f"{static_server}/{path}")
    expect(page.locator("h1", has_text=title)).to_be_visible()
    wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 0
    assert page.locator('[data-testid="stDataFrame"]').count() == 0
    expect(page.locator('[data-testid="stHtml"] .rl-table table').first).to_be_visible()
    charts_drawn = page.locator('[data-testid="stMarkdown"] figure.rl-chart svg[role="img"]')
    if name != "review":
        expect(charts_drawn.first).to_be_visible()
        # Each chart kept its marks and their hover texts through the HTML sanitizer.
        first = charts_drawn.first
        assert first.locator("rect, circle, polyline").count() >= 1
        assert first.locator("title").count() >= 1
    assert page.locator('[data-testid="stHtml"] .rl-card').count() == CARDS[name]
    screenshot(page, artifacts_dir, f"static-{name}")
    if name == "review":
        # A row opens through the list of the page's emails.
        pick = page.locator('[data-testid="stSelectbox"]').filter(has_text="Open an email")
        pick.locator('[role="combobox"], input').first.click()
        page.get_by_role("option").nth(1).click()
        expect(page.locator(".st-key-drilldown")).to_be_visible()
        page.wait_for_url("**email_id=**")
        wait_idle(page)
        screenshot(page, artifacts_dir, "static-review-drilldown")


@pytest.mark.browser
def test_the_toggle_switches_to_interactive_charts_in_the_browser(
    static_server: str, page: Page
) -> None:
    page.goto(f"{static_server}/")
    expect(page.locator("h1", has_text="Overview")).to_be_visible()
    wait_idle(page)
    page.get_by_text("Interactive charts and tables").click()
    expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(3)
    assert page.locator("figure.rl-chart svg").count() == 0
