"""The review-queue rollup keeps the review reason.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

The open queue's size and its reasons, in a window and by reason, then come from the
rollup (a few rows per day) instead of the open items themselves, which grow with the
backlog. Existing queue rollup rows have no reason: every day with such rows is marked
changed as a whole, so reads take those days from the raw rows until the next refresh
(``python -m reportlib migrate`` runs it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "rollup_review_queue", sa.Column("review_reason", sa.String(100), nullable=True)
    )
    op.execute(
        "INSERT INTO rollup_dirty_days (day) SELECT DISTINCT day FROM rollup_review_queue"
    )
    op.execute("DELETE FROM rollup_review_queue")


def downgrade() -> None:
    op.execute(
        "INSERT INTO rollup_dirty_days (day) SELECT DISTINCT day FROM rollup_review_queue"
    )
    op.execute("DELETE FROM rollup_review_queue")
    with op.batch_alter_table("rollup_review_queue") as batch:
        batch.drop_column("review_reason")
