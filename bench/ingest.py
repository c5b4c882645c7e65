"""Ingest throughput: the pipeline's write path, per report and in batches.

Writers store the same kind of reports (from :func:`reportlib.demo.generate_demo_emails`,
fresh email ids each time) from ``workers`` threads, one report per transaction:

* ``service``: ``create_processing_report`` in its own Session, then commit;
* ``handwritten``: the same upsert written as one SQL statement, run through the same
  Session-per-report harness (``session.connection().exec_driver_sql(...)``, then commit);
  the report is shaped and JSON-encoded by hand, without validation;
* ``driver``: the hand-written statement on bare psycopg2 connections (one per thread),
  no SQLAlchemy at all: the reference for what the database and driver can do;
* ``plain``: the same hand-written upsert into ``bench_plain_reports``, a plain table the
  harness creates: the columns of ``processing_reports``, an id primary key, a unique
  ``email_id`` with its foreign key to ``incoming_emails``, an index on ``created_at``,
  nothing else (no triggers, no partial indexes, no check constraints). It is the budget
  of the writer: what storing a report costs without the rollup triggers and the review
  indexes. Same Session-per-report harness as ``handwritten``.

They alternate for ``rounds`` rounds so that noise from the shared machine hits
them alike; each figure is the median over rounds. ``service`` and ``plain`` are also
measured at each of ``worker_counts`` threads (1, 4 and 16 by default; ``workers``
is already covered). ``batch`` measures the backfill API,
``create_processing_reports``, in one Session, committing every ``batch_size`` reports.

Inputs and their ``incoming_emails`` rows are prepared before the clock starts; the rows
written are deleted afterwards so the data set stays as generated.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg2
from sqlalchemy import Engine, text

from reportlib import create_processing_report, create_processing_reports, demo, jsoncodec
from reportlib.db import make_engine, make_sessionmaker
from reportlib.service import ReportInput

HANDWRITTEN_UPSERT = """
INSERT INTO processing_reports
    (email_id, extracted_fields, missing_fields, overall_confidence, confidence_route,
     needs_review, review_reason, intent, sources_processed, total_tokens_used,
     processing_time_ms)
SELECT %(email_id)s, %(extracted_fields)s::jsonb, %(missing_fields)s::jsonb,
       %(overall_confidence)s, %(confidence_route)s, %(needs_review)s, %(review_reason)s,
       %(intent)s, %(sources_processed)s, %(total_tokens_used)s, %(processing_time_ms)s
WHERE EXISTS (SELECT 1 FROM incoming_emails WHERE id = %(email_id)s)
ON CONFLICT (email_id) DO UPDATE SET
    extracted_fields = EXCLUDED.extracted_fields,
    missing_fields = EXCLUDED.missing_fields,
    overall_confidence = EXCLUDED.overall_confidence,
    confidence_route = EXCLUDED.confidence_route,
    needs_review = EXCLUDED.needs_review,
    review_reason = EXCLUDED.review_reason,
    intent = EXCLUDED.intent,
    sources_processed = EXCLUDED.sources_processed,
    total_tokens_used = EXCLUDED.total_tokens_used,
    processing_time_ms = EXCLUDED.processing_time_ms,
    created_at = statement_timestamp()
