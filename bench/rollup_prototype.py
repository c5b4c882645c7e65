"""Prototype: daily rollups, to measure what the dashboard's pages cost when they read them.

Not part of reportlib. It builds three small tables in the benchmark database from the
raw tables, times each page's numbers computed from them (same timing harness, cold and
warm) and checks those numbers against :mod:`reportlib.queries` on the same data:

* ``bench_rollup_reports``: per UTC day, intent, route, needs_review and confidence bin:
  reports, sum of overall confidence, tokens, timed reports. KPIs, daily trends, the
  histogram, by-intent and the what-if at a bin edge all become sums over at most
  days x intents x 3 x 2 x 20 rows instead of a scan of every report in the window.
* ``bench_rollup_fields``: per day, field, missing flag and bin: count, sum, min and max
  of the field's confidence (per-field summary and histograms). Like ``bench_rollup_ms``
  it serves the unfiltered view; filtered views need intent and route columns too.
* ``bench_rollup_missing_sets``: per day, intent and route, how many reports miss exactly
  a given set of fields. Frequency, daily trend, by-intent, co-occurrence and the
  missing-count distribution all follow from at most 2^fields sets per group.
* p50/p95 processing time stay exact with ``bench_rollup_ms`` (per day, 25 ms buckets) to
  find the bucket holding each rank, then one index range read of that bucket's raw
  values in the window (``bench_ix_processing_time``). This table has no intent/route
  columns: it serves the unfiltered view measured here; a filtered view needs the same
  table with those columns (more rows per day, fewer read for a narrow filter).

The open review queue reads ``bench_review_state``: per flagged report, the first decision
made on its current processing (``first_decided_at``). "Open at T" is then ``created_at <
T and (first_decided_at IS NULL or first_decided_at >= T)``: two index range reads instead
of an anti-join of every flagged report ever written against every decision. In reportlib
this would be a column of ``processing_reports`` set by ``decide_report`` (and reset by
the upsert), with a partial index on the open ones.

Kept exact on write in production by statement-level triggers with transition tables
(the same pattern as migration 0002's report_fields sync): add the NEW rows' groups,
subtract the OLD rows' groups, and recompute min/max for the few touched groups.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.dashboard_queries import PageContext, Query, time_cold, time_warm
from bench.database import FLUSH_FACTOR, CacheFlusher
from reportlib import queries

BUILD = [
    "DROP TABLE IF EXISTS bench_rollup_reports, bench_rollup_fields, "
    "bench_rollup_missing_sets, bench_rollup_ms, bench_review_state",
    """
    CREATE TABLE bench_rollup_reports AS
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, intent, confidence_route AS route,
           needs_review, LEAST(floor(overall_confidence * 20)::int, 19) AS bin,
           count(*)::int AS reports, sum(overall_confidence) AS sum_confidence,
           sum(total_tokens_used)::bigint AS tokens, count(processing_time_ms)::int AS timed
    FROM processing_reports GROUP BY 1, 2, 3, 4, 5
    """,
    "CREATE INDEX ON bench_rollup_reports (day)",
    """
    CREATE TABLE bench_rollup_fields AS
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, field_name, is_missing,
           CASE WHEN confidence IS NULL THEN NULL
                ELSE LEAST(floor(confidence * 20)::int, 19) END AS bin,
           count(*)::int AS n, sum(confidence) AS sum_confidence,
           min(confidence) AS min_confidence, max(confidence) AS max_confidence
    FROM report_fields GROUP BY 1, 2, 3, 4
    """,
    "CREATE INDEX ON bench_rollup_fields (day)",
    """
    CREATE TABLE bench_rollup_missing_sets AS
    SELECT day, intent, route, missing, count(*)::int AS reports
    FROM (
        SELECT (r.created_at AT TIME ZONE 'UTC')::date AS day, r.intent,
               r.confidence_route AS route,
               coalesce((SELECT array_agg(f.field_name ORDER BY f.field_name)
                         FROM report_fields f WHERE f.report_id = r.id AND f.is_missing),
                        '{}') AS missing
        FROM processing_reports r
    ) AS s
    GROUP BY 1, 2, 3, 4
    """,
    "CREATE INDEX ON bench_rollup_missing_sets (day)",
    """
    CREATE TABLE bench_rollup_ms AS
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
           processing_time_ms / 25 AS bucket, count(*)::int AS n
    FROM processing_reports WHERE processing_time_ms IS NOT NULL GROUP BY 1, 2
    """,
    "CREATE INDEX ON bench_rollup_ms (day)",
    "CREATE INDEX IF NOT EXISTS bench_ix_processing_time "
    "ON processing_reports ((processing_time_ms / 25), created_at) INCLUDE (processing_time_ms)",
    # Review state of flagged reports: the first decision made on the current processing.
    # Open at T <=> created_at < T and (first_decided_at IS NULL or first_decided_at >= T),
    # which is exactly reportlib.queries.open_review_condition(as_of=T).
    """
    CREATE TABLE bench_review_state AS
    SELECT r.id AS report_id, r.created_at, r.intent, r.confidence_route AS route,
           r.review_reason,
           (SELECT min(d.decided_at) FROM review_decisions d
            WHERE d.report_id = r.id AND d.decided_at >= r.created_at) AS first_decided_at
    FROM processing_reports r WHERE r.needs_review
    """,
    "CREATE INDEX ON bench_review_state (created_at) WHERE first_decided_at IS NULL",
    "CREATE INDEX ON bench_review_state (first_decided_at, created_at)",
]

ROLLUP_TABLES = ("bench_rollup_reports", "bench_rollup_fields", "bench_rollup_missing_sets",
                 "bench_rollup_ms", "bench_review_state")

DROP = [
    "DROP TABLE IF EXISTS bench_rollup_reports, bench_rollup_fields, "
    "bench_rollup_missing_sets, bench_rollup_ms, bench_review_state",
    "DROP INDEX IF EXISTS bench_ix_processing_time",
]


def build(engine: Engine) -> dict[str, Any]:
    """Create the rollups from the raw tables; their build time and sizes."""
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        connection.execute(text("SET LOCAL work_mem = '256MB'"))
        for statement in BUILD:
            connection.execute(text(statement))
        rows = {
            name: connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
            for name in ROLLUP_TABLES
        }
    # Maintained tables are vacuumed by autovacuum; here, at once, so that index-only
    # scans need no heap visits.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for name in ROLLUP_TABLES:
            connection.execute(text(f"VACUUM (ANALYZE) {name}"))
    return {"build_s": round(time.perf_counter() - started, 2), "rows": rows}


def drop(engine: Engine) -> None:
    with engine.begin() as connection:
        for statement in DROP:
            connection.execute(text(statement))


def _days(ctx: PageContext) -> dict[str, Any]:
    return {"start": ctx.flt.start, "end": ctx.flt.end}


def _all(session: Session, sql: str, params: dict[str, Any]) -> list[Any]:
    return list(session.execute(text(sql), params).all())


# The Overview needs the same figures for two periods; each statement below serves both,
# so the page costs three statements plus one raw read per percentile rank.
_PERIODS = """
    unnest(CAST(:labels AS text[]), CAST(:starts AS date[]), CAST(:ends AS date[]))
        AS p(label, first_day, last_day)
