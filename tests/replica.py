"""A PostgreSQL primary and a hot standby streaming from it, for the replica tests.

Both are clusters of their own, made with the machine's PostgreSQL tools on 127.0.0.1 and
free ports in a temporary directory: ``initdb`` for the primary (its own ``pg_hba.conf``
allows replication from 127.0.0.1, which the machine's shared server need not), then
``pg_basebackup -R`` for the standby, which streams the primary's WAL and replays it as
PostgreSQL's own replication does. Nothing of the machine's server is changed. Servers run
as the ``postgres`` user when the tests run as root (PostgreSQL refuses root).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from reportlib import create_processing_report, ensure_incoming_email, migrate
from reportlib.db import make_engine
from reportlib.demo import seed_demo
from reportlib.demo_review import seed_review_history
from reportlib.health import ReplicaLag, check_database

DATABASE = "reportlib_replica"


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's program directory, if it has what the pair needs."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        found = Path(candidate)
        if all((found / tool).exists() for tool in ("initdb", "pg_ctl", "pg_basebackup")):
            return found
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class StreamingPair:
    """A running primary and its hot standby."""

    bin_dir: Path
    root: Path
    primary_port: int
    standby_port: int

    @property
    def primary_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.primary_port}/{DATABASE}"

    @property
    def standby_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.standby_port}/{DATABASE}"

    def run(self, *command: str) -> None:
        subprocess.run(
            _as_postgres([str(self.bin_dir / command[0]), *command[1:]]),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, name: str, port: int) -> None:
        data = self.root / name
        self.run(
            "pg_ctl", "-D", str(data), "-l", str(self.root / f"{name}.log"), "-w", "-t", "60",
            "-o", f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1",
            "start",
        )  # fmt: skip

    def stop(self, name: str) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.run("pg_ctl", "-D", str(self.root / name), "-m", "immediate", "-w", "stop")

    def wait_for_replay(self, primary: Engine, standby: Engine, timeout_s: float = 30) -> None:
        """Return once the standby has replayed everything the primary has written."""
        with primary.connect() as connection:
            lsn = connection.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
        deadline = time.monotonic() + timeout_s
        while True:
            with standby.connect() as connection:
                done = connection.execute(
                    text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)"), {"lsn": lsn}
                ).scalar_one()
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby did not replay up to {lsn} in {timeout_s} s")
            time.sleep(0.05)


@contextlib.contextmanager
def streaming_pair(bin_dir: Path) -> Iterator[StreamingPair]:
    """Start a primary with an empty ``reportlib_replica`` database and a standby of it;
    stop both and remove their files afterwards."""
    root = Path(tempfile.mkdtemp(prefix="reportlib-replica-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    pair = StreamingPair(bin_dir, root, _free_port(), _free_port())
    try:
        pair.run(
            "initdb", "-D", str(root / "primary"), "-U", "postgres", "--auth=trust",
            "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        with (root / "primary" / "postgresql.conf").open("a") as conf:
            # A test server: durability is not needed, speed is.
            conf.write("\nfsync = off\nfull_page_writes = off\n")
        pair.start("primary", pair.primary_port)
        admin = create_engine(
            f"postgresql://postgres@127.0.0.1:{pair.primary_port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {DATABASE}"))
        admin.dispose()
        pair.run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(pair.primary_port), "-U", "postgres",
            "-D", str(root / "standby"), "-R", "-X", "stream", "--no-sync",
            "--checkpoint=fast",
        )  # fmt: skip
        pair.start("standby", pair.standby_port)
        yield pair
    finally:
        pair.stop("standby")
        pair.stop("primary")
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def seeded_streaming_pair(
    bin_dir: Path, *, now: dt.datetime, days: int = 45, count: int = 300
) -> Iterator[StreamingPair]:
    """:func:`streaming_pair`, its primary migrated and seeded with ``count`` demo reports
    over the ``days`` before ``now`` and a review history."""
    with streaming_pair(bin_dir) as pair:
        engine = make_engine(pair.primary_url)
        migrate.upgrade(engine)
        with Session(engine) as session:
            seed_demo(session, count=count, seed=31, days=days, now=now)
            seed_review_history(session, rng=random.Random(3), now=now, share=0.5)
            session.commit()
        engine.dispose()
        yield pair


# --------------------------------------------------------------------------- fixtures
# Registered for every test by tests/conftest.py (pytest_plugins): pair, primary, standby.

#: Email ids of reports written while replay is paused, above the demo's.
_next_email_id = iter(range(1_800_000_000, 1_900_000_000))


@pytest.fixture(scope="module")
def pair(demo_now: dt.datetime) -> Iterator[StreamingPair]:
    from tests.conftest import require  # this module is a plugin of tests/conftest.py

    bin_dir = postgres_bin_dir()
    require(
        bin_dir is not None,
        "PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup) are not installed",
    )
    assert bin_dir is not None
    # 25 days: every seeded item lies in the dashboard's default 30-day window.
    with seeded_streaming_pair(bin_dir, now=demo_now, days=25, count=240) as running:
        yield running


@pytest.fixture
def primary(pair: StreamingPair) -> Iterator[Engine]:
    engine = make_engine(pair.primary_url)
    yield engine
    engine.dispose()


@pytest.fixture
def standby(pair: StreamingPair, primary: Engine) -> Iterator[Engine]:
    engine = make_engine(pair.standby_url)
    pair.wait_for_replay(primary, engine)
    yield engine
    resume_replay(engine)
    engine.dispose()


def pause_replay(standby: Engine) -> None:
    with standby.connect() as connection:
        connection.execute(text("SELECT pg_wal_replay_pause()"))


def resume_replay(standby: Engine) -> None:
    with standby.connect() as connection:
        connection.execute(text("SELECT pg_wal_replay_resume()"))


def write_reports(primary: Engine, count: int) -> None:
    with Session(primary) as session:
        for _ in range(count):
            email_id = next(_next_email_id)
            ensure_incoming_email(session, email_id, subject="Mahnung", sender="a@example.test")
            create_processing_report(
                session,
                email_id,
                {"client_name": "Erika Muster", "debt_amount": 120.5},
                {"agent_1_intent": {"intent": "debt_claim", "confidence": 0.9}},
                0.42,
                "low",
                True,
                "low overall confidence",
                1500,
            )
        session.commit()


def wait_for_lag(standby: Engine, at_least_s: float, timeout_s: float = 30) -> ReplicaLag:
    """Wait until the standby has received WAL it has not replayed, ``at_least_s`` behind."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = check_database(standby)
        if lag is not None and lag.behind.total_seconds() >= at_least_s:
            return lag
        if time.monotonic() > deadline:
            raise TimeoutError(f"no replica lag of {at_least_s} s within {timeout_s} s: {lag}")
        time.sleep(0.1)
