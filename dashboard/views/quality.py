"""Quality: is the extractor's confidence telling the truth? Answers from reviewer verdicts.

Calibration (reliability diagram and ECE), a per-field threshold what-if, and how often a
field marked missing was really there. Definitions: ``reportlib.quality``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data, filters, quality_charts, review_data, ui
from reportlib.quality import MAX_FIELDS
from reportlib.queries import ReportFilter

DEFAULT_THRESHOLD = 0.8
PERCENT = ui.percent_column


def _caption(flt: ReportFilter) -> None:
    note = (
        " The intent and route filters do not apply here: verdicts are counted per field."
        if flt.intents or flt.routes
        else ""
    )
    st.caption(
        f"Verdicts on processings created {flt.start.isoformat()} to {flt.end.isoformat()} "
        "(UTC). Only reviewed values are known to be right or wrong, so every figure covers "
        f"the reports the pipeline flagged for review, not all traffic.{note}"
    )


def _calibration(flt: ReportFilter) -> None:
    report = review_data.calibration(flt)
    st.subheader("Calibration")
    if report.overall.n == 0:
        st.info("No reviewed extracted values in this period yet.", icon=":material/rule:")
        return
    names = [part.field_name for part in report.fields]
    field = st.selectbox(
        "Field",
        options=[None, *names],
        format_func=review_data.field_label,
        key="quality_field",
        help="A value counts as correct when the reviewer confirmed it unchanged.",
    )
    part = next((p for p in report.fields if p.field_name == field), report.overall)
    ui.cards(
        [
            ui.Card("Verdicts", ui.fmt_int(part.n)),
            ui.Card("Mean confidence", ui.fmt_confidence(part.mean_confidence)),
            ui.Card("Verified correct", ui.fmt_pct(part.accuracy)),
            ui.Card(
                "Expected calibration error",
                ui.fmt_confidence(part.ece),
                help="Mean gap between confidence and share correct, weighted by verdicts "
                "per bin. 0 is perfectly calibrated.",
            ),
        ]
    )
    bins = review_data.calibration_bins(report, field)
    ui.chart(
        quality_charts.reliability_diagram,
        bins,
        title=f"Reliability: {review_data.field_label(field)}",
        ece=part.ece,
        key="chart_reliability",
    )
    left, right = st.columns(2)
    with left:
        st.markdown("**Bins**")
        shown = ui.as_percent(bins, "accuracy")
        ui.table(
            shown[["bin", "n", "correct", "mean_confidence", "accuracy", "gap"]].rename(
                columns={
                    "bin": "Confidence",
                    "n": "Verdicts",
                    "correct": "Correct",
                    "mean_confidence": "Mean confidence",
                    "accuracy": "Verified correct",
                    "gap": "Gap",
                }
            ),
            column_config={
                "Mean confidence": st.column_config.NumberColumn(format="%.3f"),
                "Verified correct": PERCENT(),
                "Gap": st.column_config.NumberColumn(
                    format="%+.3f", help="Share correct minus mean confidence"
                ),
            },
            key="table_bins",
        )
        ui.csv_download(
            bins,
            label="Bins (CSV)",
            file_name=ui.file_stem("quality_calibration_bins", flt) + ".csv",
            key="csv_bins",
        )
    with right:
        st.markdown("**Per field**")
        summary = review_data.calibration_summary(report)
        ui.table(
            ui.as_percent(summary, "accuracy").rename(
                columns={
                    "field": "Field",
                    "n": "Verdicts",
                    "correct": "Correct",
                    "mean_confidence": "Mean confidence",
                    "accuracy": "Verified correct",
                    "ece": "ECE",
                }
            ),
            column_config={
                "Mean confidence": st.column_config.NumberColumn(format="%.3f"),
                "Verified correct": PERCENT(),
                "ECE": st.column_config.NumberColumn(format="%.3f"),
            },
            key="table_calibration_fields",
        )
        ui.csv_download(
            summary,
            label="Calibration per field (CSV)",
            file_name=ui.file_stem("quality_calibration_fields", flt) + ".csv",
            key="csv_calibration_fields",
        )


def _whatif(flt: ReportFilter) -> None:
    whatif = review_data.review_threshold_what_if(flt)
    st.subheader("Threshold what-if")
    if not whatif.rows or whatif.rows[0].n == 0:
        st.info("No reviewed extracted values in this period yet.", icon=":material/rule:")
        return
    st.caption(
        "If values below a field's threshold were sent to review and the rest passed "
        "unreviewed: how much review work, and how many of the wrong values would slip "
        "through."
    )
    names = list(dict.fromkeys(r.field_name for r in whatif.rows if r.field_name is not None))
    left, right = st.columns([1, 2])
    field = left.selectbox(
        "Field",
        options=[None, *names],
        format_func=review_data.field_label,
        key="whatif_field",
    )
    options = list(whatif.thresholds)
    default = DEFAULT_THRESHOLD if DEFAULT_THRESHOLD in options else options[len(options) // 2]
    threshold = right.select_slider(
        "Threshold",
        options=options,
        value=default,
        format_func=lambda value: f"{value:.2f}",
        key="whatif_threshold",
    )
    table = review_data.whatif_table(whatif, field)
    row = table[table["threshold"] == threshold].iloc[0]
    ui.cards(
        [
            ui.Card(
                "Sent to review",
                ui.fmt_pct(row["review_share"]),
                help=f"{int(row['sent_to_review']):,} of {int(row['n']):,} reviewed values.",
            ),
            ui.Card(
                "Wrong values passing unreviewed",
                ui.fmt_pct(row["wrong_escape_share"]),
                help=f"{int(row['wrong_passed']):,} of {int(row['wrong']):,} wrong values.",
            ),
            ui.Card(
                "Wrong among passed values",
                ui.fmt_pct(row["wrong_passed_share"]),
                help=f"Of {int(row['passed']):,} values that would pass unreviewed.",
            ),
        ],
        per_row=3,
    )
    ui.chart(
        quality_charts.threshold_tradeoff,
        table,
        selected=threshold,
        title=f"Review volume vs wrong values passing: {review_data.field_label(field)}",
        key="chart_tradeoff",
    )
    ui.table(
        ui.as_percent(table, "review_share", "wrong_escape_share", "wrong_passed_share").rename(
            columns={
                "threshold": "Threshold",
                "n": "Reviewed values",
                "wrong": "Wrong",
                "sent_to_review": "Sent to review",
                "review_share": "Review share",
                "passed": "Passed",
                "wrong_passed": "Wrong passed",
                "wrong_escape_share": "Wrong values passing",
                "wrong_passed_share": "Wrong among passed",
            }
        ),
        column_config={
            "Threshold": st.column_config.NumberColumn(format="%.2f"),
            "Review share": PERCENT(),
            "Wrong values passing": PERCENT(),
            "Wrong among passed": PERCENT(),
        },
        key="table_whatif",
    )

    def every_field() -> pd.DataFrame:  # built when the button is clicked
        return pd.concat(
            [
                review_data.whatif_table(whatif, name).assign(field=review_data.field_label(name))
                for name in [None, *names]
            ],
            ignore_index=True,
        )

    ui.csv_download(
        every_field,
        label="Threshold what-if, every field (CSV)",
        file_name=ui.file_stem("quality_threshold_whatif", flt) + ".csv",
        key="csv_whatif",
    )


def _missing(flt: ReportFilter) -> None:
    report = review_data.missing_outcomes(flt)
    st.subheader("Missed vs truly absent")
    if report.overall.n == 0:
        st.info("No reviewed fields marked missing in this period yet.", icon=":material/rule:")
        return
    table = review_data.missing_table(report)
    ui.chart(quality_charts.missing_outcomes, table, key="chart_missing_outcomes")
    ui.table(
        ui.as_percent(table, "missed_share", "absent_share").rename(
            columns={
                "field": "Field",
                "n": "Reviewed as missing",
                "missed": "Missed",
                "truly_absent": "Truly absent",
                "missed_share": "Missed share",
                "absent_share": "Absent share",
            }
        ),
        column_config={"Missed share": PERCENT(), "Absent share": PERCENT()},
        key="table_missing_outcomes",
    )
    ui.csv_download(
        table,
        label="Missed vs truly absent (CSV)",
        file_name=ui.file_stem("quality_missing", flt) + ".csv",
        key="csv_missing_outcomes",
    )


def render() -> None:
    """The page's single entry point (the error boundary wraps it)."""
    flt = filters.current()
    st.title("Quality")
    _caption(flt)
    with st.spinner("Loading reviewer verdicts…"):
        ui.stop_if_empty_database(data.has_reports())
        calibration = review_data.calibration(flt)
        missing = review_data.missing_outcomes(flt)
    ui.truncation_note(
        "fields by reviewed values",
        MAX_FIELDS,
        calibration.fields_truncated,
        missing.fields_truncated,
        review_data.review_threshold_what_if(flt).fields_truncated,
    )
    if calibration.overall.n == 0 and missing.overall.n == 0:
        st.info(
            "No reviewed reports in this period yet. Once reviewers decide on flagged "
            "reports, this page shows how well the confidences match their verdicts. "
            "Widen the date range, or review some items in the Review queue.",
            icon=":material/rule:",
        )
        return
    _calibration(flt)
    _whatif(flt)
    _missing(flt)


render()
