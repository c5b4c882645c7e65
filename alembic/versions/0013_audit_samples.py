"""Audit samples: the rate each one was drawn at.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

``processing_reports.audit_rate``: for a report the pipeline did not flag and the writer
drew as an audit sample (``reportlib.sampling``), the sampling rate it was drawn at, so that
estimates can weight its audited values; NULL for every other report. A nullable column
without a default: adding it rewrites nothing, on either backend.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("processing_reports", sa.Column("audit_rate", sa.Float(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN on both backends (SQLite 3.35+): a batch rebuild of the table would
    # drop its triggers and expression indexes on SQLite.
    op.execute("ALTER TABLE processing_reports DROP COLUMN audit_rate")
