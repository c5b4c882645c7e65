"""Generate N reports with set-based SQL, with the demo data's distributions.

Everything happens inside PostgreSQL: one ``INSERT ... SELECT`` over ``generate_series``
for the emails, one for the reports, one each for decisions and verdicts. Random draws are a hash of
the row id and a stream number (``hashint8extended``), so a given N and seed always give
the same data, and the planner is free to run it in parallel.

The distributions mirror :mod:`reportlib.demo` (its constants are imported, so they stay
in step): the intent mix, the Zipf-like creditor mix, per-field confidences from the same
beta mixtures (sampled in Python into a 4096-point quantile table, then drawn in SQL by
inverse transform), the same correlated missing fields, the same overall-confidence,
route and review-reason rules, tokens and processing times. Two deliberate differences:
volumes span ``days`` (365) days instead of 90, and volume grows so that the last 30 days
hold ``window_share`` of the reports (a third by default, which is what the issue's
targets assume: about 333k of 1M). Weekends carry 35% of a weekday's volume, as in the demo.

The triggers on ``processing_reports`` (which mark changed hours) are disabled for the
bulk insert, since every day is rebuilt afterwards. The trigger on ``review_decisions``
that sets ``processing_reports.review_closed_at`` is held off as well, and the column is
filled with migration 0003's backfill ``UPDATE``. After ``VACUUM ANALYZE`` every day is marked
dirty and the rollups are rebuilt from the raw rows (:func:`rebuild_rollups_timed`),
which is timed: a full ``python -m reportlib rollups rebuild`` of fresh data.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Final

from faker import Faker
from sqlalchemy import Connection, Engine, text, true
from sqlalchemy.dialects import postgresql

from reportlib import demo, rollups
from reportlib.db import make_sessionmaker
from reportlib.models import ROLLUP_TABLES, ProcessingReport, rollup_dirty_days
from reportlib.rollups import report_field_rows

QUANTILES = 4096
KEY_FIELDS = ("client_name", "creditor_name", "debt_amount", "reference_numbers")
SUBJECTS = (
    "Mahnung",
    "Zahlungserinnerung",
    "Letzte Mahnung vor gerichtlichem Mahnverfahren",
    "Forderungsaufstellung",
    "Ihr Ratenzahlungsangebot",
    "Rückfrage zu Ihrem Schreiben",
    "Bestätigung der Vergleichszahlung",
)
REF_PREFIXES = ("AZ ", "Kd.-Nr. ", "Rechnung ", "Vertrag ")


@dataclass
class GenerationResult:
    """What was generated and how long each step took (seconds)."""

    reports: int
    days: int
    window_share: float
    now: dt.datetime
    reports_in_last_30_days: int = 0
    flagged: int = 0
    decisions: int = 0
    open_queue: int = 0
    field_rows: int = 0
    review_closed: int = 0
    rollup_rebuild: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def day_counts(
    n: int, *, days: int, window_share: float | None, today: dt.date, window_days: int = 30
) -> list[tuple[dt.date, int]]:
    """How many reports each day gets, oldest first; exactly ``n`` in total.

    With ``window_share`` None the demo's own shape is used (linear growth from 0.8 to 1.2).
    Otherwise growth is exponential, with the rate chosen so the last ``window_days`` days
    hold that share of the reports.
    """
    dates = [today - dt.timedelta(days=days - 1 - offset) for offset in range(days)]
    weekday = [0.35 if day.weekday() >= 5 else 1.0 for day in dates]

    def weights(rate: float) -> list[float]:
        return [w * math.exp(rate * offset) for offset, w in enumerate(weekday)]

    def share(ws: list[float]) -> float:
        return sum(ws[-window_days:]) / sum(ws)

    if window_share is None:
        ws = [w * (0.8 + 0.4 * i / max(days - 1, 1)) for i, w in enumerate(weekday)]
    elif window_share <= share(weights(0.0)) or days <= window_days:
        ws = weights(0.0)
    else:
        low, high = 0.0, 1.0
        for _ in range(100):
            mid = (low + high) / 2
            low, high = (mid, high) if share(weights(mid)) < window_share else (low, mid)
        ws = weights((low + high) / 2)
    total = sum(ws)
    exact = [n * w / total for w in ws]
    counts = [math.floor(x) for x in exact]
    # Largest remainders get the leftover reports, so the total is exactly n.
    for index in sorted(range(days), key=lambda i: exact[i] - counts[i], reverse=True)[
        : n - sum(counts)
    ]:
        counts[index] += 1
    return list(zip(dates, counts, strict=True))


def _mixture_quantiles(rng: random.Random, alpha: float, beta: float, tail: float) -> list[float]:
    """Quantiles of demo._beta's mixture, from a large sample (same rule, same rounding)."""
    sample = sorted(
        round(
            min(
                max(
                    rng.betavariate(2.0, 3.0) if rng.random() < tail else rng.betavariate(alpha, beta),
                    0.0,
                ),
                1.0,
            ),
            3,
        )
        for _ in range(QUANTILES * 64)
    )
    return [sample[int((k + 0.5) * len(sample) / QUANTILES)] for k in range(QUANTILES)]