RETURNING id
"""

PLAIN_TABLE = "bench_plain_reports"
PLAIN_TABLE_DDL = f"""
CREATE TABLE {PLAIN_TABLE} (
    id serial PRIMARY KEY,
    email_id integer NOT NULL UNIQUE REFERENCES incoming_emails (id),
    created_at timestamp with time zone NOT NULL DEFAULT statement_timestamp(),
    extracted_fields jsonb NOT NULL,
    missing_fields jsonb,
    overall_confidence double precision NOT NULL,
    confidence_route varchar(20) NOT NULL,
    needs_review boolean NOT NULL DEFAULT false,
    review_reason varchar(100),
    intent varchar(50),
    sources_processed integer NOT NULL DEFAULT 1,
    total_tokens_used integer NOT NULL DEFAULT 0,
    processing_time_ms integer,
    review_closed_at timestamp with time zone
)
"""
PLAIN_UPSERT = HANDWRITTEN_UPSERT.replace(
    "INSERT INTO processing_reports", f"INSERT INTO {PLAIN_TABLE}"
)
DEFAULT_WORKER_COUNTS = (1, 4, 16)
WRITERS = ("service", "plain", "handwritten", "driver")

KEY_FIELDS = ("client_name", "creditor_name", "debt_amount", "reference_numbers")


def handwritten_params(report: ReportInput) -> dict[str, Any]:
    """What a hand-written writer sends: the report shaped and encoded, nothing checked."""
    data = report.extracted_data
    checkpoints = report.agent_checkpoints or {}
    extraction = checkpoints.get("agent_2_extraction", {})
    metadata = data.get("extraction_metadata", {})
    confidences = extraction.get("field_confidence", {})
    fields = {
        name: {
            "value": value,
            "confidence": confidences.get(name, metadata.get(name, {}).get("confidence", 0.5)),
            "source": metadata.get(name, {}).get("source", "unknown"),
        }
        for name, value in data.items()
        if name != "extraction_metadata" and value not in (None, "", [], {})
    }
    return {
        "email_id": report.email_id,
        "extracted_fields": jsoncodec.dumps(fields),
        "missing_fields": jsoncodec.dumps(
            [name for name in KEY_FIELDS if data.get(name) in (None, "", [], {})]
        ),
        "overall_confidence": report.overall_confidence,
        "confidence_route": report.confidence_route,
        "needs_review": report.needs_review,
        "review_reason": report.review_reason,
        "intent": checkpoints.get("agent_1_intent", {}).get("intent"),
        "sources_processed": extraction.get("sources_processed", 1),
        "total_tokens_used": extraction.get("total_tokens_used", 0),
        "processing_time_ms": report.processing_time_ms,
    }


@dataclass
class IngestResult:
    """Reports per second of each writer per round, and the batch figure."""

    workers: int
    reports_per_round: int
    rounds: dict[str, list[float]] = field(default_factory=dict)
    # threads -> writer -> reports/s per round ("service" and "plain")
    scaling: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    batch_reports: int = 0
    batch_per_s: float = 0.0
    batch_size: int = 0

    def median(self, writer: str) -> float:
        return statistics.median(self.rounds[writer])

    def scaling_medians(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for threads in sorted(self.scaling):
            med = {w: statistics.median(v) for w, v in self.scaling[threads].items()}
            out[str(threads)] = {
                "service": round(med["service"], 1),
                "plain": round(med["plain"], 1),
                "service_vs_plain": round(med["service"] / med["plain"], 3),
            }
        return out

    def as_dict(self) -> dict[str, Any]:
        medians = {writer: round(self.median(writer), 1) for writer in self.rounds}
        scaling = self.scaling_medians()
        return {
            "workers": self.workers,
            "reports_per_round": self.reports_per_round,
            "rounds_per_s": {k: [round(v, 1) for v in vs] for k, vs in self.rounds.items()},
            "median_per_s": medians,
            "service_vs_plain": round(self.median("service") / self.median("plain"), 3),
            "service_vs_handwritten": round(self.median("service") / self.median("handwritten"), 3),
            "handwritten_vs_driver": round(self.median("handwritten") / self.median("driver"), 3),
            "scaling": scaling,
            "worst_service_vs_plain": min(s["service_vs_plain"] for s in scaling.values()),
            "batch_reports": self.batch_reports,
            "batch_size": self.batch_size,
            "batch_per_s": round(self.batch_per_s, 1),
        }


class _Ids:
    def __init__(self, start: int) -> None:
        self.next = start

    def take(self, count: int) -> int:
        first, self.next = self.next, self.next + count
        return first


def _inputs(engine: Engine, ids: _Ids, count: int, seed: int) -> list[ReportInput]:
    first = ids.take(count)
    emails = list(demo.generate_demo_emails(count=count, seed=seed, first_email_id=first))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO incoming_emails (id, subject, sender, received_at) "
                "VALUES (:id, :subject, :sender, :received_at)"
            ),
            [
                {"id": e.email_id, "subject": e.subject, "sender": e.sender,
                 "received_at": e.received_at}
                for e in emails
            ],
        )
    return [e.report for e in emails]


def _threaded(items: Sequence[Any], workers: int, work: Callable[[Sequence[Any]], None]) -> float:
    """Run ``work`` on ``workers`` interleaved slices at once; reports per second."""
    slices = [items[i::workers] for i in range(workers)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers + 1)

    def target(part: Sequence[Any]) -> None:
        barrier.wait()
        try:
            work(part)
        except BaseException as exc:  # surfaced below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(part,)) for part in slices]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return len(items) / elapsed


def _service_writer(engine: Engine) -> Callable[[Sequence[ReportInput]], None]:
    sessions = make_sessionmaker(engine)

    def work(part: Sequence[ReportInput]) -> None:
        for report in part:
            with sessions() as session:
                create_processing_report(
                    session,
                    report.email_id,
                    report.extracted_data,
                    report.agent_checkpoints or {},
                    report.overall_confidence,
                    report.confidence_route,
                    report.needs_review,
                    report.review_reason,
                    report.processing_time_ms,
                )
                session.commit()

    return work


def _handwritten_writer(
    engine: Engine, statement: str = HANDWRITTEN_UPSERT
) -> Callable[[Sequence[ReportInput]], None]:
    sessions = make_sessionmaker(engine)

    def work(part: Sequence[ReportInput]) -> None:
        for report in part:
            with sessions() as session:
                session.connection().exec_driver_sql(
                    statement, handwritten_params(report)
                ).scalar_one()
                session.commit()

    return work


def _driver_writer(dsn: str) -> Callable[[Sequence[ReportInput]], None]:
    def work(part: Sequence[ReportInput]) -> None:
        connection = psycopg2.connect(dsn)
        try:
            with connection.cursor() as cursor:
                for report in part:
                    cursor.execute(HANDWRITTEN_UPSERT, handwritten_params(report))
                    cursor.fetchone()
                    connection.commit()
        finally:
            connection.close()

    return work


def create_plain_table(engine: Engine) -> None:
    """(Re)create the plain comparison table, empty."""
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {PLAIN_TABLE}"))
        connection.execute(text(PLAIN_TABLE_DDL))
        connection.execute(
            text(f"CREATE INDEX ix_{PLAIN_TABLE}_created_at ON {PLAIN_TABLE} (created_at)")
        )


def run_ingest(
    url: Any,
    *,
    first_email_id: int,
    workers: int = 8,
    worker_counts: Sequence[int] = DEFAULT_WORKER_COUNTS,
    reports_per_round: int = 3000,
    rounds: int = 3,
    batch_reports: int = 50_000,
    batch_size: int = 10_000,
    seed: int = 7,
    log: Callable[[str], None] = print,
) -> IngestResult:
    """Measure the writers and the batch API; delete what they wrote afterwards."""
    counts = sorted({workers, *worker_counts})
    # A pool as large as the largest thread count, so no thread waits for or churns
    # connections.
    engine = make_engine(url, pool_size=max(counts), max_overflow=0)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    ids = _Ids(first_email_id)
    result = IngestResult(workers=workers, reports_per_round=reports_per_round)
    writers: dict[str, Callable[[Sequence[ReportInput]], None]] = {
        "service": _service_writer(engine),
        "plain": _handwritten_writer(engine, PLAIN_UPSERT),
        "handwritten": _handwritten_writer(engine),
        "driver": _driver_writer(dsn),
    }
    create_plain_table(engine)
    try:
        # Warm the pool, the plan caches and the code paths before timing.
        for writer in writers.values():
            _threaded(_inputs(engine, ids, max(counts) * 20, seed), max(counts), writer)
        for threads in counts:
            names = list(writers) if threads == workers else ["service", "plain"]
            for round_number in range(rounds):
                for name in names:
                    inputs = _inputs(engine, ids, reports_per_round, seed + round_number)
                    rate = _threaded(inputs, threads, writers[name])
                    result.scaling.setdefault(threads, {}).setdefault(name, []).append(rate)
                    if threads == workers:
                        result.rounds.setdefault(name, []).append(rate)
                    log(f"  {threads:>2} threads, round {round_number + 1} {name:<12} "
                        f"{rate:8.0f} reports/s")
            med = {name: statistics.median(result.scaling[threads][name])
                   for name in ("service", "plain")}
            log(f"  {threads:>2} threads: create_processing_report {med['service']:.0f}/s, "
                f"plain table {med['plain']:.0f}/s: {100 * med['service'] / med['plain']:.0f}%")
        for threads in list(result.scaling):
            result.scaling[threads] = {
                name: rates for name, rates in result.scaling[threads].items()
                if name in ("service", "plain")
            }
        if batch_reports:
            _measure_batch(engine, ids, result, batch_reports, batch_size, seed, log)
    finally:
        _cleanup(engine, first_email_id)
        engine.dispose()
    return result


def _measure_batch(
    engine: Engine,
    ids: _Ids,
    result: IngestResult,
    batch_reports: int,
    batch_size: int,
    seed: int,
    log: Callable[[str], None],
) -> None:
    sessions = make_sessionmaker(engine)
    inputs = _inputs(engine, ids, batch_reports, seed + 99)
    started = time.perf_counter()
    for start in range(0, len(inputs), batch_size):
        with sessions() as session:
            create_processing_reports(session, inputs[start : start + batch_size])
            session.commit()
    result.batch_per_s = len(inputs) / (time.perf_counter() - started)
    log(f"  batch create_processing_reports: {result.batch_per_s:8.0f} reports/s")
    result.batch_reports, result.batch_size = batch_reports, batch_size


def run_batch(
    url: Any,
    *,
    first_email_id: int,
    batch_reports: int = 50_000,
    batch_size: int = 10_000,
    rounds: int = 1,
    seed: int = 7,
    log: Callable[[str], None] = print,
) -> list[float]:
    """Only the batch API, ``rounds`` times (reports/s each); delete what it wrote."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    ids = _Ids(first_email_id)
    rates = []
    try:
        for round_number in range(rounds):
            result = IngestResult(workers=1, reports_per_round=0)
            _measure_batch(
                engine, ids, result, batch_reports, batch_size, seed + round_number, log
            )
            rates.append(result.batch_per_s)
    finally:
        _cleanup(engine, first_email_id)
        engine.dispose()
    return rates


def _cleanup(engine: Engine, first_email_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        connection.execute(text(f"DROP TABLE IF EXISTS {PLAIN_TABLE}"))
        connection.execute(
            text("DELETE FROM processing_reports WHERE email_id >= :first"),
            {"first": first_email_id},
        )
        connection.execute(
            text("DELETE FROM incoming_emails WHERE id >= :first"), {"first": first_email_id}
        )


def ingest_first_email_id(engine: Engine) -> int:
    """Ingest uses email ids well above the generated ones."""
    with engine.connect() as connection:
        top = connection.execute(text("SELECT coalesce(max(id), 0) FROM incoming_emails")).scalar()
    return int(top or 0) + 1_000_000


__all__ = [
    "HANDWRITTEN_UPSERT",
    "PLAIN_UPSERT",
    "IngestResult",
    "create_plain_table",
    "handwritten_params",
    "run_ingest",
]
