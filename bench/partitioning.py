"""Partitioned by month, or unpartitioned with rollups? Both layouts measured on one bench
database, in one run:

    python -m bench.partitioning --database-url postgresql://postgres@127.0.0.1:5432/reportlib_bench_5m

The partitioned layout is built beside today's table, in the schema ``partitioned``: a copy
of ``processing_reports`` partitioned by month on ``created_at``, with the same indexes,
``email_id`` kept unique through a key table ``report_keys`` (a unique index on a
partitioned table must include its partition key), and the same foreign key to
``incoming_emails``. PostgreSQL allows no transition tables in triggers on a partitioned
table, so the partitioned writer marks the changed hour for the rollups itself, in its own
statement; today's table keeps its triggers. Then, alternating so that noise hits both:

* **writes**: the hand-written upsert into each layout (``bench.ingest``'s statement for
  today's table; key-table upsert, move out of the old partition, insert and mark for the
  partitioned one), by 1 and 8 threads, on new email ids;
* **pages**: every page's data cold and warm through ``reportlib.queries``, unchanged;
  the partitioned layout is read by setting ``search_path`` so that ``processing_reports``
  names the partitioned copy (the rollups are shared);
* **drop a month**: the busiest complete month of reports, in a transaction that is rolled
  back:
  ``DELETE`` from today's table against ``DETACH`` and ``DROP`` of a partition plus the key
  table's rows.

The schema is dropped at the end unless ``--keep``. Figures are printed and written as JSON
to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from bench.dashboard_queries import (
    PAGES,
    Timing,
    _run_once,
    default_context,
    refresh_rollups,
    time_warm,
)
from bench.database import CacheFlusher, parse_url, require_bench_database
from bench.ingest import (
    HANDWRITTEN_UPSERT,
    _cleanup,
    _handwritten_writer,
    _Ids,
    _inputs,
    _threaded,
    ingest_first_email_id,
)
from reportlib.db import make_engine
from reportlib.service import ReportInput

SCHEMA = "partitioned"
RESULTS = Path(__file__).resolve().parent / "results"

PARTITIONED_UPSERT = """
WITH old AS (
    SELECT created_at FROM partitioned.report_keys WHERE email_id = %(email_id)s
), key AS (
    INSERT INTO partitioned.report_keys (email_id, created_at)
    SELECT %(email_id)s, statement_timestamp()
    WHERE EXISTS (SELECT 1 FROM incoming_emails WHERE id = %(email_id)s)
    ON CONFLICT (email_id) DO UPDATE SET created_at = EXCLUDED.created_at
    RETURNING email_id, created_at
), moved AS (
    DELETE FROM partitioned.processing_reports AS p
    WHERE p.email_id = %(email_id)s AND p.created_at = (SELECT created_at FROM old)
    RETURNING p.id, p.review_closed_at
), marked AS (
    INSERT INTO rollup_dirty_days (day, hour)
    SELECT DISTINCT m.day, m.hour FROM (
        SELECT CAST((created_at AT TIME ZONE 'UTC') AS DATE) AS day,
               CAST(EXTRACT(HOUR FROM (created_at AT TIME ZONE 'UTC')) AS SMALLINT) AS hour
        FROM (SELECT created_at FROM key UNION ALL SELECT created_at FROM old) AS t
    ) AS m
    WHERE NOT EXISTS (
        SELECT 1 FROM rollup_dirty_days AS d WHERE d.day = m.day AND d.hour = m.hour)
)
INSERT INTO partitioned.processing_reports
    (id, email_id, created_at, extracted_fields, missing_fields, overall_confidence,
     confidence_route, needs_review, review_reason, intent, sources_processed,
     total_tokens_used, processing_time_ms)
SELECT coalesce((SELECT id FROM moved), nextval('partitioned.report_ids')), key.email_id,
       key.created_at, %(extracted_fields)s::jsonb, %(missing_fields)s::jsonb,
       %(overall_confidence)s, %(confidence_route)s, %(needs_review)s, %(review_reason)s,
       %(intent)s, %(sources_processed)s, %(total_tokens_used)s, %(processing_time_ms)s