"""

KPI_SQL = f"""
SELECT p.label, sum(r.reports), sum(r.sum_confidence) / nullif(sum(r.reports), 0),
       sum(r.reports) FILTER (WHERE r.needs_review), sum(r.tokens), sum(r.timed)
FROM {_PERIODS}
JOIN bench_rollup_reports AS r ON r.day BETWEEN p.first_day AND p.last_day
GROUP BY p.label
"""

# Exact percentile_cont: locate the buckets holding ranks floor(h) and ceil(h) from the
# rollup, then read those ranks from the raw rows of just that bucket (index range).
PERCENTILE_SQL = f"""
WITH b AS (
    SELECT p.label, m.bucket, sum(m.n) AS n
    FROM {_PERIODS}
    JOIN bench_rollup_ms AS m ON m.day BETWEEN p.first_day AND p.last_day
    GROUP BY p.label, m.bucket
), c AS (
    SELECT label, bucket, n, sum(n) OVER (PARTITION BY label ORDER BY bucket) - n AS before
    FROM b
)
SELECT w.label, w.rank, c.bucket, c.before
FROM unnest(CAST(:rank_labels AS text[]), CAST(:ranks AS bigint[])) AS w(label, rank)
JOIN c ON c.label = w.label AND w.rank >= c.before AND w.rank < c.before + c.n
"""

VALUE_AT_SQL = """
SELECT x.label, x.rank, v.ms
FROM unnest(CAST(:labels AS text[]), CAST(:ranks AS bigint[]), CAST(:buckets AS int[]),
            CAST(:offsets AS bigint[]), CAST(:t0s AS timestamptz[]),
            CAST(:t1s AS timestamptz[])) AS x(label, rank, bucket, skip, t0, t1)
