"""A retention purge in batches while the pipeline keeps writing: how long a writer waits.

``python -m bench.erase --database-url URL --retention-days 90`` runs one writer thread
(one report per transaction, as the pipeline writes) for a few seconds alone, then through
a batch purge (:func:`reportlib.lifecycle.purge_expired`), and prints the purge's
throughput and the writer's: writes per second before and during the purge, and its
longest wait (the slowest write transaction) before and during. A share of the writes
re-process old emails, whose rows the purge is redacting, so a writer that needs a row
the purge holds is measured too.

The database must be migrated and carry the harness's marker table (``bench_meta``, as
``python -m bench --create-db`` makes it): a purge redacts values for good, so the module
refuses any other database. ``--seed-reports N`` first writes N demo reports over 120
days (for a small smoke run on an empty database); without it the database's own reports
are purged.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, func, inspect, select

from bench.database import MARKER_TABLE
from reportlib import create_processing_report, ensure_incoming_email
from reportlib.db import make_engine, make_sessionmaker, session_scope
from reportlib.lifecycle import DEFAULT_BATCH_SIZE, RedactionCounts, purge_expired
from reportlib.models import IncomingEmail

ACTOR = "bench-erase"


@dataclass
class WriterLog:
    """Each write's start (seconds since the run began) and duration."""

    starts: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    errors: int = 0

    def between(self, start: float, end: float) -> list[float]:
        return [s for t, s in zip(self.starts, self.seconds, strict=True) if start <= t < end]


@dataclass
class EraseResult:
    """What one run measured (seconds and counts; no values)."""

    batch_size: int
    retention_days: int
    purged_reports: int
    purged_emails: int
    purged_decisions: int
    purged_verdicts: int
    purge_seconds: float
    purge_reports_per_s: float
    writes_before: int
    writes_during: int
    writes_per_s_before: float
    writes_per_s_during: float
    longest_wait_ms_before: float
    longest_wait_ms_during: float
    p99_wait_ms_during: float
    writer_errors: int


def _report(rng: random.Random) -> dict[str, Any]:
    return {
        "client_name": f"Bench Person {rng.randrange(10**6)}",
        "creditor_name": "Bench Creditor GmbH",
        "debt_amount": round(rng.uniform(10, 9000), 2),
        "reference_numbers": [f"AZ-{rng.randrange(10**8)}"],
    }


def _writer(
    engine: Engine,
    *,
    stop: threading.Event,
    log: WriterLog,
    origin: float,
    first_new_id: int,
    old_ids: int,
    reprocess_share: float,
    seed: int,
) -> None:
    rng = random.Random(seed)
    sessions = make_sessionmaker(engine)
    next_id = first_new_id
    while not stop.is_set():
        if old_ids and rng.random() < reprocess_share:
            email_id = rng.randint(1, old_ids)
        else:
            email_id, next_id = next_id, next_id + 1
        started = time.perf_counter()
        try:
            with sessions() as db, db.begin():
                ensure_incoming_email(db, email_id)
                create_processing_report(
                    db,
                    email_id,
                    _report(rng),
                    {"agent_1_intent": {"intent": "debt_claim", "confidence": 0.9}},
                    rng.random(),
                    rng.choice(("high", "medium", "low")),
                    False,
                    None,
                    rng.randrange(100, 5000),
                )
        except Exception:  # counted, never printed: the message may hold values
            log.errors += 1
            continue
        log.starts.append(started - origin)
        log.seconds.append(time.perf_counter() - started)


def run(
    url: str,
    *,
    retention_days: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    baseline_s: float = 3.0,
    reprocess_share: float = 0.1,
    seed_reports: int = 0,
    quiet: bool = False,
) -> EraseResult:
    """Measure one purge against ``url`` with a concurrent writer; see the module doc."""
    engine = make_engine(url)
    try:
        if not inspect(engine).has_table(MARKER_TABLE):
            raise SystemExit(f"refusing: the database has no {MARKER_TABLE} table")
        if seed_reports:
            from reportlib.demo import seed_demo
            from reportlib.demo_review import seed_review_history

            with session_scope(engine) as db:
                seed_demo(db, count=seed_reports, seed=7, days=120)
                seed_review_history(db, rng=random.Random(7))
        with engine.connect() as connection:
            top = int(connection.scalar(select(func.max(IncomingEmail.id))) or 0)
        log = WriterLog()
        stop = threading.Event()
        origin = time.perf_counter()
        writer = threading.Thread(
            target=_writer,
            kwargs={
                "engine": engine,
                "stop": stop,
                "log": log,
                "origin": origin,
                "first_new_id": top + 1_000_000,
                "old_ids": top,
                "reprocess_share": reprocess_share,
                "seed": 11,
            },
            daemon=True,
        )
        writer.start()
        time.sleep(baseline_s)
        purge_start = time.perf_counter() - origin
        last = [0.0]

        def progress(done: RedactionCounts, total: RedactionCounts) -> None:
            if not quiet and time.monotonic() - last[0] >= 5:
                last[0] = time.monotonic()
                print(f"purged {done.total}/{total.total} rows", file=sys.stderr, flush=True)

        counts = purge_expired(
            make_sessionmaker(engine),
            actor=ACTOR,
            retention_days=retention_days,
            batch_size=batch_size,
            progress=progress,
        )
        purge_end = time.perf_counter() - origin
        stop.set()
        writer.join(timeout=60)
    finally:
        engine.dispose()
    before = log.between(0.0, purge_start)
    during = log.between(purge_start, purge_end)
    seconds = max(purge_end - purge_start, 1e-9)
    return EraseResult(
        batch_size=batch_size,
        retention_days=retention_days,
        purged_reports=counts.reports,
        purged_emails=counts.emails,
        purged_decisions=counts.decisions,
        purged_verdicts=counts.verdicts,
        purge_seconds=round(seconds, 3),
        purge_reports_per_s=round(counts.reports / seconds, 1),
        writes_before=len(before),
        writes_during=len(during),
        writes_per_s_before=round(len(before) / max(purge_start, 1e-9), 1),
        writes_per_s_during=round(len(during) / seconds, 1),
        longest_wait_ms_before=round(max(before, default=0.0) * 1000, 1),
        longest_wait_ms_during=round(max(during, default=0.0) * 1000, 1),
        p99_wait_ms_during=round(
            statistics.quantiles(during, n=100)[98] * 1000 if len(during) >= 2 else 0.0, 1
        ),
        writer_errors=log.errors,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.erase", description=__doc__)
    parser.add_argument("--database-url", required=True, help="a migrated benchmark database")
    parser.add_argument("--retention-days", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--baseline-seconds", type=float, default=3.0)
    parser.add_argument("--reprocess-share", type=float, default=0.1)
    parser.add_argument("--seed-reports", type=int, default=0)
    args = parser.parse_args(argv)
    result = run(
        args.database_url,
        retention_days=args.retention_days,
        batch_size=args.batch_size,
        baseline_s=args.baseline_seconds,
        reprocess_share=args.reprocess_share,
        seed_reports=args.seed_reports,
    )
    print(
        f"purge: {result.purged_reports} reports in {result.purge_seconds:.1f} s "
        f"({result.purge_reports_per_s:,.0f} reports/s, batches of {result.batch_size}); "
        f"writer: {result.writes_per_s_before:,.0f} writes/s before, "
        f"{result.writes_per_s_during:,.0f} during; longest wait "
        f"{result.longest_wait_ms_before:.0f} ms before, "
        f"{result.longest_wait_ms_during:.0f} ms during (p99 {result.p99_wait_ms_during:.0f} ms); "
        f"writer errors {result.writer_errors}"
    )
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
