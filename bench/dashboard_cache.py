"""The dashboard's own result cache: a page's data through ``dashboard/data.py``, twice.

``dashboard/data.py`` wraps every query function in ``st.cache_data`` (results live
``DASHBOARD_CACHE_TTL_S`` seconds), so a page view repeated within the TTL reads its
numbers from the cache, not from the database. :mod:`bench.dashboard_queries` measures
the database side without that cache; this measures the cached side:

    DATABASE_URL=postgresql://... python -m bench.dashboard_cache --runs 5

For each page it calls the same ``dashboard.data`` wrappers the page calls (default
filters: last 30 UTC days), once to fill the cache (timed: a database round trip per
query), then ``--runs`` more times (timed: cache hits). Every load also runs
``data.check_available()``, which the app runs before every page and never caches, so
the cached figure includes that one round trip. ``st.cache_data`` works in a bare Python
process (Streamlit warns that no script run context exists); hits are confirmed by
counting the sessions the wrappers open. The Overview's KPIs are keyed by the current
minute as well, so a load just after a minute boundary misses the cache: the median
hides that one miss, the maximum shows it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

PageLoad = Callable[[], Any]


def _pages() -> dict[str, list[tuple[str, PageLoad]]]:
    from dashboard import data
    from reportlib import queries
    from reportlib.config import get_settings
    from reportlib.queries import ReportFilter

    flt = ReportFilter.last_days(30, today=dt.datetime.now(dt.UTC).date())
    start, end = flt.start, flt.end
    sidebar: list[tuple[str, PageLoad]] = [
        ("check_available", data.check_available),
        ("has_reports", data.has_reports),
        ("intents", lambda: data.intents(start, end)),
    ]
    fields = tuple(get_settings().key_fields)
    return {
        "overview": [
            *sidebar,
            ("overview_kpis", lambda: data.overview_kpis(flt)),
            ("daily_trends", lambda: data.read(queries.daily_trends, flt=flt)),
        ],
        "confidence": [
            *sidebar,
            ("confidence_histogram", lambda: data.read(queries.confidence_histogram, flt=flt)),
            ("field_confidence_summary", lambda: data.read(queries.field_confidence_summary, flt=flt)),
            ("field_confidence_histogram", lambda: data.read(queries.field_confidence_histogram, flt=flt, fields=fields)),
            ("confidence_by_intent", lambda: data.read(queries.confidence_by_intent, flt=flt)),
            ("route_threshold_what_if", lambda: data.read(queries.route_threshold_what_if, flt=flt, threshold=0.8)),
        ],
        "missing_fields": [
            *sidebar,
            ("missing_field_frequency", lambda: data.read(queries.missing_field_frequency, flt=flt)),
            ("missing_fields_daily", lambda: data.read(queries.missing_fields_daily, flt=flt)),
            ("missing_fields_by_intent", lambda: data.read(queries.missing_fields_by_intent, flt=flt)),
            ("missing_field_cooccurrence", lambda: data.read(queries.missing_field_cooccurrence, flt=flt)),
            ("missing_count_distribution", lambda: data.read(queries.missing_count_distribution, flt=flt)),
        ],
        "review": [
            *sidebar,
            ("review_queue_page", lambda: data.read(
                queries.review_queue_page, flt=flt, sort="oldest", limit=50, offset=0,
                reasons=())),
            ("count_review_queue_in_window", lambda: data.read(queries.count_review_queue_in_window, flt=flt, reasons=())),
            ("review_queue_reasons", lambda: data.read(queries.review_queue_reasons, flt=flt)),
        ],
    }


def _load(steps: list[tuple[str, PageLoad]], per_step: dict[str, list[float]]) -> float:
    total = 0.0
    for name, step in steps:
        started = time.perf_counter()
        step()
        elapsed = (time.perf_counter() - started) * 1000
        per_step.setdefault(name, []).append(elapsed)
        total += elapsed
    return total


def measure(runs: int) -> dict[str, Any]:
    """First (filling) load and cached loads of each page, in ms, with session counts."""
    from dashboard import data

    opened = {"sessions": 0}
    original = data.session

    def counting_session(db: str) -> Any:
        opened["sessions"] += 1
        return original(db)

    data.session = counting_session
    out: dict[str, Any] = {"runs": runs, "ttl_s": data.TTL_S, "pages": {}}
    try:
        for page, steps in _pages().items():
            minute_at_start = data.now_minute()
            before = opened["sessions"]
            first_steps: dict[str, list[float]] = {}
            first = _load(steps, first_steps)
            filled = opened["sessions"] - before
            cached: list[float] = []
            cached_steps: dict[str, list[float]] = {}
            before = opened["sessions"]
            for _ in range(runs):
                cached.append(_load(steps, cached_steps))
            out["pages"][page] = {
                "first_load_ms": round(first, 2),
                "sessions_first_load": filled,
                "cached_median_ms": round(statistics.median(cached), 2),
                "cached_max_ms": round(max(cached), 2),
                "cached_runs_ms": [round(v, 2) for v in cached],
                "sessions_cached_loads": opened["sessions"] - before,
                # Minute-keyed entries (the Overview's KPIs) miss once when this is true.
                "minute_changed": data.now_minute() != minute_at_start,
                "first_load_steps_ms": {k: round(v[0], 2) for k, v in first_steps.items()},
                "cached_steps_median_ms": {
                    k: round(statistics.median(v), 2) for k, v in cached_steps.items()
                },
            }
    finally:
        data.session = original
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_cache")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.runs), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
