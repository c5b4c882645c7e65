"""Alert state and delivery: transitions with an injected clock, exactly one Sentry event
per change at the local receiver, no personal data in it, the volume guard, the CLI."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sentry_sdk
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.filters import parse_query_params
from reportlib import cli, migrate
from reportlib.alerts import Rule
from reportlib.alerts.check import check_alerts, list_alert_events, send_alert_event
from reportlib.config import Settings
from reportlib.db import make_engine, session_scope
from reportlib.models import AlertEvent
from reportlib.monitoring import init_sentry, shutdown_sentry
from reportlib.queries import ReportFilter
from tests.conftest import PostgresDatabases
from tests.factories import checkpoints, make_report

if TYPE_CHECKING:
    from tests.sentry_receiver import SentryReceiver

pytest_plugins = ["tests.sentry_receiver"]

T0 = dt.datetime(2026, 11, 20, 10, 30, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
BASE_URL = "https://dash.example.test/ops"
# Values no alert may carry: each is distinctive, so finding it anywhere is a leak.
SECRETS = (
    "Zyxwvut Quellenname",
    "Glaeubiger Qwertz AG",
    "98765.43",
    "AZ-SECRET-4711",
    "Betreff Geheim",
    "geheim@absender.test",
)


def _data(missing_debt: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "client_name": SECRETS[0],
        "creditor_name": SECRETS[1],
        "reference_numbers": [SECRETS[3]],
    }
    if not missing_debt:
        data["debt_amount"] = Decimal(SECRETS[2])
    return data


def _write(db: Session, n: int, *, at: dt.datetime, missing_debt: bool) -> None:
    for i in range(n):
        make_report(
            db,
            extracted_data=_data(missing_debt),
            agent_checkpoints=checkpoints(intent="debt_claim"),
            confidence_route="medium",
            created_at=at + dt.timedelta(minutes=i),
            subject=SECRETS[4],
            sender=SECRETS[5],
        )
    db.flush()


RULE = Rule(
    name="test_debt_missing",
    metric="missing_rate",
    field="debt_amount",
    intent="debt_claim",
    route="medium",
    window_hours=2,
    comparison="above",
    threshold=0.5,
    min_volume=5,
    severity="error",
    enabled=True,
)


@pytest.fixture
def sentry_on(sentry_receiver: SentryReceiver) -> Iterator[SentryReceiver]:
    shutdown_sentry()
    settings = Settings(
        sentry_dsn=sentry_receiver.dsn,
        environment="test",
        sentry_traces_sample_rate=0.0,
        sentry_profiles_sample_rate=0.0,
    )
    with sentry_sdk.isolation_scope():
        assert init_sentry(settings)
        yield sentry_receiver
    shutdown_sentry()


def _step(db: Session, now: dt.datetime, rules: list[Rule] | None = None) -> list[Any]:
    evaluations = check_alerts(db, rules or [RULE], now=now, base_url=BASE_URL)
    for evaluation in evaluations:
        send_alert_event(evaluation)
    return evaluations


def test_a_rule_walks_ok_firing_still_firing_resolved_with_two_events(
    db: Session, sentry_on: SentryReceiver
) -> None:
    hour0 = T0.replace(minute=0)
    _write(db, 10, at=hour0 - HOUR, missing_debt=False)
    # Another intent's and another route's reports never count for this rule.
    make_report(
        db,
        extracted_data=_data(True),
        agent_checkpoints=checkpoints(intent="other"),
        confidence_route="medium",
        created_at=hour0 + dt.timedelta(minutes=5),
    )
    make_report(
        db,
        extracted_data=_data(True),
        confidence_route="low",
        created_at=hour0 + dt.timedelta(minutes=5),
    )

    (first,) = _step(db, T0)
    assert (first.previous, first.state, first.change, first.judged) == ("ok", "ok", None, True)
    assert (first.reading.value, first.reading.volume) == (0.0, 10)

    _write(db, 20, at=hour0, missing_debt=True)
    (fired,) = _step(db, T0 + HOUR)
    assert (fired.previous, fired.state, fired.change) == ("ok", "firing", "firing")
    assert fired.reading.value == pytest.approx(20 / 30)

    (still,) = _step(db, T0 + 2 * HOUR)
    assert (still.state, still.change, still.reading.value) == ("firing", None, 1.0)

    # Three reports: too few to judge, so the rule keeps firing and says nothing.
    _write(db, 3, at=hour0 + 2 * HOUR, missing_debt=False)
    (held,) = _step(db, T0 + 3 * HOUR)
    assert (held.judged, held.state, held.change, held.reading.volume) == (False, "firing", None, 3)

    _write(db, 10, at=hour0 + 3 * HOUR, missing_debt=False)
    (resolved,) = _step(db, T0 + 4 * HOUR)
    assert (resolved.previous, resolved.state, resolved.change) == ("firing", "ok", "resolved")
    (quiet,) = _step(db, T0 + 5 * HOUR)
    assert (quiet.state, quiet.change) == ("ok", None)

    rows = db.execute(
        select(
            AlertEvent.rule, AlertEvent.state, AlertEvent.occurred_at, AlertEvent.volume
        ).order_by(AlertEvent.id)
    ).all()
    assert [tuple(row) for row in rows] == [
        ("test_debt_missing", "firing", T0 + HOUR, 30),
        ("test_debt_missing", "resolved", T0 + 4 * HOUR, 13),
    ]
    assert [e.state for e in list_alert_events(db, rule=RULE.name)] == ["resolved", "firing"]

    shutdown_sentry()  # flushes
    events = sentry_on.events()
    assert len(events) == 2
    assert [e["tags"]["alert_state"] for e in events] == ["firing", "resolved"]
    assert [e["level"] for e in events] == ["error", "info"]
    for event, state in zip(events, ("firing", "resolved"), strict=True):
        assert event["fingerprint"] == ["reportlib-alert", "test_debt_missing"]
        names = ("rule", "metric", "intent", "route", "field", "severity", "alert_state")
        assert {name: event["tags"].get(name) for name in names} == {
            "rule": "test_debt_missing",
            "metric": "missing_rate",
            "intent": "debt_claim",
            "route": "medium",
            "field": "debt_amount",
            "severity": "error",
            "alert_state": state,
        }
    firing = events[0]
    assert firing["message"].startswith("Alert test_debt_missing firing: missing_rate 0.6667")
    alert = firing["contexts"]["alert"]
    assert alert["value"] == pytest.approx(20 / 30)
    assert (alert["threshold"], alert["volume"], alert["min_volume"]) == (0.5, 30, 5)
    assert (alert["window_start"], alert["window_end"]) == (
        (hour0 - HOUR).isoformat(),
        (hour0 + HOUR).isoformat(),
    )
    # The link opens the watched page with the window's dates and the rule's filters.
    link = urlsplit(alert["link"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{BASE_URL}/missing-fields"
    parsed = parse_query_params(parse_qs(link.query), today=T0.date())
    assert parsed.problems == ()
    assert parsed.filter == ReportFilter(T0.date(), T0.date(), ("debt_claim",), ("medium",))

    # No personal data anywhere in what arrived.
    raw = b"".join(sentry_on.raw_bodies()).decode("utf-8", "replace")
    assert "test_debt_missing" in raw  # the search below reads the real payloads
    for secret in SECRETS:
        assert secret not in raw
        assert secret not in json.dumps(events)


def test_the_volume_guard_keeps_small_samples_from_firing(db: Session) -> None:
    hour0 = T0.replace(minute=0)
    _write(db, 4, at=hour0 - HOUR, missing_debt=True)
    (small,) = check_alerts(db, [RULE], now=T0, base_url=BASE_URL)
    assert (small.reading.value, small.reading.volume) == (1.0, 4)
    assert (small.judged, small.state, small.change) == (False, "ok", None)
    _write(db, 1, at=hour0 - HOUR + dt.timedelta(minutes=30), missing_debt=True)
    (enough,) = check_alerts(db, [RULE], now=T0, base_url=BASE_URL)
    assert (enough.reading.volume, enough.judged, enough.change) == (5, True, "firing")


def test_a_baseline_rule_compares_with_the_same_hours_before(db: Session) -> None:
    rule = Rule(
        name="test_review_doubled",
        metric="needs_review_rate",
        window_hours=1,
        comparison="above",
        baseline_days=2,
        factor=2.0,
        min_volume=1,
        enabled=True,
    )
    hour0 = T0.replace(minute=0)
    for days, flagged in ((1, 1), (2, 1)):  # 1 of 4 flagged on each earlier day
        for i in range(4):
            make_report(
                db,
                needs_review=i < flagged,
                review_reason="low overall confidence" if i < flagged else None,
                created_at=hour0 - HOUR - dt.timedelta(days=days, minutes=-i),
            )
    for i in range(4):  # 2 of 4 now: exactly double, which does not exceed 2 x 0.25
        make_report(
            db,
            needs_review=i < 2,
            review_reason="x" if i < 2 else None,
            created_at=hour0 - HOUR + dt.timedelta(minutes=i),
        )
    (equal,) = check_alerts(db, [rule], now=T0, base_url=BASE_URL, dry_run=True)
    assert (equal.baseline.value if equal.baseline else None, equal.threshold) == (0.25, 0.5)
    assert (equal.reading.value, equal.state) == (0.5, "ok")
    make_report(db, needs_review=True, review_reason="x", created_at=hour0 - HOUR)
    (more,) = check_alerts(db, [rule], now=T0, base_url=BASE_URL, dry_run=True)
    assert (more.reading.value, more.state, more.change) == (0.6, "firing", "firing")
    # The link spans the baseline days too, on the page that shows the metric.
    assert more.link == f"{BASE_URL}/?start=2026-11-18&end=2026-11-20"
    # A dry run records nothing.
    assert db.scalars(select(AlertEvent).where(AlertEvent.rule == rule.name)).all() == []


def _cli(monkeypatch: pytest.MonkeyPatch, url: str, rules: Path | None) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    if rules is None:
        monkeypatch.delenv("ALERT_RULES_PATH", raising=False)
    else:
        monkeypatch.setenv("ALERT_RULES_PATH", str(rules))
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    from reportlib.config import get_settings

    get_settings.cache_clear()
    code = cli.main(["alerts", "check"] + (["--dry-run"] if "dry" in str(rules) else []))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_cli_exits_0_1_or_2(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'alerts.db'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("pg_databases")
        url = databases.create("reportlib_alerts")
    engine = make_engine(url)
    migrate.upgrade(engine)
    stopped = (
        '[[rule]]\nname = "stopped"\nmetric = "report_volume"\nwindow_hours = 1\n'
        'comparison = "below"\nthreshold = 1\nenabled = true\n'
    )
    (tmp_path / "dry").mkdir()
    dry = tmp_path / "dry" / "rules.toml"
    dry.write_text(stopped)
    live = tmp_path / "rules.toml"
    live.write_text(stopped)
    bad = tmp_path / "bad.toml"
    bad.write_text(stopped.replace("window_hours = 1", "window_hours = 0"))

    assert _cli(monkeypatch, url, None)[:2] == (
        0,
        "no alert rules enabled (see ALERT_RULES_PATH)\n",
    )
    code, out, _ = _cli(monkeypatch, url, dry)
    assert code == 1 and out.startswith("would be firing: stopped: firing: report_volume 0 ")
    with session_scope(engine) as db:
        assert db.scalars(select(AlertEvent)).all() == []
    code, out, _ = _cli(monkeypatch, url, live)
    assert code == 1 and out.startswith("firing: stopped: firing:")
    assert out.endswith("1 of 1 rules firing\n")
    code, out, _ = _cli(monkeypatch, url, live)  # still firing: no new state change
    assert code == 1 and out.startswith("stopped: firing:")
    with session_scope(engine) as db:
        assert [e.state for e in db.scalars(select(AlertEvent))] == ["firing"]
    code, out, err = _cli(monkeypatch, url, bad)
    assert (code, out) == (2, "")
    assert err == (
        "configuration error: alert rule 'stopped', key 'window_hours': "
        "must be a whole number from 1 to 168\n"
    )
    engine.dispose()
