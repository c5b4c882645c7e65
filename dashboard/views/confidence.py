"""Confidence: overall and per-field distributions, by intent, and a threshold what-if."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data, filters, ui
from reportlib import queries


def render() -> None:
    """The page's single entry point (the error boundary wraps it)."""
    flt = filters.current()
    st.title("Confidence")
    ui.period_caption(flt)
    with st.spinner("Loading confidence figures…"):
        ui.stop_if_empty_database(data.has_reports())
        histogram = data.read(queries.confidence_histogram, flt=flt)
        if int(histogram["reports"].sum()) == 0:
            ui.empty_window(flt)
            return
        summary = data.read(queries.field_confidence_summary, flt=flt)
        per_field = data.read(
            queries.field_confidence_histogram, flt=flt, fields=tuple(summary["field"])
        )
        by_intent = data.read(queries.confidence_by_intent, flt=flt)
    ui.truncation_note(
        "fields and intents",
        queries.MAX_GROUPS,
        queries.is_truncated(summary),
        queries.is_truncated(by_intent),
    )

    ui.chart(charts.confidence_histogram, histogram, key="chart_histogram")

    st.subheader("Threshold what-if")
    threshold = st.slider(
        "Review every report with overall confidence below",
        min_value=0.0,
        max_value=1.0,
        value=0.8,
        step=0.01,
        key="threshold",
    )
    what_if = data.read(queries.route_threshold_what_if, flt=flt, threshold=threshold)
    ui.cards(
        [
            ui.Card(
                "Reports below the threshold",
                ui.fmt_int(what_if.below),
                help=f"Of {what_if.reports:,} reports in the period.",
            ),
            ui.Card("Share of all reports", ui.fmt_pct(what_if.below_share)),
            ui.Card(
                "Below it but not flagged today",
                ui.fmt_int(what_if.below_not_flagged),
                help=(
                    f"Reports this threshold would add to review. "
                    f"{what_if.flagged_at_or_above:,} flagged reports are at or above it."
                ),
            ),
        ],
        per_row=3,
    )
    ui.chart(charts.threshold_curve, histogram, threshold, key="chart_threshold")

    st.subheader("Per field")
    ui.chart(charts.field_confidence_heatmap, per_field, key="chart_fields")
    ui.table(
        ui.plain_frame(summary).rename(
            columns={
                "field": "Field",
                "extracted": "Extracted",
                "missing": "Missing",
                "avg_confidence": "Mean confidence",
                "min_confidence": "Lowest",
                "max_confidence": "Highest",
            }
        ),
        column_config={
            "Mean confidence": st.column_config.ProgressColumn(
                min_value=0.0, max_value=1.0, format="%.3f"
            ),
            "Lowest": st.column_config.NumberColumn(format="%.2f"),
            "Highest": st.column_config.NumberColumn(format="%.2f"),
        },
        key="table_fields",
    )

    st.subheader("By intent")
    left, right = st.columns(2)
    ui.chart(charts.confidence_by_intent, by_intent, key="chart_intent", where=left, width=500)
    ui.chart(charts.route_mix_by_intent, by_intent, key="chart_route_mix", where=right, width=500)
    ui.table(
        ui.plain_frame(ui.as_percent(by_intent, "needs_review_rate")).rename(
            columns={
                "intent": "Intent",
                "reports": "Reports",
                "avg_confidence": "Mean confidence",
                "high": "High route",
                "medium": "Medium route",
                "low": "Low route",
                "flagged": "Needing review",
                "needs_review_rate": "Needs-review rate",
            }
        ),
        column_config={
            "Mean confidence": st.column_config.ProgressColumn(
                min_value=0.0, max_value=1.0, format="%.3f"
            ),
            "Needs-review rate": ui.percent_column(),
        },
        key="table_intent",
    )

    st.subheader("Downloads")
    cols = st.columns(3)
    with cols[0]:
        ui.csv_download(
            histogram,
            label="Histogram (CSV)",
            file_name=ui.file_stem("confidence_histogram", flt) + ".csv",
            key="csv_histogram",
        )
    with cols[1]:
        ui.csv_download(
            summary,
            label="Per-field summary (CSV)",
            file_name=ui.file_stem("confidence_fields", flt) + ".csv",
            key="csv_fields",
        )
    with cols[2]:
        ui.csv_download(
            by_intent,
            label="By intent (CSV)",
            file_name=ui.file_stem("confidence_by_intent", flt) + ".csv",
            key="csv_intent",
        )


render()