CROSS JOIN LATERAL (
    SELECT processing_time_ms AS ms FROM processing_reports
    WHERE processing_time_ms / 25 = x.bucket AND created_at >= x.t0 AND created_at < x.t1
    ORDER BY processing_time_ms OFFSET x.skip LIMIT 1
) AS v
"""

QUEUE_SQL = """
SELECT q.n, q.oldest
FROM unnest(CAST(:instants AS timestamptz[])) WITH ORDINALITY AS a(t, i)
CROSS JOIN LATERAL (
    SELECT count(*) AS n, min(created_at) AS oldest FROM (
        SELECT created_at FROM bench_review_state
        WHERE first_decided_at IS NULL AND created_at < a.t
        UNION ALL
        SELECT created_at FROM bench_review_state
        WHERE first_decided_at >= a.t AND created_at < a.t
    ) AS open_items
) AS q
ORDER BY a.i
"""


def overview_kpis(session: Session, ctx: PageContext) -> dict[str, Any]:
    """Both periods' KPIs, exact percentiles and open-queue snapshots."""
    periods = {"current": ctx.flt, "previous": ctx.flt.previous()}
    labels = list(periods)
    days = {"labels": labels, "starts": [f.start for f in periods.values()],
            "ends": [f.end for f in periods.values()]}
    kpis = {row[0]: row[1:] for row in session.execute(text(KPI_SQL), days).all()}
    heights: dict[str, list[float]] = {}
    wanted: list[tuple[str, int]] = []
    for label in labels:
        timed = int((kpis.get(label) or (0, 0, 0, 0, 0))[4] or 0)
        heights[label] = [(timed - 1) * p for p in queries.PERCENTILES] if timed else []
        wanted += sorted({(label, r) for h in heights[label] for r in (math.floor(h), math.ceil(h))})
    value: dict[tuple[str, int], int] = {}
    if wanted:
        located = session.execute(text(PERCENTILE_SQL), {
            **days, "rank_labels": [w[0] for w in wanted], "ranks": [w[1] for w in wanted],
        }).all()
        bounds = {label: f.bounds() for label, f in periods.items()}
        rows = session.execute(text(VALUE_AT_SQL), {
            "labels": [r[0] for r in located], "ranks": [r[1] for r in located],
            "buckets": [r[2] for r in located], "offsets": [r[1] - r[3] for r in located],
            "t0s": [bounds[r[0]][0] for r in located], "t1s": [bounds[r[0]][1] for r in located],
        }).all()
        value = {(label, rank): ms for label, rank, ms in rows}
    result: dict[str, Any] = {}
    for label in labels:
        reports, avg, flagged, tokens, _timed = kpis.get(label) or (0, None, 0, 0, 0)
        pct: list[float | None] = [
            value[(label, math.floor(h))]
            + (h - math.floor(h)) * (value[(label, math.ceil(h))] - value[(label, math.floor(h))])
            for h in heights[label]
        ] or [None, None]
        result[label] = (int(reports or 0), avg, int(flagged or 0), int(tokens or 0), *pct)
    _, end = ctx.flt.bounds()
    instants = [min(end, ctx.now), ctx.flt.previous().bounds()[1]]
    result["queue"] = [
        (int(n), oldest)
        for n, oldest in session.execute(text(QUEUE_SQL), {"instants": instants}).all()
    ]
    return result


