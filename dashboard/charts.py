"""Plotly figure builders: pure functions, a frame in and a figure out.

No Streamlit and no database here. Category labels (intents, field names) come from
pipeline output, so they are escaped before plotly sees them: plotly reads a small HTML
subset in labels, and those must show as text.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from dashboard.values import plain_text
from reportlib.queries import BINS, bin_label

# The house palette: every chart colour is one of these.
TEAL = "#2F6F8F"
GREEN = "#3E8E7E"
AMBER = "#E0A458"
RED = "#C8553D"
PURPLE = "#7A5C99"
GREY = "#8C8C8C"
PINK = "#B5739D"
INK = "#1F2A33"
ROUTE_COLORS = {"high": GREEN, "medium": AMBER, "low": RED}
ROUTE_NAMES = {"high": "High", "medium": "Medium", "low": "Low"}
LINE_COLOR = TEAL
SEQUENTIAL = "Blues"
FONT = {"family": "Source Sans Pro, sans-serif", "size": 13, "color": INK}


def plain(text: object) -> str:
    """``text`` escaped so plotly shows it literally instead of reading tags or entities."""
    return html.escape(plain_text(text), quote=True)


def _plain_all(values: Iterable[object]) -> list[str]:
    return [plain(value) for value in values]


# plotly_white, trimmed to what cartesian bar, line and heatmap charts read. Validating the
# whole template (every trace type, polar, geo, 3-D scenes) took most of each figure's build
# time and half of its JSON; these charts draw the same without the rest.
_WHITE = pio.templates["plotly_white"].to_plotly_json()
TEMPLATE = go.layout.Template(
    {
        "layout": {
            key: value
            for key, value in _WHITE["layout"].items()
            if key not in {"geo", "polar", "scene", "ternary"}
        },
        "data": {kind: _WHITE["data"][kind] for kind in ("bar", "heatmap", "scatter")},
    }
)


def house_layout(
    *,
    title: str,
    x: str,
    y: str,
    height: int = 360,
    legend: bool = False,
    xaxis: dict[str, Any] | None = None,
    yaxis: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The house layout as a plain dict: escaped title and axis titles, legend under the
    title. ``legend`` leaves room for a legend row; ``xaxis``, ``yaxis`` and ``extra`` add
    to the axes and the layout."""
    return {
        "title": {
            "text": plain(title),
            "x": 0,
            "xanchor": "left",
            "y": 0.98,
            "yanchor": "top",
            "yref": "container",
            "font": {"size": 16},
        },
        "template": TEMPLATE,
        "font": FONT,
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 84 if legend else 52, "b": 10},
        # Legend between the title and the plot, in the order the traces were added.
        "legend": {
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.02,
            "xanchor": "left",
            "x": 0,
            "traceorder": "normal",
        },
        "hoverlabel": {"font": {"size": 13}},
        "xaxis": {"title": {"text": plain(x)}, "automargin": True, **(xaxis or {})},
        "yaxis": {"title": {"text": plain(y)}, "automargin": True, **(yaxis or {})},
        **extra,
    }


def figure(traces: list[dict[str, Any]], **layout: Any) -> go.Figure:
    """A figure from trace dicts (each with its ``type``) in the house layout
    (:func:`house_layout`'s arguments), built in one step: no template copy and no layout
    update per call.

    Plotly's per-property validation is skipped (``_validate=False``, the switch Plotly's
    own constructors take): it took 12 to 20 ms of each figure's 13 to 21 ms on a page
    load, ten times the drawing. tests/dashboard/test_static_view.py validates every
    builder's figure instead, so a wrong property still fails a test."""
    return go.Figure(
        data=traces, layout=house_layout(legend=len(traces) > 1, **layout), _validate=False
    )


def apply_layout(figure: go.Figure, *, title: str, x: str, y: str, height: int = 360) -> go.Figure:
    """The house layout on an existing figure (slower than :func:`figure`)."""
    return figure.update_layout(
        house_layout(title=title, x=x, y=y, height=height, legend=len(figure.data) > 1)
    )


def daily_volume(frame: pd.DataFrame) -> go.Figure:
    """Stacked daily bars of reports per route (columns ``day``, ``high``, ``medium``,
    ``low``)."""
    traces = [
        {
            "type": "bar",
            "x": frame["day"],
            "y": frame[route],
            "name": ROUTE_NAMES[route],
            "marker": {"color": ROUTE_COLORS[route]},
            "hovertemplate": "%{x|%Y-%m-%d}<br>%{y:,} reports<extra>"
            + ROUTE_NAMES[route]
            + "</extra>",
        }
        for route in ("high", "medium", "low")
    ]
    return figure(
        traces,
        title="Reports per day by route",
        x="Day (UTC)",
        y="Reports",
        xaxis={"tickformat": "%b %d"},
        barmode="stack",
    )


