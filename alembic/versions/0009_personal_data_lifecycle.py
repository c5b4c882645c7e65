"""Personal-data lifecycle: reports record when their values were erased, and the review
history allows exactly one kind of change, the redaction of its personal values.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

* ``processing_reports.values_erased_at``: when retention or an erasure request removed
  the report's values (NULL: they are there). The drill-down says so instead of values.
  A re-processing (``created_at`` moves) brings new values and clears it (a trigger).
* ``review_decisions`` and ``review_field_verdicts`` stay append-only, except that an
  UPDATE may set ``note`` (decisions) or ``corrected_value`` (verdicts) to NULL while
  every other column keeps its value. Anything else, a changed verdict or timestamp
  included, is refused by the database, and DELETE still is. ``audit_events`` stays
  strictly append-only: it never holds values.

The downgrade restores the strict triggers of 0001 and drops the column.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: Per table: the one column a redaction may set to NULL, and every other column.
REDACTABLE = {
    "review_decisions": (
        "note",
        ("id", "report_id", "email_id", "reviewer", "decided_at", "report_created_at", "outcome"),
    ),
    "review_field_verdicts": (
        "corrected_value",
        (
            "id",
            "decision_id",
            "field_name",
            "verdict",
            "extracted_confidence",
            "was_missing",
        ),
    ),
}

# to_jsonb(row) compares every column, a host's own additions included, so nothing but the
# redacted column can change through this door.
_PG_FUNCTION = """
CREATE FUNCTION reportlib_append_only_but_redaction() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND to_jsonb(NEW) ->> TG_ARGV[0] IS NULL
       AND (to_jsonb(NEW) - TG_ARGV[0]) = (to_jsonb(OLD) - TG_ARGV[0]) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME;
END;
$$;
"""


# A re-processing (created_at moves) brings new values: the erasure no longer describes them.
_PG_VALUES_BACK = """
CREATE FUNCTION reportlib_values_back() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.values_erased_at := NULL;
    RETURN NEW;
END;
$$;
"""
_PG_VALUES_BACK_TRIGGER = (
    "CREATE TRIGGER reportlib_values_back BEFORE UPDATE OF created_at ON processing_reports "
    "FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at "
    "AND OLD.values_erased_at IS NOT NULL) EXECUTE FUNCTION reportlib_values_back()"
)
_SQLITE_VALUES_BACK_TRIGGER = (
    "CREATE TRIGGER reportlib_values_back AFTER UPDATE OF created_at ON processing_reports "
    "WHEN OLD.created_at IS NOT NEW.created_at AND NEW.values_erased_at IS NOT NULL BEGIN "
    "UPDATE processing_reports SET values_erased_at = NULL WHERE id = NEW.id; END"
)


def _pg_trigger(table: str) -> str:
    return f"reportlib_{table}_append_only"


def _sqlite_unchanged(columns: tuple[str, ...]) -> str:
    return " AND ".join(f"NEW.{column} IS OLD.{column}" for column in columns)


def upgrade() -> None:
    op.add_column("processing_reports", sa.Column("values_erased_at", sa.DateTime(timezone=True)))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_VALUES_BACK)
        op.execute(_PG_VALUES_BACK_TRIGGER)
        op.execute(_PG_FUNCTION)
        for table, (column, _) in REDACTABLE.items():
            op.execute(f"DROP TRIGGER IF EXISTS {_pg_trigger(table)} ON {table}")
            op.execute(
                f"CREATE TRIGGER {_pg_trigger(table)} BEFORE DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION reportlib_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER reportlib_{table}_redaction_only BEFORE UPDATE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION reportlib_append_only_but_redaction('{column}')"
            )
        return
    op.execute(_SQLITE_VALUES_BACK_TRIGGER)
    for table, (column, others) in REDACTABLE.items():
        op.execute(f"DROP TRIGGER IF EXISTS reportlib_{table}_no_update")
        op.execute(
            f"CREATE TRIGGER reportlib_{table}_no_update BEFORE UPDATE ON {table} "
            f"WHEN NOT (NEW.{column} IS NULL AND {_sqlite_unchanged(others)}) "
            f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in REDACTABLE:
            op.execute(f"DROP TRIGGER IF EXISTS reportlib_{table}_redaction_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {_pg_trigger(table)} ON {table}")
            op.execute(
                f"CREATE TRIGGER {_pg_trigger(table)} BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION reportlib_append_only()"
            )
        op.execute("DROP FUNCTION IF EXISTS reportlib_append_only_but_redaction()")
        op.execute("DROP TRIGGER IF EXISTS reportlib_values_back ON processing_reports")
        op.execute("DROP FUNCTION IF EXISTS reportlib_values_back()")
    else:
        op.execute("DROP TRIGGER IF EXISTS reportlib_values_back")
        for table in REDACTABLE:
            op.execute(f"DROP TRIGGER IF EXISTS reportlib_{table}_no_update")
            op.execute(
                f"CREATE TRIGGER reportlib_{table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only'); END"
            )
    # A plain ALTER on both backends: a batch rebuild on SQLite would lose the triggers.
    op.execute("ALTER TABLE processing_reports DROP COLUMN values_erased_at")
