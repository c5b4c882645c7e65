"""``purge`` and ``erase`` on the command line, as an operator runs them on demo data."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from sqlalchemy import func, select

from reportlib.db import make_engine
from reportlib.models import AuditEvent, IncomingEmail, ProcessingReport
from tests.test_cli import database_url, run  # noqa: F401 - database_url is a fixture

COUNTS = re.compile(r"(\d+) reports, (\d+) emails, (\d+) decision notes, (\d+) corrected values")


def _counts(line: str) -> tuple[int, ...]:
    match = COUNTS.search(line)
    assert match is not None, line
    return tuple(int(group) for group in match.groups())


def test_purge_on_demo_data(database_url: str) -> None:  # noqa: F811
    assert run(["migrate"], database_url).returncode == 0
    assert run(["seed-demo", "--count", "120", "--days", "40"], database_url).returncode == 0

    unset = run(["purge", "--actor", "retention-job"], database_url, RETENTION_DAYS="")
    assert unset.returncode == 1 and "retention_days: is not set" in unset.stderr

    before = dt.datetime.now(dt.UTC)
    dry = run(["purge", "--dry-run", "--actor", "retention-job"], database_url, RETENTION_DAYS="30")
    after = dt.datetime.now(dt.UTC)
    assert dry.returncode == 0, dry.stderr
    would = _counts(dry.stdout.splitlines()[-1])
    assert dry.stdout.splitlines()[-1].startswith("would purge: ")
    # The command's cutoff is its own "now" minus 30 days: somewhere between the two
    # counts below, whatever the time of day the demo was seeded at.
    engine = make_engine(database_url)
    with engine.connect() as connection:
        older = [
            connection.scalar(
                select(func.count()).where(
                    ProcessingReport.created_at < moment - dt.timedelta(days=30)
                )
            )
            for moment in (before, after)
        ]
    engine.dispose()
    assert 0 < older[0] <= would[0] <= older[1]
    assert would[1] == would[0] and would[3] > 0
    purged = run(
        ["purge", "--actor", "retention-job", "--batch-size", "25"],
        database_url,
        RETENTION_DAYS="30",
    )
    assert purged.returncode == 0, purged.stderr
    lines = purged.stdout.splitlines()
    assert lines[-1] == "purged: " + COUNTS.pattern.replace(r"(\d+)", "{}").format(*would)
    assert any(line.startswith("purged: ") and "rows (" in line for line in lines)
    assert run(["rollups", "verify"], database_url).returncode == 0

    engine = make_engine(database_url)
    with engine.connect() as connection:
        audits = connection.execute(
            select(AuditEvent.actor, AuditEvent.details)
            .where(AuditEvent.action == "values_purged")
            .order_by(AuditEvent.id)
        ).all()
        erased = connection.scalar(
            select(func.count()).where(ProcessingReport.values_erased_at.is_not(None))
        )
    engine.dispose()
    # One audit row (the dry run wrote nothing), and the purge redacted what it counted.
    assert [actor for actor, _ in audits] == ["retention-job"]
    assert audits[0][1]["reports_count"] == would[0] == erased


def test_erase_on_demo_data(database_url: str) -> None:  # noqa: F811
    assert run(["migrate"], database_url).returncode == 0
    assert run(["seed-demo", "--count", "60", "--days", "10"], database_url).returncode == 0
    engine = make_engine(database_url)
    with engine.connect() as connection:
        sender = connection.scalar(select(IncomingEmail.sender).where(IncomingEmail.id == 7))
        same_sender = connection.scalar(
            select(func.count()).where(
                func.lower(IncomingEmail.sender) == sender.lower(), IncomingEmail.id != 5
            )
        )
    assert sender

    dry = run(["erase", "--email-id", "5", "--actor", "dpo", "--dry-run"], database_url)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would erase: 1 reports, 1 emails, ")
    erased = run(["erase", "--email-id", "5", "--actor", "dpo"], database_url)
    assert erased.returncode == 0, erased.stderr
    assert erased.stdout.splitlines()[-1] == dry.stdout.strip().replace("would erase", "erased")
    twice = run(["erase", "--email-id", "5", "--actor", "dpo"], database_url)
    assert (
        twice.stdout.splitlines()[-1]
        == "erased: 0 reports, 0 emails, 0 decision notes, 0 corrected values"
    )

    by_sender = run(["erase", "--sender", sender.upper(), "--actor", "dpo"], database_url)
    assert by_sender.returncode == 0, by_sender.stderr
    assert _counts(by_sender.stdout.splitlines()[-1])[1] == same_sender
    assert sender.lower() not in (by_sender.stdout + by_sender.stderr).lower()
    with engine.connect() as connection:
        assert (
            connection.scalar(
                select(func.count()).where(func.lower(IncomingEmail.sender) == sender.lower())
            )
            == 0
        )
    engine.dispose()


def test_erase_refuses_bad_input_naming_the_field(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'bad.db'}"
    assert run(["migrate"], database).returncode == 0
    assert run(["seed-demo", "--count", "6", "--days", "2"], database).returncode == 0
    for args, code, message in [
        (["erase", "--sender", " ", "--actor", "dpo"], 1, "sender: must not be empty"),
        (["erase", "--email-id", "1999999999", "--actor", "dpo"], 1, "email_id: no incoming"),
        (["erase", "--email-id", "x1", "--actor", "dpo"], 2, "EMAIL_ID must be a whole number"),
        (["erase", "--email-id", "5", "--sender", "a@b", "--actor", "dpo"], 2, "not allowed"),
        (["erase", "--email-id", "5"], 2, "--actor"),
        (["erase", "--email-id", "5", "--actor", "\u202e"], 1, "actor: must not"),
    ]:
        result = run(args, database)
        assert (result.returncode, message in result.stderr) == (code, True), result.stderr
