"""The dashboard on a real hot standby: pages read the replica, say how current it is when
it lags, and everything a reviewer writes or acts on goes to the primary.

The replica is PostgreSQL's own streaming replication (``tests/replica.py``); lag is made
by pausing WAL replay on the standby (``pg_wal_replay_pause()``), never simulated.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import streamlit as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from reportlib import queries, review
from reportlib.config import get_settings
from reportlib.health import check_database
from reportlib.models import ProcessingReport, ReviewClaim, ReviewDecision, rollup_dirty_days
from reportlib.queries import ReportFilter
from tests.dashboard.helpers import applied_filter, new_app
from tests.dashboard.test_review_flow import (
    choose_outcome,
    fill_form,
    plan_verdicts,
    submit,
)
from tests.replica import StreamingPair, pause_replay, resume_replay, wait_for_lag, write_reports

pytestmark = pytest.mark.postgres

REVIEWER = "Rhea Replica"
PAGES = {
    "Overview": None,
    "Confidence": "views/confidence.py",
    "Missing fields": "views/missing_fields.py",
    "Review queue": "views/review.py",
    "Quality": "views/quality.py",
    "Audit log": "views/audit.py",
    "Alerts": "views/alerts.py",
}


@pytest.fixture
def dashboard_on_replica(
    pair: StreamingPair, monkeypatch: pytest.MonkeyPatch
) -> Callable[[int], None]:
    """Point the dashboard at the primary, its reads at the standby, with a lag threshold."""

    def point(max_lag_s: int) -> None:
        monkeypatch.setenv("DATABASE_URL", pair.primary_url)
        monkeypatch.setenv("DASHBOARD_DATABASE_URL", pair.standby_url)
        monkeypatch.setenv("DASHBOARD_REPLICA_MAX_LAG_S", str(max_lag_s))
        monkeypatch.delenv("SENTRY_DSN", raising=False)
        get_settings.cache_clear()
        st.cache_data.clear()

    yield point
    get_settings.cache_clear()
    st.cache_data.clear()


# --------------------------------------------------------------------------- helpers


def open_page(title: str) -> AppTest:
    at = new_app()
    at.run()
    if PAGES[title]:
        at.switch_page(PAGES[title]).run()
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == []
    assert [t.value for t in at.title] == [title]
    return at


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert len(values) == 1, f"no single metric {label!r}"
    return values[0]


def reports_in(engine: Engine, flt: ReportFilter, now: dt.datetime) -> int:
    with Session(engine) as session:
        return queries.overview_kpis(session, flt=flt, now=now).current.reports


def lag_notices(at: AppTest) -> list[str]:
    return [str(w.value) for w in at.warning if "read replica" in str(w.value)]


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("DASHBOARD_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "reportlib", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --------------------------------------------------------------------------- tests


def test_check_database_tells_a_lagging_standby_from_a_current_one(
    primary: Engine, standby: Engine
) -> None:
    assert check_database(primary) is None
    assert check_database(standby) is None  # caught up
    pause_replay(standby)
    write_reports(primary, 1)
    lag = wait_for_lag(standby, 0.5)
    assert lag.as_of.tzinfo is not None
    assert dt.timedelta(seconds=0.5) <= lag.behind < dt.timedelta(minutes=30)
    resume_replay(standby)
    deadline = time.monotonic() + 30
    while check_database(standby) is not None:
        assert time.monotonic() < deadline, "the standby never caught up after resuming"
        time.sleep(0.1)


def test_every_page_renders_from_the_lagging_replica_and_says_as_of_when(
    primary: Engine, standby: Engine, dashboard_on_replica: Callable[[int], None]
) -> None:
    pause_replay(standby)
    write_reports(primary, 25)
    lag = wait_for_lag(standby, 1.5)
    dashboard_on_replica(1)
    for title in PAGES:
        at = open_page(title)
        notices = lag_notices(at)
        assert len(notices) == 1, (title, notices)
        assert notices[0].startswith("Data as of ")
        shown = dt.datetime.strptime(notices[0][len("Data as of ") :][:19], "%Y-%m-%d %H:%M:%S")
        assert shown.replace(tzinfo=dt.UTC) == lag.as_of.replace(microsecond=0)
        if title == "Overview":
            flt = applied_filter(at)
            now = dt.datetime.now(dt.UTC)
            on_replica, on_primary = reports_in(standby, flt, now), reports_in(primary, flt, now)
            assert on_primary == on_replica + 25
            assert metric(at, "Reports") == f"{on_replica:,}"

    # The same lag under a threshold it does not reach: no notice.
    dashboard_on_replica(3600)
    assert lag_notices(open_page("Overview")) == []


def test_a_caught_up_replica_shows_the_primarys_figures_without_a_notice(
    primary: Engine, standby: Engine, dashboard_on_replica: Callable[[int], None]
) -> None:
    dashboard_on_replica(5)
    at = open_page("Overview")
    assert lag_notices(at) == []
    flt = applied_filter(at)
    assert metric(at, "Reports") == f"{reports_in(primary, flt, dt.datetime.now(dt.UTC)):,}"


def test_claims_and_decisions_land_on_the_primary_while_the_replica_lags(
    pair: StreamingPair,
    primary: Engine,
    standby: Engine,
    dashboard_on_replica: Callable[[int], None],
) -> None:
    pause_replay(standby)
    dashboard_on_replica(3600)
    at = new_app()
    at.run()
    at.switch_page("views/review.py").run()
    at.text_input(key="review_name_input").set_value(REVIEWER).run()
    at.button(key="review_next").click().run()
    assert [e.value for e in at.exception] == []
    email_id = int(at.query_params["email_id"])

    def claims(engine: Engine) -> list[str]:
        with Session(engine) as session:
            return list(
                session.scalars(
                    select(ReviewClaim.reviewer)
                    .join(ProcessingReport, ProcessingReport.id == ReviewClaim.report_id)
                    .where(ProcessingReport.email_id == email_id)
                )
            )

    assert claims(primary) == [REVIEWER]
    assert claims(standby) == []  # replay is paused: the claim can only be on the primary
    # The holder shown comes from the primary, though the standby has not seen the claim.
    with Session(primary) as session:
        item = review.get_review_item(session, email_id=email_id)
    assert item is not None and item.claim is not None
    assert any(t.value.startswith("You hold this report until") for t in at.text)
    queue = at.dataframe[0].value.set_index("Email")
    expires = item.claim.expires_at.astimezone(dt.UTC)
    assert queue.loc[email_id, "Held by"] == f"{REVIEWER} (until {expires:%H:%M})"

    plan, outcome = plan_verdicts(item)
    fill_form(at, item, plan)
    choose_outcome(at, item, outcome)
    submit(at, item)
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == []

    def decisions(engine: Engine) -> int:
        with Session(engine) as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(ReviewDecision)
                    .where(ReviewDecision.report_id == item.report_id)
                )
                or 0
            )

    assert decisions(primary) == 1
    assert decisions(standby) == 0
    with Session(primary) as session:
        still_open = {i.email_id for i in review.list_review_queue(session, limit=1000)}
    assert email_id not in still_open

    resume_replay(standby)
    pair.wait_for_replay(primary, standby)
    assert decisions(standby) == 1


def test_rollup_maintenance_runs_on_the_primary_and_reaches_the_replica(
    pair: StreamingPair, primary: Engine, standby: Engine
) -> None:
    write_reports(primary, 10)
    pair.wait_for_replay(primary, standby)

    def dirty(engine: Engine) -> int:
        with Session(engine) as session:
            return int(session.scalar(select(func.count()).select_from(rollup_dirty_days)) or 0)

    assert dirty(standby) > 0
    on_replica = cli(pair.standby_url, "rollups", "refresh")
    assert on_replica.returncode != 0
    assert "Traceback" not in on_replica.stderr
    assert "read-only" in on_replica.stderr + on_replica.stdout

    on_primary = cli(pair.primary_url, "rollups", "refresh")
    assert on_primary.returncode == 0, on_primary.stderr
    pair.wait_for_replay(primary, standby)
    assert dirty(standby) == 0
    verified = cli(pair.standby_url, "rollups", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