FROM key
RETURNING id
"""


def _log(message: str) -> None:
    print(message, flush=True)


def _month_starts(first: dt.datetime, last: dt.datetime) -> list[dt.date]:
    month = dt.date(first.year, first.month, 1)
    months = []
    while month <= dt.date(last.year, last.month, 1):
        months.append(month)
        month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return months


def build_partitioned(engine: Engine) -> dict[str, Any]:
    """The partitioned copy of today's table, with its key table; timed."""
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        first, last = connection.execute(
            text("SELECT min(created_at), max(created_at) FROM public.processing_reports")
        ).one()
        connection.execute(
            text(
                f"CREATE TABLE {SCHEMA}.processing_reports "
                "(LIKE public.processing_reports INCLUDING DEFAULTS) "
                "PARTITION BY RANGE (created_at)"
            )
        )
        months = _month_starts(first, dt.datetime.now(dt.UTC) + dt.timedelta(days=62))
        for start in months:
            end = dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
            connection.execute(
                text(
                    f"CREATE TABLE {SCHEMA}.p_{start:%Y_%m} PARTITION OF "
                    f"{SCHEMA}.processing_reports FOR VALUES FROM ('{start}') TO ('{end}')"
                )
            )
        connection.execute(
            text(f"INSERT INTO {SCHEMA}.processing_reports SELECT * FROM public.processing_reports")
        )
        copied = time.perf_counter()
        connection.execute(
            text(
                f"ALTER TABLE {SCHEMA}.processing_reports ADD PRIMARY KEY (id, created_at), "
                "ADD FOREIGN KEY (email_id) REFERENCES public.incoming_emails (id)"
            )
        )
        for (definition,) in connection.execute(
            text(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "AND tablename = 'processing_reports' AND indexdef NOT LIKE 'CREATE UNIQUE%'"
            )
        ):
            connection.execute(
                text(
                    definition.replace(
                        " ON public.processing_reports ", f" ON {SCHEMA}.processing_reports "
                    )
                )
            )
        connection.execute(
            text(f"CREATE INDEX ix_partitioned_email_id ON {SCHEMA}.processing_reports (email_id)")
        )
        connection.execute(
            text(
                f"CREATE TABLE {SCHEMA}.report_keys (email_id integer PRIMARY KEY, "
                "created_at timestamp with time zone NOT NULL)"
            )
        )
        connection.execute(
            text(
                f"INSERT INTO {SCHEMA}.report_keys "
                "SELECT email_id, created_at FROM public.processing_reports"
            )
        )
        connection.execute(
            text(
                f"CREATE SEQUENCE {SCHEMA}.report_ids START WITH "
                f"{int(connection.execute(text('SELECT max(id) FROM public.processing_reports')).scalar() or 0) + 1}"
            )
        )
    indexed = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("SET statement_timeout = 0"))
        connection.execute(text(f"VACUUM (ANALYZE) {SCHEMA}.processing_reports"))
        connection.execute(text(f"VACUUM (ANALYZE) {SCHEMA}.report_keys"))
    return {
        "months": len(months),
        "copy_s": round(copied - started, 1),
        "indexes_and_keys_s": round(indexed - copied, 1),
        "total_s": round(time.perf_counter() - started, 1),
    }


@contextmanager
def partitioned_engine(url: Any) -> Iterator[Engine]:
    """An engine whose ``processing_reports`` is the partitioned copy."""
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _search_path(connection: Any, _record: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"SET search_path = {SCHEMA}, public")

    try:
        yield engine
    finally:
        engine.dispose()


def _cold(url: Any, layout: str, flusher: CacheFlusher, steps: Any, ctx: Any, runs: int) -> Timing:
    timing = Timing(name=layout, mode="cold", runs_ms=[])
    for _ in range(runs):
        flusher.flush()
        factory = partitioned_engine(url) if layout == "partitioned" else _plain(url)
        with factory as engine, Session(engine) as session:
            session.execute(text("SELECT 1"))
            timing.runs_ms.append(_run_once(session, steps, ctx, timing))
    return timing


@contextmanager
def _plain(url: Any) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def measure_pages(url: Any, engine: Engine, runs: int) -> dict[str, Any]:
    ctx = default_context(engine)
    flusher = CacheFlusher(engine)
    out: dict[str, Any] = {}
    with partitioned_engine(url) as partitioned:
        for name, steps in PAGES.items():
            row: dict[str, float] = {}
            for layout, layout_engine in (("unpartitioned", engine), ("partitioned", partitioned)):
                row[f"{layout}_cold_ms"] = round(
                    _cold(url, layout, flusher, steps, ctx, runs).median_ms, 1
                )
                row[f"{layout}_warm_ms"] = round(
                    time_warm(layout_engine, layout, steps, ctx, runs=runs).median_ms, 1
                )
            out[name] = row
            _log(
                f"  {name:<16} unpartitioned cold {row['unpartitioned_cold_ms']:7.1f} ms "
                f"warm {row['unpartitioned_warm_ms']:6.1f} ms | partitioned cold "
                f"{row['partitioned_cold_ms']:7.1f} ms warm {row['partitioned_warm_ms']:6.1f} ms"
            )
    return out


