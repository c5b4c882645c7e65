"""The filtered-percentile index is keyed by processing-time bucket, then time.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

The exact p50/p95 of a window filtered by intent or route read the raw processing times
of one or two rollup buckets (256 ms wide). The index they used was keyed by the raw
time, so every write landed at a random point of it (at 1M reports it cost a batch
backfill about a fifth of its speed), and a read walked one time range across every day
before filtering by date. Keyed by ``processing_time_ms / 256`` and then ``created_at``,
a write lands at the end of its bucket, and a read takes one index range per bucket and
window; on PostgreSQL it covers the time, intent and route, so it skips the reports.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLE = "processing_reports"
OLD = "ix_processing_reports_processing_time"
NEW = "ix_processing_reports_time_bucket"
# Written out rather than imported: a migration keeps the schema of its own day.
BUCKET = "processing_time_ms / 256"


def upgrade() -> None:
    op.drop_index(OLD, table_name=TABLE)
    op.create_index(
        NEW,
        TABLE,
        [sa.text(f"({BUCKET})"), "created_at"],
        unique=False,
        postgresql_include=["processing_time_ms", "intent", "confidence_route"],
    )


def downgrade() -> None:
    op.drop_index(NEW, table_name=TABLE)
    op.create_index(
        OLD,
        TABLE,
        ["processing_time_ms", "created_at", "intent", "confidence_route"],
        unique=False,
    )
