"""The dashboard's data queries per page, timed cold and warm.

Each page's set is what ``dashboard/data.py`` calls for that page with the default filters
(last 30 UTC days, all intents and routes): the sidebar's ``has_reports`` and intent
options on every page, then the page's own query functions from :mod:`reportlib.queries`.
Nothing goes through the dashboard's result cache: every figure is a database round trip.

* **warm**: one pooled engine, as the running dashboard has; the page runs once untimed,
  then ``runs`` timed times.
* **cold**: before each run PostgreSQL's shared buffers are emptied of this database's
  pages (:class:`bench.database.CacheFlusher`) and a new connection is opened (new
  backend: empty catalog, relation and plan caches). The connection is made before the
  clock starts; the OS page cache stays warm (see ``CacheFlusher``).

The figure per page is the median over runs of the sum of its queries; per-query medians
are kept too, to show where time goes.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from bench.database import FLUSH_FACTOR, CacheFlusher
from reportlib import queries
from reportlib.config import get_settings
from reportlib.db import make_engine
from reportlib.models import ProcessingReport
from reportlib.queries import ReportFilter

Query = Callable[[Session, "PageContext"], Any]


@dataclass(frozen=True, slots=True)
class PageContext:
    """The filter and instants a page load uses."""

    flt: ReportFilter
    now: dt.datetime
    drill_email_id: int


def _sidebar() -> list[tuple[str, Query]]:
    return [
        ("has_reports", lambda s, c: queries.has_reports(s)),
        ("list_intents", lambda s, c: queries.list_intents(s, flt=c.flt)),
    ]


def _key_fields() -> tuple[str, ...]:
    return get_settings().key_fields


PAGES: dict[str, list[tuple[str, Query]]] = {
    "overview": [
        *_sidebar(),
        ("overview_kpis", lambda s, c: queries.overview_kpis(s, flt=c.flt, now=c.now)),
        ("daily_trends", lambda s, c: queries.daily_trends(s, flt=c.flt)),
    ],
    "confidence": [
        *_sidebar(),
        ("confidence_histogram", lambda s, c: queries.confidence_histogram(s, flt=c.flt)),
        ("field_confidence_summary", lambda s, c: queries.field_confidence_summary(s, flt=c.flt)),
        (
            "field_confidence_histogram",
            lambda s, c: queries.field_confidence_histogram(s, flt=c.flt, fields=_key_fields()),
        ),
        ("confidence_by_intent", lambda s, c: queries.confidence_by_intent(s, flt=c.flt)),
        ("threshold_what_if", lambda s, c: queries.threshold_what_if(s, flt=c.flt, threshold=0.8)),
    ],
    "missing_fields": [
        *_sidebar(),
        ("missing_field_frequency", lambda s, c: queries.missing_field_frequency(s, flt=c.flt)),
        ("missing_fields_daily", lambda s, c: queries.missing_fields_daily(s, flt=c.flt)),
        ("missing_fields_by_intent", lambda s, c: queries.missing_fields_by_intent(s, flt=c.flt)),
        (
            "missing_field_cooccurrence",
            lambda s, c: queries.missing_field_cooccurrence(s, flt=c.flt),
        ),
        (
            "missing_count_distribution",
            lambda s, c: queries.missing_count_distribution(s, flt=c.flt),
        ),
    ],
    "review": [
        *_sidebar(),
        (
            "review_queue_page",
            lambda s, c: queries.review_queue_page(s, flt=c.flt, sort="oldest", limit=50),
        ),
        ("count_review_queue", lambda s, c: queries.count_review_queue(s, flt=c.flt)),
        ("review_queue_reasons", lambda s, c: queries.review_queue_reasons(s, flt=c.flt)),
    ],
}

# Single interactions with their own targets.
INTERACTIONS: dict[str, list[tuple[str, Query]]] = {
    "review_first_page": [
        (
            "review_queue_page",
            lambda s, c: queries.review_queue_page(s, flt=c.flt, sort="oldest", limit=50),
        ),
    ],
    "review_first_page_lowest_confidence": [
        (
            "review_queue_page",
            lambda s, c: queries.review_queue_page(
                s, flt=c.flt, sort="lowest_confidence", limit=50
            ),
        ),
    ],
    "drill_down": [
        (
            "get_report_detail",
            lambda s, c: queries.get_report_detail(s, email_id=c.drill_email_id),
        ),
    ],
}


def default_context(engine: Engine, *, now: dt.datetime | None = None) -> PageContext:
    """The dashboard's default view: the last 30 UTC days; a flagged report to drill into."""
    now = now or dt.datetime.now(dt.UTC)
    flt = ReportFilter.last_days(30, today=now.date())
    with Session(engine) as session:
        # The newest open item: what a reviewer opens from the first queue page.
        email_id = session.scalar(
            select(ProcessingReport.email_id)
            .where(ProcessingReport.needs_review)
            .order_by(ProcessingReport.created_at.desc())
            .limit(1)
        ) or session.scalar(select(ProcessingReport.email_id).limit(1))
    return PageContext(flt=flt, now=now, drill_email_id=int(email_id or 1))


