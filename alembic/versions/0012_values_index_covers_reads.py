"""The processing-time values index covers what a percentile lookup reads (PostgreSQL).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

An unfiltered window's exact p50/p95 read one range of processing times per day from
``rollup_processing_time_values``. With each row's count and hour in the index (INCLUDE),
PostgreSQL reads those ranges from the index alone instead of visiting a table page for
nearly every row (about 770 pages for a 30-day window at 1M reports). SQLite keeps the
plain index.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLE = "rollup_processing_time_values"
NAME = "ix_rollup_processing_time_values_day"
KEYS = ["day", "processing_time_ms"]


def _recreate(**include: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(NAME, table_name=TABLE)
    op.create_index(
        NAME, TABLE, KEYS, unique=False, **{f"postgresql_{k}": v for k, v in include.items()}
    )


def upgrade() -> None:
    _recreate(include=["reports", "hour"])


def downgrade() -> None:
    _recreate()