_SIDEBAR: list[tuple[str, Query]] = [
    ("has_reports", lambda s, c: queries.has_reports(s)),
    ("list_intents", lambda s, c: _all(s, """
        SELECT intent, sum(reports) FROM bench_rollup_reports
        WHERE day BETWEEN :start AND :end GROUP BY intent
        ORDER BY 2 DESC, intent IS NULL, intent LIMIT 200""", _days(c))),
]

def _window(ctx: PageContext) -> dict[str, Any]:
    t0, t1 = ctx.flt.bounds()
    return {"t0": t0, "t1": t1}


# Open items created in the window: the partial index on bench_review_state holds only the
# items open now, so these read a few thousand index entries instead of anti-joining
# every flagged report in the window against the decisions.
QUEUE_PAGE_SQL = """
SELECT r.email_id, r.created_at, r.review_reason, r.intent, r.confidence_route,
       r.overall_confidence,
       (SELECT count(*) FROM report_fields f WHERE f.report_id = r.id AND f.is_missing)
FROM bench_review_state s JOIN processing_reports r ON r.id = s.report_id
WHERE s.first_decided_at IS NULL AND s.created_at >= :t0 AND s.created_at < :t1
ORDER BY s.created_at, s.report_id LIMIT 50
"""

ROLLUP_PAGES: dict[str, list[tuple[str, Query]]] = {
    "overview": [
        *_SIDEBAR,
        ("overview_kpis", overview_kpis),
        ("daily_trends", lambda s, c: _all(s, """
            SELECT day, route, sum(reports), sum(reports) FILTER (WHERE needs_review),
                   sum(sum_confidence)
            FROM bench_rollup_reports WHERE day BETWEEN :start AND :end
            GROUP BY day, route ORDER BY day, route""", _days(c))),
    ],
    "confidence": [
        *_SIDEBAR,
        ("confidence_histogram", lambda s, c: _all(s, """
            SELECT bin, route, sum(reports) FROM bench_rollup_reports
            WHERE day BETWEEN :start AND :end GROUP BY bin, route ORDER BY bin, route""",
            _days(c))),
        ("field_confidence_summary", lambda s, c: _all(s, """
            SELECT field_name, sum(n) FILTER (WHERE NOT is_missing),
                   sum(n) FILTER (WHERE is_missing),
                   sum(sum_confidence) / nullif(sum(n) FILTER (WHERE NOT is_missing), 0),
                   min(min_confidence), max(max_confidence)
            FROM bench_rollup_fields WHERE day BETWEEN :start AND :end
            GROUP BY field_name ORDER BY sum(n) DESC, field_name LIMIT 54""", _days(c))),
        ("field_confidence_histogram", lambda s, c: _all(s, """
            SELECT field_name, bin, sum(n) FROM bench_rollup_fields
            WHERE day BETWEEN :start AND :end AND NOT is_missing AND bin IS NOT NULL
            GROUP BY field_name, bin ORDER BY field_name, bin""", _days(c))),
        ("confidence_by_intent", lambda s, c: _all(s, """
            SELECT intent, sum(reports), sum(sum_confidence) / sum(reports),
                   sum(reports) FILTER (WHERE route = 'high'),
                   sum(reports) FILTER (WHERE route = 'medium'),
                   sum(reports) FILTER (WHERE route = 'low'),
                   sum(reports) FILTER (WHERE needs_review)
            FROM bench_rollup_reports WHERE day BETWEEN :start AND :end
            GROUP BY intent ORDER BY 2 DESC, intent IS NULL, intent LIMIT 50""", _days(c))),
        ("threshold_what_if", lambda s, c: _all(s, """
            SELECT sum(reports), sum(reports) FILTER (WHERE bin < 16),
                   sum(reports) FILTER (WHERE bin < 16 AND NOT needs_review),
                   sum(reports) FILTER (WHERE bin >= 16 AND needs_review)
            FROM bench_rollup_reports WHERE day BETWEEN :start AND :end""", _days(c))),
    ],
    "missing_fields": [
        *_SIDEBAR,
        ("missing_field_frequency", lambda s, c: _all(s, """
            SELECT f, sum(reports) FROM bench_rollup_missing_sets, unnest(missing) AS f
            WHERE day BETWEEN :start AND :end GROUP BY f ORDER BY 2 DESC, f""", _days(c))),
        ("missing_fields_daily", lambda s, c: _all(s, """
            SELECT day, f, sum(reports) FROM bench_rollup_missing_sets, unnest(missing) AS f
            WHERE day BETWEEN :start AND :end GROUP BY day, f ORDER BY day, f""", _days(c))),
        ("missing_fields_by_intent", lambda s, c: _all(s, """
            SELECT intent, f, sum(reports) FROM bench_rollup_missing_sets, unnest(missing) AS f
            WHERE day BETWEEN :start AND :end GROUP BY intent, f ORDER BY intent, f""",
            _days(c))),
        ("missing_field_cooccurrence", lambda s, c: _all(s, """
            SELECT a, b, sum(reports)
            FROM bench_rollup_missing_sets, unnest(missing) AS a, unnest(missing) AS b
            WHERE day BETWEEN :start AND :end GROUP BY a, b ORDER BY a, b""", _days(c))),
        ("missing_count_distribution", lambda s, c: _all(s, """
            SELECT cardinality(missing), sum(reports) FROM bench_rollup_missing_sets
            WHERE day BETWEEN :start AND :end GROUP BY 1 ORDER BY 1""", _days(c))),
    ],
}


