"""Migrations: round trips, agreement with the models, and sharing a host's database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, Table, insert, inspect, select, text, true, update

from reportlib import migrate
from reportlib.db import make_engine, make_sessionmaker
from reportlib.models import Base, ProcessingReport
from reportlib.rollups import report_field_rows
from reportlib.service import build_report_values
from tests.conftest import PostgresDatabases
from tests.factories import checkpoints, extracted, make_report, next_email_id

OUR_TABLES = {
    "incoming_emails",
    "processing_reports",
    "review_claims",
    "review_decisions",
    "review_field_verdicts",
    "audit_events",
    "alert_events",
    "reportlib_schema_info",
    "rollup_dirty_days",
    "rollup_fields",
    "rollup_missing_sets",
    "rollup_processing_time_values",
    "rollup_reports",
    "rollup_review_queue",
    "rollup_verdicts",
    migrate.VERSION_TABLE,
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("pg_databases")
        url = databases.create("reportlib_migrations")
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"include_object": migrate.include_object, "compare_type": True},
        )
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_downgrade_upgrade_round_trip(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    assert _tables(empty_engine) == OUR_TABLES
    migrate.downgrade(empty_engine, "base")
    assert _tables(empty_engine) == {migrate.VERSION_TABLE}
    migrate.upgrade(empty_engine)
    assert _tables(empty_engine) == OUR_TABLES
    with empty_engine.connect() as connection:
        assert connection.execute(text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")).all()


def _field_facts(rows: Any) -> set[tuple[Any, ...]]:
    """Rows of report_fields (or what replaced it), comparable across backends."""
    return {
        (
            row.report_id,
            row.field_name,
            row.created_at.replace(tzinfo=row.created_at.tzinfo or dt.UTC).astimezone(dt.UTC),
            row.intent,
            row.confidence_route,
            row.confidence,
            bool(row.is_missing),
        )
        for row in rows
    }


def test_report_fields_come_back_on_downgrade_from_every_report(empty_engine: Engine) -> None:
    """0007 drops report_fields; its downgrade fills it from the reports' JSON by the
    triggers' rule, and the triggers keep it from then on."""
    migrate.upgrade(empty_engine)
    sessions = make_sessionmaker(empty_engine)
    with sessions() as db:
        make_report(db)
        make_report(db, extracted_data={"client_name": "Erika"})
        odd = make_report(db)
        # Written around the service: a name both extracted and missing, a name missing
        # twice, and entries that are not objects.
        db.execute(
            update(ProcessingReport)
            .where(ProcessingReport.id == odd.id)
            .values(
                extracted_fields={"client_name": {"value": "x"}, "iban": "DE00"},
                missing_fields=["client_name", "debt_amount", "debt_amount", "iban"],
            )
        )
        db.commit()
        expected = _field_facts(db.execute(select(report_field_rows(true()).subquery())))
    assert len(expected) == 4 + 4 + 3

    migrate.downgrade(empty_engine, "0006")
    report_fields = Table("report_fields", MetaData(), autoload_with=empty_engine)
    with empty_engine.connect() as connection:
        assert _field_facts(connection.execute(select(report_fields))) == expected
    # Written into the table as 0006 has it (the models describe the latest schema).
    reports = Table("processing_reports", MetaData(), autoload_with=empty_engine)
    values = build_report_values(
        email_id=next_email_id(),
        extracted_data=extracted(debt_amount=1234),  # a plain JSON number
        agent_checkpoints=checkpoints(),
        overall_confidence=0.8,
        confidence_route="high",
        needs_review=False,
    )
    with empty_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO incoming_emails (id) VALUES (:id)"), {"id": values["email_id"]}
        )
        later_id = connection.execute(
            insert(reports)
            .values({name: value for name, value in values.items() if name in reports.c})
            .returning(reports.c.id)
        ).scalar_one()
    with empty_engine.connect() as connection:
        rows = connection.execute(
            select(report_fields).where(report_fields.c.report_id == later_id)
        )
        assert len(_field_facts(rows)) == 4

    migrate.upgrade(empty_engine)
    assert "report_fields" not in _tables(empty_engine)


# SQLite cannot reflect an expression index (the processing-time bucket index), so there
# it is left out of the comparison; PostgreSQL compares it.
_NOT_REFLECTED = pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index"
)
_NOT_COMPARED = pytest.mark.filterwarnings(
    "ignore:autogenerate skipping metadata-specified expression-based"
)