def _daily_line(frame: pd.DataFrame, values: Any, *, color: str, hover: str) -> dict[str, Any]:
    return {
        "type": "scatter",
        "x": frame["day"],
        "y": values,
        "mode": "lines+markers",
        "line": {"color": color, "width": 2},
        "marker": {"size": 5},
        "connectgaps": False,
        "hovertemplate": hover,
    }


def daily_rate(frame: pd.DataFrame) -> go.Figure:
    """Daily needs-review rate in percent (column ``needs_review_rate`` as a share)."""
    line = _daily_line(
        frame,
        frame["needs_review_rate"] * 100,
        color=RED,
        hover="%{x|%Y-%m-%d}<br>%{y:.1f}% need review<extra></extra>",
    )
    return figure(
        [line],
        title="Needs-review rate per day",
        x="Day (UTC)",
        y="Reports needing review (%)",
        xaxis={"tickformat": "%b %d"},
        yaxis={"rangemode": "tozero", "ticksuffix": "%"},
    )


def daily_confidence(frame: pd.DataFrame) -> go.Figure:
    """Daily mean overall confidence (column ``avg_confidence``)."""
    line = _daily_line(
        frame,
        frame["avg_confidence"],
        color=LINE_COLOR,
        hover="%{x|%Y-%m-%d}<br>mean confidence %{y:.3f}<extra></extra>",
    )
    return figure(
        [line],
        title="Average overall confidence per day",
        x="Day (UTC)",
        y="Mean confidence (0–1)",
        xaxis={"tickformat": "%b %d"},
        yaxis={"range": [0, 1.02]},
    )


def confidence_histogram(frame: pd.DataFrame) -> go.Figure:
    """Stacked histogram of overall confidence per route (columns ``label``, ``route``,
    ``reports``), in the fixed 0.05-wide bins."""
    labels = [bin_label(i) for i in range(BINS)]
    traces = []
    for route in ("high", "medium", "low"):
        part = frame[frame["route"] == route]
        if part.empty:
            continue
        traces.append(
            {
                "type": "bar",
                "x": part["label"],
                "y": part["reports"],
                "name": ROUTE_NAMES[route],
                "marker": {"color": ROUTE_COLORS[route]},
                "hovertemplate": "confidence %{x}<br>%{y:,} reports<extra>"
                + ROUTE_NAMES[route]
                + "</extra>",
            }
        )
    return figure(
        traces,
        title="Overall confidence by route",
        x="Overall confidence (bins of 0.05; the last includes 1.00)",
        y="Reports",
        xaxis={"categoryorder": "array", "categoryarray": labels, "tickangle": -45},
        barmode="stack",
        bargap=0.05,
    )


def _share_grid(
    frame: pd.DataFrame,
    *,
    rows: str,
    columns: str,
    count: str,
    row_order: list[Any],
    column_order: list[Any],
) -> tuple[Any, Any]:
    """Percent shares (``share`` x 100, one decimal) and counts as ``rows`` x ``columns``
    grids in the given orders."""
    shares = frame.pivot(index=rows, columns=columns, values="share")
    counts = frame.pivot(index=rows, columns=columns, values=count)
    shares = shares.reindex(index=row_order, columns=column_order)
    counts = counts.reindex(index=row_order, columns=column_order)
    return (shares * 100).round(1).to_numpy(), counts.to_numpy()


