"""The created_at index covers what the rollups read from a report (PostgreSQL).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

Rebuilding a day's rollups, and reading a day that is not rolled up yet, read intent,
route, flag, confidence, tokens, processing time and review_closed_at of that day's
reports. With those columns in the index (INCLUDE) PostgreSQL answers from the index
instead of visiting every wide row (the JSON documents). SQLite keeps the plain index.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COVERED = [
    "intent",
    "confidence_route",
    "needs_review",
    "overall_confidence",
    "total_tokens_used",
    "processing_time_ms",
    "review_closed_at",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("SET LOCAL statement_timeout = 0")
    op.drop_index("ix_processing_reports_created_at", table_name="processing_reports")
    op.create_index(
        "ix_processing_reports_created_at",
        "processing_reports",
        ["created_at"],
        unique=False,
        postgresql_include=COVERED,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_processing_reports_created_at", table_name="processing_reports")
    op.create_index(
        "ix_processing_reports_created_at", "processing_reports", ["created_at"], unique=False
    )