def _choice_table(rng: random.Random, weights: list[float]) -> list[int]:
    """A table of indexes whose uniform pick follows ``weights`` (0-based)."""
    total = sum(weights)
    cumulative, acc = [], 0.0
    for weight in weights:
        acc += weight / total
        cumulative.append(acc)
    table, index = [], 0
    for k in range(QUANTILES):
        point = (k + 0.5) / QUANTILES
        while index < len(cumulative) - 1 and cumulative[index] < point:
            index += 1
        table.append(index)
    return table


def _parameters(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    fake = Faker("de_DE")
    fake.seed_instance(seed)
    params: dict[str, Any] = {
        f"q_{name}": _mixture_quantiles(rng, *demo.FIELD_DIFFICULTY[name]) for name in KEY_FIELDS
    }
    creditor_weights = [1.0 / (rank + 1) ** 1.1 for rank in range(len(demo.CREDITORS))]
    # Index tables are int[] (constant-time subscripts); the names live in short arrays.
    params["creditor_table"] = [i + 1 for i in _choice_table(rng, creditor_weights)]
    params["creditors"] = list(demo.CREDITORS)
    params["intent_table"] = [
        i + 1 for i in _choice_table(rng, [w for _, w in demo.INTENTS])
    ]
    params["intents"] = [name for name, _ in demo.INTENTS]
    params["first_names"] = [fake.first_name() for _ in range(512)]
    params["last_names"] = [fake.last_name() for _ in range(512)]
    params["subjects"] = list(SUBJECTS)
    params["sources"] = list(demo.SOURCES)
    params["reasons_low"] = list(demo.REASONS_LOW)
    params["ref_prefixes"] = list(REF_PREFIXES)
    params["domains"] = [
        "".join(ch for ch in creditor.lower().split()[0] if ch.isalnum()) or "glaeubiger"
        for creditor in demo.CREDITORS
    ]
    return params


def _u(stream: int, seed: int) -> str:
    """A uniform draw in [0, 1) for this row and stream: 53 bits of a seeded hash of the id."""
    return (
        f"((hashint8extended(d.id::bigint, {seed * 1000 + stream}) & 9007199254740991)::float8"
        " / 9007199254740992.0)"
    )


def _pick(array: str, stream: int, seed: int, size: str | None = None) -> str:
    size = size or f"cardinality({array})"
    return f"({array})[1 + floor({_u(stream, seed)} * {size})::int]"


def _normal(stream: int, seed: int) -> str:
    # Box-Muller from two streams.
    return (
        f"(sqrt(-2.0 * ln(1.0 - {_u(stream, seed)})) * cos(2.0 * pi() * {_u(stream + 1, seed)}))"
    )


def _draws_sql(seed: int) -> str:
    """One row per report with every random choice made; JSON is built in the next step."""
    u, pick, normal = (
        lambda s: _u(s, seed),
        lambda a, s, n=None: _pick(a, s, seed, n),
        lambda s: _normal(s, seed),
    )
    conf = {
        name: f"({pick(f'CAST(:q_{name} AS float8[])', 20 + i)})::numeric"
        for i, name in enumerate(KEY_FIELDS)
    }
    source = {
        name: (
            f"CASE WHEN d.sources > 1 THEN (CAST(:sources AS text[]))"
            f"[1 + floor({u(30 + i)} * least(1 + d.sources, 4))::int] ELSE 'email_body' END"
        )
        for i, name in enumerate(KEY_FIELDS)
    }
    ref = [
        f"({pick('CAST(:ref_prefixes AS text[])', 40 + 3 * k)} || (2019 + floor({u(41 + 3 * k)} * 8)::int)"
        f" || '/' || (10000 + floor({u(42 + 3 * k)} * 990000)::int))"
        for k in range(3)
    ]
    return f"""
    SELECT d.id, d.received_at, d.created_at, d.intent, d.creditor_idx, d.sources,
           d.vague, d.missing_ref,
           d.m_amount, d.m_client, d.m_creditor,
           CASE WHEN d.m_client THEN NULL ELSE {conf['client_name']} END AS c_client,
           CASE WHEN d.m_creditor THEN NULL ELSE {conf['creditor_name']} END AS c_creditor,
           CASE WHEN d.m_amount THEN NULL ELSE {conf['debt_amount']} END AS c_amount,
           CASE WHEN d.missing_ref THEN NULL ELSE {conf['reference_numbers']} END AS c_ref,
           {source['client_name']} AS s_client,
           {source['creditor_name']} AS s_creditor,
           {source['debt_amount']} AS s_amount,
           {source['reference_numbers']} AS s_ref,
           {pick('CAST(:first_names AS text[])', 50)} || ' '
               || {pick('CAST(:last_names AS text[])', 51)} AS client,
           round(exp(6.2 + 1.0 * {normal(52)})::numeric, 2) AS amount,
           CASE WHEN {u(54)} < 0.7 THEN jsonb_build_array({ref[0]})
                WHEN {u(54)} < 0.95 THEN jsonb_build_array({ref[0]}, {ref[1]})
                ELSE jsonb_build_array({ref[0]}, {ref[1]}, {ref[2]}) END AS refs,
           greatest(trunc(1100 * d.sources + 700
                          + sqrt(62500.0 * d.sources + 14400.0) * {normal(56)})::int, 200)
               AS tokens,
           greatest(trunc(exp(7.6 + 0.45 * {normal(58)}) * (0.7 + 0.3 * d.sources))::int, 50)
               AS processing_ms,
           {u(60)} AS u_reason,
           {normal(62)} AS overall_noise,
           {pick('CAST(:subjects AS text[])', 64)} AS subject
    FROM (
        SELECT d.*,
               {u(10)} < 0.45 * d.missing_ref::int + 0.05 * (NOT d.missing_ref)::int AS m_amount,
               {u(11)} < CASE WHEN d.vague THEN 0.08 ELSE 0.025 END AS m_client,
               {u(12)} < 0.02 AS m_creditor
        FROM (
            SELECT d.*,
                   d.intent IN ('information_request', 'other') AS vague,
                   {u(9)} < CASE WHEN d.intent IN ('information_request', 'other')
                                 THEN 0.30 ELSE 0.11 END AS missing_ref
            FROM (
                SELECT d.id, d.received_at,
                       CASE WHEN d.created_at > :now
                            THEN :now - make_interval(secs => 1 + floor({u(4)} * 600))
                            ELSE d.created_at END AS created_at,
                       (CAST(:intents AS text[]))[
                           {pick('CAST(:intent_table AS int[])', 5)}] AS intent,
                       {pick('CAST(:creditor_table AS int[])', 6)} AS creditor_idx,
                       CASE WHEN {u(7)} < 0.45 THEN 1 WHEN {u(7)} < 0.80 THEN 2
                            WHEN {u(7)} < 0.95 THEN 3 ELSE 4 END AS sources
                FROM (
                    SELECT d.id, d.received_at,
                           d.received_at + make_interval(secs => 5 + floor({u(3)} * 896))
                               AS created_at
                    FROM (
                        SELECT b.first_id + s.i - 1 AS id,
                               (b.day::timestamp AT TIME ZONE 'UTC')
                               + make_interval(secs => 6 * 3600
                                   + floor(((s.i - 1 + {_u(2, seed).replace('d.id', '(b.first_id + s.i - 1)')})
                                            / b.n) * 14 * 3600)) AS received_at
                        FROM unnest(CAST(:days AS date[]), CAST(:counts AS int[]),
                                    CAST(:first_ids AS int[])) AS b(day, n, first_id)
                        CROSS JOIN LATERAL generate_series(1, b.n) AS s(i)
                    ) AS d
                ) AS d
            ) AS d
        ) AS d
    ) AS d
    """


def _report_rows_sql() -> str:
    """processing_reports rows from the draws, by the demo's rules."""
    return """
    SELECT r.*,
           CASE WHEN r.overall >= 0.85 THEN 'high' WHEN r.overall >= 0.6 THEN 'medium'
                ELSE 'low' END AS route
    FROM (
        SELECT x.*,
               round(least(greatest(
                   coalesce(x.conf_sum / nullif(x.conf_n, 0), 0.2) * (1 - 0.12 * x.n_missing)
                   + 0.02 + 0.07 * x.overall_noise,
                   0), 1)::numeric, 3)::float8 AS overall
        FROM (
            SELECT d.*,
                   (d.m_client::int + d.m_creditor::int + d.m_amount::int + d.missing_ref::int)
                       AS n_missing,
                   (coalesce(d.c_client, 0) + coalesce(d.c_creditor, 0)
                    + coalesce(d.c_amount, 0) + coalesce(d.c_ref, 0))::float8 AS conf_sum,
                   ((d.c_client IS NOT NULL)::int + (d.c_creditor IS NOT NULL)::int
                    + (d.c_amount IS NOT NULL)::int + (d.c_ref IS NOT NULL)::int) AS conf_n,
                   least(
                       coalesce(d.c_client, 2), coalesce(d.c_creditor, 2),
                       coalesce(d.c_amount, 2), coalesce(d.c_ref, 2)) AS conf_min
            FROM bench_draws d
        ) AS x
    ) AS r
    """


_INSERT_EMAILS = """
INSERT INTO incoming_emails (id, subject, sender, received_at)
SELECT d.id, d.subject,
       'forderungsmanagement@' || (CAST(:domains AS text[]))[d.creditor_idx] || '.example',
       least(d.received_at, d.created_at - interval '5 seconds')
FROM bench_draws d
"""

# The reason for review, in the demo's order of precedence; the name of the weakest field
# comes first among equals in key-field order, like Python's min() over a dict.
_INSERT_REPORTS = f"""
INSERT INTO processing_reports
    (id, email_id, created_at, extracted_fields, missing_fields, overall_confidence,
     confidence_route, needs_review, review_reason, intent, sources_processed,
     total_tokens_used, processing_time_ms)
SELECT q.id, q.id, q.created_at, q.extracted_fields, q.missing_fields, q.overall, q.route,
       q.reason IS NOT NULL, q.reason, q.intent, q.sources, q.tokens, q.processing_ms
FROM (
    SELECT r.*,
        jsonb_strip_nulls(jsonb_build_object(
            'client_name', CASE WHEN NOT r.m_client THEN jsonb_build_object(
                'value', r.client, 'confidence', trim_scale(r.c_client), 'source', r.s_client) END,
            'creditor_name', CASE WHEN NOT r.m_creditor THEN jsonb_build_object(
                'value', (CAST(:creditors AS text[]))[r.creditor_idx],
                'confidence', trim_scale(r.c_creditor), 'source', r.s_creditor) END,
            'debt_amount', CASE WHEN NOT r.m_amount THEN jsonb_build_object(
                'value', r.amount, 'confidence', trim_scale(r.c_amount), 'source', r.s_amount) END,
            'reference_numbers', CASE WHEN NOT r.missing_ref THEN jsonb_build_object(
                'value', r.refs, 'confidence', trim_scale(r.c_ref), 'source', r.s_ref) END
        )) AS extracted_fields,
        to_jsonb(array_remove(ARRAY[
            CASE WHEN r.m_client THEN 'client_name' END,
            CASE WHEN r.m_creditor THEN 'creditor_name' END,
            CASE WHEN r.m_amount THEN 'debt_amount' END,
            CASE WHEN r.missing_ref THEN 'reference_numbers' END], NULL)) AS missing_fields,
        CASE
            WHEN r.route = 'low'
                THEN (CAST(:reasons_low AS text[]))[1 + floor(r.u_reason * cardinality(CAST(:reasons_low AS text[])))::int]
            WHEN r.m_amount THEN 'missing debt_amount'
            WHEN r.m_creditor THEN 'missing creditor_name'
            WHEN r.route = 'medium' AND r.conf_min < 0.45 THEN 'low confidence on ' || CASE
                WHEN r.c_client = r.conf_min THEN 'client_name'
                WHEN r.c_creditor = r.conf_min THEN 'creditor_name'
                WHEN r.c_amount = r.conf_min THEN 'debt_amount'
                ELSE 'reference_numbers' END
        END AS reason
    FROM ({_report_rows_sql()}) AS r
) AS q
"""

def _field_rows_sql(where: Any) -> str:
    """reportlib's per-field rows (what the rollups read) of the reports under ``where``,
    as PostgreSQL text."""
    return str(report_field_rows(where).compile(dialect=postgresql.dialect()))


# Reviewers keep up: a flagged report older than three days has almost always been decided,
# a fresh one rarely has. The open queue is then a few days' worth of flagged reports, as in
# a working team, instead of every flagged report ever written.
_INSERT_DECISIONS = """
INSERT INTO review_decisions
    (report_id, email_id, reviewer, decided_at, report_created_at, outcome, note)
SELECT r.id, r.email_id, 'reviewer' || (1 + hashint8extended(r.id, :seed * 1000 + 901) % 8 + 8) % 8 + 1,
       r.created_at + make_interval(secs =>
           600 + (hashint8extended(r.id, :seed * 1000 + 902) & 1048575)::float8 / 1048576.0
                 * greatest(extract(epoch FROM least(:now - r.created_at, interval '3 days')) - 600, 0)),
       r.created_at,
       CASE WHEN (hashint8extended(r.id, :seed * 1000 + 903) & 1023) < 717 THEN 'approved'
            WHEN (hashint8extended(r.id, :seed * 1000 + 903) & 1023) < 973 THEN 'corrected'
            ELSE 'rejected' END,
       NULL
FROM processing_reports r
WHERE r.needs_review
  AND (hashint8extended(r.id, :seed * 1000 + 900) & 1023)::float8 / 1024.0 <
      CASE WHEN r.created_at < :now - interval '3 days' THEN 0.98
           WHEN r.created_at < :now - interval '1 day' THEN 0.70
           ELSE 0.20 END
"""


# One verdict per field of each decided report, as reviewers give them: extracted values
# are wrong more often the lower their confidence (and somewhat more often than the
# confidence says), fields marked missing were mostly truly absent.
_INSERT_VERDICTS = f"""
INSERT INTO review_field_verdicts
    (decision_id, field_name, verdict, corrected_value, extracted_confidence, was_missing)
SELECT d.id, f.field_name,
       CASE WHEN f.is_missing THEN
                CASE WHEN (hashint8extended(d.id * 64 + length(f.field_name), :seed * 1000 + 910)
                           & 1023) < 300 THEN 'corrected' ELSE 'absent' END
            WHEN (hashint8extended(d.id * 64 + length(f.field_name), :seed * 1000 + 911)
                  & 1023)::float8 / 1024.0 < (1 - coalesce(f.confidence, 0.5)) * 0.7
                THEN 'corrected'
            ELSE 'correct' END,
       NULL, f.confidence, f.is_missing
FROM review_decisions AS d
JOIN ({_field_rows_sql(ProcessingReport.needs_review)}) AS f ON f.report_id = d.report_id
"""


# Migration 0003's backfill of review_closed_at: the first decision on the current processing.
BACKFILL_REVIEW_CLOSED_AT = """
UPDATE processing_reports SET review_closed_at = (
    SELECT min(d.decided_at) FROM review_decisions AS d
    WHERE d.report_id = processing_reports.id
      AND d.report_created_at >= processing_reports.created_at)
WHERE needs_review AND EXISTS (
    SELECT 1 FROM review_decisions AS e WHERE e.report_id = processing_reports.id)
"""


#: The partial indexes over the open review queue (needs_review, no decision yet).
OPEN_QUEUE_INDEXES: Final = (
    "ix_processing_reports_open_queue",
    "ix_processing_reports_open_queue_confidence",
)


def _is_empty(connection: Connection) -> bool:
    return not connection.execute(text("SELECT EXISTS (SELECT 1 FROM processing_reports)")).scalar()


def generate(
    engine: Engine,
    *,
    reports: int,
    days: int = 365,
    window_share: float | None = 1 / 3,
    seed: int = 42,
    now: dt.datetime | None = None,
    log: Any = print,
) -> GenerationResult:
    """Fill an empty benchmark database with ``reports`` reports and their emails."""
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    result = GenerationResult(reports=reports, days=days, window_share=window_share or 0.0, now=now)
    plan = day_counts(reports, days=days, window_share=window_share, today=now.date())
    first_ids, next_id = [], 1
    for _, count in plan:
        first_ids.append(next_id)
        next_id += count
    params = _parameters(seed)
    params.update(
        days=[day for day, _ in plan],
        counts=[count for _, count in plan],
        first_ids=first_ids,
        now=now,
    )
    timings = result.timings
    with engine.begin() as connection:
        if not _is_empty(connection):
            raise SystemExit("processing_reports is not empty: generate into a fresh database")
        connection.execute(text("SET LOCAL synchronous_commit = off"))
        connection.execute(text("SET LOCAL work_mem = '256MB'"))
        connection.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        # Compiling these wide expressions costs seconds and saves nothing here.
        connection.execute(text("SET LOCAL jit = off"))

        started = time.perf_counter()
        connection.execute(
            text(f"CREATE TEMP TABLE bench_draws ON COMMIT DROP AS {_draws_sql(seed)}"), params
        )
        timings["draws_s"] = time.perf_counter() - started
        log(f"  draws: {timings['draws_s']:.1f}s")

        started = time.perf_counter()
        connection.execute(text(_INSERT_EMAILS), params)
        timings["emails_s"] = time.perf_counter() - started
        log(f"  incoming_emails: {timings['emails_s']:.1f}s")

        connection.execute(text("ALTER TABLE processing_reports DISABLE TRIGGER USER"))
        started = time.perf_counter()
        connection.execute(text(_INSERT_REPORTS), params)
        connection.execute(text("ALTER TABLE processing_reports ENABLE TRIGGER USER"))
        timings["reports_s"] = time.perf_counter() - started
        log(f"  processing_reports: {timings['reports_s']:.1f}s")
        started = time.perf_counter()
        # The per-row trigger would update each decided report on its own; the same
        # UPDATE as migration 0003's backfill sets review_closed_at in one statement.
        connection.execute(
            text("ALTER TABLE review_decisions DISABLE TRIGGER reportlib_review_closed")
        )
        connection.execute(text(_INSERT_DECISIONS), {"seed": seed, "now": now})
        connection.execute(
            text("ALTER TABLE review_decisions ENABLE TRIGGER reportlib_review_closed")
        )
        timings["review_decisions_s"] = time.perf_counter() - started
        log(f"  review_decisions: {timings['review_decisions_s']:.1f}s")
        started = time.perf_counter()
        # Every day is marked dirty and rebuilt below: the per-statement marker can rest.
        connection.execute(
            text("ALTER TABLE review_field_verdicts DISABLE TRIGGER reportlib_rollup_days_verdicts")
        )
        connection.execute(text(_INSERT_VERDICTS), {"seed": seed})
        connection.execute(
            text("ALTER TABLE review_field_verdicts ENABLE TRIGGER reportlib_rollup_days_verdicts")
        )
        timings["review_field_verdicts_s"] = time.perf_counter() - started
        log(f"  review_field_verdicts: {timings['review_field_verdicts_s']:.1f}s")
        started = time.perf_counter()
        # Only review_closed_at changes, and every day is marked dirty and rebuilt below.
        connection.execute(text("ALTER TABLE processing_reports DISABLE TRIGGER USER"))
        connection.execute(text(BACKFILL_REVIEW_CLOSED_AT))
        connection.execute(text("ALTER TABLE processing_reports ENABLE TRIGGER USER"))
        # That one UPDATE takes most flagged reports out of the open queue at once and
        # leaves the open queue's partial indexes mostly empty pages (at 5M: 45,932
        # entries in 22,999 pages, 709 once rebuilt), so the planner passes them over for
        # today's open items. A database that grew report by report never closes most of
        # its queue in one statement: build them from the rows they hold.
        for index in OPEN_QUEUE_INDEXES:
            connection.execute(text(f"REINDEX INDEX {index}"))
        timings["review_closed_at_s"] = time.perf_counter() - started
        log(f"  review_closed_at: {timings['review_closed_at_s']:.1f}s")
        connection.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('processing_reports', 'id'), "
                "(SELECT max(id) FROM processing_reports))"
            )
        )
    started = time.perf_counter()
    vacuum_analyze(engine)
    timings["vacuum_analyze_s"] = time.perf_counter() - started
    log(f"  vacuum analyze: {timings['vacuum_analyze_s']:.1f}s")
    rebuild = rebuild_rollups_timed(engine)
    result.rollup_rebuild = rebuild
    log(f"  rollups rebuild: {rebuild['days']} days in {rebuild['seconds']:.1f}s")
    with engine.connect() as connection:
        result.reports_in_last_30_days = int(
            connection.execute(
                text(
                    "SELECT count(*) FROM processing_reports WHERE created_at >= :start"
                ),
                {"start": dt.datetime.combine(now.date() - dt.timedelta(days=29), dt.time(),
                                              tzinfo=dt.UTC)},
            ).scalar_one()
        )
        result.flagged = int(
            connection.execute(
                text("SELECT count(*) FROM processing_reports WHERE needs_review")
            ).scalar_one()
        )
        result.decisions = int(
            connection.execute(text("SELECT count(*) FROM review_decisions")).scalar_one()
        )
        result.open_queue = result.flagged - int(
            connection.execute(
                text("SELECT count(DISTINCT report_id) FROM review_decisions")
            ).scalar_one()
        )
        result.field_rows = int(
            connection.execute(
                text(f"SELECT count(*) FROM ({_field_rows_sql(true())}) AS f")
            ).scalar_one()
        )
        result.review_closed = int(
            connection.execute(
                text("SELECT count(*) FROM processing_reports WHERE review_closed_at IS NOT NULL")
            ).scalar_one()
        )
    if result.review_closed != result.flagged - result.open_queue:
        raise SystemExit(
            f"review_closed_at is set on {result.review_closed} reports, but "
            f"{result.flagged - result.open_queue} have a decision"
        )
    return result


