"""The demo end to end: seed-demo plants an incident, the shipped example rules catch it,
and the local Sentry receiver gets exactly that alert with a link the dashboard opens."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from dashboard.filters import parse_query_params
from reportlib.alerts import load_rules
from reportlib.demo import SPIKE_HOURS, SPIKE_REPORTS, generate_missing_amount_spike
from tests.test_cli import run

if TYPE_CHECKING:
    from tests.sentry_receiver import SentryReceiver

pytest_plugins = ["tests.sentry_receiver"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "alert_rules.example.toml"
NOW = dt.datetime(2026, 6, 15, 3, 20, tzinfo=dt.UTC)


def test_the_example_file_enables_the_demo_rule() -> None:
    enabled = {rule.name: rule for rule in load_rules(EXAMPLE).enabled}
    assert set(enabled) == {"debt_amount_missing_spike", "pipeline_stopped"}
    rule = enabled["debt_amount_missing_spike"]
    assert (rule.metric, rule.field, rule.intent, rule.window_hours) == (
        "missing_rate",
        "debt_amount",
        "debt_claim",
        SPIKE_HOURS,
    )


def test_the_planted_spike_is_recent_debt_claims_mostly_without_an_amount() -> None:
    emails = list(generate_missing_amount_spike(seed=42, first_email_id=7, now=NOW))
    end = NOW.replace(minute=0)
    assert len(emails) == SPIKE_REPORTS
    assert [e.email_id for e in emails] == list(range(7, 7 + SPIKE_REPORTS))
    assert all(end - dt.timedelta(hours=SPIKE_HOURS) <= e.created_at < end for e in emails)
    assert all(e.received_at <= e.created_at for e in emails)
    reports = [e.report for e in emails]
    assert {r.agent_checkpoints["agent_1_intent"]["intent"] for r in reports} == {"debt_claim"}  # type: ignore[index]
    missing = [r for r in reports if r.extracted_data["debt_amount"] is None]
    assert 0.4 < len(missing) / len(reports) < 0.8
    for report in missing:
        assert "debt_amount" not in report.extracted_data["extraction_metadata"]
        assert report.needs_review
    for report in reports:
        assert report.needs_review == (report.review_reason is not None)
    again = [e.report for e in generate_missing_amount_spike(seed=42, first_email_id=7, now=NOW)]
    assert again == reports


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'demo.db'}"
    return request.getfixturevalue("pg_databases").create("reportlib_alerts_demo")


def test_seed_demo_then_alerts_check_fires_the_demo_alert(
    database_url: str, sentry_receiver: SentryReceiver
) -> None:
    assert run(["migrate"], database_url).returncode == 0
    seeded = run(["seed-demo", "--count", "300", "--days", "30"], database_url)
    assert seeded.returncode == 0, seeded.stderr
    assert f"planted {SPIKE_REPORTS} recent debt claims" in seeded.stdout
    env = {
        "ALERT_RULES_PATH": str(EXAMPLE),
        "SENTRY_DSN": sentry_receiver.dsn,
        "ENVIRONMENT": "test",
        "SENTRY_TRACES_SAMPLE_RATE": "0",
        "DASHBOARD_BASE_URL": "https://reports.example.test",
    }

    dry = run(["alerts", "check", "--dry-run"], database_url, **env)
    assert dry.returncode == 1, dry.stderr
    assert sentry_receiver.events() == []
    checked = run(["alerts", "check"], database_url, **env)
    assert checked.returncode == 1, checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[-1] == "1 of 2 rules firing"
    assert re.match(r"pipeline_stopped: ok: report_volume \d+ ", lines[0])
    assert lines[1].startswith("firing: debt_amount_missing_spike: firing: missing_rate 0.")
    again = run(["alerts", "check"], database_url, **env)  # still firing: no second event
    assert again.returncode == 1 and again.stdout.splitlines()[1].startswith("debt_amount")

    (event,) = sentry_receiver.events()
    assert event["fingerprint"] == ["reportlib-alert", "debt_amount_missing_spike"]
    assert event["tags"]["field"] == "debt_amount"
    alert = event["contexts"]["alert"]
    assert alert["volume"] >= SPIKE_REPORTS and alert["value"] > 0.3
    link = urlsplit(alert["link"])
    assert (link.scheme, link.netloc, link.path) == (
        "https",
        "reports.example.test",
        "/missing-fields",
    )
    today = dt.datetime.now(dt.UTC).date()
    parsed = parse_query_params(parse_qs(link.query), today=today)
    assert parsed.problems == ()
    assert parsed.filter.intents == ("debt_claim",)
    last = dt.datetime.fromisoformat(alert["window_end"]) - dt.timedelta(microseconds=1)
    assert parsed.filter.end == last.date()
    # The page the link names exists in the dashboard's navigation.
    assert 'url_path="missing-fields"' in (ROOT / "dashboard" / "app.py").read_text()
