"""Databases for the dashboard tests: seeded with the demo generator plus hostile values.

Each database is its own SQLite file (or PostgreSQL database), migrated and committed
once, so AppTest and a ``streamlit run`` subprocess can read it through DATABASE_URL.
The browser fixtures and the server come from ``server.py``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Generator, Iterator

import pytest
from sqlalchemy.orm import Session

from reportlib import create_processing_report, ensure_incoming_email, migrate
from reportlib.db import make_engine
from reportlib.demo import seed_demo
from reportlib.demo_review import seed_review_history
from tests.dashboard.helpers import (
    HOSTILE_EMAIL_ID,
    HOSTILE_INTENT,
    HOSTILE_REASON,
    HOSTILE_SUBJECT,
    HOSTILE_VALUES,
    SeededDatabase,
)

# browser, page and playwright are the browser fixtures, for every dashboard test module:
# pytest finds them here by name.
from tests.dashboard.server import browser, page, playwright, running_logs  # noqa: F401


def _seed(url: str, now: dt.datetime) -> SeededDatabase:
    """Demo data of the 60 days before ``now`` (the ``demo_now`` fixture), plus one
    hostile report written at the database clock."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    with Session(engine) as session:
        seed_demo(session, count=400, seed=11, days=60, now=now)
        seed_review_history(session, rng=random.Random(5), now=now, share=0.6)
        ensure_incoming_email(
            session,
            HOSTILE_EMAIL_ID,
            subject=HOSTILE_SUBJECT,
            sender="<a href='javascript:alert(1)'>x</a>@example.test",
            received_at=now - dt.timedelta(hours=3),
        )
        metadata = {
            name: {"confidence": 0.4 + 0.1 * index, "source": "email_body"}
            for index, name in enumerate(HOSTILE_VALUES)
        }
        create_processing_report(
            session,
            HOSTILE_EMAIL_ID,
            {**HOSTILE_VALUES, "extraction_metadata": metadata},
            {
                "agent_1_intent": {"intent": HOSTILE_INTENT, "confidence": 0.9},
                "agent_2_extraction": {"sources_processed": 2, "total_tokens_used": 1234},
            },
            0.31,
            "low",
            True,
            HOSTILE_REASON,
            2468,
        )
        session.commit()
    return SeededDatabase(url=url, engine=engine, hostile_email_id=HOSTILE_EMAIL_ID)


@pytest.fixture(scope="session")
def seeded_sqlite(
    tmp_path_factory: pytest.TempPathFactory, demo_now: dt.datetime
) -> Iterator[SeededDatabase]:
    database = _seed(f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'seeded.db'}", demo_now)
    yield database
    database.engine.dispose()


@pytest.fixture(scope="session")
def seeded_postgres(pg_databases: object, demo_now: dt.datetime) -> Iterator[SeededDatabase]:
    url = pg_databases.create("reportlib_dashboard")  # type: ignore[attr-defined]
    database = _seed(url, demo_now)
    yield database
    database.engine.dispose()


@pytest.fixture(scope="session")
def empty_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard_empty') / 'empty.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def use_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Point the dashboard (through reportlib's settings) at a database URL."""

    def point(url: str) -> None:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.delenv("DASHBOARD_DATABASE_URL", raising=False)
        monkeypatch.delenv("SENTRY_DSN", raising=False)
        from reportlib.config import get_settings

        get_settings.cache_clear()

    yield point


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report holds the log of every server still running."""
    report = yield
    if report.failed:
        report.sections.extend(running_logs())
    return report