def rebuild_rollups_timed(engine: Engine) -> dict[str, Any]:
    """Mark every day dirty and rebuild all rollups from the raw rows (what ``python -m
    reportlib rollups rebuild`` does), timed; then VACUUM (ANALYZE) the rollup tables, as
    the command does."""
    sessions = make_sessionmaker(engine)
    started = time.perf_counter()
    with sessions() as session, session.begin():
        marked = rollups.mark_all_days_dirty(session)
    days = rollups.rebuild_rollups(sessions)
    seconds = time.perf_counter() - started
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("SET statement_timeout = 0"))
        for table in (*ROLLUP_TABLES, rollup_dirty_days):
            connection.execute(text(f"VACUUM (ANALYZE) {table.name}"))
        rows = {
            table.name: int(
                connection.execute(text(f"SELECT count(*) FROM {table.name}")).scalar_one()
            )
            for table in ROLLUP_TABLES
        }
    return {"days_marked": marked, "days": days, "seconds": round(seconds, 2), "rows": rows}


def vacuum_analyze(engine: Engine) -> None:
    """VACUUM ANALYZE the report tables: fresh statistics and an all-visible map."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("SET statement_timeout = 0"))
        for table in ("incoming_emails", "processing_reports", "review_decisions",
                      "review_field_verdicts", "review_claims"):
            connection.execute(text(f"VACUUM (ANALYZE) {table}"))
