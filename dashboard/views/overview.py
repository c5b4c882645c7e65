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

    ui.cards(
        [
            ui.Card(
                "Reports",
                ui.fmt_int(now.reports),
                ui.change(now.reports, before.reports, kind="count"),
                delta_color="off",
            ),
            ui.Card(
                "Average overall confidence",
                ui.fmt_confidence(now.avg_confidence),
                ui.change(now.avg_confidence, before.avg_confidence, kind="confidence"),
            ),
            ui.Card(
                "Needing review",
                ui.fmt_pct(now.needs_review_share),
                ui.change(now.needs_review_share, before.needs_review_share, kind="share"),
                delta_color="inverse",
                help="Share of the period's reports that the pipeline flagged for review.",
            ),
            ui.Card(
                "Tokens used",
                ui.fmt_int(now.tokens),
                ui.change(now.tokens, before.tokens, kind="count"),
                delta_color="off",
            ),
            ui.Card(
                "Open review queue",
                ui.fmt_int(now.queue.size),
                ui.change(now.queue.size, before.queue.size, kind="count"),
                delta_color="inverse",
                help=(
                    "Flagged reports without a decision, of any age, at the end of the period "
                    "(now, if the period ends today); compared with the end of the previous period."
                ),
            ),
            ui.Card(
                "Oldest open item",
                ui.fmt_age(now.queue.oldest_age_s),
                ui.change(now.queue.oldest_age_s, before.queue.oldest_age_s, kind="age"),
                delta_color="inverse",
                help="How long the oldest open item had waited at the end of the period.",
            ),
            ui.Card(
                "Processing time p50",
                ui.fmt_ms(now.p50_processing_ms),
                ui.change(now.p50_processing_ms, before.p50_processing_ms, kind="ms"),
                delta_color="inverse",
                help="Median processing time of reports that recorded one.",
            ),
            ui.Card(
                "Processing time p95",
                ui.fmt_ms(now.p95_processing_ms),
                ui.change(now.p95_processing_ms, before.p95_processing_ms, kind="ms"),
                delta_color="inverse",
                help="95th percentile (linear interpolation) of recorded processing times.",
            ),
        ]
    )

    if now.reports == 0:
        ui.empty_window(flt)
        return

    ui.chart(charts.daily_volume, trends, key="chart_volume")
    left, right = st.columns(2)
    ui.chart(charts.daily_rate, trends, key="chart_rate", where=left, width=500)
    ui.chart(charts.daily_confidence, trends, key="chart_confidence", where=right, width=500)

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
    ui.table(
        table,
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
