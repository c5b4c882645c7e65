"""The command line, run as a newcomer would: as a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clock import clear_of_utc_midnight

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reportlib", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, **env},
        timeout=180,
        check=False,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cli.db'}"
    return request.getfixturevalue("pg_databases").create("reportlib_cli")


def test_migrate_seed_show(database_url: str) -> None:
    assert run(["migrate"], database_url).returncode == 0
    seeded = run(["seed-demo", "--count", "60", "--seed", "7"], database_url)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded 60 reports" in seeded.stdout
    again = run(["seed-demo", "--count", "60", "--if-empty"], database_url)
    assert "nothing seeded" in again.stdout

    shown = run(["show", "5"], database_url)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["email_id"] == 5
    assert set(document) >= {
        "id",
        "created_at",
        "extracted_fields",
        "missing_fields",
        "overall_confidence",
        "confidence_route",
        "needs_review",
        "review_reason",
        "intent",
        "sources_processed",
        "total_tokens_used",
        "processing_time_ms",
        "email",
    }


def test_seed_is_deterministic(tmp_path: Path) -> None:
    # Each run seeds the days before its own "now": both must see the same UTC day.
    clear_of_utc_midnight(60)
    documents = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path / name}.db"
        run(["migrate"], url)
        run(["seed-demo", "--count", "30", "--seed", "11", "--no-reviews"], url)
        shown = json.loads(run(["show", "17"], url).stdout)
        shown.pop("created_at")
        documents.append(shown)
    assert documents[0] == documents[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "abc"], "EMAIL_ID must be a whole number"),
        (["show", "99999999999"], "EMAIL_ID must be between"),
        (["seed-demo", "--count", "-5"], "must be between"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_usage_errors_are_clear(args: list[str], message: str, tmp_path: Path) -> None:
    result = run(args, f"sqlite:///{tmp_path / 'x.db'}")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_failures_exit_nonzero_without_traceback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    run(["migrate"], url)
    missing = run(["show", "42"], url)
    assert (missing.returncode, missing.stderr.strip()) == (1, "no report for email 42")

    down = run(["migrate"], "postgresql://nobody@127.0.0.1:1/nothing")
    assert down.returncode == 1
    assert "database error" in down.stderr and "Traceback" not in down.stderr

    bad = run(["migrate"], "mysql://root@localhost/x")
    assert bad.returncode == 2 and "DATABASE_URL" in bad.stderr


def test_help_lists_commands() -> None:
    result = run(["--help"], "sqlite://")
    assert result.returncode == 0
    for command in ("migrate", "seed-demo", "show"):
        assert command in result.stdout


def test_seed_demo_writes_audit_samples_and_reviews_in_sittings(tmp_path: Path) -> None:
    import datetime as dt

    from sqlalchemy import create_engine, text

    from reportlib.demo import DEMO_AUDIT_RATES
    from reportlib.sampling import AUDIT_REASON, audit_draw

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert run(["migrate"], url).returncode == 0
    seeded = run(["seed-demo", "--count", "400", "--seed", "3", "--days", "10"], url)
    assert seeded.returncode == 0, seeded.stderr
    engine = create_engine(url)
    with engine.connect() as connection:
        samples = connection.execute(
            text(
                "SELECT email_id, confidence_route, review_reason, audit_rate "
                "FROM processing_reports WHERE audit_rate IS NOT NULL"
            )
        ).all()
        decided_at = [
            (reviewer, dt.datetime.fromisoformat(when))
            for reviewer, when in connection.execute(
                text("SELECT reviewer, decided_at FROM review_decisions ORDER BY decided_at")
            )
        ]
    engine.dispose()
    assert len(samples) >= 5
    for email_id, route, reason, rate in samples:
        assert reason == AUDIT_REASON
        assert rate == DEMO_AUDIT_RATES.rate(route, None)
        assert audit_draw(email_id) < rate
    # Reviewers work in sittings: many decisions come within 10 minutes of the same
    # reviewer's previous one.
    previous: dict[str, dt.datetime] = {}
    timed = 0
    for reviewer, when in decided_at:
        if reviewer in previous and (when - previous[reviewer]).total_seconds() <= 600:
            timed += 1
        previous[reviewer] = when
    assert timed >= len(decided_at) // 10


def test_seed_demo_samples_at_the_configured_rate_when_there_is_one(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert run(["migrate"], url).returncode == 0
    seeded = run(
        ["seed-demo", "--count", "120", "--no-reviews"], url, AUDIT_SAMPLE_RATE="0.5"
    )
    assert seeded.returncode == 0, seeded.stderr
    engine = create_engine(url)
    with engine.connect() as connection:
        rates = set(
            connection.execute(
                text("SELECT DISTINCT audit_rate FROM processing_reports "
                     "WHERE audit_rate IS NOT NULL")
            ).scalars()
        )
    engine.dispose()
    assert rates == {0.5}
