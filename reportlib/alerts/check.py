"""Evaluating rules: each rule's reading, its state in ``alert_events``, the Sentry event
of a state change, and the dashboard link of the view it watches.

A rule is **firing** while its condition holds: the window's value is above (or below)
the threshold, or ``factor`` times the baseline (the same hours on the previous
``baseline_days`` days, pooled). Its state is its latest ``alert_events`` row (none, or
``resolved``: ok). Each evaluation that changes the state adds one row; the caller
commits, then sends one Sentry event per change (:func:`send_alert_event`): one when a
rule starts firing, one when it resolves, nothing while it stays.

**Minimum volume.** A window resting on fewer than ``min_volume`` reports (open items,
verdicts) is too small to judge: the rule keeps its state, whatever the value. For
``report_volume`` the guard reads the baseline's volume instead (a drop to zero is the
thing to see), and does not apply without a baseline.

Runs must not overlap (cron: one at a time; Kubernetes: ``concurrencyPolicy: Forbid``),
or two runs could record the same change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reportlib.alerts.metrics import (
    METRICS,
    Reading,
    Scope,
    baseline_ranges,
    hour_window,
    read_metric,
)
from reportlib.alerts.rules import Rule
from reportlib.checks import check_aware, check_int
from reportlib.models import AlertEvent
from reportlib.monitoring import capture_alert

FIRING: Final = "firing"
RESOLVED: Final = "resolved"
OK: Final = "ok"
#: Sentry level of a rule's events by severity; a resolution is always ``info``.
LEVELS: Final = {"info": "info", "warning": "warning", "error": "error"}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One rule judged at one instant.

    ``threshold`` is what the value was compared with (the rule's threshold, or
    ``factor`` x the baseline's value; None when the baseline had nothing to measure).
    ``judged`` is False when the volume guard (or an empty baseline) held the judgement
    back; ``state`` is the state after this evaluation and ``change`` the state change
    it records (``firing``, ``resolved`` or None).
    """

    rule: Rule
    now: dt.datetime
    window: tuple[dt.datetime, dt.datetime]
    reading: Reading
    baseline: Reading | None
    threshold: float | None
    judged: bool
    previous: str
    state: str
    change: str | None
    link: str

    @property
    def firing(self) -> bool:
        return self.state == FIRING

    def summary(self) -> str:
        """One line: rule, state, figures and filters; never a value of a report."""
        rule = self.rule
        value = "n/a" if self.reading.value is None else f"{self.reading.value:.4g}"
        against = "n/a" if self.threshold is None else f"{self.threshold:.4g}"
        scope = ", ".join(
            f"{key}={getattr(rule, key)}"
            for key in ("intent", "route", "field")
            if getattr(rule, key) is not None
        )
        guard = "" if self.judged else f"; too few to judge (min {rule.min_volume})"
        return (
            f"{rule.name}: {self.state}: {rule.metric} {value} "
            f"(fires {rule.comparison} {against}) over the last {rule.window_hours} h"
            f"{' for ' + scope if scope else ''}, volume {self.reading.volume}{guard}"
        )


def dashboard_link(
    base_url: str,
    metric: str,
    *,
    start: dt.date,
    end: dt.date,
    intent: str | None = None,
    route: str | None = None,
) -> str:
    """The dashboard page that shows ``metric``, with the date range and filters
    (``?start=YYYY-MM-DD&end=YYYY-MM-DD&intent=...&route=...``, see dashboard/filters.py)."""
    params: list[tuple[str, str]] = [("start", start.isoformat()), ("end", end.isoformat())]
    if intent is not None:
        params.append(("intent", intent))
    if route is not None:
        params.append(("route", route))
    return f"{base_url.rstrip('/')}/{METRICS[metric].page}?{urlencode(params)}"


def _link(rule: Rule, ranges: Sequence[tuple[dt.datetime, dt.datetime]], base_url: str) -> str:
    first = min(start for start, _ in ranges)
    last = max(end for _, end in ranges) - dt.timedelta(microseconds=1)
    return dashboard_link(
        base_url,
        rule.metric,
        start=first.date(),
        end=last.date(),
        intent=rule.intent,
        route=rule.route,
    )


def current_states(db: Session, names: Sequence[str]) -> dict[str, AlertEvent]:
    """Each named rule's latest ``alert_events`` row (rules without one are left out)."""
    if not names:
        return {}
    e = AlertEvent
    latest = (
        select(e.rule, func.max(e.id).label("id")).where(e.rule.in_(list(names))).group_by(e.rule)
    ).subquery()
    rows = db.scalars(select(e).join(latest, latest.c.id == e.id)).all()
    return {row.rule: row for row in rows}


def state_after(latest: AlertEvent | None) -> str:
    """The state a rule is in after its latest recorded change (``OK`` without one)."""
    return FIRING if latest is not None and latest.state == FIRING else OK


