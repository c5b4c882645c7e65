"""Global filters: date range, intents and routes, kept in the URL.

The URL is the source of truth when a session starts (``?start=2026-11-01&end=2026-11-29
&intent=debt_claim&route=low``; ``intent`` and ``route`` may repeat). After that the
widgets in the sidebar's filter popover own the values and every run writes them back to
the URL, so links can be shared and the filters carry over between pages. Malformed
parameters fall back to the defaults with a warning, never an error.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import streamlit as st

from dashboard.values import plain_text
from reportlib.models import ROUTES
from reportlib.queries import MAX_RANGE_DAYS, NONE_LABEL, ReportFilter
from reportlib.service import INTENT_MAX

DEFAULT_DAYS = 30
EARLIEST = dt.date(2000, 1, 1)
PARAM_KEYS = ("start", "end", "intent", "route")
ROUTE_LABELS = {"high": "High", "medium": "Medium", "low": "Low"}

_DATES_KEY = "filter_dates"
_INTENTS_KEY = "filter_intents"
_ROUTES_KEY = "filter_routes"
_CURRENT_KEY = "report_filter"
_STARTED_KEY = "filters_initialised"


def utc_today() -> dt.date:
    """Today's date in UTC: the dashboard buckets days in UTC."""
    return dt.datetime.now(dt.UTC).date()


def default_filter(today: dt.date) -> ReportFilter:
    """The last :data:`DEFAULT_DAYS` UTC days, all intents, all routes."""
    return ReportFilter.last_days(DEFAULT_DAYS, today=today)


@dataclass(frozen=True)
class ParsedFilters:
    """Filters read from a URL, plus what was wrong with it (safe to show: no echoes)."""

    filter: ReportFilter
    problems: tuple[str, ...]


