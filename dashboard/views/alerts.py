"""Alerts (ops and above): each enabled rule's value against its threshold, its state,
its last state changes and a sparkline, with a link to the view it watches.

The rules come from ``ALERT_RULES_PATH`` (see ``reportlib.alerts.rules``); states are
what ``python -m reportlib alerts check`` recorded. The page judges each rule as that
command would now, and records nothing. It shows rule names, metrics, filters and
figures, never extracted values.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import alert_charts, auth, data
from reportlib.access import can_see_alerts
from reportlib.alerts import RuleConfigError, load_rules
from reportlib.alerts.status import RuleStatus, get_alert_status
from reportlib.config import get_settings

REFUSED = "The alerts are for signed-in users with a role."
STATE_LABELS = {
    "firing": ":red-background[**firing**]",
    "ok": ":green-background[ok]",
}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _rule(status: RuleStatus, index: int) -> None:
    evaluation = status.evaluation
    rule = evaluation.rule
    filters = ", ".join(
        f"{key} {getattr(rule, key)}" for key in ("intent", "route", "field") if getattr(rule, key)
    )
    with st.container(border=True, key=f"alert_rule_{index}"):
        head, figures, chart = st.columns([3, 3, 4])
        head.markdown(f"**{rule.name}** {STATE_LABELS[evaluation.state]}")
        head.caption(
            f"{rule.metric} over the last {rule.window_hours} h"
            f"{' · ' + filters if filters else ''} · severity {rule.severity}"
        )
        head.link_button("Open the view it watches", evaluation.link, icon=":material/open_in_new:")
        against = (
            f"{rule.comparison} {_number(evaluation.threshold)}"
            if rule.baseline_days is None
            else f"{rule.comparison} {rule.factor:g} × baseline "
            f"{_number(evaluation.baseline.value if evaluation.baseline else None)}"
            f" = {_number(evaluation.threshold)}"
        )
        figures.metric("Value now", _number(evaluation.reading.value))
        figures.caption(
            f"Fires {against}. Volume {evaluation.reading.volume:,}"
            f" (minimum {rule.min_volume:,})"
            + ("" if evaluation.judged else ": too few to judge, the state stays")
            + "."
        )
        series = pd.DataFrame(list(status.series), columns=["at", "value"])
        chart.plotly_chart(
            alert_charts.sparkline(
                series, title=f"Last {len(series)} hours", threshold=evaluation.threshold
            ),
            key=f"chart_alert_{index}",
        )
        if status.recent:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "occurred_at": change.occurred_at.replace(tzinfo=None),
                            "state": change.state,
                            "value": change.value,
                            "threshold": change.threshold,
                            "volume": change.volume,
                        }
                        for change in status.recent
                    ]
                ),
                hide_index=True,
                key=f"alert_changes_{index}",
                column_config={
                    "occurred_at": st.column_config.DatetimeColumn(
                        "Changed (UTC)", format="YYYY-MM-DD HH:mm"
                    ),
                    "state": st.column_config.TextColumn("State"),
                    "value": st.column_config.NumberColumn("Value", format="%.4g"),
                    "threshold": st.column_config.NumberColumn("Threshold", format="%.4g"),
                    "volume": st.column_config.NumberColumn("Volume"),
                },
            )
        else:
            st.caption("No state changes recorded yet.")


def render() -> None:
    """The page's single entry point (the error boundary wraps it)."""
    user = auth.current_user()
    if user is None or not can_see_alerts(user.role):
        st.error(REFUSED, icon=":material/block:")
        st.stop()
    st.title("Alerts")
    try:
        rules = load_rules(get_settings().alert_rules_path).enabled
    except RuleConfigError as exc:
        # The message names the rule and the key, never a value of a report.
        st.error(f"The alert rules cannot be used: {exc}", icon=":material/rule:")
        st.stop()
    if not rules:
        st.info(
            "No alert rules are enabled. Set ALERT_RULES_PATH to a rules file "
            "(alert_rules.example.toml shows the format).",
            icon=":material/notifications_off:",
        )
        st.stop()
    now = data.now_minute()
    st.caption(
        f"As of {now:%Y-%m-%d %H:%M} UTC, judged as `alerts check` would judge it now; "
        "windows are whole UTC hours. States and changes are those the scheduled check "
        "recorded. The sidebar's filters do not apply here: each rule has its own."
    )
    statuses = data.read(get_alert_status, rules=rules, now=now, base_url="")
    firing = sum(status.evaluation.firing for status in statuses)
    st.markdown(f"**{firing} of {len(statuses)} rules firing.**")
    for index, status in enumerate(statuses):
        _rule(status, index)


render()
