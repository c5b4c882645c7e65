"""The rollups equal the raw rows after any sequence of writes, on both backends.

Each check compares the dashboard's numbers read through the rollups with the same numbers
read with every day marked dirty (that is, computed from the raw rows by the same SQL),
and runs :func:`reportlib.rollups.verify_rollups`, which compares the stored rows group by
group. ``tests/test_queries.py`` separately checks every number against pandas.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from reportlib import migrate, queries, rollups
from reportlib.db import make_engine, session_scope
from reportlib.dialect import utc_date, utcnow
from reportlib.models import (
    ROLLUP_TABLES,
    ProcessingReport,
    ReviewDecision,
    rollup_dirty_days,
    rollup_reports,
)
from reportlib.queries import ReportFilter
from reportlib.service import create_processing_report, ensure_incoming_email
from tests.conftest import PostgresDatabases
from tests.factories import checkpoints, make_report

UTC = dt.UTC
TODAY = dt.date(2026, 6, 30)
NOW = dt.datetime(2026, 6, 30, 15, 30, tzinfo=UTC)
INTENTS = ("debt_claim", "payment_plan", "dispute", None)
ROUTES = ("high", "medium", "low")
KEY_FIELDS = ("client_name", "creditor_name", "debt_amount", "reference_numbers")
FILTERS = [
    ReportFilter.last_days(30, today=TODAY),
    ReportFilter(TODAY - dt.timedelta(days=20), TODAY, ("debt_claim", queries.NONE_LABEL)),
    ReportFilter(TODAY - dt.timedelta(days=9), TODAY - dt.timedelta(days=2), (), ("low",)),
]


def _extracted(rng: random.Random) -> dict[str, Any]:
    data: dict[str, Any] = {"extraction_metadata": {}}
    for name in KEY_FIELDS:
        if rng.random() < 0.3:
            continue
        data[name] = "x" if name != "reference_numbers" else ["R-1"]
        data["extraction_metadata"][name] = {
            "confidence": rng.choice([0.05, 0.29, 0.5, 0.8, round(rng.random(), 2), rng.random()]),
            "source": "email_body",
        }
    return data


def _write(db: Session, rng: random.Random, email_id: int) -> None:
    """One report for ``email_id`` (new or a re-processing), backdated to a random day."""
    flagged = rng.random() < 0.4
    make_report(
        db,
        email_id=email_id,
        extracted_data=_extracted(rng),
        agent_checkpoints=checkpoints(intent=rng.choice(INTENTS)),
        overall_confidence=rng.choice([0.0, 0.29, 0.57, 0.8, 1.0, rng.random()]),
        confidence_route=rng.choice(ROUTES),
        needs_review=flagged,
        review_reason="low_confidence" if flagged else None,
        processing_time_ms=None if rng.random() < 0.1 else rng.randrange(0, 20_000),
        created_at=dt.datetime.combine(
            TODAY - dt.timedelta(days=rng.randrange(40)), dt.time.min, tzinfo=UTC
        )
        + dt.timedelta(seconds=rng.uniform(0, 86_399)),
    )


def _decide(db: Session, rng: random.Random) -> None:
    report = db.scalars(
        select(ProcessingReport).where(ProcessingReport.needs_review).order_by(func.random())
    ).first()
    if report is None:
        return
    db.add(
        ReviewDecision(
            report_id=report.id,
            email_id=report.email_id,
            reviewer="reviewer-r",
            decided_at=report.created_at + dt.timedelta(hours=rng.uniform(-10, 300)),
            report_created_at=report.created_at,
            outcome="approved",
        )
    )
    db.flush()


def _numbers(db: Session, filters: list[ReportFilter] = FILTERS) -> dict[str, Any]:
    """Every rollup-served figure of the dashboard for the test filters."""
    out: dict[str, Any] = {}
    for index, flt in enumerate(filters):
        out[f"{index}:kpis"] = dataclasses.astuple(queries.overview_kpis(db, flt=flt, now=NOW))
        out[f"{index}:intents"] = queries.list_intents(db, flt=flt)
        out[f"{index}:count"] = queries.count_reports(db, flt=flt)
        what_if = queries.route_threshold_what_if(db, flt=flt, threshold=0.57)
        out[f"{index}:what_if"] = dataclasses.astuple(what_if)
        for name in (
            "daily_trends",
            "confidence_histogram",
            "field_confidence_summary",
            "confidence_by_intent",
            "missing_field_frequency",
            "missing_fields_daily",
            "missing_fields_by_intent",
            "missing_field_cooccurrence",
            "missing_count_distribution",
            "review_queue_reasons",
        ):
            out[f"{index}:{name}"] = getattr(queries, name)(db, flt=flt)
        out[f"{index}:field_histogram"] = queries.field_confidence_histogram(
            db, flt=flt, fields=KEY_FIELDS
        )
    return out


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        return actual == pytest.approx(expected, rel=1e-9)
    if isinstance(expected, tuple) and isinstance(actual, tuple):
        return len(actual) == len(expected) and all(map(_same, actual, expected))
    return bool(actual == expected)


def _assert_same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(actual[key], value, check_exact=False, rtol=1e-9)
        else:
            assert _same(actual[key], value), (key, actual[key], value)


def _raw_numbers(db: Session, filters: list[ReportFilter] = FILTERS) -> dict[str, Any]:
    """The same figures with every day dirty, i.e. from the raw rows; nothing is kept."""
    savepoint = db.begin_nested()
    rollups.mark_all_days_dirty(db)
    numbers = _numbers(db, filters)
    savepoint.rollback()
    return numbers


@pytest.mark.parametrize("seed_value", [1, 2])
def test_random_writes_rewrites_and_decisions_keep_rollups_exact(
    db: Session, seed_value: int
) -> None:
    rng = random.Random(seed_value)
    emails = list(range(900_000 + seed_value * 1000, 900_000 + seed_value * 1000 + 40))
    for email_id in emails:
        ensure_incoming_email(db, email_id, subject="Mahnung", sender="x@example.test")
    for step in range(120):
        action = rng.random()
        if action < 0.7:
            _write(db, rng, rng.choice(emails))  # new reports and re-processings alike
        elif action < 0.9:
            _decide(db, rng)
        else:
            rollups.refresh_rollups(db, max_days=rng.choice([None, 1, 3]))
        if step % 40 == 39:
            # Between refreshes some days are dirty and others are not.
            _assert_same(_numbers(db), _raw_numbers(db))
    assert rollups.verify_rollups(db) == []
    rollups.refresh_rollups(db)
    assert rollups.dirty_days(db) == []
    assert rollups.verify_rollups(db) == []
    _assert_same(_numbers(db), _raw_numbers(db))


def test_recent_hours_are_read_and_kept_by_the_hour(db: Session) -> None:
    # The database's own today: recent days are handled by the hour.
    today = rollups.read_dirty(db).today or db.scalar(select(utc_date(utcnow())))
    assert isinstance(today, dt.date)
    rng = random.Random(11)
    emails = list(range(800_000, 800_030))
    for email_id in emails:
        ensure_incoming_email(db, email_id)

    def at(day_offset: int, hour: int) -> dt.datetime:
        day = today - dt.timedelta(days=day_offset)
        return dt.datetime.combine(day, dt.time(hour), tzinfo=UTC) + dt.timedelta(
            minutes=rng.randrange(60)
        )

    def write(email_id: int, created_at: dt.datetime) -> None:
        flagged = rng.random() < 0.5
        make_report(
            db,
            email_id=email_id,
            extracted_data=_extracted(rng),
            agent_checkpoints=checkpoints(intent=rng.choice(INTENTS)),
            overall_confidence=rng.random(),
            confidence_route=rng.choice(ROUTES),
            needs_review=flagged,
            processing_time_ms=rng.randrange(0, 20_000),
            created_at=created_at,
        )

    for index, email_id in enumerate(emails[:24]):
        write(email_id, at(index % 4, (index * 5) % 24))  # today, yesterday and older
    filters = [ReportFilter(today - dt.timedelta(days=5), today)]
    assert rollups.refresh_rollups(db)
    r = rollup_reports.c
    hours_of = lambda day: set(  # noqa: E731
        db.scalars(select(r.hour).where(r.day == day).distinct())
    )
    assert None not in hours_of(today) and hours_of(today)  # today: hourly rows
    assert hours_of(today - dt.timedelta(days=3)) == {None}  # older: whole-day rows

    # Change two hours of today: a new report, and a re-processing moving one across hours.
    write(emails[24], at(0, 3))
    write(emails[0], at(0, 7))
    changed = rollups.read_dirty(db)
    # make_report writes at now, then backdates: the current hour is marked as well.
    assert changed.by_hour(today) and {0, 3, 7} <= changed.hours[today]
    assert None not in changed.hours[today]
    _assert_same(_numbers(db, filters), _raw_numbers(db, filters))

    # Yesterday changes as a whole (it is no longer read by the hour).
    write(emails[1], at(1, 23))
    assert not rollups.read_dirty(db).by_hour(today - dt.timedelta(days=1))
    _assert_same(_numbers(db, filters), _raw_numbers(db, filters))
    assert rollups.refresh_rollups(db)
    assert rollups.verify_rollups(db) == []
    _assert_same(_numbers(db, filters), _raw_numbers(db, filters))

    # Hourly rows of a day that is no longer recent are folded into whole-day rows.
    old_day = today - dt.timedelta(days=3)
    rollups._rebuild_day(db, old_day, frozenset({None}), old_day)  # as if it were today
    assert None not in hours_of(old_day)
    assert old_day in rollups.refresh_rollups(db)
    assert hours_of(old_day) == {None}
    assert rollups.verify_rollups(db) == []
    _assert_same(_numbers(db, filters), _raw_numbers(db, filters))


def test_a_write_is_visible_on_the_next_read_without_a_refresh(db: Session) -> None:
    make_report(db, created_at=NOW - dt.timedelta(hours=1))
    rollups.refresh_rollups(db)
    flt = ReportFilter(TODAY, TODAY)
    before = queries.count_reports(db, flt=flt)
    report = make_report(db, created_at=NOW - dt.timedelta(minutes=5), needs_review=True)
    assert TODAY in rollups.dirty_days(db)
    assert queries.count_reports(db, flt=flt) == before + 1
    # Re-processing moves it to another day: it leaves today and arrives there.
    db.execute(
        update(ProcessingReport)
        .where(ProcessingReport.id == report.id)
        .values(created_at=NOW - dt.timedelta(days=3))
    )
    assert queries.count_reports(db, flt=flt) == before
    three_days_ago = ReportFilter(TODAY - dt.timedelta(days=3), TODAY - dt.timedelta(days=3))
    assert queries.count_reports(db, flt=three_days_ago) >= 1


def test_verify_finds_a_tampered_rollup_row(db: Session) -> None:
    make_report(db, created_at=NOW - dt.timedelta(days=2))
    rollups.refresh_rollups(db)
    assert rollups.verify_rollups(db) == []
    db.execute(update(rollup_reports).values(reports=rollup_reports.c.reports + 1))
    differences = rollups.verify_rollups(db)
    assert differences and {d.table for d in differences} == {"rollup_reports"}


def test_rebuild_recovers_from_lost_rollup_rows(
    engine: Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A database of its own (dropped after the session): rebuild commits per chunk.
    url = (
        f"sqlite:///{tmp_path / 'rebuild.db'}"
        if engine.dialect.name == "sqlite"
        else request.getfixturevalue("pg_databases").create("reportlib_rebuild")
    )
    own = make_engine(url)
    migrate.upgrade(own)
    rng = random.Random(9)
    with session_scope(own) as db:
        for email_id in range(1, 30):
            ensure_incoming_email(db, email_id)
            _write(db, rng, email_id)
    with session_scope(own) as db:
        rollups.refresh_rollups(db)
        expected = _numbers(db)
        db.execute(delete(rollup_reports))
        assert rollups.verify_rollups(db)
    seen: list[tuple[int, int]] = []
    rebuilt = rollups.rebuild_rollups(
        lambda: Session(own), chunk_days=7, progress=lambda d, t: seen.append((d, t))
    )
    assert rebuilt == seen[-1][0] == seen[-1][1] > 7 and seen[0][0] == 0
    with Session(own) as db:
        assert rollups.dirty_days(db) == [] and rollups.verify_rollups(db) == []
        _assert_same(_numbers(db), expected)
    own.dispose()


def test_review_closed_at_follows_decisions_and_reprocessing(db: Session) -> None:
    created = NOW - dt.timedelta(days=1)
    report = make_report(db, created_at=created, needs_review=True)
    db.add(
        ReviewDecision(
            report_id=report.id,
            email_id=report.email_id,
            reviewer="r",
            decided_at=created + dt.timedelta(hours=5),
            report_created_at=created,
            outcome="approved",
        )
    )
    db.flush()
    db.refresh(report)
    assert report.review_closed_at == created + dt.timedelta(hours=5)
    create_processing_report(
        db, report.email_id, {"client_name": "x"}, checkpoints(), 0.4, "low", True
    )
    db.refresh(report)
    assert report.review_closed_at is None
    snapshot = queries.queue_snapshot(db, as_of=created + dt.timedelta(hours=4))
    later = queries.queue_snapshot(db, as_of=created + dt.timedelta(hours=6))
    assert snapshot.size >= 0 and later.size >= 0


# ---------------------------------------------------------------------------------------
# Concurrency: 16 writer processes upsert overlapping emails across days
# ---------------------------------------------------------------------------------------

WRITERS = 16
WRITES_PER_PROCESS = 60
EMAILS = list(range(1, 121))


def _writer(url: str, index: int, start: Any, results: Any) -> None:
    rng = random.Random(500 + index)
    engine = make_engine(url)
    errors: list[str] = []
    start.wait(timeout=60)
    for _ in range(WRITES_PER_PROCESS):
        try:
            with session_scope(engine) as db:
                report = create_processing_report(
                    db,
                    rng.choice(EMAILS),
                    _extracted(rng),
                    checkpoints(intent=rng.choice(INTENTS)),
                    rng.random(),
                    rng.choice(ROUTES),
                    rng.random() < 0.4,
                    None,
                    rng.randrange(0, 20_000),
                )
                if rng.random() < 0.5:  # spread over days, as re-processing does
                    db.execute(
                        update(ProcessingReport)
                        .where(ProcessingReport.id == report.id)
                        .values(created_at=NOW - dt.timedelta(days=rng.randrange(5)))
                    )
            if index % 4 == 0 and rng.random() < 0.2:
                rollups.refresh_with_retries(lambda: Session(engine), max_days=2)
        except Exception as error:  # reported by class: the test expects none
            errors.append(f"{type(error).__name__}: {str(error).splitlines()[0][:120]}")
    engine.dispose()
    results.put({"index": index, "errors": errors})


@pytest.mark.postgres
def test_sixteen_concurrent_writers_leave_rollups_equal_to_raw_rows(pg_databases: Any) -> None:
    url = pg_databases.create("reportlib_rollup_concurrency")
    engine = make_engine(url)
    migrate.upgrade(engine)
    with session_scope(engine) as db:
        for email_id in EMAILS:
            ensure_incoming_email(db, email_id)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(WRITERS)
    results = context.Queue()
    processes = [
        context.Process(target=_writer, args=(url, index, start, results))
        for index in range(WRITERS)
    ]
    for process in processes:
        process.start()
    outcome = [results.get(timeout=240) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert [r["errors"] for r in outcome] == [[] for _ in outcome]
    result = subprocess.run(
        [sys.executable, "-m", "reportlib", "rollups", "verify"],
        env={**_env(), "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr  # clean days agree even before a refresh
    with session_scope(engine) as db:
        rollups.refresh_rollups(db)
    with Session(engine) as db:
        assert rollups.dirty_days(db) == []
        assert rollups.verify_rollups(db) == []
        assert db.scalar(select(func.count()).select_from(ProcessingReport)) == len(EMAILS)
    engine.dispose()


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reportlib", *args],
        env={**_env(), "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _migrated_with_reports(url: str, *, emails: int, seed: int) -> Engine:
    """Migrate ``url`` through the command line and write reports for ``emails`` emails."""
    assert _cli(url, "migrate").returncode == 0
    engine = make_engine(url)
    rng = random.Random(seed)
    with session_scope(engine) as db:
        for email_id in range(1, emails + 1):
            ensure_incoming_email(db, email_id)
            _write(db, rng, email_id)
    return engine


def test_cli_refresh_verify_rebuild_with_progress(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = _migrated_with_reports(url, emails=24, seed=4)
    refreshed = _cli(url, "rollups", "refresh", "--chunk-days", "5")
    assert refreshed.returncode == 0, refreshed.stderr
    assert "refreshed: 5/" in refreshed.stdout and "rollups refreshed:" in refreshed.stdout
    assert _cli(url, "rollups", "verify").returncode == 0
    with session_scope(engine) as db:
        db.execute(update(rollup_reports).values(tokens=rollup_reports.c.tokens + 7))
    broken = _cli(url, "rollups", "verify")
    assert broken.returncode == 1 and "rollup_reports" in broken.stderr
    rebuilt = _cli(url, "rollups", "rebuild", "--chunk-days", "10")
    assert rebuilt.returncode == 0 and "rebuilt: 0/" in rebuilt.stdout
    assert _cli(url, "rollups", "verify").returncode == 0
    with Session(engine) as db:
        assert db.scalar(select(func.count()).select_from(rollup_dirty_days)) == 0
        db.execute(insert(rollup_dirty_days).values(day=TODAY))
        db.rollback()
    engine.dispose()


def test_cli_rebuild_vacuums_the_rollups_on_postgresql(pg_databases: PostgresDatabases) -> None:
    """After a rebuild the rollup tables are vacuumed and analyzed, so reads are
    index-only at once, whether or not autovacuum runs on the server."""
    pg_url = pg_databases.create("reportlib_cli_vacuum")
    engine = _migrated_with_reports(pg_url, emails=5, seed=5)
    rebuilt = _cli(pg_url, "rollups", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "vacuumed: 7/7 rollup tables" in rebuilt.stdout
    names = [table.name for table in (*ROLLUP_TABLES, rollup_dirty_days)]
    with engine.connect() as connection:
        unvacuumed = (
            connection.execute(
                text(
                    "SELECT relname FROM pg_stat_user_tables "
                    "WHERE relname = ANY(:names) AND (last_vacuum IS NULL OR last_analyze IS NULL)"
                ),
                {"names": names},
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert unvacuumed == []
