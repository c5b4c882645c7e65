"""Alert rules: the TOML format, built-in defaults, and a clear error for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from reportlib.alerts import DEFAULT_RULES, Rule, RuleConfigError, load_rules
from reportlib.config import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
[[rule]]
name = "debt_amount_missing_spike"
metric = "missing_rate"
field = "debt_amount"
intent = "debt_claim"
window_hours = 6
comparison = "above"
baseline_days = 7
factor = 2.0
min_volume = 20
severity = "error"
enabled = true

[[rule]]
name = "needs_review_rate_doubled"
enabled = true
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_off_until_enabled() -> None:
    rules = load_rules(None)
    assert rules.rules == DEFAULT_RULES
    assert rules.enabled == ()
    assert {rule.metric for rule in DEFAULT_RULES} >= {
        "needs_review_rate",
        "mean_confidence",
        "open_queue_size",
        "oldest_open_age_hours",
        "low_route_share",
        "report_volume",
        "ece",
    }


def test_a_file_adds_rules_and_enables_a_builtin_by_name(tmp_path: Path) -> None:
    rules = load_rules(_write(tmp_path, GOOD))
    by_name = {rule.name: rule for rule in rules.rules}
    assert by_name["debt_amount_missing_spike"] == Rule(
        name="debt_amount_missing_spike",
        metric="missing_rate",
        window_hours=6,
        comparison="above",
        threshold=None,
        baseline_days=7,
        factor=2.0,
        intent="debt_claim",
        route=None,
        field="debt_amount",
        min_volume=20,
        severity="error",
        enabled=True,
    )
    builtin = next(r for r in DEFAULT_RULES if r.name == "needs_review_rate_doubled")
    assert by_name["needs_review_rate_doubled"] == Rule(
        **{**{k: getattr(builtin, k) for k in Rule.__slots__}, "enabled": True}
    )
    assert [rule.name for rule in rules.enabled] == [
        "needs_review_rate_doubled",
        "debt_amount_missing_spike",
    ]


def test_a_threshold_replaces_a_builtins_baseline(tmp_path: Path) -> None:
    text = '[[rule]]\nname = "needs_review_rate_doubled"\nthreshold = 0.2\n'
    rule = next(r for r in load_rules(_write(tmp_path, text)).rules if r.name.startswith("needs"))
    assert (rule.threshold, rule.baseline_days, rule.factor, rule.enabled) == (
        0.2,
        None,
        None,
        False,
    )


def test_the_shipped_example_file_parses() -> None:
    rules = load_rules(ROOT / "alert_rules.example.toml")
    assert [rule.name for rule in rules.enabled] == [
        "pipeline_stopped",
        "debt_amount_missing_spike",
    ]


RULE = '[[rule]]\nname = "r1"\nmetric = "needs_review_rate"\nwindow_hours = 6\nthreshold = 0.5\n'

MALFORMED = [
    # (file text, rule named, key named, words of the problem)
    ('[[rule]]\nname = "r1"\nwindow_hours = 6\nthreshold = 0.5\n', "r1", "metric", "required"),
    (RULE.replace('"needs_review_rate"', '"needs_reviews"'), "r1", "metric", "must be one of"),
    (RULE.replace("window_hours = 6\n", ""), "r1", "window_hours", "required"),
    (RULE.replace("= 6", "= 0"), "r1", "window_hours", "from 1 to 168"),
    (RULE.replace("= 6", '= "6h"'), "r1", "window_hours", "whole number"),
    (RULE.replace("= 6", "= 6.5"), "r1", "window_hours", "whole number"),
    (RULE.replace("threshold = 0.5\n", ""), "r1", "threshold", "required"),
    (RULE.replace("0.5", '"high"'), "r1", "threshold", "finite number"),
    (RULE.replace("0.5", "nan"), "r1", "threshold", "finite number"),
    (RULE.replace("0.5", "-1"), "r1", "threshold", "negative"),
    (RULE + "baseline_days = 7\nfactor = 2\n", "r1", "baseline_days", "not both"),
    (RULE.replace("threshold = 0.5", "baseline_days = 7"), "r1", "factor", "required"),
    (RULE + "factor = 2\n", "r1", "factor", "needs baseline_days"),
    (
        RULE.replace("threshold = 0.5", "baseline_days = 99\nfactor = 2"),
        "r1",
        "baseline_days",
        "from 1 to 28",
    ),
    (
        RULE.replace("threshold = 0.5", "baseline_days = 7\nfactor = 0"),
        "r1",
        "factor",
        "greater than 0",
    ),
    (RULE + 'comparison = "over"\n', "r1", "comparison", "'above' or 'below'"),
    (RULE + 'route = "urgent"\n', "r1", "route", "high, medium or low"),
    (RULE + 'intent = "Debt Claim"\n', "r1", "intent", "lower-case"),
    (RULE + 'severity = "critical"\n', "r1", "severity", "info, warning, error"),
    (RULE + 'enabled = "yes"\n', "r1", "enabled", "true or false"),
    (RULE + "min_volume = -5\n", "r1", "min_volume", "whole number"),
    (RULE + "treshold = 0.4\n", "r1", "treshold", "not a rule key"),
    (RULE + 'field = "debt_amount"\n', "r1", "field", "does not apply"),
    (RULE.replace("needs_review_rate", "missing_rate"), "r1", "field", "required"),
    (
        RULE.replace("needs_review_rate", "low_route_share") + 'route = "low"\n',
        "r1",
        "route",
        "does not apply",
    ),
    (
        RULE.replace("needs_review_rate", "ece") + 'intent = "debt_claim"\n',
        "r1",
        "intent",
        "does not apply",
    ),
    (
        RULE.replace("needs_review_rate", "open_queue_size").replace(
            "threshold = 0.5", "baseline_days = 7\nfactor = 2"
        ),
        "r1",
        "baseline_days",
        "use a threshold",
    ),
    (RULE + RULE, "r1", "name", "two rules"),
    (RULE.replace('"r1"', '"Needs Review!"'), "rule #1", "name", "lower-case name"),
    (RULE.replace('name = "r1"\n', ""), "rule #1", "name", "lower-case name"),
    (RULE + RULE.replace('"r1"', '"r2"').replace("6", "700"), "r2", "window_hours", "168"),
    (
        '[[rule]]\nname = "needs_review_rate_doubled"\nwindow_hours = 0\n',
        "needs_review_rate_doubled",
        "window_hours",
        "from 1 to 168",
    ),
    ("[rules]\nname = 1\n", "(file)", "rules", "not a top-level key"),
    ('rule = "x"\n', "(file)", "rule", "[[rule]] tables"),
    ("[[rule]\nname = 1\n", "(file)", "(syntax)", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "rule", "key", "problem"), MALFORMED)
def test_a_malformed_file_names_the_rule_and_the_key(
    tmp_path: Path, text: str, rule: str, key: str, problem: str
) -> None:
    with pytest.raises(RuleConfigError) as caught:
        load_rules(_write(tmp_path, text))
    error = caught.value
    assert (error.rule, error.key) == (rule, key)
    assert problem in error.problem
    assert str(error) == f"alert rule {rule!r}, key {key!r}: {error.problem}"
    # A configuration error: the CLI exits 2 on it.
    assert isinstance(error, ConfigurationError)


def test_an_unreadable_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(RuleConfigError) as caught:
        load_rules(tmp_path / "absent.toml")
    assert (caught.value.rule, caught.value.key) == ("(file)", "ALERT_RULES_PATH")
