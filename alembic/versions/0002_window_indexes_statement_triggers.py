"""Indexes for the dashboard's window queries; set-based report_fields sync on PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Measured with ``python -m bench`` at 1M reports (see BENCHMARKS.md):

* ``ix_processing_reports_window`` holds every column the window aggregates read
  (KPIs, daily trends, histograms, by-intent, what-if), so PostgreSQL answers them with
  an index-only scan of a narrow index instead of visiting the wide JSONB rows, and
  SQLite uses it as a covering index.
* ``ix_processing_reports_flagged`` covers what the review queue reads of flagged
  reports; ``ix_processing_reports_flagged_confidence`` serves "lowest confidence first"
  without sorting every flagged report in the window.
* ``ix_report_fields_missing`` is a partial index over missing fields only (about one
  row in ten), covering the Missing-fields page.
* On PostgreSQL the per-row trigger that keeps ``report_fields`` in step is replaced by
  two statement-level triggers with transition tables: one ``INSERT ... SELECT`` per
  statement instead of one PL/pgSQL call per row. Same rows, same transaction; a
  thousand-row upsert no longer pays a function call and a small insert per report.
  SQLite has row triggers only and keeps them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _create_indexes() -> None:
    op.create_index(
        "ix_processing_reports_window",
        "processing_reports",
        [
            "created_at",
            "confidence_route",
            "intent",
            "needs_review",
            "overall_confidence",
            "total_tokens_used",
            "processing_time_ms",
        ],
        unique=False,
    )
    op.create_index(
        "ix_processing_reports_flagged",
        "processing_reports",
        ["created_at", "id", "intent", "confidence_route", "review_reason", "overall_confidence"],
        unique=False,
        postgresql_where=sa.text("needs_review"),
        sqlite_where=sa.text("needs_review = 1"),
    )
    op.create_index(
        "ix_processing_reports_flagged_confidence",
        "processing_reports",
        ["overall_confidence", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("needs_review"),
        sqlite_where=sa.text("needs_review = 1"),
    )
    op.create_index(
        "ix_report_fields_missing",
        "report_fields",
        ["created_at", "field_name", "intent", "report_id"],
        unique=False,
        postgresql_where=sa.text("is_missing"),
        sqlite_where=sa.text("is_missing = 1"),
    )


# The rows are exactly those of 0001's reportlib_sync_report_fields(), computed for all
# rows of the statement at once from its transition table.
_PG_FIELD_ROWS = """
    SELECT n.id, f.key, n.created_at, n.intent, n.confidence_route,
           (f.value ->> 'confidence')::double precision, false
    FROM new_rows AS n, jsonb_each(n.extracted_fields) AS f
    WHERE jsonb_typeof(f.value) = 'object'
    UNION ALL
    SELECT n.id, m.name, n.created_at, n.intent, n.confidence_route, NULL, true
    FROM new_rows AS n,
         jsonb_array_elements_text(
             CASE WHEN jsonb_typeof(n.missing_fields) = 'array'
                  THEN n.missing_fields ELSE '[]'::jsonb END
         ) AS m(name)
"""

_PG_STATEMENT_FUNCTION = f"""
CREATE FUNCTION reportlib_sync_report_fields_statement() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM report_fields AS rf USING new_rows AS n WHERE rf.report_id = n.id;
    END IF;
    INSERT INTO report_fields
        (report_id, field_name, created_at, intent, confidence_route, confidence, is_missing)
    {_PG_FIELD_ROWS}
    ON CONFLICT (report_id, field_name) DO NOTHING;
    RETURN NULL;
END;
$$;
"""


def _use_statement_triggers() -> None:
    op.execute("DROP TRIGGER IF EXISTS reportlib_report_fields_sync ON processing_reports")
    op.execute(_PG_STATEMENT_FUNCTION)
    # A trigger with transition tables may name one event only, hence two triggers.
    op.execute(
        "CREATE TRIGGER reportlib_report_fields_sync_insert AFTER INSERT ON processing_reports "
        "REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION reportlib_sync_report_fields_statement()"
    )
    op.execute(
        "CREATE TRIGGER reportlib_report_fields_sync_update AFTER UPDATE ON processing_reports "
        "REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION reportlib_sync_report_fields_statement()"
    )


def _use_row_trigger() -> None:
    op.execute("DROP TRIGGER IF EXISTS reportlib_report_fields_sync_insert ON processing_reports")
    op.execute("DROP TRIGGER IF EXISTS reportlib_report_fields_sync_update ON processing_reports")
    op.execute("DROP FUNCTION IF EXISTS reportlib_sync_report_fields_statement()")
    op.execute(
        "CREATE TRIGGER reportlib_report_fields_sync AFTER INSERT OR UPDATE "
        "ON processing_reports FOR EACH ROW EXECUTE FUNCTION reportlib_sync_report_fields()"
    )


def upgrade() -> None:
    _create_indexes()
    if op.get_bind().dialect.name == "postgresql":
        _use_statement_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _use_row_trigger()
    op.drop_index("ix_report_fields_missing", table_name="report_fields")
    op.drop_index("ix_processing_reports_flagged_confidence", table_name="processing_reports")
    op.drop_index("ix_processing_reports_flagged", table_name="processing_reports")
    op.drop_index("ix_processing_reports_window", table_name="processing_reports")
