"""The benchmark's own database: create, mark, migrate, drop, and empty PostgreSQL's caches.

The harness writes only into a database that carries its marker table (``bench_meta``),
which it creates together with the database. It never touches any other database on the
server, apart from connecting to ``postgres`` to run ``CREATE``/``DROP DATABASE`` for its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL

from reportlib import migrate
from reportlib.config import normalize_database_url

MARKER_TABLE = "bench_meta"
FLUSH_TABLE = "bench_cache_flush"
# A buffer's usage count goes up to 5, and each sweep of the clock takes one off: reading
# six times shared_buffers through the buffer cache evicts practically every other page.
FLUSH_FACTOR = 6


class NotABenchDatabaseError(RuntimeError):
    """The target database was not created by the harness; it refuses to write into it."""


def parse_url(raw: str | URL) -> URL:
    """A PostgreSQL URL with the psycopg2 driver; anything else is refused."""
    url = normalize_database_url(raw) if isinstance(raw, str) else raw
    if url.get_backend_name() != "postgresql":
        raise SystemExit("the benchmark needs PostgreSQL: pass a postgresql:// URL")
    if not url.database:
        raise SystemExit("the database URL must name a database")
    return url


def _admin_engine(url: URL) -> Engine:
    return create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")


def database_exists(url: URL) -> bool:
    admin = _admin_engine(url)
    try:
        with admin.connect() as connection:
            return bool(
                connection.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
                ).scalar()
            )
    finally:
        admin.dispose()


def create_database(url: URL) -> bool:
    """Create the database named by ``url`` with the marker table. False if it existed."""
    if database_exists(url):
        return False
    admin = _admin_engine(url)
    try:
        with admin.connect() as connection:
            name = str(url.database).replace('"', '""')
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    mark_bench_database(url)
    return True


def mark_bench_database(url: URL) -> None:
    """Declare an (empty, throwaway) database the harness's own, so it may write into it."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} "
                    "(key text PRIMARY KEY, value text NOT NULL)"
                )
            )
            connection.execute(
                text(
                    f"INSERT INTO {MARKER_TABLE} VALUES ('created_by', 'bench') "
                    "ON CONFLICT (key) DO NOTHING"
                )
            )
    finally:
        engine.dispose()


def is_bench_database(engine: Engine) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.execute(
                text("SELECT to_regclass(:name) IS NOT NULL"), {"name": MARKER_TABLE}
            ).scalar()
        )


def require_bench_database(engine: Engine) -> None:
    if not is_bench_database(engine):
        raise NotABenchDatabaseError(
            f"database {engine.url.database!r} has no {MARKER_TABLE} table: the harness only "
            "writes into databases it created (use --create-db with a new database name)"
        )


def drop_database(url: URL) -> None:
    """Drop the benchmark database (only if it carries the marker)."""
    engine = create_engine(url)
    try:
        require_bench_database(engine)
    finally:
        engine.dispose()
    admin = _admin_engine(url)
    try:
        with admin.connect() as connection:
            name = str(url.database).replace('"', '""')
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def migrate_database(engine: Engine) -> None:
    migrate.upgrade(engine)


def read_meta(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT key, value FROM {MARKER_TABLE}")).all()
    return {key: value for key, value in rows}


def write_meta(engine: Engine, values: dict[str, str]) -> None:
    with engine.begin() as connection:
        for key, value in values.items():
            connection.execute(
                text(
                    f"INSERT INTO {MARKER_TABLE} (key, value) VALUES (:k, :v) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                ),
                {"k": key, "v": value},
            )


@dataclass(frozen=True, slots=True)
class CacheFlush:
    """What one flush of shared_buffers did."""

    seconds: float
    shared_buffers_mb: float
    bench_pages_before: int
    bench_pages_after: int


class CacheFlusher:
    """Empties PostgreSQL's shared buffers of this database's pages, without a restart.

    The server is shared, so it cannot be restarted and the operating system's page cache
    cannot be dropped: "cold" here means PostgreSQL's own cache holds (almost) none of the
    benchmark's pages and the connection is new (empty catalog and plan caches), while the
    files are still in the OS page cache. Eviction works by reading a filler table of
    ``FLUSH_FACTOR`` x shared_buffers through the buffer cache with ``pg_prewarm``.
    """

    def __init__(self, engine: Engine, *, factor: float = FLUSH_FACTOR) -> None:
        self.engine = engine
        self.factor = factor
        self._ready = False
        self.shared_buffers_bytes = 0

    def _prepare(self) -> None:
        if self._ready:
            return
        with self.engine.begin() as connection:
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_buffercache"))
            self.shared_buffers_bytes = int(
                connection.execute(
                    text(
                        "SELECT setting::bigint * current_setting('block_size')::bigint "
                        "FROM pg_settings WHERE name = 'shared_buffers'"
                    )
                ).scalar_one()
            )
            wanted = int(self.shared_buffers_bytes * self.factor)
            have = connection.execute(
                text("SELECT coalesce(pg_relation_size(to_regclass(:t)), 0)"), {"t": FLUSH_TABLE}
            ).scalar_one()
            if have < wanted:
                connection.execute(text(f"DROP TABLE IF EXISTS {FLUSH_TABLE}"))
                # One 8 kB page per row (fillfactor 10 + a wide filler), so size is exact.
                connection.execute(
                    text(
                        f"CREATE UNLOGGED TABLE {FLUSH_TABLE} (id int, filler text) "
                        "WITH (fillfactor = 10, autovacuum_enabled = false)"
                    )
                )
                connection.execute(
                    text(f"ALTER TABLE {FLUSH_TABLE} ALTER COLUMN filler SET STORAGE PLAIN")
                )
                connection.execute(
                    text(
                        f"INSERT INTO {FLUSH_TABLE} "
                        "SELECT g, repeat('x', 900) FROM generate_series(1, :rows) g"
                    ),
                    {"rows": int(wanted // 8192)},
                )
        self._ready = True

    def bench_pages_cached(self) -> int:
        """Shared buffers currently holding pages of this database (the filler excluded)."""
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM pg_buffercache b "
                        "WHERE b.reldatabase = (SELECT oid FROM pg_database "
                        "                       WHERE datname = current_database()) "
                        "AND b.relfilenode <> pg_relation_filenode(:t)"
                    ),
                    {"t": FLUSH_TABLE},
                ).scalar_one()
            )

    def flush(self) -> CacheFlush:
        self._prepare()
        before = self.bench_pages_cached()
        started = time.perf_counter()
        with self.engine.connect() as connection:
            connection.execute(text("SELECT pg_prewarm(:t, 'buffer')"), {"t": FLUSH_TABLE})
            connection.rollback()
        seconds = time.perf_counter() - started
        return CacheFlush(
            seconds=seconds,
            shared_buffers_mb=self.shared_buffers_bytes / 2**20,
            bench_pages_before=before,
            bench_pages_after=self.bench_pages_cached(),
        )