ROLLUP_PAGES["review"] = [
    *_SIDEBAR,
    ("review_queue_page", lambda s, c: _all(s, QUEUE_PAGE_SQL, _window(c))),
    ("count_review_queue", lambda s, c: _all(s, """
        SELECT count(*) FROM bench_review_state
        WHERE first_decided_at IS NULL AND created_at >= :t0 AND created_at < :t1""",
        _window(c))),
    ("review_queue_reasons", lambda s, c: _all(s, """
        SELECT review_reason, count(*) FROM bench_review_state
        WHERE first_decided_at IS NULL AND created_at >= :t0 AND created_at < :t1
        GROUP BY review_reason ORDER BY 2 DESC, review_reason IS NULL, review_reason
        LIMIT 50""", _window(c))),
]
ROLLUP_PAGES["review_first_page"] = [
    ("review_queue_page", lambda s, c: _all(s, QUEUE_PAGE_SQL, _window(c))),
]


def check_against_queries(session: Session, ctx: PageContext) -> dict[str, bool]:
    """Do the rollup numbers equal reportlib.queries' on the same data? One flag each."""
    flt = ctx.flt
    checks: dict[str, bool] = {}
    kpis = queries.overview_kpis(session, flt=flt, now=ctx.now)
    mine = overview_kpis(session, ctx)
    for label, period in (("current", kpis.current), ("previous", kpis.previous)):
        reports, avg, flagged, tokens, p50, p95 = mine[label]
        checks[f"kpis_{label}_counts"] = (reports, flagged, tokens) == (
            period.reports, period.flagged, period.tokens)
        checks[f"kpis_{label}_avg"] = math.isclose(float(avg), period.avg_confidence or 0,
                                                   rel_tol=1e-12)
        checks[f"kpis_{label}_percentiles"] = (p50, p95) == (
            period.p50_processing_ms, period.p95_processing_ms)
    for label, period, snapshot in (("current", kpis.current, mine["queue"][0]),
                                    ("previous", kpis.previous, mine["queue"][1])):
        checks[f"queue_{label}"] = snapshot == (period.queue.size, period.queue.oldest_created_at)
    daily = queries.daily_trends(session, flt=flt)
    rolled: dict[Any, int] = {}
    for day, _route, n, _flagged, _conf in ROLLUP_PAGES["overview"][3][1](session, ctx):
        rolled[day] = rolled.get(day, 0) + int(n)
    checks["daily_reports"] = all(
        int(row.reports) == rolled.get(row.day, 0) for row in daily.itertuples()
    )
    hist = queries.confidence_histogram(session, flt=flt)
    rolled_hist = {(int(b), r): int(n) for b, r, n in ROLLUP_PAGES["confidence"][2][1](session, ctx)}
    checks["confidence_histogram"] = all(
        int(row.reports) == rolled_hist.get((int(row.bin), row.route), 0)
        for row in hist.itertuples()
    )
    freq = queries.missing_field_frequency(session, flt=flt)
    rolled_freq = dict(ROLLUP_PAGES["missing_fields"][2][1](session, ctx))
    checks["missing_frequency"] = all(
        int(row.missing) == int(rolled_freq.get(row.field, 0)) for row in freq.itertuples()
    )
    co = queries.missing_field_cooccurrence(session, flt=flt)
    rolled_co = {(a, b): int(n) for a, b, n in ROLLUP_PAGES["missing_fields"][5][1](session, ctx)}
    checks["missing_cooccurrence"] = all(
        int(row.reports) == rolled_co.get((row.field, row.other), 0) for row in co.itertuples()
    )
    dist = queries.missing_count_distribution(session, flt=flt)
    rolled_dist = {int(k): int(v) for k, v in ROLLUP_PAGES["missing_fields"][6][1](session, ctx)}
    checks["missing_count_distribution"] = all(
        int(row.reports) == rolled_dist.get(int(row.missing_fields), 0)
        for row in dist.itertuples()
    )
    summary = queries.field_confidence_summary(session, flt=flt)
    rolled_summary = {row[0]: row for row in ROLLUP_PAGES["confidence"][3][1](session, ctx)}
    checks["field_summary"] = all(
        row.field in rolled_summary
        and int(row.extracted) == int(rolled_summary[row.field][1] or 0)
        and row.min_confidence == rolled_summary[row.field][4]
        for row in summary.itertuples()
    )
    page = queries.review_queue_page(session, flt=flt, sort="oldest", limit=50)
    rolled_page = ROLLUP_PAGES["review"][2][1](session, ctx)
    checks["review_queue_page"] = [int(x) for x in page["email_id"]] == [
        int(row[0]) for row in rolled_page
    ]
    checks["count_review_queue"] = queries.count_review_queue(session, flt=flt) == int(
        ROLLUP_PAGES["review"][3][1](session, ctx)[0][0]
    )
    reasons = queries.review_queue_reasons(session, flt=flt)
    rolled_reasons = {
        (queries.NONE_LABEL if reason is None else reason): int(n)
        for reason, n in ROLLUP_PAGES["review"][4][1](session, ctx)
    }
    checks["review_queue_reasons"] = {
        row.review_reason: int(row.items) for row in reasons.itertuples()
    } == rolled_reasons
    return checks


def run(url: Any, engine: Engine, ctx: PageContext, *, runs: int,
        flush_factor: float = FLUSH_FACTOR, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the rollups, check them, time the pages on them, then drop them."""
    out: dict[str, Any] = {"build": build(engine), "pages": {}}
    try:
        with Session(engine) as session:
            out["checks"] = check_against_queries(session, ctx)
        log(f"  rollups built in {out['build']['build_s']} s; numbers equal to "
            f"reportlib.queries: {all(out['checks'].values())}")
        flusher = CacheFlusher(engine, factor=flush_factor)
        for name, steps in ROLLUP_PAGES.items():
            cold, _ = time_cold(url, flusher, name, steps, ctx, runs=runs)
            warm = time_warm(engine, name, steps, ctx, runs=runs)
            out["pages"][name] = {"cold": cold.as_dict(), "warm": warm.as_dict()}
            log(f"  rollup {name:<31} cold {cold.median_ms:8.1f} ms   "
                f"warm {warm.median_ms:8.1f} ms")
    finally:
        drop(engine)
    return out