@dataclass
class Timing:
    """Median (and all runs) of one page or interaction, with per-query medians, in ms."""

    name: str
    mode: str
    runs_ms: list[float]
    queries_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms)

    def query_medians(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.queries_ms.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "median_ms": round(self.median_ms, 2),
            "runs_ms": [round(v, 2) for v in self.runs_ms],
            "queries_median_ms": {k: round(v, 2) for k, v in self.query_medians().items()},
        }


def _run_once(session: Session, steps: list[tuple[str, Query]], ctx: PageContext,
              timing: Timing) -> float:
    total = 0.0
    for name, query in steps:
        started = time.perf_counter()
        query(session, ctx)
        elapsed = (time.perf_counter() - started) * 1000
        timing.queries_ms.setdefault(name, []).append(elapsed)
        total += elapsed
    session.rollback()
    return total


def time_warm(engine: Engine, name: str, steps: list[tuple[str, Query]], ctx: PageContext,
              *, runs: int) -> Timing:
    """Repeated page loads through one pooled engine, after one untimed load."""
    timing = Timing(name=name, mode="warm", runs_ms=[])
    with Session(engine) as session:
        _run_once(session, steps, ctx, Timing(name=name, mode="discard", runs_ms=[]))
        for _ in range(runs):
            timing.runs_ms.append(_run_once(session, steps, ctx, timing))
    return timing


def time_cold(url: Any, flusher: CacheFlusher, name: str, steps: list[tuple[str, Query]],
              ctx: PageContext, *, runs: int) -> tuple[Timing, list[int]]:
    """Page loads each after emptying shared buffers, on a brand-new connection."""
    timing = Timing(name=name, mode="cold", runs_ms=[])
    residual: list[int] = []
    for _ in range(runs):
        flush = flusher.flush()
        residual.append(flush.bench_pages_after)
        engine = make_engine(url, pool_size=1, max_overflow=0)
        try:
            with Session(engine) as session:
                session.execute(text("SELECT 1"))  # connect outside the timed part
                timing.runs_ms.append(_run_once(session, steps, ctx, timing))
        finally:
            engine.dispose()
    return timing, residual


def run_all(url: Any, engine: Engine, ctx: PageContext, *, runs: int,
            flush_factor: float = FLUSH_FACTOR,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Cold and warm timings of every page and interaction."""
    flusher = CacheFlusher(engine, factor=flush_factor)
    out: dict[str, Any] = {"pages": {}, "interactions": {}, "cold_residual_pages": []}
    for group, table in (("pages", PAGES), ("interactions", INTERACTIONS)):
        for name, steps in table.items():
            cold, residual = time_cold(url, flusher, name, steps, ctx, runs=runs)
            warm = time_warm(engine, name, steps, ctx, runs=runs)
            out[group][name] = {"cold": cold.as_dict(), "warm": warm.as_dict()}
            out["cold_residual_pages"].extend(residual)
            log(f"  {name:<38} cold {cold.median_ms:8.1f} ms   warm {warm.median_ms:8.1f} ms")
    out["shared_buffers_mb"] = flusher.shared_buffers_bytes / 2**20
    return out
