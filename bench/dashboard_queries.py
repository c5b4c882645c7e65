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

Every page and interaction is timed twice in the same run: on :mod:`reportlib.queries`
(the daily rollups; :func:`refresh_rollups` first folds every dirty day in, so none is
read raw) and on :mod:`bench.raw_queries` (the raw-scan queries of before the rollups,
the baseline), with the ratio raw / rollups. The review page's "Next item"
(:func:`reportlib.review.claim_next_report`, rolled back) is timed on the current code
only.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from bench import raw_queries
from bench.database import FLUSH_FACTOR, CacheFlusher
from reportlib import quality, queries, review, rollups
from reportlib.config import get_settings
from reportlib.db import make_engine
from reportlib.models import ProcessingReport
from reportlib.queries import ReportFilter

Query = Callable[[Session, "PageContext"], Any]
NEXT_ITEM_REVIEWER = "bench-reviewer"


@dataclass(frozen=True, slots=True)
class PageContext:
    """The filter and instants a page load uses."""

    flt: ReportFilter
    now: dt.datetime
    drill_email_id: int
    #: The window's most frequent intent: the Overview filtered by it reads its exact
    #: percentiles from the raw reports (the values rollup has no intents).
    top_intent: str | None = None

    def by_intent(self) -> ReportFilter:
        """The default window filtered to :attr:`top_intent`."""
        intents = (self.top_intent,) if self.top_intent else ()
        return ReportFilter(self.flt.start, self.flt.end, intents)


def _key_fields() -> tuple[str, ...]:
    return get_settings().key_fields


def _next_item(session: Session, ctx: PageContext) -> Any:
    """The review page's "Next item": claim the oldest open report (rolled back after)."""
    del ctx
    return review.claim_next_report(session, reviewer=NEXT_ITEM_REVIEWER)


def page_steps(q: Any) -> dict[str, list[tuple[str, Query]]]:
    """Each page's calls, made on the queries module ``q`` (``reportlib.queries`` or the
    raw baseline ``bench.raw_queries``: same signatures)."""
    sidebar: list[tuple[str, Query]] = [
        ("has_reports", lambda s, c: q.has_reports(s)),
        ("list_intents", lambda s, c: q.list_intents(s, flt=c.flt)),
    ]
    return {
        "overview": [
            *sidebar,
            ("overview_kpis", lambda s, c: q.overview_kpis(s, flt=c.flt, now=c.now)),
            ("daily_trends", lambda s, c: q.daily_trends(s, flt=c.flt)),
        ],
        "confidence": [
            *sidebar,
            ("confidence_histogram", lambda s, c: q.confidence_histogram(s, flt=c.flt)),
            ("field_confidence_summary", lambda s, c: q.field_confidence_summary(s, flt=c.flt)),
            (
                "field_confidence_histogram",
                lambda s, c: q.field_confidence_histogram(s, flt=c.flt, fields=_key_fields()),
            ),
            ("confidence_by_intent", lambda s, c: q.confidence_by_intent(s, flt=c.flt)),
            ("route_threshold_what_if", lambda s, c: q.route_threshold_what_if(s, flt=c.flt, threshold=0.8)),
        ],
        "missing_fields": [
            *sidebar,
            ("missing_field_frequency", lambda s, c: q.missing_field_frequency(s, flt=c.flt)),
            ("missing_fields_daily", lambda s, c: q.missing_fields_daily(s, flt=c.flt)),
            ("missing_fields_by_intent", lambda s, c: q.missing_fields_by_intent(s, flt=c.flt)),
            (
                "missing_field_cooccurrence",
                lambda s, c: q.missing_field_cooccurrence(s, flt=c.flt),
            ),
            (
                "missing_count_distribution",
                lambda s, c: q.missing_count_distribution(s, flt=c.flt),
            ),
        ],
        "review": [
            *sidebar,
            (
                "review_queue_page",
                lambda s, c: q.review_queue_page(s, flt=c.flt, sort="oldest", limit=50),
            ),
            ("count_review_queue_in_window", lambda s, c: q.count_review_queue_in_window(s, flt=c.flt)),
            ("review_queue_reasons", lambda s, c: q.review_queue_reasons(s, flt=c.flt)),
        ],
        "quality": [
            *sidebar,
            ("get_calibration", lambda s, c: quality.get_calibration(s, **_quality_window(q, c))),
            (
                "get_review_threshold_what_if",
                lambda s, c: quality.get_review_threshold_what_if(s, **_quality_window(q, c)),
            ),
            (
                "get_missing_outcomes",
                lambda s, c: quality.get_missing_outcomes(s, **_quality_window(q, c)),
            ),
        ],
    }


def _quality_window(q: Any, ctx: PageContext) -> dict[str, dt.datetime]:
    """The Quality page's window: whole UTC days (served by the verdict rollup). For the
    raw baseline it starts one microsecond later, which sends reportlib.quality to the raw
    verdicts; it leaves out only verdicts on processings written at that very instant."""
    start, end = ctx.flt.bounds()
    if q is not queries:
        start += dt.timedelta(microseconds=1)
    return {"start": start, "end": end}


