"""Missing fields: how often, when, for which intents, and which go missing together."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data, filters, ui
from reportlib import queries


def render() -> None:
    """The page's single entry point (the error boundary wraps it)."""
    flt = filters.current()
    st.title("Missing fields")
    ui.period_caption(flt)
    with st.spinner("Loading missing-field figures…"):
        ui.stop_if_empty_database(data.has_reports())
        frequency = data.read(queries.missing_field_frequency, flt=flt)
        total = int(frequency["reports"].iloc[0]) if len(frequency) else 0
        if total == 0:
            ui.empty_window(flt)
            return
        daily = data.read(queries.missing_fields_daily, flt=flt)
        by_intent = data.read(queries.missing_fields_by_intent, flt=flt)
        together = data.read(queries.missing_field_cooccurrence, flt=flt)
        counts = data.read(queries.missing_count_distribution, flt=flt)
    ui.truncation_note(
        "fields and intents",
        queries.MAX_GROUPS,
        *(queries.is_truncated(f) for f in (frequency, daily, by_intent, together, counts)),
    )

    left, right = st.columns([3, 2])
    ui.chart(charts.missing_frequency, frequency, key="chart_frequency", where=left, width=500)
    ui.chart(charts.missing_count_distribution, counts, key="chart_counts", where=right, width=500)
    ui.table(
        ui.plain_frame(ui.as_percent(frequency, "share")).rename(
            columns={
                "field": "Field",
                "missing": "Reports missing it",
                "reports": "Reports in period",
                "share": "Share of reports",
            }
        ),
        column_config={"Share of reports": ui.percent_column()},
        key="table_frequency",
    )
    ui.csv_download(
        frequency,
        label="Download missing-field frequency (CSV)",
        file_name=ui.file_stem("missing_fields", flt) + ".csv",
        key="csv_frequency",
    )

    ui.chart(charts.missing_daily, daily, key="chart_daily")
    ui.chart(charts.missing_by_intent, by_intent, key="chart_intent")
    left, right = st.columns([3, 2])
    ui.chart(charts.missing_cooccurrence, together, key="chart_together", where=left, width=500)
    right.caption(
        "Read a row: of the reports missing the row's field, the share that also miss the "
        "column's field. The diagonal is 100% for every field that went missing at all; "
        "hover a cell for the number of reports."
    )
    cols = st.columns(2)
    with cols[0]:
        ui.csv_download(
            by_intent,
            label="By intent (CSV)",
            file_name=ui.file_stem("missing_fields_by_intent", flt) + ".csv",
            key="csv_intent",
        )
    with cols[1]:
        ui.csv_download(
            together,
            label="Missing together (CSV)",
            file_name=ui.file_stem("missing_fields_together", flt) + ".csv",
            key="csv_together",
        )


render()