@_NOT_REFLECTED
@_NOT_COMPARED
def test_models_and_migrations_agree(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    assert _diff(empty_engine) == []


@_NOT_REFLECTED
@_NOT_COMPARED
def test_autogenerate_would_notice_a_difference(empty_engine: Engine) -> None:
    """Guards the agreement test: a real drift must show up as a diff."""
    migrate.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_audit_events_email_id"))
    assert _diff(empty_engine) != []


def _host_schema(engine: Engine) -> None:
    """A host application with its own Alembic history and its own incoming_emails table."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('host_rev_42')"))
        connection.execute(
            text(
                "CREATE TABLE incoming_emails (id INTEGER PRIMARY KEY, raw_body TEXT, "
                "subject VARCHAR(500))"
            )
        )
        connection.execute(text("INSERT INTO incoming_emails (id, raw_body) VALUES (1, 'body')"))
        connection.execute(text("CREATE TABLE host_things (id INTEGER PRIMARY KEY)"))


def test_shared_database_with_host_alembic_and_host_emails(empty_engine: Engine) -> None:
    _host_schema(empty_engine)
    migrate.upgrade(empty_engine)

    assert _tables(empty_engine) == OUR_TABLES | {"alembic_version", "host_things"}
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "host_rev_42"
        )
    columns = {c["name"] for c in inspect(empty_engine).get_columns("incoming_emails")}
    assert columns == {"id", "raw_body", "subject", "sender", "received_at"}

    with make_sessionmaker(empty_engine)() as db:
        report = make_report(db, email_id=1, subject=None, sender=None)
        db.commit()
        assert report.email_id == 1

    migrate.downgrade(empty_engine, "base")
    assert _tables(empty_engine) == {
        "alembic_version",
        "host_things",
        "incoming_emails",
        migrate.VERSION_TABLE,
    }
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT raw_body FROM incoming_emails")).scalar() == "body"
    migrate.upgrade(empty_engine)
    assert OUR_TABLES <= _tables(empty_engine)


def test_history_tables_are_append_only(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    statements: list[Callable[[], str]] = [
        lambda: "UPDATE audit_events SET actor = 'x'",
        lambda: "DELETE FROM audit_events",
    ]
    with empty_engine.begin() as connection:
        connection.execute(text("INSERT INTO audit_events (actor, action) VALUES ('a', 'b')"))
    for statement in statements:
        with pytest.raises(Exception, match="append-only"), empty_engine.begin() as connection:
            connection.execute(text(statement()))


def test_constraint_names_match_the_models(empty_engine: Engine) -> None:
    """Autogenerate does not compare CHECK constraints, so compare their names here."""
    from sqlalchemy import CheckConstraint

    migrate.upgrade(empty_engine)
    inspector = inspect(empty_engine)
    for table in Base.metadata.sorted_tables:
        expected = {
            str(c.name) for c in table.constraints if isinstance(c, CheckConstraint) and c.name
        }
        found = {c["name"] for c in inspector.get_check_constraints(table.name)}
        assert found == expected, table.name


def test_package_imports_and_finds_its_migrations_from_anywhere(tmp_path: Path) -> None:
    """A host project imports reportlib from its own directory, not from this checkout."""
    import subprocess
    import sys

    code = (
        "from pathlib import Path; from reportlib import make_engine; "
        "from reportlib.migrate import script_location; "
        "assert (Path(script_location()) / 'env.py').is_file(); "
        "assert (Path(script_location()) / 'versions' / '0001_initial.py').is_file(); print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


def _history_row(engine: Engine) -> None:
    with make_sessionmaker(engine)() as db:
        report = make_report(db)
        db.commit()
        report_id, email_id = report.id, report.email_id
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO review_decisions (id, report_id, email_id, reviewer, decided_at, "
                "report_created_at, outcome, note) VALUES (1, :report, :email, 'alice', "
                ":at, :at, 'corrected', 'a note')"
            ),
            {"report": report_id, "email": email_id, "at": dt.datetime(2026, 1, 2, 3, 4, 5)},
        )
        connection.execute(
            text(
                "INSERT INTO review_field_verdicts (id, decision_id, field_name, verdict, "
                "corrected_value, extracted_confidence, was_missing) "
                "VALUES (1, 1, 'client_name', 'corrected', :value, 0.5, false)"
            ),
            {"value": '"Erika"'},
        )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE review_decisions SET outcome = 'approved'",
        "UPDATE review_decisions SET decided_at = report_created_at + INTERVAL '1 day'",
        "UPDATE review_decisions SET note = 'other'",
        "UPDATE review_decisions SET note = NULL, reviewer = 'bob'",
        "UPDATE review_field_verdicts SET verdict = 'correct'",
        "UPDATE review_field_verdicts SET corrected_value = NULL, extracted_confidence = 0.9",
        "UPDATE review_field_verdicts SET corrected_value = NULL, field_name = 'x'",
        "DELETE FROM review_field_verdicts",
        "DELETE FROM review_decisions",
        "DELETE FROM audit_events",
        "UPDATE audit_events SET details = NULL",
    ],
)
def test_history_allows_redaction_and_nothing_else(empty_engine: Engine, statement: str) -> None:
    """0009: the database itself lets a redaction through and refuses every other change."""
    migrate.upgrade(empty_engine)
    _history_row(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(text("INSERT INTO audit_events (actor, action) VALUES ('a', 'b')"))
    if empty_engine.dialect.name == "sqlite":
        statement = statement.replace(
            "report_created_at + INTERVAL '1 day'", "'2030-01-01 00:00:00.000000'"
        )
    with pytest.raises(Exception, match="append-only"), empty_engine.begin() as connection:
        connection.execute(text(statement))
    with empty_engine.begin() as connection:
        connection.execute(text("UPDATE review_decisions SET note = NULL"))
        connection.execute(text("UPDATE review_field_verdicts SET corrected_value = NULL"))
        assert (
            connection.execute(
                text("SELECT count(*) FROM review_field_verdicts WHERE corrected_value IS NULL")
            ).scalar_one()
            == 1
        )
        assert (
            connection.execute(
                text("SELECT outcome FROM review_decisions WHERE note IS NULL")
            ).scalar_one()
            == "corrected"
        )