def _parse_date(raw: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        return None


def parse_query_params(params: Mapping[str, Sequence[str]], *, today: dt.date) -> ParsedFilters:
    """Read the filters from query parameters (each key maps to all its values).

    Pure: no Streamlit calls, so it is tested directly.
    """
    default = default_filter(today)
    problems: list[str] = []
    start, end = default.start, default.end
    raw_start = list(params.get("start", []))[-1:] or []
    raw_end = list(params.get("end", []))[-1:] or []
    if raw_start or raw_end:
        parsed_start = _parse_date(raw_start[0]) if raw_start else default.start
        parsed_end = _parse_date(raw_end[0]) if raw_end else today
        if parsed_start is None or parsed_end is None:
            problems.append("The link has a date that is not a valid YYYY-MM-DD date.")
        elif parsed_start > parsed_end:
            problems.append("The link's start date is after its end date.")
        elif parsed_start < EARLIEST or parsed_end > today:
            problems.append(
                f"The link's dates must lie between {EARLIEST.isoformat()} and today (UTC)."
            )
        elif (parsed_end - parsed_start).days + 1 > MAX_RANGE_DAYS:
            problems.append(f"The link's date range is longer than {MAX_RANGE_DAYS} days.")
        else:
            start, end = parsed_start, parsed_end
    if problems:
        problems[-1] += f" Showing the last {DEFAULT_DAYS} days instead."

    routes = [value.strip().lower() for value in params.get("route", []) if value.strip()]
    if any(route not in ROUTES for route in routes):
        problems.append("The link names an unknown route; showing all routes.")
        routes = []

    intents = [value.strip() for value in params.get("intent", []) if value.strip()]
    if len(intents) > 50 or any(not _plausible_intent(intent) for intent in intents):
        problems.append("The link's intent filter is not valid; showing all intents.")
        intents = []

    return ParsedFilters(ReportFilter(start, end, tuple(intents), tuple(routes)), tuple(problems))


def _plausible_intent(intent: str) -> bool:
    # Control characters (NUL above all, which PostgreSQL refuses in text) never occur
    # in an intent the pipeline stores, so such a link is broken, not a filter.
    return len(intent) <= INTENT_MAX and not any(
        unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co"} for char in intent
    )


def to_query_params(flt: ReportFilter) -> dict[str, str | list[str]]:
    """The query parameters that restore ``flt`` (empty intents/routes are left out)."""
    params: dict[str, str | list[str]] = {
        "start": flt.start.isoformat(),
        "end": flt.end.isoformat(),
    }
    if flt.intents:
        params["intent"] = list(flt.intents)
    if flt.routes:
        params["route"] = list(flt.routes)
    return params


def describe(flt: ReportFilter) -> dict[str, str]:
    """Flat, value-free description of the filters, for error reports."""
    return {
        "start": flt.start.isoformat(),
        "end": flt.end.isoformat(),
        "intent": ",".join(flt.intents),
        "route": ",".join(flt.routes),
    }


def _read_url() -> dict[str, list[str]]:
    return {key: st.query_params.get_all(key) for key in PARAM_KEYS}


def _write_url(flt: ReportFilter) -> None:
    wanted = to_query_params(flt)
    for key in PARAM_KEYS:
        value = wanted.get(key)
        current = st.query_params.get_all(key)
        target = [value] if isinstance(value, str) else list(value or [])
        if current == target:
            continue
        if target:
            st.query_params[key] = target if len(target) > 1 else target[0]
        elif key in st.query_params:
            del st.query_params[key]


def initialise(*, today: dt.date) -> None:
    """On a session's first run, seed the widgets from the URL and warn about bad links."""
    if st.session_state.get(_STARTED_KEY):
        return
    parsed = parse_query_params(_read_url(), today=today)
    st.session_state[_DATES_KEY] = (parsed.filter.start, parsed.filter.end)
    st.session_state[_INTENTS_KEY] = list(parsed.filter.intents)
    st.session_state[_ROUTES_KEY] = list(parsed.filter.routes)
    st.session_state[_STARTED_KEY] = True
    st.session_state["filter_problems"] = parsed.problems


def sidebar(
    *,
    today: dt.date,
    load_intents: Callable[[dt.date, dt.date], Sequence[str]],
    reports: bool = True,
) -> ReportFilter:
    """Draw the filter widgets, store and return the chosen filter, and sync the URL.

    ``load_intents(start, end)`` lists the intent options; if it fails (database down)
    the options are just the selected intents and the page reports the problem.
    ``reports=False`` (the audit log, which has dates but no intents or routes) keeps
    the intent and route widgets, disabled, so their choices survive the visit.
    """
    initialise(today=today)
    start, end = _dates(st.session_state.get(_DATES_KEY), today=today)
    try:
        intent_options = list(load_intents(start, end))
    except Exception:  # noqa: BLE001 - the page itself shows the database problem
        intent_options = []
    for problem in st.session_state.pop("filter_problems", ()):
        st.warning(problem, icon=":material/link_off:")
    # The widgets sit in a popover so that a page load draws one button, not three
    # widgets (BENCHMARKS.md, "Where the remaining browser time goes"); the button's
    # label shows the active filter. The key keeps the popover open while its label
    # changes with the filter.
    with (
        st.sidebar,
        st.popover(
            summary(_from_state(today=today), reports=reports),
            icon=":material/filter_list:",
            help="Filters: date range, intents and routes. They apply to every page.",
            width="stretch",
            key="filters_popover",
        ),
    ):
        chosen = st.date_input(
            "Date range (UTC)",
            key=_DATES_KEY,
            min_value=EARLIEST,
            max_value=today,
            format="YYYY-MM-DD",
            help=f"Reports created on these UTC days, at most {MAX_RANGE_DAYS} days.",
        )
        selected_intents = st.session_state.get(_INTENTS_KEY, [])
        options = list(dict.fromkeys([*intent_options, *selected_intents]))
        st.multiselect(
            "Intent",
            options=options,
            key=_INTENTS_KEY,
            format_func=plain_text,
            placeholder="All intents",
            help=f"{NONE_LABEL} is reports without an intent.",
            disabled=not reports,
        )
        st.multiselect(
            "Route",
            options=list(ROUTES),
            key=_ROUTES_KEY,
            format_func=ROUTE_LABELS.__getitem__,
            placeholder="All routes",
            disabled=not reports,
        )
        if not reports:
            st.caption("Intent and route do not apply to this page.")
    flt = _from_widgets(chosen, today=today)
    st.session_state[_CURRENT_KEY] = flt
    _write_url(flt)
    return flt


def summary(flt: ReportFilter, *, reports: bool = True) -> str:
    """One line naming the filter, for the popover's label; only the dates on a page
    without reports (``reports=False``), where intents and routes do not apply.

    The label renders as Markdown, so intents (free text from the pipeline) are counted,
    never named; routes are named by their fixed labels.
    """
    dates = flt.start.isoformat()
    if flt.end != flt.start:
        dates += f" – {flt.end.isoformat()}"
    if not reports:
        return dates
    count = len(flt.intents)
    intents = f"{count} intent{'s' if count != 1 else ''}" if count else "all intents"
    chosen = [ROUTE_LABELS[route] for route in ROUTES if route in flt.routes]
    if not chosen or len(chosen) == len(ROUTES):
        routes = "all routes"
    else:
        routes = f"{', '.join(chosen)} route{'s' if len(chosen) > 1 else ''}"
    return f"{dates} · {intents} · {routes}"


def _from_state(*, today: dt.date) -> ReportFilter:
    # The filter as the widgets hold it at the start of this run, before they are drawn.
    start, end = _dates(st.session_state.get(_DATES_KEY), today=today)
    routes = st.session_state.get(_ROUTES_KEY, [])
    return ReportFilter(
        start,
        end,
        tuple(st.session_state.get(_INTENTS_KEY, [])),
        tuple(route for route in routes if route in ROUTES),
    )


def _dates(chosen: object, *, today: dt.date) -> tuple[dt.date, dt.date]:
    # While a range is being picked the widget holds one date; treat it as a single day.
    values = list(chosen) if isinstance(chosen, (tuple, list)) else [chosen]
    dates = [d for d in values if isinstance(d, dt.date)]
    if not dates:
        return today, today
    start, end = min(dates), max(dates)
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        start = end - dt.timedelta(days=MAX_RANGE_DAYS - 1)
    return start, end


def _from_widgets(chosen: object, *, today: dt.date) -> ReportFilter:
    start, end = _dates(chosen, today=today)
    values = list(chosen) if isinstance(chosen, (tuple, list)) else [chosen]
    if len(values) == 2 and (values[1] - values[0]).days + 1 > MAX_RANGE_DAYS:
        st.sidebar.warning(f"Ranges are limited to {MAX_RANGE_DAYS} days; the start was moved.")
    return ReportFilter(
        start,
        end,
        tuple(st.session_state.get(_INTENTS_KEY, [])),
        tuple(st.session_state.get(_ROUTES_KEY, [])),
    )


def current() -> ReportFilter:
    """The filter chosen in the sidebar during this run."""
    flt = st.session_state.get(_CURRENT_KEY)
    if not isinstance(flt, ReportFilter):
        flt = default_filter(utc_today())
    return flt
