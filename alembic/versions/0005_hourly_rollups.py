"""Rollups of recent days by the hour, and changes tracked by the hour.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

A write marks the UTC hour it touched, not its whole day, so a read of a busy day that
keeps changing computes one hour from the raw rows instead of the whole day. Today and
yesterday are kept as hourly rollup rows (``hour`` 0-23); older days as one row per
group (``hour`` NULL), into which a refresh folds their hours. Existing rollup rows are
whole-day rows; existing marks become whole-day marks (``hour`` NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLLUP_TABLES = (
    "rollup_reports",
    "rollup_processing_time_values",
    "rollup_fields",
    "rollup_missing_sets",
    "rollup_review_queue",
    "rollup_verdicts",
)

_PG_MARK_REPORTS = """
CREATE OR REPLACE FUNCTION reportlib_mark_rollup_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The INSERT locks rollup_dirty_days (ROW EXCLUSIVE) even when it adds nothing, so a
    -- refresh waits for this transaction. NOT EXISTS, not a unique key: a writer never
    -- waits for another writer's uncommitted mark.
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO rollup_dirty_days (day, hour)
        SELECT DISTINCT n.day, n.hour FROM (
            SELECT CAST((created_at AT TIME ZONE 'UTC') AS DATE) AS day,
                   CAST(EXTRACT(HOUR FROM (created_at AT TIME ZONE 'UTC')) AS SMALLINT) AS hour
            FROM new_rows
        ) AS n
        WHERE NOT EXISTS (
            SELECT 1 FROM rollup_dirty_days AS d WHERE d.day = n.day AND d.hour = n.hour);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO rollup_dirty_days (day, hour)
        SELECT DISTINCT o.day, o.hour FROM (
            SELECT CAST((created_at AT TIME ZONE 'UTC') AS DATE) AS day,
                   CAST(EXTRACT(HOUR FROM (created_at AT TIME ZONE 'UTC')) AS SMALLINT) AS hour
            FROM old_rows
        ) AS o
        WHERE NOT EXISTS (
            SELECT 1 FROM rollup_dirty_days AS d WHERE d.day = o.day AND d.hour = o.hour);
    END IF;
    RETURN NULL;
END;
$$;
"""

_PG_MARK_VERDICTS = """
CREATE OR REPLACE FUNCTION reportlib_mark_verdict_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_dirty_days (day, hour)
    SELECT DISTINCT n.day, n.hour FROM (
        SELECT CAST((d.report_created_at AT TIME ZONE 'UTC') AS DATE) AS day,
               CAST(EXTRACT(HOUR FROM (d.report_created_at AT TIME ZONE 'UTC')) AS SMALLINT)
                   AS hour
        FROM new_rows AS v JOIN review_decisions AS d ON d.id = v.decision_id
    ) AS n
    WHERE NOT EXISTS (
        SELECT 1 FROM rollup_dirty_days AS x WHERE x.day = n.day AND x.hour = n.hour);
    RETURN NULL;
