"""Plotly builders for the quality page and the queue statistics: a frame in, a figure out.

No Streamlit and no database here. Field names and reviewer identities are escaped with
:func:`dashboard.charts.plain` before plotly sees them.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import AMBER, GREEN, GREY, INK, LINE_COLOR, RED, figure, plain

ACCENT = RED
MUTED = GREY
MISSED_COLOR = RED
ABSENT_COLOR = "#7FA7BF"
OUTCOME_COLORS = {"approved": GREEN, "corrected": AMBER, "rejected": RED}


def reliability_diagram(bins: pd.DataFrame, *, title: str, ece: float | None) -> go.Figure:
    """Share verified correct against mean confidence per bin, with the diagonal.

    ``bins`` has columns ``bin`` (label), ``n``, ``mean_confidence`` and ``accuracy``;
    empty bins (``n == 0``) are left out. Bubble area follows the number of verdicts,
    which is also written next to each point.
    """
    shown = bins[bins["n"] > 0]
    largest = max(int(shown["n"].max()), 1) if len(shown) else 1
    sizes = [10 + 26 * math.sqrt(int(n) / largest) for n in shown["n"]]
    diagonal = {
        "type": "scatter",
        "x": [0, 1],
        "y": [0, 100],
        "mode": "lines",
        "name": "Perfectly calibrated",
        "line": {"color": MUTED, "dash": "dash", "width": 1.5},
        "hoverinfo": "skip",
    }
    points = {
        "type": "scatter",
        "x": shown["mean_confidence"],
        "y": shown["accuracy"] * 100,
        "mode": "lines+markers+text",
        "name": "Reviewed values",
        "line": {"color": LINE_COLOR, "width": 2},
        "marker": {"size": sizes, "color": LINE_COLOR, "opacity": 0.75, "line": {"width": 0}},
        "text": [f"n={int(n):,}" for n in shown["n"]],
        "textposition": "top left",
        "textfont": {"size": 12, "color": INK},
        "customdata": list(zip(shown["bin"], shown["n"], strict=True)),
        "hovertemplate": "confidence %{customdata[0]}<br>mean confidence %{x:.3f}"
        "<br>%{y:.1f}% verified correct<br>%{customdata[1]:,} verdicts<extra></extra>",
    }
    heading = title if ece is None else f"{title} · ECE {ece:.3f}"
    ticks = [0, 20, 40, 60, 80, 100]
    return figure(
        [diagonal, points],
        title=heading,
        x="Confidence the extractor gave (bin mean)",
        y="Verified correct (%)",
        height=440,
        xaxis={"range": [-0.02, 1.04], "dtick": 0.1},
        yaxis={"range": [-4, 114], "tickvals": ticks, "ticktext": [f"{t}%" for t in ticks]},
    )


def _spread_labels(
    xs: list[float], ys: list[float], keep: int | None, min_distance: float
) -> list[bool]:
    """Which points get a text label: none closer than ``min_distance`` to a labelled one.

    The point at index ``keep`` (the selected one) is always labelled.
    """
    shown: list[int] = [] if keep is None else [keep]
    for index, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if index == keep:
            continue
        if all(math.hypot(x - xs[j], y - ys[j]) >= min_distance for j in shown):
            shown.append(index)
    return [index in shown for index in range(len(xs))]


def threshold_tradeoff(frame: pd.DataFrame, *, selected: float, title: str) -> go.Figure:
    """Review volume against wrong values passing unreviewed, one point per threshold.

    ``frame`` has columns ``threshold``, ``review_share``, ``wrong_escape_share``,
    ``sent_to_review`` and ``wrong_passed``; the row whose threshold equals ``selected``
    is highlighted.
    """
    usable = frame.dropna(subset=["review_share", "wrong_escape_share"])
    xs = [float(x) * 100 for x in usable["review_share"]]
    ys = [float(y) * 100 for y in usable["wrong_escape_share"]]
    thresholds = [float(t) for t in usable["threshold"]]
    selected_at = next((i for i, t in enumerate(thresholds) if abs(t - selected) < 1e-9), None)
    # Thresholds that change nothing pile up on one point; label only one of them.
    labelled = _spread_labels(xs, ys, selected_at, min_distance=4.0)
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "x": xs,
            "y": ys,
            "mode": "lines+markers+text",
            "name": "Candidate thresholds",
            "line": {"color": LINE_COLOR, "width": 2},
            "marker": {"size": 8, "color": LINE_COLOR},
            "text": [
                f"{t:.2f}" if show else "" for t, show in zip(thresholds, labelled, strict=True)
            ],
            "textposition": "top right",
            "textfont": {"size": 11, "color": "#4A5560"},
            "customdata": list(
                zip(
                    usable["threshold"],
                    usable["sent_to_review"],
                    usable["wrong_passed"],
                    strict=True,
                )
            ),
            "hovertemplate": "threshold %{customdata[0]:.2f}<br>%{x:.1f}% of values reviewed "
            "(%{customdata[1]:,})<br>%{y:.1f}% of wrong values pass (%{customdata[2]:,})"
            "<extra></extra>",
        }
    ]
    if selected_at is not None:
        traces.append(
            {
                "type": "scatter",
                "x": [xs[selected_at]],
                "y": [ys[selected_at]],
                "mode": "markers",
                "name": f"Selected threshold {selected:.2f}",
                "marker": {
                    "size": 18,
                    "color": ACCENT,
                    "symbol": "circle-open",
                    "line": {"width": 3},
                },
                "hoverinfo": "skip",
            }
        )
    return figure(
        traces,
        title=title,
        x="Values sent to review (%)",
        y="Wrong values passing unreviewed (%)",
        height=420,
        xaxis={"range": [-3, 105], "ticksuffix": "%"},
        yaxis={"range": [-3, 108], "ticksuffix": "%"},
    )


def missing_outcomes(frame: pd.DataFrame) -> go.Figure:
    """Per field marked missing: how often the value was there (missed) or truly absent.

    ``frame`` has columns ``field``, ``n``, ``missed``, ``truly_absent`` and the shares;
    one stacked horizontal bar per field, first row on top.
    """
    ordered = frame.iloc[::-1]
    labels = [plain(name) for name in ordered["field"]]
    traces = [
        {
            "type": "bar",
            "x": ordered[column],
            "y": labels,
            "orientation": "h",
            "name": name,
            "marker": {"color": color},
            "text": [
                f"{int(count):,} · {value * 100:.0f}%" if value == value and count else ""
                for count, value in zip(ordered[column], ordered[share], strict=True)
            ],
            "textposition": "inside",
            "insidetextanchor": "middle",
            "customdata": ordered[share] * 100,
            "hovertemplate": "%{y}<br>%{x:,} verdicts (%{customdata:.1f}%)<extra>"
            + plain(name)
            + "</extra>",
        }
        for column, share, name, color in (
            ("missed", "missed_share", "Missed (the value was in the email)", MISSED_COLOR),
            ("truly_absent", "absent_share", "Truly absent", ABSENT_COLOR),
        )
    ]
    return figure(
        traces,
        title="Fields marked missing: missed or truly absent?",
        x="Reviewed fields marked missing",
        y="Field",
        height=max(260, 130 + 44 * len(ordered)),
        barmode="stack",
        # Labels that do not fit their bar are hidden rather than shrunk to illegibility.
        uniformtext={"minsize": 11, "mode": "hide"},
    )


def reviewer_throughput(frame: pd.DataFrame) -> go.Figure:
    """Decisions per reviewer split by outcome (columns ``reviewer``, ``approved``,
    ``corrected``, ``rejected``), busiest on top."""
    ordered = frame.iloc[::-1]
    labels = [plain(name) for name in ordered["reviewer"]]
    traces = [
        {
            "type": "bar",
            "x": ordered[outcome],
            "y": labels,
            "orientation": "h",
            "name": outcome.capitalize(),
            "marker": {"color": color},
            "hovertemplate": "%{y}<br>%{x:,} " + outcome + "<extra></extra>",
        }
        for outcome, color in OUTCOME_COLORS.items()
    ]
    return figure(
        traces,
        title="Decisions per reviewer",
        x="Decisions in the period",
        y="Reviewer",
        height=max(240, 130 + 40 * len(ordered)),
        barmode="stack",
    )
