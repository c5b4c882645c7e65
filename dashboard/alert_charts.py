"""Plotly builder for the Alerts page: a frame in, a figure out. No Streamlit, no database."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import GREY, INK, RED, figure


def sparkline(frame: pd.DataFrame, *, title: str, threshold: float | None) -> go.Figure:
    """The metric over time (``frame``: columns ``at`` and ``value``, None where there was
    nothing to measure), with the threshold it is judged against as a dashed line."""
    traces: list[dict[str, object]] = [
        {
            "type": "scatter",
            "x": list(frame["at"]),
            "y": list(frame["value"]),
            "mode": "lines+markers",
            "name": "value",
            "line": {"color": INK, "width": 2},
            "marker": {"size": 4},
            "connectgaps": False,
            "hovertemplate": "%{x|%Y-%m-%d %H:%M} UTC<br>%{y:.4g}<extra></extra>",
        }
    ]
    if threshold is not None and len(frame):
        traces.append(
            {
                "type": "scatter",
                "x": [frame["at"].iloc[0], frame["at"].iloc[-1]],
                "y": [threshold, threshold],
                "mode": "lines",
                "name": "threshold now",
                "line": {"color": RED, "dash": "dash", "width": 1.5},
                "hovertemplate": "threshold %{y:.4g}<extra></extra>",
            }
        )
    fig = figure(traces, title=title, x="", y="", height=170)
    fig.update_layout(showlegend=False, margin={"l": 10, "r": 10, "t": 36, "b": 10})
    fig.update_xaxes(showgrid=False, color=GREY)
    return fig