END;
$$;
"""

# NOT EXISTS rather than a unique key (see the PostgreSQL function); INSERT OR IGNORE
# would not do anyway: an outer upsert's conflict clause overrides it inside a trigger.
_SQLITE_MARK = (
    "INSERT INTO rollup_dirty_days (day, hour) "
    "SELECT substr({row}.created_at, 1, 10), CAST(substr({row}.created_at, 12, 2) AS INTEGER) "
    "WHERE NOT EXISTS (SELECT 1 FROM rollup_dirty_days "
    "WHERE day = substr({row}.created_at, 1, 10) "
    "AND hour = CAST(substr({row}.created_at, 12, 2) AS INTEGER)); "
)


def _sqlite_triggers(mark: str, verdict_mark: str) -> list[str]:
    return [
        "CREATE TRIGGER reportlib_rollup_days_insert AFTER INSERT ON processing_reports BEGIN "
        f"{mark.format(row='NEW')}END",
        "CREATE TRIGGER reportlib_rollup_days_update AFTER UPDATE ON processing_reports BEGIN "
        f"{mark.format(row='OLD')}{mark.format(row='NEW')}END",
        "CREATE TRIGGER reportlib_rollup_days_delete AFTER DELETE ON processing_reports BEGIN "
        f"{mark.format(row='OLD')}END",
        "CREATE TRIGGER reportlib_rollup_days_verdicts AFTER INSERT ON review_field_verdicts "
        f"BEGIN {verdict_mark} END",
    ]


_SQLITE_VERDICT_MARK = (
    "INSERT INTO rollup_dirty_days (day, hour) "
    "SELECT substr(d.report_created_at, 1, 10), "
    "CAST(substr(d.report_created_at, 12, 2) AS INTEGER) FROM review_decisions AS d "
    "WHERE d.id = NEW.decision_id AND NOT EXISTS (SELECT 1 FROM rollup_dirty_days AS x "
    "WHERE x.day = substr(d.report_created_at, 1, 10) "
    "AND x.hour = CAST(substr(d.report_created_at, 12, 2) AS INTEGER));"
)
_SQLITE_DAY_MARK = (
    "INSERT INTO rollup_dirty_days (day) SELECT substr({row}.created_at, 1, 10) "
    "WHERE NOT EXISTS (SELECT 1 FROM rollup_dirty_days "
    "WHERE day = substr({row}.created_at, 1, 10)); "
)
_SQLITE_DAY_VERDICT_MARK = (
    "INSERT INTO rollup_dirty_days (day) "
    "SELECT substr(d.report_created_at, 1, 10) FROM review_decisions AS d "
    "WHERE d.id = NEW.decision_id AND NOT EXISTS (SELECT 1 FROM rollup_dirty_days AS x "
    "WHERE x.day = substr(d.report_created_at, 1, 10));"
)
_SQLITE_TRIGGER_NAMES = (
    "reportlib_rollup_days_insert",
    "reportlib_rollup_days_update",
    "reportlib_rollup_days_delete",
    "reportlib_rollup_days_verdicts",
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in ROLLUP_TABLES:
        op.add_column(table, sa.Column("hour", sa.SmallInteger(), nullable=True))
    op.add_column("rollup_dirty_days", sa.Column("hour", sa.SmallInteger(), nullable=True))
    op.drop_index("ix_rollup_dirty_days_day", table_name="rollup_dirty_days")
    op.create_index(
        "ix_rollup_dirty_days_day", "rollup_dirty_days", ["day", "hour"], unique=False
    )
    # Today's and yesterday's rows are whole-day rows so far; recent days are read by the
    # hour, so mark them changed as a whole until a refresh rebuilds them hourly.
    recent = (
        "CAST(timezone('UTC', now()) AS DATE) - 1"
        if postgresql
        else "date('now', '-1 day')"
    )
    op.execute(
        "INSERT INTO rollup_dirty_days (day) SELECT DISTINCT day FROM rollup_reports "
        f"WHERE day >= {recent}"
    )
    if postgresql:
        op.execute(_PG_MARK_REPORTS)
        op.execute(_PG_MARK_VERDICTS)
    else:
        for name in _SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in _sqlite_triggers(_SQLITE_MARK, _SQLITE_VERDICT_MARK):
            op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if not postgresql:
        # SQLite rebuilds the altered tables: the triggers that name them go first.
        for name in _SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    # Hourly rollup rows cannot be merged here: drop them and mark their days dirty.
    for table in ROLLUP_TABLES:
        op.execute(
            f"INSERT INTO rollup_dirty_days (day) SELECT DISTINCT day FROM {table} "
            "WHERE hour IS NOT NULL"
        )
        op.execute(f"DELETE FROM {table} WHERE hour IS NOT NULL")
    op.drop_index("ix_rollup_dirty_days_day", table_name="rollup_dirty_days")
    with op.batch_alter_table("rollup_dirty_days") as batch:
        batch.drop_column("hour")
    op.create_index("ix_rollup_dirty_days_day", "rollup_dirty_days", ["day"], unique=False)
    for table in ROLLUP_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("hour")
    if postgresql:
        for mark in (_PG_MARK_REPORTS, _PG_MARK_VERDICTS):
            op.execute(
                mark.replace("(day, hour)", "(day)")
                .replace("n.day, n.hour", "n.day")
                .replace("o.day, o.hour", "o.day")
                .replace(" AND d.hour = n.hour", "")
                .replace(" AND d.hour = o.hour", "")
                .replace(" AND x.hour = n.hour", "")
            )
    else:
        for statement in _sqlite_triggers(_SQLITE_DAY_MARK, _SQLITE_DAY_VERDICT_MARK):
            op.execute(statement)
