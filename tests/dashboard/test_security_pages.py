"""AppTest per role: login prompt, refusal, masking for ops, audited drill-downs for
reviewers, the audit log for admins, the local-mode label, configuration refusals and
bad links.

``at.secrets["auth"]`` switches login on and ``at.user`` plays the identity provider's
answer; roles come from ``DASHBOARD_ROLES`` in the environment, as in production.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from dashboard import auth, data, filters, ui
from dashboard.values import display_value
from reportlib import jsoncodec, queries
from reportlib.access import LOCAL_MODE_USER, MASK, DashboardUser, source_kind
from reportlib.audit import AuditEntry, count_audit_events, list_audit_events
from reportlib.config import get_settings
from reportlib.db import make_engine
from reportlib.service import utc_day_bounds
from tests.dashboard.helpers import (
    HOSTILE_VALUES,
    SeededDatabase,
    applied_filter,
    assert_default_filter,
    new_app,
)

APP_DIR = Path(__file__).resolve().parents[2] / "dashboard"
DUMMY_AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "a-test-cookie-secret-that-is-long-enough-0123456789",
    "client_id": "reports-dashboard",
    "client_secret": "a-test-client-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
ADMIN = "lead@example.com"
REVIEWER = "rita@reviewers.example.com"
OPS = "otto@ops.example.com"


@dataclass(frozen=True)
class AuditDb:
    """A private copy of the seeded database: audit rows written here are ours alone."""

    url: str
    engine: Engine
    hostile_email_id: int

    def events(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> list[AuditEntry]:
        with Session(self.engine) as session:
            return list_audit_events(
                session, actor=actor, action=action, start=start, end=end, limit=1000
            )

    def count(self, *, start: dt.datetime | None = None, end: dt.datetime | None = None) -> int:
        with Session(self.engine) as session:
            return count_audit_events(session, start=start, end=end)


@pytest.fixture(scope="module")
def audit_db(
    seeded_sqlite: SeededDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuditDb]:
    source = seeded_sqlite.url.removeprefix("sqlite:///")
    target = tmp_path_factory.mktemp("security_pages") / "copy.db"
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)  # consistent even with the seeding engine's WAL still open
    url = f"sqlite:///{target}"
    engine = make_engine(url)
    yield AuditDb(url=url, engine=engine, hostile_email_id=seeded_sqlite.hostile_email_id)
    engine.dispose()


@pytest.fixture
def env(
    audit_db: AuditDb, use_database: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., None]:
    """Point the app at the private database with the roles below (plus overrides)."""

    def configure(**variables: str) -> None:
        monkeypatch.setenv("DASHBOARD_ROLES", f"{ADMIN}=admin,reviewers.example.com=reviewer")
        monkeypatch.setenv("DASHBOARD_DEFAULT_ROLE", "ops")
        monkeypatch.delenv("ENVIRONMENT", raising=False)
        use_database(audit_db.url)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    configure()
    return configure


def unique(email: str) -> str:
    """The same role (by domain or default) under an address no other test uses."""
    local, _, domain = email.partition("@")
    return email if email == ADMIN else f"{local}-{uuid.uuid4().hex[:8]}@{domain}"


def logged_in(email: str, name: str = "Test Person") -> dict[str, Any]:
    return {"is_logged_in": True, "email": email, "email_verified": True, "name": name}


def app_for(user: dict[str, Any] | None, *, login: bool = True) -> AppTest:
    at = new_app()
    if login:
        at.secrets["auth"] = dict(DUMMY_AUTH)
    if user is not None:
        at.user = user
    return at


def open_review(at: AppTest, email_id: int | str | None = None) -> AppTest:
    at.run()
    at.switch_page("views/review.py")
    if email_id is not None:
        at.query_params["email_id"] = str(email_id)
    return at.run()


def registered_pages(at: AppTest) -> list[str]:
    return sorted(str(info.get("url_pathname", "")) for info in at._registered_pages.values())


def assert_clean(at: AppTest) -> None:
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == []


def sidebar_texts(at: AppTest) -> list[str]:
    return [t.value for t in at.sidebar.text]


def badges(at: AppTest) -> list[str]:
    return [m.value for m in at.sidebar.markdown if "-badge[" in m.value]


PAGES = ["", "alerts", "audit", "confidence", "missing-fields", "quality", "review"]
NON_ADMIN_PAGES = [p for p in PAGES if p != "audit"]
NO_NAVIGATION = [""]  # only the entry script itself: st.navigation was never reached


# ---- who gets in ---------------------------------------------------------------------------


def test_logged_out_visitor_sees_only_the_login_prompt(env: Callable[..., None]) -> None:
    at = app_for({"is_logged_in": False})
    at.run()
    assert [e.value for e in at.exception] == []
    assert [t.value for t in at.title] == ["Processing reports"]
    assert [i.value for i in at.info] == [auth.LOGIN_PROMPT]
    assert [b.label for b in at.button] == ["Log in"]
    assert len(at.dataframe) == 0 and len(at.get("plotly_chart")) == 0
    assert len(at.sidebar.children) <= 1  # no filters, no identity, no local-mode label
    assert registered_pages(at) == NO_NAVIGATION


def test_identity_without_login_flag_counts_as_logged_out(env: Callable[..., None]) -> None:
    at = app_for({"email": ADMIN})  # what st.user holds before any login
    at.run()
    assert [i.value for i in at.info] == [auth.LOGIN_PROMPT]
    assert len(at.dataframe) == 0


@pytest.mark.parametrize(
    ("settings", "user"),
    [
        ({"DASHBOARD_DEFAULT_ROLE": ""}, logged_in("stranger@elsewhere.test")),
        ({}, {**logged_in(ADMIN), "email_verified": False}),  # unverified address
        ({}, {"is_logged_in": True, "name": "No Email"}),  # no address at all
    ],
)
def test_users_without_a_role_are_refused(
    env: Callable[..., None], settings: dict[str, str], user: dict[str, Any]
) -> None:
    env(**settings)
    at = app_for(user)
    at.run()
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == [auth.ACCESS_DENIED]
    assert [b.label for b in at.button] == ["Log out"]
    assert len(at.dataframe) == 0 and len(at.get("plotly_chart")) == 0
    assert registered_pages(at) == NO_NAVIGATION


def test_logging_out_returns_to_the_login_prompt(env: Callable[..., None]) -> None:
    at = app_for(logged_in(unique(OPS), "Otto Ops"))
    at.run()
    assert_clean(at)
    at.button(key="auth_logout").click().run()
    assert at.user == {"is_logged_in": False}
    at.run()
    assert [i.value for i in at.info] == [auth.LOGIN_PROMPT]


# ---- ops -------------------------------------------------------------------------------


def test_ops_sees_the_drilldown_masked_and_writes_no_audit_row(
    env: Callable[..., None], audit_db: AuditDb
) -> None:
    email = unique(OPS)
    at = open_review(app_for(logged_in(email, "Otto Ops")), audit_db.hostile_email_id)
    assert_clean(at)
    assert sidebar_texts(at)[:2] == ["Otto Ops", email]
    assert badges(at) == [":blue-badge[:material/badge: Role: Ops]"]
    assert [s.value for s in at.main.subheader] == [f"Email {audit_db.hostile_email_id}"]
    # Every value is the same mask; names, confidences and source kinds stay.
    assert [c.value for c in at.code] == [MASK] * len(HOSTILE_VALUES)
    texts = [t.value for t in at.main.text]
    for name in HOSTILE_VALUES:
        assert name in texts
    assert texts[:2] == [MASK, MASK]  # subject and sender
    shown = " ".join([*texts, *(c.value for c in at.code), *(m.value for m in at.markdown)])
    for value in [*HOSTILE_VALUES.values()]:
        assert str(value) not in shown
    assert "Mahnung" not in shown and "javascript" not in shown
    assert audit_db.events(actor=email) == []
    assert "audit" not in registered_pages(at)
    assert sorted(registered_pages(at)) == NON_ADMIN_PAGES
    # No review panel, no claim or next-item buttons: ops may not review.
    assert [b.key for b in at.button if (b.key or "").startswith("review_")] == []


def test_ops_drilldown_reduces_sources_to_their_kind(
    env: Callable[..., None], audit_db: AuditDb
) -> None:
    with Session(audit_db.engine) as session:
        email_id = session.execute(
            text(
                "SELECT email_id FROM processing_reports "
                "WHERE CAST(extracted_fields AS TEXT) LIKE '%attachment:%' "
                "ORDER BY email_id LIMIT 1"
            )
        ).scalar_one()
        detail = queries.get_report_detail(session, email_id=email_id)
    assert detail is not None and detail.subject and detail.sender
    assert any((f.source or "").startswith("attachment:") for f in detail.fields)
    masked = _masked_detail_for(email_id)
    assert (masked.subject, masked.sender) == (MASK, MASK)
    assert [(f.name, f.value, f.confidence, f.source) for f in masked.fields] == [
        (f.name, MASK, f.confidence, None if f.source is None else source_kind(f.source))
        for f in detail.fields
    ]
    assert "attachment" in [f.source for f in masked.fields]
    assert (masked.intent, masked.review_reason, masked.missing_fields, masked.email_id) == (
        detail.intent,
        detail.review_reason,
        detail.missing_fields,
        detail.email_id,
    )
    assert audit_db.events(action="drilldown_viewed") == [
        e for e in audit_db.events(action="drilldown_viewed") if e.email_id != email_id
    ]


def _masked_detail_for(email_id: int) -> Any:
    # data.report_detail as ops would get it, through a tiny app that shows its repr.
    at = AppTest.from_function(_show_detail, args=(email_id,), default_timeout=60)
    at.secrets["auth"] = dict(DUMMY_AUTH)
    at.user = logged_in(unique(OPS))
    at.run()
    assert [e.value for e in at.exception] == []
    return at.session_state["detail"]


def _show_detail(email_id: int) -> None:
    import streamlit as st

    from dashboard import data as dashboard_data

    st.session_state["detail"] = dashboard_data.report_detail(email_id)


def test_ops_is_offered_no_export_with_values(env: Callable[..., None]) -> None:
    for email, expected in ((unique(OPS), 0), (unique(REVIEWER), 1)):
        at = AppTest.from_function(_values_export, default_timeout=60)
        at.secrets["auth"] = dict(DUMMY_AUTH)
        at.user = logged_in(email)
        at.run()
        assert [e.value for e in at.exception] == []
        assert len(at.get("download_button")) == expected


def _values_export() -> None:
    import pandas as pd

    from dashboard import ui as dashboard_ui

    dashboard_ui.csv_download(
        pd.DataFrame({"client_name": ["x"]}),
        label="Values (CSV)",
        file_name="values.csv",
        key="csv_values",
        contains_values=True,
        audit_page="review",
    )


def test_the_audit_page_refuses_non_admins_even_when_opened_directly(
    env: Callable[..., None],
) -> None:
    for email in (unique(OPS), unique(REVIEWER)):
        at = AppTest.from_file(str(APP_DIR / "views" / "audit.py"), default_timeout=60)
        at.secrets["auth"] = dict(DUMMY_AUTH)
        at.user = logged_in(email)
        at.run()
        assert [e.value for e in at.exception] == []
        assert [e.value for e in at.error] == ["The audit log is for admins only."]
        assert len(at.dataframe) == 0 and len(at.get("download_button")) == 0


# ---- reviewer --------------------------------------------------------------------------


def test_reviewer_sees_values_and_each_opening_is_audited_once(
    env: Callable[..., None], audit_db: AuditDb
) -> None:
    email = unique(REVIEWER)
    email_id = audit_db.hostile_email_id
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    at = open_review(app_for(logged_in(email, "Rita Reviewer")), email_id)
    assert_clean(at)
    assert badges(at) == [":blue-badge[:material/badge: Role: Reviewer]"]
    assert [c.value for c in at.code] == [
        display_value(name, value, role="reviewer") for name, value in HOSTILE_VALUES.items()
    ]
    assert MASK not in [c.value for c in at.code]
    review_buttons = {b.key for b in at.button if (b.key or "").startswith("review_")}
    assert {"review_next", "review_claim"} <= review_buttons  # the panel is there
    events = audit_db.events(actor=email)
    assert [(e.actor, e.action, e.email_id, e.details) for e in events] == [
        (
            email,
            "drilldown_viewed",
            email_id,
            {"role": "reviewer", "page": "/review", "masked": False},
        )
    ]
    assert before <= events[0].occurred_at.replace(tzinfo=dt.UTC) <= dt.datetime.now(dt.UTC)
    assert "audit" not in registered_pages(at)

    # Working inside the same opening (any rerun) writes nothing more...
    at.selectbox(key="queue_sort").set_value("lowest_confidence").run()
    at.run()
    assert_clean(at)
    assert len(audit_db.events(actor=email)) == 1
    # ...closing and opening it again is a second opening.
    at.button(key="close_drilldown").click().run()
    assert "email_id" not in at.query_params
    at.query_params["email_id"] = str(email_id)
    at.run()
    assert [s.value for s in at.main.subheader] == [f"Email {email_id}"]
    assert [e.action for e in audit_db.events(actor=email)] == ["drilldown_viewed"] * 2


def test_no_audit_row_for_an_email_without_report(
    env: Callable[..., None], audit_db: AuditDb
) -> None:
    email = unique(REVIEWER)
    at = open_review(app_for(logged_in(email)), 123456789)
    assert_clean(at)
    assert len(at.warning) == 1
    assert audit_db.events(actor=email) == []


def test_values_are_not_shown_when_the_audit_row_cannot_be_written(
    env: Callable[..., None], audit_db: AuditDb, tmp_path: Path
) -> None:
    # Reads from a replica that has the report, audit rows to a primary whose audit table
    # refuses writes: the page must fail rather than show values unaudited.
    primary = tmp_path / "primary.db"
    with sqlite3.connect(audit_db.url.removeprefix("sqlite:///")) as src:
        with sqlite3.connect(primary) as dst:
            src.backup(dst)
    with sqlite3.connect(primary) as connection:
        connection.execute(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
        )
    env(DATABASE_URL=f"sqlite:///{primary}", DASHBOARD_DATABASE_URL=audit_db.url)
    email = unique(REVIEWER)
    at = open_review(app_for(logged_in(email)), audit_db.hostile_email_id)
    assert [e.value for e in at.exception] == []
    assert len(at.error) == 1 and "Something went wrong" in at.error[0].value
    assert at.code.len == 0 and at.main.subheader.len == 0
    assert audit_db.events(actor=email) == []
    at.run()  # the next run tries again: still no values without their row
    assert len(at.error) == 1 and at.code.len == 0
    with sqlite3.connect(primary) as connection:
        connection.execute("DROP TRIGGER refuse_audit")
    at.run()
    assert_clean(at)
    assert at.code.len == len(HOSTILE_VALUES)
    engine = make_engine(f"sqlite:///{primary}")
    try:
        with Session(engine) as session:
            written = list_audit_events(session, actor=email)
    finally:
        engine.dispose()
    assert [(e.action, e.email_id) for e in written] == [
        ("drilldown_viewed", audit_db.hostile_email_id)
    ]


# ---- admin -----------------------------------------------------------------------------


def test_admin_reads_the_audit_log_with_filters(
    env: Callable[..., None], audit_db: AuditDb
) -> None:
    email_id = audit_db.hostile_email_id
    at = open_review(app_for(logged_in(ADMIN, "Lea Lead")), email_id)
    assert_clean(at)
    assert "audit" in registered_pages(at)
    assert sorted(registered_pages(at)) == PAGES
    at.switch_page("views/audit.py").run()
    assert_clean(at)
    assert [t.value for t in at.title] == ["Audit log"]
    # The page shows the sidebar's date range, by default the last 30 UTC days of the day
    # it ran: the expectation is that window's events, not the database's newest 50
    # (the demo's events are seeded relative to the day the suite runs).
    flt = applied_filter(at)
    assert_default_filter(flt)
    start, end = utc_day_bounds(flt.start, flt.end)
    total = audit_db.count(start=start, end=end)
    expected = audit_db.events(start=start, end=end)
    assert 0 < total < audit_db.count()  # the window holds some events, not all
    assert f"{total:,} events, page 1 of {math.ceil(total / 50)}." in [c.value for c in at.caption]
    assert expected[0].actor == ADMIN and expected[0].action == "audit_log_viewed"
    assert expected[1].actor == ADMIN and expected[1].action == "drilldown_viewed"
    assert expected[0].details == {"role": "admin", "page": "/audit", "is_filtered": False}
    table = at.dataframe[0].value
    assert list(table.columns) == ["occurred_at", "actor", "action", "email_id", "details"]
    assert table["actor"].tolist() == [e.actor for e in expected[:50]]
    assert table["action"].tolist() == [e.action for e in expected[:50]]
    assert table["details"].tolist()[:2] == [
        jsoncodec.dumps({"role": "admin", "page": "/audit", "is_filtered": False}),
        jsoncodec.dumps({"role": "admin", "page": "/review", "masked": False}),
    ]
    assert len(at.get("download_button")) == 1
    # The sidebar's date range applies; intent and route are kept but disabled.
    assert at.multiselect(key="filter_intents").disabled
    assert at.multiselect(key="filter_routes").disabled

    at.selectbox(key="audit_action").set_value("drilldown_viewed").run()
    at.text_input(key="audit_actor").set_value(ADMIN.upper()).run()
    at.text_input(key="audit_email").set_value(str(email_id)).run()
    assert_clean(at)
    table = at.dataframe[0].value
    mine = [
        e
        for e in audit_db.events(actor=ADMIN, action="drilldown_viewed", start=start, end=end)
        if e.email_id == email_id
    ]
    assert len(mine) >= 1
    assert table["email_id"].tolist() == [str(email_id)] * len(mine)
    assert set(table["action"]) == {"drilldown_viewed"} and set(table["actor"]) == {ADMIN}
    # Still one audit_log_viewed row: filtering is the same visit.
    assert len(audit_db.events(actor=ADMIN, action="audit_log_viewed")) == 1

    at.text_input(key="audit_email").set_value("abc").run()
    assert [e.value for e in at.exception] == []
    assert len(at.warning) == 1 and "not a number" in at.warning[0].value
    assert len(at.dataframe) == 0
    at.text_input(key="audit_email").set_value("").run()
    at.text_input(key="audit_actor").set_value("x" * 300).run()
    assert len(at.warning) == 1 and "not a valid identity" in at.warning[0].value
    at.text_input(key="audit_actor").set_value("nobody@nowhere.test").run()
    assert_clean(at)
    assert [i.value for i in at.info] == ["No audit events match the filters."]


def test_the_audit_export_writes_its_own_audit_row(
    env: Callable[..., None], audit_db: AuditDb
) -> None:
    admin = DashboardUser(actor=ADMIN, display_name="Lea Lead", role="admin")
    today = filters.utc_today()
    build = ui.audited_export(
        lambda: data.export_audit_events(
            admin, today - dt.timedelta(days=1), today, actor=None, action=None, email_id=None
        ),
        user=admin,
        page="audit",
    )
    exports_before = len(audit_db.events(action="csv_exported"))
    payload = build()
    frame = pd.read_csv(pd.io.common.BytesIO(payload))
    assert list(frame.columns) == ["occurred_at", "actor", "action", "email_id", "details"]
    exports = audit_db.events(action="csv_exported")
    assert len(exports) == exports_before + 1
    newest = exports[0]
    assert (newest.actor, newest.email_id, newest.details) == (
        ADMIN,
        None,
        {"role": "admin", "page": "/audit", "rows": len(frame)},
    )
    for value in [*HOSTILE_VALUES.values()]:
        assert str(value) not in payload.decode("utf-8")


# ---- local mode and configuration --------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_local_mode_is_labelled_on_every_page(env: Callable[..., None], page: str) -> None:
    at = app_for(None, login=False)
    at.run()
    if page:
        at.switch_page(f"views/{page.replace('-', '_') or 'overview'}.py").run()
    assert_clean(at)
    assert badges(at) == [f":orange-badge[:material/warning: {auth.LOCAL_MODE_LABEL}]"]
    assert auth.LOCAL_MODE_NOTE in [c.value for c in at.sidebar.caption]
    assert sorted(registered_pages(at)) == PAGES  # the local user has every right


def test_local_mode_drilldown_is_audited_as_local_mode(
    env: Callable[..., None], audit_db: AuditDb
) -> None:
    opened = len(audit_db.events(actor=LOCAL_MODE_USER.actor))
    at = open_review(app_for(None, login=False), audit_db.hostile_email_id)
    assert_clean(at)
    assert MASK not in [c.value for c in at.code]
    events = audit_db.events(actor="local-mode")
    assert len(events) == opened + 1
    assert events[0].details == {"role": "admin", "page": "/review", "masked": False}


def test_production_refuses_local_mode(env: Callable[..., None]) -> None:
    env(ENVIRONMENT="production")
    at = app_for(None, login=False)
    at.run()
    assert [e.value for e in at.exception] == []
    assert len(at.error) == 1
    assert "no [auth] section" in at.error[0].value and "local mode" in at.error[0].value
    assert len(at.dataframe) == 0 and registered_pages(at) == NO_NAVIGATION


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cookie_secret": "REPLACE-with-a-long-random-secret"}, "placeholder for cookie_secret"),
        ({"client_id": ""}, "has no client_id"),
    ],
)
def test_broken_login_configuration_is_refused(
    env: Callable[..., None], change: dict[str, str], message: str
) -> None:
    at = new_app()
    at.secrets["auth"] = {**DUMMY_AUTH, **change}
    at.user = logged_in(ADMIN)
    at.run()
    assert [e.value for e in at.exception] == []
    assert len(at.error) == 1 and message in at.error[0].value
    assert "REPLACE" not in at.error[0].value.replace("placeholder", "")
    assert len(at.dataframe) == 0


# ---- bad links ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2026-02-30", "end": "2026-03-01"}, "not a valid YYYY-MM-DD date"),
        ({"start": "9" * 5000}, "not a valid YYYY-MM-DD date"),
        ({"end": "2026-11-01T00:00:00+99:00"}, "not a valid YYYY-MM-DD date"),
        ({"route": ["low", "x" * 10_000]}, "unknown route"),
        ({"intent": "debt_claim\x00"}, "intent filter is not valid"),
        ({"intent": [f"i{n}" for n in range(60)]}, "intent filter is not valid"),
    ],
)
def test_more_malformed_links_fall_back_to_defaults(
    env: Callable[..., None], params: dict[str, Any], message: str
) -> None:
    at = app_for(None, login=False)
    at.query_params.update(params)
    at.run()
    assert_clean(at)
    assert len(at.warning) == 1 and message in at.warning[0].value
    flt = applied_filter(at)
    assert_default_filter(flt)
    assert at.date_input(key="filter_dates").value == (flt.start, flt.end)


def test_an_unknown_intent_is_an_empty_window(env: Callable[..., None]) -> None:
    at = app_for(None, login=False)
    at.query_params["intent"] = "no_such_intent"
    at.run()
    assert_clean(at)
    assert [w.value for w in at.warning] == []
    assert "No reports match the filters" in " ".join(i.value for i in at.info)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1" * 100_000, "out of range"),
        ("-1", "not a number"),
        ("1e9", "not a number"),
        ("0x10", "not a number"),
        ("\u0663", "not a number"),  # ARABIC-INDIC DIGIT THREE: a digit, but not ASCII
        ("1.0", "not a number"),
    ],
)
def test_more_malformed_email_links(
    env: Callable[..., None], audit_db: AuditDb, raw: str, message: str
) -> None:
    at = open_review(app_for(None, login=False), raw)
    assert_clean(at)
    assert at.main.subheader.len == 0
    assert len(at.warning) == 1 and message in at.warning[0].value
    assert raw not in at.warning[0].value