def measure_writes(
    url: Any, engine: Engine, *, threads: Sequence[int], reports: int, rounds: int
) -> dict[str, Any]:
    first = ingest_first_email_id(engine)
    ids = _Ids(first)
    writers: dict[str, Callable[[Sequence[ReportInput]], None]] = {
        "unpartitioned": _handwritten_writer(engine, HANDWRITTEN_UPSERT),
        "partitioned": _handwritten_writer(engine, PARTITIONED_UPSERT),
    }
    out: dict[str, Any] = {}
    try:
        for count in threads:
            rates: dict[str, list[float]] = {name: [] for name in writers}
            for round_ in range(rounds):
                for name, work in writers.items():
                    items = _inputs(engine, ids, reports, seed=round_ * 7919 + count)
                    rates[name].append(_threaded(items, count, work))
            med = {name: statistics.median(values) for name, values in rates.items()}
            out[str(count)] = {name: round(value, 1) for name, value in med.items()}
            _log(
                f"  {count:>2} threads: unpartitioned {med['unpartitioned']:.0f}/s, "
                f"partitioned {med['partitioned']:.0f}/s "
                f"({100 * med['partitioned'] / med['unpartitioned']:.0f}%)"
            )
    finally:
        # The partitioned copy's rows reference the emails that _cleanup removes.
        with engine.begin() as connection:
            connection.execute(
                text(f"DELETE FROM {SCHEMA}.processing_reports WHERE email_id >= :first"),
                {"first": first},
            )
            connection.execute(
                text(f"DELETE FROM {SCHEMA}.report_keys WHERE email_id >= :first"),
                {"first": first},
            )
        _cleanup(engine, first)
        refresh_rollups(engine)
    return out


def measure_drop_month(engine: Engine) -> dict[str, Any]:
    """The busiest complete month, removed from each layout in a transaction that is
    rolled back (a month at full traffic is what a retention job would drop)."""
    with engine.connect() as connection:
        first = connection.execute(
            text(
                "SELECT date_trunc('month', created_at AT TIME ZONE 'UTC') AS month "
                "FROM public.processing_reports "
                "WHERE created_at < date_trunc('month', statement_timestamp() AT TIME ZONE 'UTC') "
                "AT TIME ZONE 'UTC' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            )
        ).scalar_one()
    start = dt.datetime(first.year, first.month, 1, tzinfo=dt.UTC)
    end = dt.datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=dt.UTC)
    bounds = {"start": start, "end": end}
    out: dict[str, Any] = {"month": f"{start:%Y-%m}"}
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        # The review rows of those reports would go first in both layouts; the same cost
        # either way, so neither side pays it here: the FKs' checks are switched off.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        started = time.perf_counter()
        deleted = connection.execute(
            text(
                "DELETE FROM public.processing_reports "
                "WHERE created_at >= :start AND created_at < :end"
            ),
            bounds,
        ).rowcount
        out["unpartitioned_delete_s"] = round(time.perf_counter() - started, 2)
        out["reports"] = deleted
        transaction.rollback()
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        started = time.perf_counter()
        connection.execute(
            text(
                f"ALTER TABLE {SCHEMA}.processing_reports DETACH PARTITION {SCHEMA}.p_{start:%Y_%m}"
            )
        )
        connection.execute(text(f"DROP TABLE {SCHEMA}.p_{start:%Y_%m}"))
        connection.execute(
            text(
                f"DELETE FROM {SCHEMA}.report_keys WHERE created_at >= :start AND created_at < :end"
            ),
            bounds,
        )
        out["partitioned_drop_s"] = round(time.perf_counter() - started, 2)
        transaction.rollback()
    _log(
        f"  busiest month {out['month']} ({out['reports']:,} reports): DELETE from today's "
        f"table {out['unpartitioned_delete_s']:.2f} s, DETACH + DROP of its partition and "
        f"its keys {out['partitioned_drop_s']:.2f} s"
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--reports", type=int, default=2000, help="reports per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the partitioned copy")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept partitioned copy")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is required")
    url = parse_url(args.database_url)
    engine = make_engine(url)
    require_bench_database(engine)
    with engine.connect() as connection:
        reports = int(
            connection.execute(text("SELECT count(*) FROM public.processing_reports")).scalar_one()
        )
    result: dict[str, Any] = {
        "reports": reports,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average_start": [round(v, 2) for v in os.getloadavg()],
    }
    _log(f"load average at start: {result['load_average_start']}; {reports:,} reports")
    try:
        if not args.reuse:
            _log("building the partitioned copy ...")
            result["build"] = build_partitioned(engine)
            _log(f"  {result['build']}")
        _log("pages ...")
        result["pages"] = measure_pages(url, engine, args.runs)
        _log("writes ...")
        result["writes"] = measure_writes(
            url, engine, threads=args.threads, reports=args.reports, rounds=args.rounds
        )
        _log("dropping a month ...")
        result["drop_month"] = measure_drop_month(engine)
    finally:
        if not args.keep:
            with engine.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        engine.dispose()
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    _log(f"load average at end: {result['load_average_end']}")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results_dir / f"partitioning-{reports}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    _log(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
