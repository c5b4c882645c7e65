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
