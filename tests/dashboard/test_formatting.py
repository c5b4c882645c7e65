"""Pure helpers of the dashboard: value display, link parsing and KPI changes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dashboard import ui
from dashboard.drilldown import parse_email_id
from dashboard.filters import ParsedFilters, parse_query_params, summary, to_query_params
from dashboard.values import display_value
from reportlib.queries import ReportFilter

TODAY = dt.date(2026, 11, 29)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        ("", "—"),
        ("  ", "—"),
        ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
        (Decimal("1234.50"), "1234.50"),
        (42, "42"),
        (0.1, "0.1"),
        (True, "true"),
        (["AZ-1", "AZ-2"], "AZ-1, AZ-2"),
        ([], "—"),
        ({"iban": "DE00", "n": Decimal("1.10")}, '{"iban":"DE00","n":1.10}'),
    ],
)
def test_display_value_is_plain_text(value: object, text: str) -> None:
    assert display_value("any_field", value) == text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("4711", 4711),
        (" 12 ", 12),
        ("2147483647", 2_147_483_647),
        ("2147483648", None),
        ("0", None),
        ("abc", None),
        ("-3", None),
        ("1e3", None),
        ("١٢", None),  # non-ASCII digits
        ("", None),
    ],
)
def test_parse_email_id(raw: str, expected: int | None) -> None:
    email_id, problem = parse_email_id(raw)
    assert email_id == expected
    assert (problem == "") == (expected is not None)
    assert raw.strip() == "" or raw.strip() not in problem


def test_query_params_round_trip() -> None:
    flt = ReportFilter(dt.date(2026, 11, 1), dt.date(2026, 11, 20), ("b", "a"), ("low",))
    params = to_query_params(flt)
    assert params == {
        "start": "2026-11-01",
        "end": "2026-11-20",
        "intent": ["a", "b"],
        "route": ["low"],
    }
    as_lists = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    assert parse_query_params(as_lists, today=TODAY) == ParsedFilters(flt, ())


def test_missing_params_mean_the_default_window() -> None:
    parsed = parse_query_params({}, today=TODAY)
    assert parsed == ParsedFilters(ReportFilter(dt.date(2026, 10, 31), TODAY), ())
    only_start = parse_query_params({"start": ["2026-11-10"]}, today=TODAY)
    assert only_start == ParsedFilters(ReportFilter(dt.date(2026, 11, 10), TODAY), ())


@pytest.mark.parametrize(
    ("current", "previous", "kind", "expected"),
    [
        (120, 100, "count", "+20 (20.0%)"),
        (80, 100, "count", "-20 (20.0%)"),
        (5, 0, "count", "+5"),
        (7, 7, "count", 0),
        (0.25, 0.2, "share", "+5.0 pp"),
        (0.20001, 0.2, "share", 0),
        (0.81, 0.85, "confidence", "-0.040"),
        (1500.0, 1200.0, "ms", "+300 ms"),
        (3600.0 * 30, 3600.0 * 2, "age", "+1 d 4 h"),
        (None, 3.0, "count", None),
    ],
)
def test_change_text(
    current: float | None, previous: float | None, kind: str, expected: object
) -> None:
    assert ui.change(current, previous, kind=kind) == expected


def test_filter_summary_counts_intents_and_names_routes() -> None:
    month = ReportFilter(dt.date(2026, 11, 1), TODAY)
    assert summary(month) == "2026-11-01 – 2026-11-29 · all intents · all routes"
    one_day = ReportFilter(TODAY, TODAY, ("debt_claim",), ("low", "high"))
    assert summary(one_day) == "2026-11-29 · 1 intent · High, Low routes"
    # Intents are free text and the label renders as Markdown: never named, only counted.
    hostile = ReportFilter(TODAY, TODAY, ("**bold** [x](http://e)", "<b>"), ("medium",))
    assert summary(hostile) == "2026-11-29 · 2 intents · Medium route"
    every_route = ReportFilter(TODAY, TODAY, (), ("low", "medium", "high"))
    assert summary(every_route) == "2026-11-29 · all intents · all routes"
    # The audit log has dates only: intents and routes do not apply there.
    assert summary(one_day, reports=False) == "2026-11-29"
    assert summary(month, reports=False) == "2026-11-01 – 2026-11-29"
