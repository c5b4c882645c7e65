"""Overview: headline KPIs with their change, and daily trends."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data, filters, ui
from reportlib import queries


def render() -> None:
    """The page's single entry point (the error boundary wraps it)."""
    flt = filters.current()
    st.title("Overview")
    ui.period_caption(flt)
    with st.spinner("Loading the overview…"):
        ui.stop_if_empty_database(data.has_reports())
        kpis = data.overview_kpis(flt)
        trends = data.read(queries.daily_trends, flt=flt)
    now, before = kpis.current, kpis.previous

    row = st.columns(4)
    row[0].metric(
        "Reports",
        ui.fmt_int(now.reports),
        ui.change(now.reports, before.reports, kind="count"),
        delta_color="off",
        border=True,
    )
    row[1].metric(
        "Average overall confidence",
        ui.fmt_confidence(now.avg_confidence),
        ui.change(now.avg_confidence, before.avg_confidence, kind="confidence"),
        border=True,
    )
    row[2].metric(
        "Needing review",
        ui.fmt_pct(now.needs_review_share),
        ui.change(now.needs_review_share, before.needs_review_share, kind="share"),
        delta_color="inverse",
        help="Share of the period's reports that the pipeline flagged for review.",
        border=True,
    )
    row[3].metric(
        "Tokens used",
        ui.fmt_int(now.tokens),
        ui.change(now.tokens, before.tokens, kind="count"),
        delta_color="off",
        border=True,
    )
    row = st.columns(4)
    row[0].metric(
        "Open review queue",
        ui.fmt_int(now.queue.size),
        ui.change(now.queue.size, before.queue.size, kind="count"),
        delta_color="inverse",
        help=(
            "Flagged reports without a decision, of any age, at the end of the period "
            "(now, if the period ends today); compared with the end of the previous period."
        ),
        border=True,
    )
    row[1].metric(
        "Oldest open item",
        ui.fmt_age(now.queue.oldest_age_s),
        ui.change(now.queue.oldest_age_s, before.queue.oldest_age_s, kind="age"),
        delta_color="inverse",
        help="How long the oldest open item had waited at the end of the period.",
        border=True,
    )
    row[2].metric(
        "Processing time p50",
        ui.fmt_ms(now.p50_processing_ms),
        ui.change(now.p50_processing_ms, before.p50_processing_ms, kind="ms"),
        delta_color="inverse",
        help="Median processing time of reports that recorded one.",
        border=True,
    )
    row[3].metric(
        "Processing time p95",
        ui.fmt_ms(now.p95_processing_ms),
        ui.change(now.p95_processing_ms, before.p95_processing_ms, kind="ms"),
        delta_color="inverse",
        help="95th percentile (linear interpolation) of recorded processing times.",
        border=True,
    )

    if now.reports == 0:
        ui.empty_window(flt)
        return

    st.plotly_chart(charts.daily_volume(trends), key="chart_volume")
    left, right = st.columns(2)
    left.plotly_chart(charts.daily_rate(trends), key="chart_rate")
    right.plotly_chart(charts.daily_confidence(trends), key="chart_confidence")

    st.subheader("Daily figures")
    table = ui.as_percent(trends, "needs_review_rate").rename(
        columns={
            "day": "Day (UTC)",
            "reports": "Reports",
            "high": "High route",
            "medium": "Medium route",
            "low": "Low route",
            "flagged": "Needing review",
            "needs_review_rate": "Needs-review rate",
            "avg_confidence": "Average confidence",
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "Needs-review rate": ui.percent_column(),
            "Average confidence": st.column_config.NumberColumn(format="%.3f"),
        },
        key="table_daily",
    )
    ui.csv_download(
        trends,
        label="Download daily figures (CSV)",
        file_name=ui.file_stem("overview_daily", flt) + ".csv",
        key="csv_daily",
    )


render()
