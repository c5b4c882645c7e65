"""The open-queue index covers every column of a queue page (PostgreSQL).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

A queue page shows each item's email id and how many fields it misses. With both in the
open-queue index (INCLUDE) PostgreSQL reads a page from the index alone, and prefers it
over the wider index of every flagged report, which it would filter row by row (thousands
of rows once most flagged reports are decided). SQLite keeps the plain index.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NAME = "ix_processing_reports_open_queue"
KEYS = ["created_at", "id", "intent", "confidence_route", "review_reason", "overall_confidence"]
OPEN = "needs_review AND review_closed_at IS NULL"


def _recreate(**include: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(NAME, table_name="processing_reports")
    op.create_index(
        NAME,
        "processing_reports",
        KEYS,
        unique=False,
        postgresql_where=OPEN,
        **{f"postgresql_{key}": value for key, value in include.items()},
    )


def upgrade() -> None:
    _recreate(include=["email_id", "missing_fields"])


def downgrade() -> None:
    _recreate()
