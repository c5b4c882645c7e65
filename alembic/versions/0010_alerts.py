"""Alerts: every state change of an alert rule (firing, resolved), one row each.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

``alert_events`` is the alerts' state: a rule's current state is its latest row
(none, or ``resolved``: not firing). A row holds the rule's name, metric, the figures it
was judged on (value, threshold, volume), the window and the dashboard link sent with
it; filters and figures only, never extracted values. The same table serves both
backends; times are written by the caller's (injected) clock, so no server default.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("metric", sa.String(50), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("window_start", TIMESTAMP, nullable=False),
        sa.Column("window_end", TIMESTAMP, nullable=False),
        sa.Column("link", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "state IN ('firing', 'resolved')", name=op.f("ck_alert_events_state_known")
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alert_events"),
    )
    op.create_index(
        "ix_alert_events_rule_occurred_at", "alert_events", ["rule", "occurred_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_alert_events_rule_occurred_at", table_name="alert_events")
    op.drop_table("alert_events")
