"""Smoke run of bench/erase.py: a batch purge while a writer keeps writing (timings are
printed by the benchmark, never asserted here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bench import erase
from reportlib import migrate
from reportlib.db import make_engine
from reportlib.models import AuditEvent, ProcessingReport
from tests.conftest import PostgresDatabases


@pytest.fixture(params=["sqlite", "postgresql"])
def bench_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'erase.db'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("pg_databases")
        url = databases.create("reportlib_bench_erase")
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def _mark(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE bench_meta (key TEXT, value TEXT)"))
    engine.dispose()


def test_refuses_a_database_without_the_marker(bench_url: str) -> None:
    with pytest.raises(SystemExit, match="refusing"):
        erase.run(bench_url, retention_days=30, baseline_s=0.1, quiet=True)


def test_a_writer_keeps_writing_through_a_batch_purge(bench_url: str) -> None:
    _mark(bench_url)
    result = erase.run(
        bench_url, retention_days=30, batch_size=40, baseline_s=1.0, seed_reports=300, quiet=True
    )
    assert result.purged_reports > 100 and result.purge_seconds > 0
    assert result.writes_before > 0 and result.writes_during > 0
    assert result.writer_errors == 0
    engine = make_engine(bench_url)
    with engine.connect() as connection:
        erased = connection.scalar(
            select(func.count()).where(ProcessingReport.values_erased_at.is_not(None))
        )
        audits = connection.scalar(select(func.count()).where(AuditEvent.action == "values_purged"))
    engine.dispose()
    # Writers re-processed some purged reports meanwhile, bringing values back.
    assert 0 < erased <= result.purged_reports and audits == 1
    assert erase.main(["--database-url", bench_url, "--baseline-seconds", "0.2"]) == 0
