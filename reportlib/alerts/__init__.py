"""Alerts: rules over quality and operations metrics, evaluated on a schedule
(``python -m reportlib alerts check``), their state in ``alert_events``, delivered as
Sentry events that link to the dashboard view they watch."""

from __future__ import annotations

from reportlib.alerts.metrics import METRICS, Reading, Scope, read_metric
from reportlib.alerts.rules import (
    DEFAULT_RULES,
    Rule,
    RuleConfigError,
    RuleSet,
    load_rules,
    parse_rules,
)

__all__ = [
    "DEFAULT_RULES",
    "METRICS",
    "Reading",
    "Rule",
    "RuleConfigError",
    "RuleSet",
    "Scope",
    "load_rules",
    "parse_rules",
    "read_metric",
]