def _heatmap(
    z: Any,
    counts: Any,
    *,
    x: list[str],
    y: list[str],
    colorscale: str,
    legend: str,
    hover: str,
    text: list[list[str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A heatmap trace of percentages in the house style: one pixel between cells, a
    percent colour bar titled ``legend``, counts in ``customdata`` for ``hover``."""
    trace: dict[str, Any] = {
        "type": "heatmap",
        "z": z,
        "x": x,
        "y": y,
        "customdata": counts,
        "colorscale": colorscale,
        "zmin": 0,
        "colorbar": {"title": {"text": legend, "side": "right"}, "ticksuffix": "%"},
        "hovertemplate": hover + "<extra></extra>",
        "xgap": 1,
        "ygap": 1,
        **extra,
    }
    if text is not None:
        trace.update(text=text, texttemplate="%{text}")
    return trace


def field_confidence_heatmap(frame: pd.DataFrame) -> go.Figure:
    """Per-field confidence distribution: share of each field's values per bin
    (columns ``field``, ``label``, ``values``, ``share``)."""
    fields = list(dict.fromkeys(frame["field"]))
    labels = [bin_label(i) for i in range(BINS)]
    z, counts = _share_grid(
        frame, rows="field", columns="label", count="values", row_order=fields, column_order=labels
    )
    heatmap = _heatmap(
        z,
        counts,
        x=labels,
        y=_plain_all(fields),
        colorscale=SEQUENTIAL,
        legend="% of values",
        hover="%{y}<br>confidence %{x}<br>%{z:.1f}% of values (%{customdata:,})",
    )
    return figure(
        [heatmap],
        title="Confidence per field",
        x="Field confidence (bins of 0.05)",
        y="Field",
        height=max(260, 90 + 44 * len(fields)),
        xaxis={"tickangle": -45},
        yaxis={"autorange": "reversed"},
    )


def confidence_by_intent(frame: pd.DataFrame) -> go.Figure:
    """Mean overall confidence per intent, with the report count on each bar."""
    ordered = frame.sort_values("reports", ascending=True)
    bars = {
        "type": "bar",
        "x": ordered["avg_confidence"],
        "y": _plain_all(ordered["intent"]),
        "orientation": "h",
        "marker": {"color": LINE_COLOR},
        "text": [
            f"{v:.2f} · {n:,} reports"
            for v, n in zip(ordered["avg_confidence"], ordered["reports"], strict=True)
        ],
        "textposition": "auto",
        "hovertemplate": "%{y}<br>mean confidence %{x:.3f}<extra></extra>",
    }
    return figure(
        [bars],
        title="Average overall confidence by intent",
        x="Mean overall confidence (0–1)",
        y="Intent",
        height=max(260, 90 + 36 * len(ordered)),
        xaxis={"range": [0, 1]},
    )


def route_mix_by_intent(frame: pd.DataFrame) -> go.Figure:
    """Share of each intent's reports per route (100% stacked bars)."""
    ordered = frame.sort_values("reports", ascending=True)
    intents = _plain_all(ordered["intent"])
    traces = [
        {
            "type": "bar",
            "x": ordered[route] / ordered["reports"] * 100,
            "y": intents,
            "orientation": "h",
            "name": ROUTE_NAMES[route],
            "marker": {"color": ROUTE_COLORS[route]},
            "customdata": ordered[route],
            "hovertemplate": "%{y}<br>%{x:.1f}% (%{customdata:,} reports)<extra>"
            + ROUTE_NAMES[route]
            + "</extra>",
        }
        for route in ("high", "medium", "low")
    ]
    return figure(
        traces,
        title="Route mix by intent",
        x="Share of the intent's reports (%)",
        y="Intent",
        height=max(260, 90 + 36 * len(ordered)),
        xaxis={"range": [0, 100], "ticksuffix": "%"},
        barmode="stack",
    )


def threshold_curve(histogram: pd.DataFrame, threshold: float) -> go.Figure:
    """Share of reports below each bin edge 0.00, 0.05, ... 0.95 (summed from the
    histogram's bins), with the chosen threshold marked."""
    per_bin = (
        histogram.groupby("bin", sort=True)["reports"].sum().reindex(range(BINS), fill_value=0)
    )
    total = int(per_bin.sum())
    edges = [i / BINS for i in range(BINS)]
    below = [int(per_bin.iloc[:i].sum()) for i in range(BINS)]
    shares = [count / total * 100 if total else 0.0 for count in below]
    line = {
        "type": "scatter",
        "x": edges,
        "y": shares,
        "mode": "lines+markers",
        "line": {"color": LINE_COLOR, "width": 2},
        "marker": {"size": 5},
        "customdata": below,
        "hovertemplate": "below %{x:.2f}: %{y:.1f}% (%{customdata:,} reports)<extra></extra>",
    }
    # What figure.add_vline(annotation_position="top left") adds, written out.
    marker = {"x0": threshold, "x1": threshold, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain"}
    return figure(
        [line],
        title="Reports below a threshold",
        x="Overall confidence threshold",
        y="Reports below it (%)",
        xaxis={"range": [0, 1.0], "dtick": 0.1},
        yaxis={"range": [0, 102], "ticksuffix": "%"},
        shapes=[{"type": "line", "line": {"color": RED, "dash": "dash"}, **marker}],
        annotations=[
            {
                "text": f"threshold {threshold:.2f}",
                "showarrow": False,
                "x": threshold,
                "xref": "x",
                "xanchor": "right",
                "y": 1,
                "yref": "y domain",
                "yanchor": "top",
            }
        ],
    )


def missing_frequency(frame: pd.DataFrame) -> go.Figure:
    """Share of reports missing each field (columns ``field``, ``missing``, ``share``)."""
    ordered = frame.iloc[::-1]
    bars = {
        "type": "bar",
        "x": ordered["share"] * 100,
        "y": _plain_all(ordered["field"]),
        "orientation": "h",
        "marker": {"color": RED},
        "text": [
            f"{share * 100:.1f}% · {n:,}" if share == share else f"{n:,}"
            for share, n in zip(ordered["share"], ordered["missing"], strict=True)
        ],
        "textposition": "auto",
        "customdata": ordered["missing"],
        "hovertemplate": "%{y}<br>missing in %{x:.1f}% of reports (%{customdata:,})<extra></extra>",
    }
    return figure(
        [bars],
        title="How often each field is missing",
        x="Reports missing the field (%)",
        y="Field",
        height=max(240, 90 + 40 * len(ordered)),
        xaxis={"rangemode": "tozero", "ticksuffix": "%"},
    )


def missing_daily(frame: pd.DataFrame) -> go.Figure:
    """Daily share of reports missing each field (columns ``day``, ``field``, ``share``)."""
    palette = [TEAL, RED, AMBER, GREEN, PURPLE, GREY, PINK]
    traces = [
        {
            "type": "scatter",
            "x": part["day"],
            "y": part["share"] * 100,
            "mode": "lines",
            "name": plain(name),
            "line": {"width": 2, "color": palette[index % len(palette)]},
            "customdata": part["missing"],
            "hovertemplate": "%{x|%Y-%m-%d}<br>%{y:.1f}% missing (%{customdata:,})<extra>"
            + plain(name)
            + "</extra>",
        }
        for index, (name, part) in enumerate(frame.groupby("field", sort=False))
    ]
    return figure(
        traces,
        title="Missing fields per day",
        x="Day (UTC)",
        y="Reports missing the field (%)",
        xaxis={"tickformat": "%b %d"},
        yaxis={"rangemode": "tozero", "ticksuffix": "%"},
    )


def missing_by_intent(frame: pd.DataFrame) -> go.Figure:
    """Heatmap: share of each intent's reports missing each field."""
    intents = list(dict.fromkeys(frame["intent"]))
    fields = list(dict.fromkeys(frame["field"]))
    z, counts = _share_grid(
        frame,
        rows="intent",
        columns="field",
        count="missing",
        row_order=intents,
        column_order=fields,
    )
    heatmap = _heatmap(
        z,
        counts,
        x=_plain_all(fields),
        y=_plain_all(intents),
        colorscale="Reds",
        legend="% missing",
        hover="%{y} · %{x}<br>%{z:.1f}% missing (%{customdata:,} reports)",
        text=[[f"{v:.1f}%" for v in row] for row in z],
    )
    return figure(
        [heatmap],
        title="Missing fields by intent",
        x="Field",
        y="Intent",
        height=max(260, 110 + 40 * len(intents)),
        yaxis={"autorange": "reversed"},
    )


def missing_cooccurrence(frame: pd.DataFrame) -> go.Figure:
    """Heatmap: of the reports missing the row's field, the share also missing the
    column's field (columns ``field``, ``other``, ``reports``, ``share``)."""
    fields = list(dict.fromkeys(frame["field"]))
    z, counts = _share_grid(
        frame, rows="field", columns="other", count="reports", row_order=fields, column_order=fields
    )
    labels = _plain_all(fields)
    heatmap = _heatmap(
        z,
        counts,
        x=labels,
        y=labels,
        colorscale="Purples",
        legend="% also missing",
        hover="missing %{y}: %{z:.1f}% also miss %{x} (%{customdata:,} reports)",
        text=[["" if v != v else f"{v:.0f}%" for v in row] for row in z],
        zmax=100,
    )
    return figure(
        [heatmap],
        title="Fields missing together",
        x="…also missing this field",
        y="Reports missing this field…",
        height=max(300, 140 + 48 * len(fields)),
        yaxis={"autorange": "reversed"},
    )


def missing_count_distribution(frame: pd.DataFrame) -> go.Figure:
    """Reports by number of missing fields (columns ``missing_fields``, ``reports``)."""
    bars = {
        "type": "bar",
        "x": frame["missing_fields"].astype(str),
        "y": frame["reports"],
        "marker": {"color": PURPLE},
        "customdata": frame["share"] * 100,
        "hovertemplate": "%{x} missing: %{y:,} reports (%{customdata:.1f}%)<extra></extra>",
    }
    return figure(
        [bars],
        title="Reports by number of missing fields",
        x="Missing fields in the report",
        y="Reports",
    )
