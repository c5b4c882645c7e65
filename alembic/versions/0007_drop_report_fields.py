"""report_fields is dropped; per-field figures are read from the reports' JSON.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

``report_fields`` copied each report's ``extracted_fields`` and ``missing_fields`` into a
narrow table, kept by triggers (0001, 0002), so that per-field aggregates need not parse
JSON. Since 0003 the pages read the rollups, which compute a changed hour or day from the
raw rows; they now read those rows' JSON instead (``reportlib.rollups.report_field_rows``,
the same rows the triggers wrote). The copy cost every write two index entries per field
and most of a batch upsert's time.

The downgrade recreates the table, fills it from the reports with the triggers' own rule
(an extracted field when its entry is an object; a missing field once, unless extracted),
then recreates the triggers that keep it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PG_TRIGGERS = ("reportlib_report_fields_sync_insert", "reportlib_report_fields_sync_update")
_PG_FUNCTIONS = ("reportlib_sync_report_fields_statement", "reportlib_sync_report_fields")
_SQLITE_TRIGGERS = ("reportlib_report_fields_insert", "reportlib_report_fields_update")


def _revision(filename: str) -> ModuleType:
    """An earlier migration of this directory, for the trigger SQL it created (never
    edited once released, so the downgrade restores exactly that)."""
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(f"_reportlib_revision_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load migration {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON processing_reports")
        for function in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_index("ix_report_fields_created_at", table_name="report_fields")
    op.drop_table("report_fields")


# Every report's rows at once; ON CONFLICT / OR IGNORE keep the first row of a name, and
# the extracted rows come first, as in the triggers.
_PG_FILL = """
INSERT INTO report_fields
    (report_id, field_name, created_at, intent, confidence_route, confidence, is_missing)
{rows}
ON CONFLICT (report_id, field_name) DO NOTHING
"""


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("SET LOCAL statement_timeout = 0")
    op.create_table(
        "report_fields",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("field_name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("intent", sa.String(50), nullable=True),
        sa.Column("confidence_route", sa.String(20), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("is_missing", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["processing_reports.id"],
            name="fk_report_fields_report_id_processing_reports",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("report_id", "field_name", name="pk_report_fields"),
    )
    op.create_index(
        "ix_report_fields_created_at", "report_fields", ["created_at", "field_name"], unique=False
    )
    initial = _revision("0001_initial.py")
    if postgresql:
        statement = _revision("0002_window_indexes_statement_triggers.py")
        # The statement trigger's rows, over every report instead of one statement's.
        rows = statement._PG_FIELD_ROWS.replace("new_rows", "processing_reports")
        op.execute(_PG_FILL.format(rows=rows))
        # 0002 replaced 0001's row trigger but kept its function, which its downgrade uses.
        op.execute(initial._PG_SYNC_FUNCTION)
        statement._use_statement_triggers()
        return
    # The row triggers' two inserts, over every report instead of NEW.
    for insert in filter(str.strip, initial._SQLITE_FIELD_INSERTS.split(";")):
        op.execute(
            insert.replace("NEW.", "r.").replace(
                "FROM json_each(", "FROM processing_reports AS r, json_each("
            )
        )
    op.execute(
        "CREATE TRIGGER reportlib_report_fields_insert AFTER INSERT ON processing_reports "
        f"BEGIN {initial._SQLITE_FIELD_INSERTS} END"
    )
    op.execute(
        "CREATE TRIGGER reportlib_report_fields_update AFTER UPDATE ON processing_reports "
        "BEGIN DELETE FROM report_fields WHERE report_id = NEW.id; "
        f"{initial._SQLITE_FIELD_INSERTS} END"
    )
