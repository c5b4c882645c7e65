"""What Streamlit itself costs in the browser, layer by layer, against hello-world.

The dashboard's pages are drawn 1 s or more after a hello-world page even when their data
takes tens of milliseconds. This measures where that time goes without any database: one
synthetic page per variant, each adding layers of what a dashboard page is made of, all
timed the same way as ``bench/browser.py`` (same idle rule, same Chromium flags, one
browser context, loads interleaved with hello-world):

* ``nav``: ``st.set_page_config`` (wide) and ``st.navigation`` with five pages (the
  sidebar's page list), a title and a caption;
* ``filters``: the sidebar's filters: a date range input and two multiselects;
* ``metrics``: eight ``st.metric`` cards (border, delta, help), as on the Overview;
* ``cards``: the same eight figures as one static HTML block (``st.html``);
* ``plotly``: three Plotly bar charts of 30 points;
* ``dataframe``: one ``st.dataframe`` of 30 rows;
* ``svg``: three bar charts as static SVG images (``st.image``);
* ``inline``: the same three SVG charts inline in the page, as the dashboard's static
  view draws them (a raw HTML block in ``st.markdown``; ``st.html`` drops SVG), so that
  each bar's ``<title>`` shows as a tooltip;
* ``vega``: three Vega-Lite bar charts of 30 points (``st.vega_lite_chart``);
* ``table``: the data frame's 30 rows as a static table (``st.table``);
* ``topnav``: ``nav`` with the page list across the top instead of in the sidebar.

Besides the wall time (navigation start until idle), each load records the renderer's
main-thread busy time from the Chrome DevTools Protocol (``Performance.getMetrics``:
``TaskDuration`` and ``ScriptDuration`` of the new document). Main-thread time is
what the page's own JavaScript and layout cost; it moves less than the wall time when
something else shares the machine.

    python -m bench.browser_floor --runs 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import browser

LAYERS = (
    "nav", "topnav", "filters", "metrics", "cards", "plotly", "vega", "dataframe", "table",
    "svg", "inline",
)
#: The variants measured by default: each adds one layer to navigation and filters, so
#: that every layer's cost reads as its difference from ``nav+filters``.
DEFAULT_VARIANTS = (
    "nav",
    "nav+filters",
    "nav+filters+metrics",
    "nav+filters+cards",
    "nav+filters+plotly",
    "nav+filters+dataframe",
    "nav+filters+svg",
    "nav+filters+inline",
    "nav+filters+vega",
    "nav+filters+table",
    "topnav+filters",
    "nav+filters+metrics+plotly+dataframe",
    "nav+filters+cards+inline+table",
)
ENV_LAYERS = "BENCH_FLOOR_LAYERS"

# One script serves every variant; the server's environment picks the layers.
FLOOR_APP = '''
import datetime as dt
import os

import streamlit as st

LAYERS = set(os.environ["BENCH_FLOOR_LAYERS"].split("+"))
DAYS = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(30)]
COUNTS = [1000 + 10 * i for i in range(30)]


def svg_bars() -> str:
    bars = "".join(
        f'<rect x="{20 * i}" y="{220 - n // 10}" width="18" height="{n // 10}" '
        f'fill="#2F6F8F"><title>{day}: {n}</title></rect>'
        for i, (day, n) in enumerate(zip(DAYS, COUNTS))
    )
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 600 230">{bars}</svg>'


def body() -> None:
    st.title("Overview")
    st.caption("2026-11-01 to 2026-11-30 (UTC, 30 days).")
    if "metrics" in LAYERS:
        for _ in range(2):
            for column in st.columns(4):
                column.metric("Reports", "12,345", "+120 (1.0%)", border=True, help="Help.")
    if "cards" in LAYERS:
        card = (
            '<div style="border:1px solid #ddd;border-radius:8px;padding:12px" title="Help.">'
            '<div>Reports</div><div style="font-size:2.2rem">12,345</div>'
            '<div style="color:#3E8E7E">+120 (1.0%)</div></div>'
        )
        st.html(
            '<div style="display:grid;grid-template-columns:repeat(4,1fr);gap:12px">'
            + card * 8 + "</div>"
        )
    if "plotly" in LAYERS:
        import plotly.graph_objects as go

        for key in range(3):
            st.plotly_chart(go.Figure(go.Bar(x=DAYS, y=COUNTS)), key=f"chart{key}")
    if "dataframe" in LAYERS:
        st.dataframe({"day": DAYS, "reports": COUNTS}, hide_index=True)
    if "svg" in LAYERS:
        for _ in range(3):
            st.image(svg_bars(), width="stretch")
    if "inline" in LAYERS:
        for _ in range(3):
            st.markdown(f"<figure>{svg_bars()}</figure>", unsafe_allow_html=True)
    if "vega" in LAYERS:
        spec = {
            "mark": "bar",
            "encoding": {
                "x": {"field": "day", "type": "temporal"},
                "y": {"field": "reports", "type": "quantitative"},
                "tooltip": [{"field": "day", "type": "temporal"}, {"field": "reports"}],
            },
        }
        for key in range(3):
            st.vega_lite_chart({"day": DAYS, "reports": COUNTS}, spec, key=f"vega{key}")
    if "table" in LAYERS:
        st.table({"day": DAYS, "reports": COUNTS})


def filters() -> None:
    with st.sidebar:
        st.subheader("Filters")
        st.date_input("Dates", value=(DAYS[0], DAYS[-1]), key="dates")
        st.multiselect("Intent", ["payment_promise", "dispute"], key="intents")
        st.multiselect("Route", ["high", "medium", "low"], key="routes")


st.set_page_config(page_title="Floor", layout="wide", initial_sidebar_state="expanded")
if "nav" in LAYERS or "topnav" in LAYERS:
    page = st.navigation(
        [
            st.Page(body, title=title, url_path=path, default=not path)
            for title, path in [
                ("Overview", ""), ("Confidence", "confidence"), ("Missing", "missing"),
                ("Review", "review"), ("Quality", "quality"),
            ]
        ],
        position="top" if "topnav" in LAYERS else "sidebar",
    )
    if "filters" in LAYERS:
        filters()
    page.run()
else:
    if "filters" in LAYERS:
        filters()
    body()
'''

_METRICS = ("TaskDuration", "ScriptDuration")
#: Elements counted on each variant's last load, so that a result shows what was drawn.
ELEMENTS = {
    "metrics": "stMetric",
    "html": "stHtml",
    "plotly": "stPlotlyChart",
    "dataframe": "stDataFrame",
    "images": "stImage",
    "vega": "stVegaLiteChart",
    "tables": "stTable",
    "date_inputs": "stDateInput",
    "multiselects": "stMultiSelect",
}
_COUNT_ELEMENTS = (
    "(ids) => Object.fromEntries(Object.entries(ids).map(([name, id]) =>"
    " [name, document.querySelectorAll(`[data-testid=\"${id}\"]`).length]))"
)


def check_variants(variants: Sequence[str]) -> list[str]:
    """``variants`` as given, each a ``+``-joined list of known layers."""
    for variant in variants:
        unknown = set(variant.split("+")) - set(LAYERS)
        if not variant or unknown:
            raise ValueError(f"variant {variant!r}: unknown layer(s) {sorted(unknown)}; "
                             f"known: {', '.join(LAYERS)}")
    return list(variants)


def _main_thread_ms(cdp: Any) -> dict[str, float]:
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {name: float(metrics.get(name, 0.0)) * 1000 for name in _METRICS}


def run_floor(
    *,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    runs: int = 5,
    chromium: str = browser.CHROMIUM,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Median wall and main-thread times of every variant and of hello-world."""
    from playwright.sync_api import sync_playwright

    variants = check_variants(variants)
    names = ["hello", *variants]
    wall: dict[str, list[float]] = {name: [] for name in names}
    main: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp, ExitStack() as stack:
        tmp_dir = Path(tmp)
        (tmp_dir / "hello.py").write_text(browser.HELLO_SCRIPT)
        (tmp_dir / "floor.py").write_text(FLOOR_APP)
        servers = {
            "hello": stack.enter_context(browser.streamlit_server(
                str(tmp_dir / "hello.py"), browser.server_env(None), tmp_dir / "hello.log"))
        }
        for variant in variants:
            env = {**browser.server_env(None), ENV_LAYERS: variant}
            servers[variant] = stack.enter_context(browser.streamlit_server(
                str(tmp_dir / "floor.py"), env, tmp_dir / f"{variant}.log"))
        pw = stack.enter_context(sync_playwright())
        chrome = pw.chromium.launch(executable_path=chromium, args=browser.CHROMIUM_ARGS)
        stack.callback(chrome.close)
        context = chrome.new_context(viewport={"width": 1440, "height": 1000})
        tabs: dict[str, tuple[Any, Any]] = {}
        for name in names:
            tab = context.new_page()
            content = browser.HELLO_CONTENT if name == "hello" else browser.DASHBOARD_CONTENT
            tab.add_init_script(browser.IDLE_TRACKER % content)
            cdp = context.new_cdp_session(tab)
            cdp.send("Performance.enable")
            tabs[name] = (tab, cdp)
            browser.timed_load(tab, servers[name].base + "/")  # untimed warm-up
        for run in range(runs):
            for name in names:
                tab, cdp = tabs[name]
                wall[name].append(browser.timed_load(tab, servers[name].base + "/"))
                # The metrics belong to the document just loaded (they restart with it).
                main[name].append(_main_thread_ms(cdp))
            log(f"  run {run + 1}: " + "  ".join(f"{n} {wall[n][-1]:.0f}" for n in names))
        drawn = {name: tab.evaluate(_COUNT_ELEMENTS, ELEMENTS) for name, (tab, _) in tabs.items()}
        for name, server in servers.items():
            if server.log_text().count("Traceback"):
                raise RuntimeError(f"the {name} page failed:\n{server.log_text()[-2000:]}")
    hello_wall = statistics.median(wall["hello"])
    hello_task = statistics.median(m["TaskDuration"] for m in main["hello"])
    out: dict[str, Any] = {"runs": runs, "load_average": list(os.getloadavg()), "variants": {}}
    for name in names:
        task = statistics.median(m["TaskDuration"] for m in main[name])
        script = statistics.median(m["ScriptDuration"] for m in main[name])
        out["variants"][name] = {
            "wall_ms": round(statistics.median(wall[name]), 1),
            "wall_over_hello_ms": round(statistics.median(wall[name]) - hello_wall, 1),
            "main_thread_ms": round(task, 1),
            "main_thread_over_hello_ms": round(task - hello_task, 1),
            "script_ms": round(script, 1),
            "wall_runs_ms": [round(v, 1) for v in wall[name]],
            "elements": drawn[name],
        }
    return out


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"{'Page':<40} {'wall':>8} {'vs hello':>9} {'main thread':>12} {'vs hello':>9} "
        f"{'script':>8}"
    ]
    for name, figures in result["variants"].items():
        lines.append(
            f"{name:<40} {figures['wall_ms']:>6.0f}ms {figures['wall_over_hello_ms']:>+7.0f}ms "
            f"{figures['main_thread_ms']:>10.0f}ms {figures['main_thread_over_hello_ms']:>+7.0f}ms "
            f"{figures['script_ms']:>6.0f}ms"
        )
    load = ", ".join(f"{v:.2f}" for v in result["load_average"])
    lines.append(f"median of {result['runs']} loads each; load average at the end: {load}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.browser_floor",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chromium", default=browser.CHROMIUM)
    parser.add_argument(
        "--variant", action="append", dest="variants",
        help=f"a '+'-joined list of layers ({', '.join(LAYERS)}); repeat for several",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        variants = check_variants(args.variants or DEFAULT_VARIANTS)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"load average at the start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    result = run_floor(variants=variants, runs=args.runs, chromium=args.chromium)
    print(format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
