"""AppTest: every page renders, the filters drive the numbers, links restore views, and
bad links, empty or missing databases end in a friendly message instead of a traceback."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from dashboard import data, filters, ui
from dashboard.values import display_value
from reportlib import queries
from reportlib.queries import ReportFilter
from tests.dashboard.helpers import (
    HOSTILE_INTENT,
    HOSTILE_REASON,
    HOSTILE_SUBJECT,
    HOSTILE_VALUES,
    SeededDatabase,
    applied_filter,
    assert_default_filter,
    new_app,
)

PAGES = {
    "overview": None,
    "confidence": "views/confidence.py",
    "missing-fields": "views/missing_fields.py",
    "review": "views/review.py",
}
TITLES = {
    "overview": "Overview",
    "confidence": "Confidence",
    "missing-fields": "Missing fields",
    "review": "Review queue",
}
CHARTS = {"overview": 3, "confidence": 5, "missing-fields": 5, "review": 0}


def open_page(page: str, params: dict[str, Any] | None = None) -> AppTest:
    """Open ``page`` as a visitor of ``/<page>?<params>`` would.

    AppTest always starts on the default page (which drops ``email_id``), so a deep link's
    ``email_id`` is set again once the review page is selected.
    """
    at = new_app()
    params = dict(params or {})
    at.query_params.update(params)
    at.run()
    if PAGES[page]:
        at.switch_page(PAGES[page])
        if "email_id" in params:
            at.query_params["email_id"] = params["email_id"]
        at.run()
    return at


def assert_clean(at: AppTest) -> None:
    assert [e.value for e in at.exception] == []
    assert [e.value for e in at.error] == []


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert len(values) == 1, f"no single metric {label!r}"
    return values[0]


def with_session(database: SeededDatabase, work: Callable[[Session], Any]) -> Any:
    with Session(database.engine) as session:
        return work(session)


@pytest.fixture
def sqlite_app(
    seeded_sqlite: SeededDatabase, use_database: Callable[[str], None]
) -> SeededDatabase:
    use_database(seeded_sqlite.url)
    return seeded_sqlite


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_with_charts_tables_and_export(sqlite_app: SeededDatabase, page: str) -> None:
    at = open_page(page)
    assert_clean(at)
    assert [t.value for t in at.title] == [TITLES[page]]
    assert len(at.get("plotly_chart")) == CHARTS[page]
    assert len(at.dataframe) >= 1
    assert len(at.get("download_button")) >= 1
    assert [w.value for w in at.warning] == []
    flt = applied_filter(at)
    assert_default_filter(flt)
    assert at.query_params == {"start": flt.start.isoformat(), "end": flt.end.isoformat()}


@pytest.mark.postgres
@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_on_postgresql(
    seeded_postgres: SeededDatabase, use_database: Callable[[str], None], page: str
) -> None:
    use_database(seeded_postgres.url)
    at = open_page(page)
    assert_clean(at)
    assert [t.value for t in at.title] == [TITLES[page]]
    assert len(at.get("plotly_chart")) == CHARTS[page]


def test_overview_shows_the_query_numbers(sqlite_app: SeededDatabase) -> None:
    at = open_page("overview")
    flt = applied_filter(at)
    assert_default_filter(flt)
    now = data.now_minute()
    kpis = with_session(sqlite_app, lambda s: queries.overview_kpis(s, flt=flt, now=now))
    assert kpis.current.reports > 100
    assert {
        label: metric(at, label)
        for label in ("Reports", "Average overall confidence", "Needing review", "Tokens used")
    } == {
        "Reports": ui.fmt_int(kpis.current.reports),
        "Average overall confidence": ui.fmt_confidence(kpis.current.avg_confidence),
        "Needing review": ui.fmt_pct(kpis.current.needs_review_share),
        "Tokens used": ui.fmt_int(kpis.current.tokens),
    }
    assert metric(at, "Open review queue") == ui.fmt_int(kpis.current.queue.size)
    assert metric(at, "Processing time p95") == ui.fmt_ms(kpis.current.p95_processing_ms)
    daily = at.dataframe[0].value
    assert int(daily["Reports"].sum()) == kpis.current.reports
    assert len(daily) == flt.days


def test_route_filter_changes_numbers_and_url(sqlite_app: SeededDatabase) -> None:
    at = open_page("overview")
    everything = metric(at, "Reports")
    at.multiselect(key="filter_routes").set_value(["low"]).run()
    assert_clean(at)
    flt = applied_filter(at)
    assert flt == ReportFilter(flt.start, flt.end, routes=("low",))
    assert_default_filter(ReportFilter(flt.start, flt.end))
    low = with_session(sqlite_app, lambda s: queries.count_reports(s, flt=flt))
    assert metric(at, "Reports") == ui.fmt_int(low) != everything
    assert at.query_params["route"] == "low"


def test_query_params_restore_filters(sqlite_app: SeededDatabase) -> None:
    today = filters.utc_today()
    start, end = today - dt.timedelta(days=20), today - dt.timedelta(days=5)
    params = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "intent": ["debt_claim", "payment_reminder"],
        "route": "medium",
    }
    at = open_page("overview", params)
    assert_clean(at)
    assert at.date_input(key="filter_dates").value == (start, end)
    assert at.multiselect(key="filter_intents").value == ["debt_claim", "payment_reminder"]
    assert at.multiselect(key="filter_routes").value == ["medium"]
    flt = ReportFilter(start, end, ("debt_claim", "payment_reminder"), ("medium",))
    expected = with_session(sqlite_app, lambda s: queries.count_reports(s, flt=flt))
    assert expected > 0
    assert metric(at, "Reports") == ui.fmt_int(expected)
    assert at.query_params == params


def test_filters_carry_over_between_pages(sqlite_app: SeededDatabase) -> None:
    at = open_page("overview")
    at.multiselect(key="filter_intents").set_value(["debt_claim"]).run()
    at.switch_page("views/missing_fields.py").run()
    assert_clean(at)
    assert at.multiselect(key="filter_intents").value == ["debt_claim"]
    assert at.query_params["intent"] == "debt_claim"
    flt = applied_filter(at)
    assert flt == ReportFilter(flt.start, flt.end, ("debt_claim",))
    assert_default_filter(ReportFilter(flt.start, flt.end))
    frequency = with_session(sqlite_app, lambda s: queries.missing_field_frequency(s, flt=flt))
    shown = at.dataframe[0].value
    assert shown["Reports missing it"].tolist() == frequency["missing"].tolist()
    assert shown["Reports in period"].iloc[0] == frequency["reports"].iloc[0]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2026-13-45", "end": "2026-11-01"}, "not a valid YYYY-MM-DD date"),
        ({"start": "2026-11-20", "end": "2026-11-01"}, "start date is after its end date"),
        ({"start": "2001-01-01", "end": "2003-01-01"}, "longer than 366 days"),
        ({"start": "1999-01-01", "end": "1999-01-02"}, "must lie between"),
        ({"route": "urgent"}, "unknown route"),
        ({"intent": "x" * 300}, "intent filter is not valid"),
    ],
)
def test_malformed_filter_params_fall_back_to_defaults(
    sqlite_app: SeededDatabase, params: dict[str, str], message: str
) -> None:
    at = open_page("overview", params)
    assert_clean(at)
    assert len(at.warning) == 1 and message in at.warning[0].value
    flt = applied_filter(at)
    assert_default_filter(flt)
    assert at.date_input(key="filter_dates").value == (flt.start, flt.end)
    assert at.query_params["start"] == flt.start.isoformat()
    assert "route" not in at.query_params and "intent" not in at.query_params


def test_confidence_threshold_what_if(sqlite_app: SeededDatabase) -> None:
    at = open_page("confidence")
    at.slider(key="threshold").set_value(0.55).run()
    assert_clean(at)
    flt = applied_filter(at)
    assert_default_filter(flt)
    what_if = with_session(
        sqlite_app, lambda s: queries.route_threshold_what_if(s, flt=flt, threshold=0.55)
    )
    assert what_if.below > 0
    assert metric(at, "Reports below the threshold") == ui.fmt_int(what_if.below)
    assert metric(at, "Share of all reports") == ui.fmt_pct(what_if.below_share)
    assert metric(at, "Below it but not flagged today") == ui.fmt_int(what_if.below_not_flagged)


def test_review_queue_sorting_matches_queries(sqlite_app: SeededDatabase) -> None:
    at = open_page("review")
    flt = applied_filter(at)
    assert_default_filter(flt)
    oldest = with_session(sqlite_app, lambda s: queries.review_queue_page(s, flt=flt, limit=50))
    assert at.dataframe[0].value["Email"].tolist() == oldest["email_id"].tolist()
    at.selectbox(key="queue_sort").set_value("lowest_confidence").run()
    lowest = with_session(
        sqlite_app,
        lambda s: queries.review_queue_page(s, flt=flt, sort="lowest_confidence", limit=50),
    )
    shown = at.dataframe[0].value
    assert shown["Email"].tolist() == lowest["email_id"].tolist()
    assert shown["Overall confidence"].is_monotonic_increasing


def test_selecting_a_row_opens_its_drilldown(sqlite_app: SeededDatabase) -> None:
    at = open_page("review")
    table = at.dataframe[0]
    first = int(table.value["Email"].iloc[2])
    at.session_state[table.key] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    at.run()
    assert_clean(at)
    assert at.query_params["email_id"] == str(first)
    assert [s.value for s in at.main.subheader] == [f"Email {first}"]
    detail = with_session(sqlite_app, lambda s: queries.get_report_detail(s, email_id=first))
    assert detail is not None
    assert [c.value for c in at.code] == [display_value(f.name, f.value) for f in detail.fields]
    at.button(key="close_drilldown").click().run()
    assert "email_id" not in at.query_params and at.main.subheader.len == 0


def test_deep_link_shows_hostile_values_as_plain_text(sqlite_app: SeededDatabase) -> None:
    at = open_page("review", {"email_id": str(sqlite_app.hostile_email_id)})
    assert_clean(at)
    assert [s.value for s in at.main.subheader] == [f"Email {sqlite_app.hostile_email_id}"]
    assert [c.value for c in at.code] == [
        display_value(name, value) for name, value in HOSTILE_VALUES.items()
    ]
    texts = [t.value for t in at.text]
    for untrusted in (HOSTILE_SUBJECT, HOSTILE_INTENT, HOSTILE_REASON):
        assert untrusted in texts
    rendered_as_markdown = " ".join(
        str(element.value) for element in [*at.markdown, *at.caption, *at.metric]
    )
    for untrusted in [*HOSTILE_VALUES.values(), HOSTILE_SUBJECT, HOSTILE_INTENT, HOSTILE_REASON]:
        assert str(untrusted) not in rendered_as_markdown
    assert "src=x" not in rendered_as_markdown and "127.0.0.1:9" not in rendered_as_markdown
    assert [m.value for m in at.metric][:2] == ["0.31", "Low"]


@pytest.mark.parametrize(
    ("email_id", "message"),
    [
        ("abc", "is not a number"),
        ("-5", "is not a number"),
        ("12 OR 1=1", "is not a number"),
        ("99999999999", "out of range"),
        ("0", "out of range"),
        ("123456789", "There is no processing report for email 123456789"),
    ],
)
def test_bad_email_links_get_a_friendly_message(
    sqlite_app: SeededDatabase, email_id: str, message: str
) -> None:
    at = open_page("review", {"email_id": email_id})
    assert_clean(at)
    assert len(at.warning) == 1 and message in at.warning[0].value
    assert at.main.subheader.len == 0
    assert len(at.dataframe) == 1  # the queue is still there


def test_drilldown_link_is_dropped_on_other_pages(sqlite_app: SeededDatabase) -> None:
    at = open_page("overview", {"email_id": str(sqlite_app.hostile_email_id)})
    assert_clean(at)
    assert "email_id" not in at.query_params


@pytest.mark.parametrize("page", list(PAGES))
def test_empty_database_gets_a_friendly_message(
    empty_sqlite: str, use_database: Callable[[str], None], page: str
) -> None:
    use_database(empty_sqlite)
    at = open_page(page)
    assert_clean(at)
    assert len(at.info) == 1 and "no processing reports in the database yet" in at.info[0].value
    assert len(at.get("plotly_chart")) == 0


@pytest.mark.parametrize("page", ["overview", "confidence", "missing-fields", "review"])
def test_empty_window_gets_a_friendly_message(sqlite_app: SeededDatabase, page: str) -> None:
    params = {"start": "2020-01-01", "end": "2020-01-31"}
    at = open_page(page, params)
    assert_clean(at)
    infos = " ".join(i.value for i in at.info)
    expected = "No open review items" if page == "review" else "No reports match the filters"
    assert expected in infos
    assert len(at.get("plotly_chart")) == 0


def test_database_without_tables(tmp_path: Any, use_database: Callable[[str], None]) -> None:
    use_database(f"sqlite:///{tmp_path / 'never_migrated.db'}")
    at = open_page("overview")
    assert_clean(at)
    assert len(at.info) == 1 and "no report tables yet" in at.info[0].value


@pytest.mark.parametrize("page", list(PAGES))
def test_unreachable_database_is_reported_calmly(
    use_database: Callable[[str], None], page: str
) -> None:
    use_database("postgresql://reportlib@127.0.0.1:9/nothing_listens_here")
    at = open_page(page)
    assert [e.value for e in at.exception] == []
    assert len(at.error) == 1
    message = at.error[0].value
    assert "database" in message.lower() and "try again" in message
    assert "SELECT" not in message and "127.0.0.1" not in message
