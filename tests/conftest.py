"""Shared fixtures: real databases, built once by the migrations, rolled back per test.

Every service test runs on SQLite and on the real PostgreSQL server. Without PostgreSQL
(or Chromium) a developer's run skips those tests with a visible reason; under CI=true a
missing one fails the run.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from reportlib import migrate
from reportlib.config import get_settings
from reportlib.db import make_engine

# The replica tests' fixtures (a primary and a hot standby): tests/replica.py.
pytest_plugins = ["tests.replica"]

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--demo-now",
        metavar="ISO_TIME",
        default=None,
        help=(
            "Seed the demo databases as if it were this moment (UTC, not in the future), "
            "e.g. 2026-11-26T23:59:30Z: the suite then runs days after the seed and across "
            "a day boundary, which shows whether a test depends on the day it runs. "
            "Default: the moment the run starts."
        ),
    )


@pytest.fixture(scope="session")
def demo_now(request: pytest.FixtureRequest) -> dt.datetime:
    """The reference time the demo databases are seeded at (``--demo-now``, else now)."""
    now = dt.datetime.now(dt.UTC)
    raw = request.config.getoption("--demo-now")
    if raw is None:
        return now
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise pytest.UsageError(f"--demo-now {raw!r} is not an ISO date and time") from None
    if value.tzinfo is None:
        raise pytest.UsageError("--demo-now needs a time zone, e.g. a trailing Z")
    if value > now:
        raise pytest.UsageError("--demo-now must not be in the future")
    return value.astimezone(dt.UTC)


def require(available: bool, reason: str) -> None:
    """Skip on a developer's machine, fail under CI, when a real dependency is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _postgres_reachable() -> bool:
    try:
        engine = create_engine(
            make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg2"),
            connect_args={"connect_timeout": 3},
        )
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    return _postgres_reachable()


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class PostgresDatabases:
    """Creates throwaway databases on the shared server and drops them afterwards."""

    def __init__(self) -> None:
        self.admin = create_engine(
            make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg2"),
            isolation_level="AUTOCOMMIT",
        )
        self.created: list[str] = []

    def create(self, prefix: str = "reportlib_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as connection:
            for name in self.created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_databases(postgres_available: bool) -> Iterator[PostgresDatabases]:
    require(postgres_available, f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'reports.db'}"


@pytest.fixture(scope="session")
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_url(pg_databases: PostgresDatabases) -> str:
    return pg_databases.create()


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated engine, once per backend."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session joined to an outer transaction that is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            session.close()
            transaction.rollback()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    available = Path(CHROMIUM).exists() or shutil.which("chromium") is not None
    require(available, f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
