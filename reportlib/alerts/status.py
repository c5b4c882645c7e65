"""What the dashboard's Alerts page shows: each rule's reading now, its state, its last
state changes and a short series of the metric. Reads only; names and figures only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from reportlib.alerts.check import (
    Evaluation,
    current_states,
    evaluate_rule,
    list_alert_events,
    state_after,
)
from reportlib.alerts.metrics import Scope, hour_window, read_metric
from reportlib.alerts.rules import Rule
from reportlib.checks import check_aware, check_int

#: Points of a rule's series and the state changes listed per rule.
SERIES_POINTS = 24
RECENT_CHANGES = 5


@dataclass(frozen=True, slots=True)
class StateChange:
    """One row of ``alert_events``, as the page lists it (no link: the page has its own)."""

    occurred_at: dt.datetime
    state: str
    value: float | None
    threshold: float | None
    volume: int


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """A rule as it stands at ``evaluation.now``: the evaluation (as ``alerts check``
    would judge it, recording nothing), its recent state changes, newest first, and the
    metric over the rule's window ending at each of the last hours (oldest first)."""

    evaluation: Evaluation
    recent: tuple[StateChange, ...]
    series: tuple[tuple[dt.datetime, float | None], ...]


def get_alert_status(
    db: Session,
    *,
    rules: Sequence[Rule],
    now: dt.datetime,
    base_url: str,
    points: int = SERIES_POINTS,
) -> list[RuleStatus]:
    """:class:`RuleStatus` of each of ``rules`` at ``now``; links start with ``base_url``
    (``""``: paths on the dashboard itself)."""
    check_aware(now, "now")
    points = check_int(points, "points", 1, 168)
    states = current_states(db, [rule.name for rule in rules])
    statuses = []
    for rule in rules:
        latest = states.get(rule.name)
        evaluation = evaluate_rule(
            db, rule, now=now, previous=state_after(latest), base_url=base_url
        )
        recent = tuple(
            StateChange(e.occurred_at, e.state, e.value, e.threshold, e.volume)
            for e in list_alert_events(db, rule=rule.name, limit=RECENT_CHANGES)
        )
        scope = Scope(rule.intent, rule.route, rule.field)
        series = []
        for back in range(points - 1, -1, -1):
            at = evaluation.window[1] - dt.timedelta(hours=back)
            reading = read_metric(
                db, rule.metric, [hour_window(at, rule.window_hours)], scope, now=at
            )
            series.append((at, reading.value))
        statuses.append(RuleStatus(evaluation, recent, tuple(series)))
    return statuses
