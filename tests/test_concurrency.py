"""Many writers upserting overlapping emails on PostgreSQL: one row each, no errors."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from reportlib import ProcessingReport, create_processing_report, ensure_incoming_email, migrate
from reportlib.db import make_engine, make_sessionmaker
from tests.conftest import PostgresDatabases
from tests.factories import checkpoints, extracted


def test_concurrent_upserts_leave_one_row_per_email(pg_databases: PostgresDatabases) -> None:
    engine = make_engine(pg_databases.create("reportlib_concurrency"), pool_size=8)
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    email_ids = list(range(1, 21))
    with sessions.begin() as db:
        for email_id in email_ids:
            ensure_incoming_email(db, email_id)

    def worker(seed: int) -> int:
        rng = random.Random(seed)
        written = 0
        for _ in range(60):
            email_id = rng.choice(email_ids)
            with sessions.begin() as db:
                create_processing_report(
                    db, email_id, extracted(), checkpoints(), rng.random(), "low", True, "w"
                )
            written += 1
        return written

    with ThreadPoolExecutor(max_workers=8) as pool:
        written = sum(pool.map(worker, range(8)))

    assert written == 480
    with sessions() as db:
        counts = db.execute(
            select(ProcessingReport.email_id, func.count()).group_by(ProcessingReport.email_id)
        ).all()
    assert sorted(counts) == [(email_id, 1) for email_id in email_ids]
    engine.dispose()