def interaction_steps(q: Any, *, next_item: bool = True) -> dict[str, list[tuple[str, Query]]]:
    """Single interactions with their own targets, on the queries module ``q``.

    "Next item" is :func:`reportlib.review.claim_next_report`, which has no raw
    counterpart: it is timed on the current code only (``next_item=False`` for the
    baseline).
    """
    out: dict[str, list[tuple[str, Query]]] = {
        "review_first_page": [
            (
                "review_queue_page",
                lambda s, c: q.review_queue_page(s, flt=c.flt, sort="oldest", limit=50),
            ),
        ],
        "review_first_page_lowest_confidence": [
            (
                "review_queue_page",
                lambda s, c: q.review_queue_page(
                    s, flt=c.flt, sort="lowest_confidence", limit=50
                ),
            ),
        ],
        "review_count": [
            ("count_review_queue_in_window", lambda s, c: q.count_review_queue_in_window(s, flt=c.flt)),
        ],
        "drill_down": [
            ("get_report_detail", lambda s, c: q.get_report_detail(s, email_id=c.drill_email_id)),
        ],
        "overview_by_intent": [
            ("overview_kpis", lambda s, c: q.overview_kpis(s, flt=c.by_intent(), now=c.now)),
        ],
    }
    if next_item:
        out["next_item"] = [("claim_next_report", _next_item)]
    return out


PAGES = page_steps(queries)
INTERACTIONS = interaction_steps(queries)
RAW_PAGES = page_steps(raw_queries)
RAW_INTERACTIONS = interaction_steps(raw_queries, next_item=False)


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
        top_intent = session.scalar(
            select(ProcessingReport.intent)
            .where(ProcessingReport.created_at >= flt.bounds()[0])
            .where(ProcessingReport.intent.is_not(None))
            .group_by(ProcessingReport.intent)
            .order_by(func.count().desc(), ProcessingReport.intent)
            .limit(1)
        )
    return PageContext(
        flt=flt, now=now, drill_email_id=int(email_id or 1), top_intent=top_intent
    )


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


def refresh_rollups(engine: Engine) -> dict[str, Any]:
    """Fold every dirty day into the rollups and commit, so the timed reads find none."""
    started = time.perf_counter()
    with Session(engine) as session:
        days = rollups.refresh_rollups(session)
        session.commit()
    seconds = time.perf_counter() - started
    with Session(engine) as session:
        left = rollups.dirty_days(session)
    if left:
        raise RuntimeError(f"{len(left)} days still dirty after refresh_rollups")
    return {"days_refreshed": len(days), "seconds": round(seconds, 3), "dirty_days_left": 0}


def _ratio(raw: float, current: float) -> float | None:
    return round(raw / current, 2) if current > 0 else None


def run_all(url: Any, engine: Engine, ctx: PageContext, *, runs: int,
            flush_factor: float = FLUSH_FACTOR, raw: bool = True,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Cold and warm timings of every page and interaction, on the rollups
    (``reportlib.queries``) and, with ``raw``, on the raw-query baseline
    (``bench.raw_queries``), alternating so that noise hits both alike."""
    out: dict[str, Any] = {"rollup_refresh": refresh_rollups(engine)}
    log(f"  refresh_rollups: {out['rollup_refresh']['days_refreshed']} dirty days folded in "
        f"{out['rollup_refresh']['seconds']:.2f} s")
    flusher = CacheFlusher(engine, factor=flush_factor)
    out.update({"pages": {}, "interactions": {}, "cold_residual_pages": []})
    if raw:
        out.update({"raw_pages": {}, "raw_interactions": {}, "raw_vs_rollups": {}})
    for group, table, raw_table in (("pages", PAGES, RAW_PAGES),
                                    ("interactions", INTERACTIONS, RAW_INTERACTIONS)):
        for name, steps in table.items():
            cold, residual = time_cold(url, flusher, name, steps, ctx, runs=runs)
            warm = time_warm(engine, name, steps, ctx, runs=runs)
            out[group][name] = {"cold": cold.as_dict(), "warm": warm.as_dict()}
            out["cold_residual_pages"].extend(residual)
            line = f"  {name:<36} cold {cold.median_ms:8.1f} ms   warm {warm.median_ms:8.1f} ms"
            if raw and name in raw_table:
                raw_cold, residual = time_cold(url, flusher, name, raw_table[name], ctx,
                                               runs=runs)
                raw_warm = time_warm(engine, name, raw_table[name], ctx, runs=runs)
                out[f"raw_{group}"][name] = {"cold": raw_cold.as_dict(),
                                             "warm": raw_warm.as_dict()}
                out["cold_residual_pages"].extend(residual)
                ratios = {"cold": _ratio(raw_cold.median_ms, cold.median_ms),
                          "warm": _ratio(raw_warm.median_ms, warm.median_ms)}
                out["raw_vs_rollups"][name] = ratios
                line += (f"   | raw: cold {raw_cold.median_ms:8.1f} ms ({ratios['cold']}x)"
                         f"   warm {raw_warm.median_ms:8.1f} ms ({ratios['warm']}x)")
            log(line)
    out["shared_buffers_mb"] = flusher.shared_buffers_bytes / 2**20
    return out