def list_alert_events(db: Session, *, rule: str | None = None, limit: int = 20) -> list[AlertEvent]:
    """State changes, newest first (one rule's, or every rule's), at most ``limit``."""
    limit = check_int(limit, "limit", 1, 1000)
    stmt = select(AlertEvent).order_by(AlertEvent.occurred_at.desc(), AlertEvent.id.desc())
    if rule is not None:
        stmt = stmt.where(AlertEvent.rule == rule)
    return list(db.scalars(stmt.limit(limit)).all())


def _condition(rule: Rule, value: float | None, threshold: float | None) -> bool:
    if value is None or threshold is None:
        return False
    return value > threshold if rule.comparison == "above" else value < threshold


def evaluate_rule(
    db: Session, rule: Rule, *, now: dt.datetime, previous: str, base_url: str
) -> Evaluation:
    """Judge ``rule`` at ``now`` given its ``previous`` state; reads only."""
    start, end = hour_window(now, rule.window_hours)
    scope = Scope(rule.intent, rule.route, rule.field)
    reading = read_metric(db, rule.metric, [(start, end)], scope, now=now)
    baseline: Reading | None = None
    ranges = [(start, end)]
    if rule.baseline_days is not None:
        base_ranges = baseline_ranges(start, end, rule.baseline_days)
        ranges += base_ranges
        baseline = read_metric(db, rule.metric, base_ranges, scope, now=now)
        factor = rule.factor if rule.factor is not None else 1.0
        threshold = None if baseline.value is None else factor * baseline.value
    else:
        threshold = rule.threshold
    if rule.metric == "report_volume":
        judged = baseline is None or baseline.volume >= rule.min_volume
    else:
        judged = reading.volume >= rule.min_volume
    judged = judged and threshold is not None
    holds = _condition(rule, reading.value, threshold)
    state = (FIRING if holds else OK) if judged else previous
    change = None
    if state != previous:
        change = FIRING if state == FIRING else RESOLVED
    return Evaluation(
        rule=rule,
        now=now,
        window=(start, end),
        reading=reading,
        baseline=baseline,
        threshold=threshold,
        judged=judged,
        previous=previous,
        state=state,
        change=change,
        link=_link(rule, ranges, base_url),
    )


def check_alerts(
    db: Session,
    rules: Sequence[Rule],
    *,
    now: dt.datetime,
    base_url: str,
    dry_run: bool = False,
) -> list[Evaluation]:
    """Evaluate every rule once at ``now``; record each state change in ``alert_events``
    (not with ``dry_run``). Flushes, never commits; send the events after the commit
    with :func:`send_alert_event`."""
    check_aware(now, "now")
    states = current_states(db, [rule.name for rule in rules])
    evaluations = []
    for rule in rules:
        latest = states.get(rule.name)
        evaluation = evaluate_rule(
            db, rule, now=now, previous=state_after(latest), base_url=base_url
        )
        evaluations.append(evaluation)
        if evaluation.change is not None and not dry_run:
            db.add(
                AlertEvent(
                    rule=rule.name,
                    state=evaluation.change,
                    occurred_at=now,
                    metric=rule.metric,
                    severity=rule.severity,
                    value=evaluation.reading.value,
                    threshold=evaluation.threshold,
                    volume=evaluation.reading.volume,
                    window_start=evaluation.window[0],
                    window_end=evaluation.window[1],
                    link=evaluation.link,
                )
            )
    db.flush()
    return evaluations


def send_alert_event(evaluation: Evaluation) -> str | None:
    """Send the Sentry event of ``evaluation``'s state change (None when it has none, or
    Sentry is off). Never raises: telemetry fails soft."""
    if evaluation.change is None:
        return None
    rule = evaluation.rule
    level = LEVELS[rule.severity] if evaluation.change == FIRING else "info"
    value = evaluation.reading.value
    return capture_alert(
        f"Alert {rule.name} {evaluation.change}: {rule.metric} "
        f"{'n/a' if value is None else format(value, '.4g')} "
        f"(fires {rule.comparison} {format(evaluation.threshold or 0.0, '.4g')})",
        level=level,
        fingerprint=["reportlib-alert", rule.name],
        tags={
            "rule": rule.name,
            "metric": rule.metric,
            "intent": rule.intent,
            "route": rule.route,
            "field": rule.field,
            "severity": rule.severity,
            "alert_state": evaluation.change,
        },
        context={
            "rule": rule.name,
            "metric": rule.metric,
            "state": evaluation.change,
            "severity": rule.severity,
            "comparison": rule.comparison,
            "intent": rule.intent,
            "route": rule.route,
            "field": rule.field,
            "value": value,
            "threshold": evaluation.threshold,
            "baseline": None if evaluation.baseline is None else evaluation.baseline.value,
            "volume": evaluation.reading.volume,
            "min_volume": rule.min_volume,
            "window_hours": rule.window_hours,
            "baseline_days": rule.baseline_days,
            "window_start": evaluation.window[0].isoformat(),
            "window_end": evaluation.window[1].isoformat(),
            "link": evaluation.link,
        },
    )
