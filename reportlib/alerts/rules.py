"""Alert rules: the TOML format, the built-in defaults, and parsing that fails fast.

A rules file holds ``[[rule]]`` tables::

    [[rule]]
    name = "debt_amount_missing_spike"   # lower-case letters, digits, _ - .
    metric = "missing_rate"               # see reportlib.alerts.metrics.METRICS
    field = "debt_amount"                 # missing_rate and ece only
    intent = "debt_claim"                 # optional filters
    route = "low"
    window_hours = 6                      # the last 6 whole hours
    comparison = "above"                  # or "below"
    threshold = 0.3                       # fire when the value is above 0.3 ...
    # baseline_days = 7                   # ... or against the previous 7 days at the
    # factor = 2.0                        #     same hours: above 2 x their value
    min_volume = 20                       # fewer reports (or verdicts): never fires
    severity = "warning"                  # info, warning or error
    enabled = true

Every built-in rule (:data:`DEFAULT_RULES`) is off until a file enables it; a file entry
with a built-in's name changes only the keys it sets (``enabled = true`` alone turns it
on). A malformed file raises :class:`RuleConfigError`, naming the rule and the key.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from reportlib.alerts.metrics import METRICS
from reportlib.config import ConfigurationError
from reportlib.models import ROUTES

SEVERITIES: Final = ("info", "warning", "error")
COMPARISONS: Final = ("above", "below")
#: Longest window and baseline a rule may read.
MAX_WINDOW_HOURS: Final = 7 * 24
MAX_BASELINE_DAYS: Final = 28
NAME: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
LABEL: Final = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,49}")

KEYS: Final = frozenset(
    {
        "name",
        "metric",
        "intent",
        "route",
        "field",
        "window_hours",
        "comparison",
        "threshold",
        "baseline_days",
        "factor",
        "min_volume",
        "severity",
        "enabled",
    }
)


class RuleConfigError(ConfigurationError):
    """A rules file cannot be used; ``rule`` and ``key`` name where, never a value."""

    def __init__(self, rule: str, key: str, problem: str) -> None:
        self.rule = rule
        self.key = key
        self.problem = problem
        super().__init__(f"alert rule {rule!r}, key {key!r}: {problem}")


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule (see the module docstring for what each key means)."""

    name: str
    metric: str
    window_hours: int
    comparison: str = "above"
    threshold: float | None = None
    baseline_days: int | None = None
    factor: float | None = None
    intent: str | None = None
    route: str | None = None
    field: str | None = None
    min_volume: int = 0
    severity: str = "warning"
    enabled: bool = False

    @property
    def uses_baseline(self) -> bool:
        return self.baseline_days is not None


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every rule, built-in and from the file, in order; ``enabled`` those that run."""

    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)


#: Off until a rules file enables them by name.
DEFAULT_RULES: Final[tuple[Rule, ...]] = (
    Rule("needs_review_rate_doubled", "needs_review_rate", 6, "above", None, 7, 2.0, min_volume=50),
    Rule("mean_confidence_drop", "mean_confidence", 6, "below", None, 7, 0.85, min_volume=50),
    Rule(
        "review_queue_oldest_past_sla", "oldest_open_age_hours", 1, "above", 48.0, severity="error"
    ),
    Rule("review_queue_large", "open_queue_size", 1, "above", 500.0),
    Rule("low_route_share_high", "low_route_share", 6, "above", 0.4, min_volume=50),
    Rule("pipeline_stopped", "report_volume", 2, "below", 1.0, severity="error"),
    Rule("calibration_drift", "ece", 168, "above", 0.1, min_volume=200),
)


def _fail(rule: str, key: str, problem: str) -> RuleConfigError:
    return RuleConfigError(rule, key, problem)


def _whole(name: str, key: str, raw: Any, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise _fail(name, key, f"must be a whole number from {low} to {high}")
    return raw


def _number(name: str, key: str, raw: Any, *, positive: bool = False) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise _fail(name, key, "must be a finite number")
    if raw < 0 or (positive and raw == 0):
        raise _fail(name, key, "must be greater than 0" if positive else "must not be negative")
    return float(raw)


def _label(name: str, key: str, raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not LABEL.fullmatch(raw):
        raise _fail(name, key, "must be a lower-case word (letters, digits, _ . : -)")
    return raw


def _rule_name(entry: Mapping[str, Any], position: int) -> str:
    raw = entry.get("name")
    if not isinstance(raw, str) or not NAME.fullmatch(raw):
        # The name cannot name the rule: its position does.
        raise _fail(
            f"rule #{position}", "name", "must be a lower-case name (letters, digits, _ . -)"
        )
    return raw


def parse_rule(entry: Mapping[str, Any], *, position: int = 1, base: Rule | None = None) -> Rule:
    """One ``[[rule]]`` table as a :class:`Rule` (over ``base``, a built-in, when given)."""
    name = _rule_name(entry, position)
    for key in entry:
        if key not in KEYS:
            raise _fail(name, key, f"is not a rule key (known: {', '.join(sorted(KEYS))})")
    values: dict[str, Any] = {}
    if base is None and "metric" not in entry:
        raise _fail(name, "metric", "is required")
    if "metric" in entry:
        metric = entry["metric"]
        if metric not in METRICS:
            raise _fail(name, "metric", f"must be one of {', '.join(METRICS)}")
        values["metric"] = metric
    if base is None and "window_hours" not in entry:
        raise _fail(name, "window_hours", "is required")
    if "window_hours" in entry:
        values["window_hours"] = _whole(
            name, "window_hours", entry["window_hours"], 1, MAX_WINDOW_HOURS
        )
    if "comparison" in entry:
        if entry["comparison"] not in COMPARISONS:
            raise _fail(name, "comparison", "must be 'above' or 'below'")
        values["comparison"] = entry["comparison"]
    if "threshold" in entry:
        values["threshold"] = _number(name, "threshold", entry["threshold"])
        values["baseline_days"] = values["factor"] = None
    if "baseline_days" in entry:
        if "threshold" in entry:
            raise _fail(name, "baseline_days", "a rule has a threshold or a baseline, not both")
        values["baseline_days"] = _whole(
            name, "baseline_days", entry["baseline_days"], 1, MAX_BASELINE_DAYS
        )
        values["threshold"] = None
    if "factor" in entry:
        values["factor"] = _number(name, "factor", entry["factor"], positive=True)
    for key in ("intent", "field"):
        if key in entry:
            values[key] = _label(name, key, entry[key])
    if "route" in entry:
        if entry["route"] not in ROUTES:
            raise _fail(name, "route", "must be high, medium or low")
        values["route"] = entry["route"]
    if "min_volume" in entry:
        values["min_volume"] = _whole(name, "min_volume", entry["min_volume"], 0, 10_000_000)
    if "severity" in entry:
        if entry["severity"] not in SEVERITIES:
            raise _fail(name, "severity", f"must be one of {', '.join(SEVERITIES)}")
        values["severity"] = entry["severity"]
    if "enabled" in entry:
        if not isinstance(entry["enabled"], bool):
            raise _fail(name, "enabled", "must be true or false")
        values["enabled"] = entry["enabled"]
    if base is None:
        rule = Rule(name=name, **values)
    else:
        rule = replace(base, **values)
    return _checked(rule)


def _checked(rule: Rule) -> Rule:
    """The checks that concern several keys at once."""
    name = rule.name
    if rule.threshold is None and rule.baseline_days is None:
        raise _fail(name, "threshold", "is required (or baseline_days with factor)")
    if rule.baseline_days is not None and rule.factor is None:
        raise _fail(name, "factor", "is required with baseline_days")
    if rule.baseline_days is None and rule.factor is not None:
        raise _fail(name, "factor", "needs baseline_days")
    metric = METRICS[rule.metric]
    if metric.field == "required" and rule.field is None:
        raise _fail(name, "field", f"is required for {rule.metric}")
    if metric.field == "no" and rule.field is not None:
        raise _fail(name, "field", f"does not apply to {rule.metric}")
    if rule.route is not None and not metric.routes:
        raise _fail(name, "route", f"does not apply to {rule.metric}")
    if rule.intent is not None and not metric.intents:
        raise _fail(name, "intent", f"does not apply to {rule.metric}")
    if rule.baseline_days is not None and not metric.baseline:
        raise _fail(name, "baseline_days", f"does not apply to {rule.metric}; use a threshold")
    return rule


def parse_rules(document: Mapping[str, Any]) -> RuleSet:
    """The built-in rules overlaid with a parsed TOML document's ``[[rule]]`` tables."""
    for key in document:
        if key != "rule":
            raise _fail("(file)", key, "is not a top-level key; rules go in [[rule]] tables")
    entries = document.get("rule", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise _fail("(file)", "rule", "must be [[rule]] tables")
    rules = {rule.name: rule for rule in DEFAULT_RULES}
    builtin = set(rules)
    seen: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        name = _rule_name(entry, position)
        if name in seen:
            raise _fail(name, "name", "is used by two rules")
        seen.add(name)
        rules[name] = parse_rule(
            entry, position=position, base=rules[name] if name in builtin else None
        )
    return RuleSet(tuple(rules.values()))


def load_rules(path: str | Path | None) -> RuleSet:
    """Rules from the TOML file at ``path`` over the built-ins (the built-ins alone, all
    off, when ``path`` is None)."""
    if path is None:
        return RuleSet(DEFAULT_RULES)
    try:
        with Path(path).open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise _fail(
            "(file)", "ALERT_RULES_PATH", f"cannot be read ({type(exc).__name__})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message gives a line and column, not the file's content.
        raise _fail("(file)", "(syntax)", f"is not valid TOML: {exc}") from None
    return parse_rules(document)


def describe(rules: Sequence[Rule]) -> list[str]:
    """One line per rule: what it watches (names and numbers only)."""
    return [
        f"{rule.name}: {rule.metric} {rule.comparison} "
        + (
            f"{rule.threshold:g}"
            if rule.threshold is not None
            else f"{rule.factor:g} x the previous {rule.baseline_days} days"
        )
        for rule in rules
    ]
