"""Daily rollups for the dashboard, the review-closed instant, and lighter write indexes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

* ``rollup_*`` tables: per UTC day, intent and route, what the pages sum (see
  ``reportlib.rollups``). ``rollup_dirty_days`` lists days changed since their last
  rebuild; statement-level triggers (row triggers on SQLite) add the day of every row a
  write inserts, updates or deletes. Every existing day starts dirty, so reads stay exact
  right after the upgrade; ``python -m reportlib migrate`` then rebuilds them with
  progress (or ``python -m reportlib rollups rebuild``).
* ``processing_reports.review_closed_at``: when the first decision on the current
  processing was made. A trigger on ``review_decisions`` sets it; re-processing (a new
  ``created_at``) recomputes it. The open queue is then ``needs_review AND
  review_closed_at IS NULL``, a partial index of a few thousand entries.
* ``rollup_verdicts``: reviewer verdicts per day of the processing they reviewed, field,
  kind and exact confidence centile, for the Quality page; a trigger on
  ``review_field_verdicts`` marks that day.
* The wide window index and the flagged-report indexes served aggregates that now read
  the rollups; they are dropped, so each write maintains fewer indexes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPEN_QUEUE = {
    "postgresql_where": sa.text("needs_review AND review_closed_at IS NULL"),
    "sqlite_where": sa.text("needs_review = 1 AND review_closed_at IS NULL"),
}
CLOSED = {
    "postgresql_where": sa.text("needs_review AND review_closed_at IS NOT NULL"),
    "sqlite_where": sa.text("needs_review = 1 AND review_closed_at IS NOT NULL"),
}


# Frozen copies of reportlib.models' rollup layout (a migration must not change when the
# models do).
CONFIDENCE_BINS = 20
CENTILES = 101
PROCESSING_TIME_BUCKETS = 64


def _counts(names: list[str]) -> list[sa.Column]:
    return [sa.Column(name, sa.Integer(), nullable=False) for name in names]


def _bins() -> list[sa.Column]:
    return _counts([f"bin_{i:02d}" for i in range(CONFIDENCE_BINS)])


def _centiles() -> list[sa.Column]:
    return _counts([f"centile_{c:03d}" for c in range(CENTILES)])


def _rollup_table(name: str, *columns: sa.Column) -> None:
    keys = [
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("intent", sa.String(50), nullable=True),
        sa.Column("route", sa.String(20), nullable=False),
    ]
    op.create_table(name, *keys, *columns)
    op.create_index(f"ix_{name}_day", name, ["day"], unique=False)


def _create_rollup_tables() -> None:
    _rollup_table(
        "rollup_reports",
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("confidence_sum", sa.Float(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("timed_reports", sa.Integer(), nullable=False),
        *_bins(),
        *_centiles(),
        *_counts([f"ms_bucket_{b:02d}" for b in range(PROCESSING_TIME_BUCKETS)]),
    )
    op.create_table(
        "rollup_processing_time_values",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("processing_time_ms", sa.Integer(), nullable=False),
        sa.Column("reports", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_rollup_processing_time_values_day",
        "rollup_processing_time_values",
        ["day", "processing_time_ms"],
        unique=False,
    )
    _rollup_table(
        "rollup_fields",
        sa.Column("field_name", sa.String(100), nullable=False),
        sa.Column("extracted", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("scored", sa.Integer(), nullable=False),
        sa.Column("confidence_sum", sa.Float(), nullable=True),
        sa.Column("confidence_min", sa.Float(), nullable=True),
        sa.Column("confidence_max", sa.Float(), nullable=True),
        *_bins(),
    )
    _rollup_table(
        "rollup_missing_sets",
        sa.Column("missing_set", sa.Text(), nullable=True),
        sa.Column("reports", sa.Integer(), nullable=False),
    )
    op.create_table(
        "rollup_review_queue",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("intent", sa.String(50), nullable=True),
        sa.Column("route", sa.String(20), nullable=False),
        sa.Column("closed_day", sa.Date(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
    )
    op.create_index("ix_rollup_review_queue_day", "rollup_review_queue", ["day"], unique=False)
    op.create_index(
        "ix_rollup_review_queue_closed_day",
        "rollup_review_queue",
        ["closed_day", "day"],
        unique=False,
    )
    op.create_table(
        "rollup_verdicts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("field_name", sa.String(100), nullable=False),
        sa.Column("was_missing", sa.Boolean(), nullable=False),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("verdicts", sa.Integer(), nullable=False),
        sa.Column("unscored", sa.Integer(), nullable=False),
        *_centiles(),
        *[
            sa.Column(f"confidence_sum_{c:03d}", sa.Float(), nullable=False)
            for c in range(CENTILES)
        ],
    )
    op.create_index("ix_rollup_verdicts_day", "rollup_verdicts", ["day"], unique=False)
    op.create_index(
        "ix_review_decisions_report_created_at",
        "review_decisions",
        ["report_created_at"],
        unique=False,
    )
    op.create_table("rollup_dirty_days", sa.Column("day", sa.Date(), nullable=False))
    op.create_index("ix_rollup_dirty_days_day", "rollup_dirty_days", ["day"], unique=False)


ROLLUP_TABLES = (
    "rollup_reports",
    "rollup_processing_time_values",
    "rollup_fields",
    "rollup_missing_sets",
    "rollup_review_queue",
    "rollup_verdicts",
    "rollup_dirty_days",
)


def _swap_indexes() -> None:
    op.drop_index("ix_processing_reports_window", table_name="processing_reports")
    op.drop_index("ix_processing_reports_flagged", table_name="processing_reports")
    op.drop_index("ix_processing_reports_flagged_confidence", table_name="processing_reports")
    op.drop_index("ix_report_fields_missing", table_name="report_fields")
    op.create_index(
        "ix_processing_reports_open_queue",
        "processing_reports",
        ["created_at", "id", "intent", "confidence_route", "review_reason", "overall_confidence"],
        unique=False,
        **OPEN_QUEUE,
    )
    op.create_index(
        "ix_processing_reports_open_queue_confidence",
        "processing_reports",
        ["overall_confidence", "created_at", "id"],
        unique=False,
        **OPEN_QUEUE,
    )
    op.create_index(
        "ix_processing_reports_review_closed",
        "processing_reports",
        ["review_closed_at", "created_at"],
        unique=False,
        **CLOSED,
    )
    op.create_index(
        "ix_processing_reports_processing_time",
        "processing_reports",
        ["processing_time_ms", "created_at", "intent", "confidence_route"],
        unique=False,
    )


# The first decision on the current processing: decisions that reviewed an earlier
# processing (report_created_at before created_at) do not count.
_CLOSED_AT = """
    SELECT min(d.decided_at) FROM review_decisions AS d
    WHERE d.report_id = {report}.id AND d.report_created_at >= {report}.created_at
"""

_PG_FUNCTIONS = [
    """
    CREATE FUNCTION reportlib_mark_rollup_days() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        -- The INSERT locks rollup_dirty_days (ROW EXCLUSIVE) even when it adds nothing,
        -- so a refresh waits for this transaction. NOT EXISTS, not a unique key: a
        -- writer never waits for another writer's uncommitted day.
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO rollup_dirty_days (day)
            SELECT DISTINCT n.day FROM (
                SELECT CAST((created_at AT TIME ZONE 'UTC') AS DATE) AS day FROM new_rows
            ) AS n
            WHERE NOT EXISTS (SELECT 1 FROM rollup_dirty_days AS d WHERE d.day = n.day);
        END IF;
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO rollup_dirty_days (day)
            SELECT DISTINCT o.day FROM (
                SELECT CAST((created_at AT TIME ZONE 'UTC') AS DATE) AS day FROM old_rows
            ) AS o
            WHERE NOT EXISTS (SELECT 1 FROM rollup_dirty_days AS d WHERE d.day = o.day);
        END IF;
        RETURN NULL;
    END;
    $$;
    """,
    """
    CREATE FUNCTION reportlib_mark_verdict_days() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO rollup_dirty_days (day)
        SELECT DISTINCT n.day FROM (
            SELECT CAST((d.report_created_at AT TIME ZONE 'UTC') AS DATE) AS day
            FROM new_rows AS v JOIN review_decisions AS d ON d.id = v.decision_id
        ) AS n
        WHERE NOT EXISTS (SELECT 1 FROM rollup_dirty_days AS x WHERE x.day = n.day);
        RETURN NULL;
    END;
    $$;
    """,
    f"""
    CREATE FUNCTION reportlib_reopen_review() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        NEW.review_closed_at := ({_CLOSED_AT.format(report="NEW")});
        RETURN NEW;
    END;
    $$;
    """,
    """
    CREATE FUNCTION reportlib_close_review() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE processing_reports SET review_closed_at = NEW.decided_at
        WHERE id = NEW.report_id AND created_at <= NEW.report_created_at
          AND (review_closed_at IS NULL OR review_closed_at > NEW.decided_at);
        RETURN NULL;
    END;
    $$;
    """,
]

_PG_TRIGGERS = [
    "CREATE TRIGGER reportlib_rollup_days_insert AFTER INSERT ON processing_reports "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION reportlib_mark_rollup_days()",
    "CREATE TRIGGER reportlib_rollup_days_update AFTER UPDATE ON processing_reports "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION reportlib_mark_rollup_days()",
    "CREATE TRIGGER reportlib_rollup_days_delete AFTER DELETE ON processing_reports "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION reportlib_mark_rollup_days()",
    "CREATE TRIGGER reportlib_review_reopened BEFORE UPDATE OF created_at ON processing_reports "
    "FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at) "
    "EXECUTE FUNCTION reportlib_reopen_review()",
    "CREATE TRIGGER reportlib_review_closed AFTER INSERT ON review_decisions "
    "FOR EACH ROW EXECUTE FUNCTION reportlib_close_review()",
    "CREATE TRIGGER reportlib_rollup_days_verdicts AFTER INSERT ON review_field_verdicts "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION reportlib_mark_verdict_days()",
]

# NOT EXISTS rather than a unique key (see the PostgreSQL function); INSERT OR IGNORE
# would not do anyway: an outer upsert's conflict clause overrides it inside a trigger.
_SQLITE_MARK = (
    "INSERT INTO rollup_dirty_days (day) SELECT substr({row}.created_at, 1, 10) "
    "WHERE NOT EXISTS (SELECT 1 FROM rollup_dirty_days "
    "WHERE day = substr({row}.created_at, 1, 10)); "
)
_SQLITE_TRIGGERS = [
    "CREATE TRIGGER reportlib_rollup_days_insert AFTER INSERT ON processing_reports BEGIN "
    f"{_SQLITE_MARK.format(row='NEW')}END",
    "CREATE TRIGGER reportlib_rollup_days_update AFTER UPDATE ON processing_reports BEGIN "
    f"{_SQLITE_MARK.format(row='OLD')}{_SQLITE_MARK.format(row='NEW')}END",
    "CREATE TRIGGER reportlib_rollup_days_delete AFTER DELETE ON processing_reports BEGIN "
    f"{_SQLITE_MARK.format(row='OLD')}END",
    "CREATE TRIGGER reportlib_review_reopened AFTER UPDATE OF created_at ON processing_reports "
    "WHEN OLD.created_at IS NOT NEW.created_at BEGIN "
    "UPDATE processing_reports SET review_closed_at = "
    f"({_CLOSED_AT.format(report='NEW')}) WHERE id = NEW.id; END",
    "CREATE TRIGGER reportlib_rollup_days_verdicts AFTER INSERT ON review_field_verdicts "
    "BEGIN INSERT INTO rollup_dirty_days (day) "
    "SELECT substr(d.report_created_at, 1, 10) FROM review_decisions AS d "
    "WHERE d.id = NEW.decision_id AND NOT EXISTS (SELECT 1 FROM rollup_dirty_days AS x "
    "WHERE x.day = substr(d.report_created_at, 1, 10)); END",
    "CREATE TRIGGER reportlib_review_closed AFTER INSERT ON review_decisions BEGIN "
    "UPDATE processing_reports SET review_closed_at = NEW.decided_at "
    "WHERE id = NEW.report_id AND created_at <= NEW.report_created_at "
    "AND (review_closed_at IS NULL OR review_closed_at > NEW.decided_at); END",
]

_TRIGGER_NAMES = (
    ("reportlib_rollup_days_insert", "processing_reports"),
    ("reportlib_rollup_days_update", "processing_reports"),
    ("reportlib_rollup_days_delete", "processing_reports"),
    ("reportlib_review_reopened", "processing_reports"),
    ("reportlib_review_closed", "review_decisions"),
    ("reportlib_rollup_days_verdicts", "review_field_verdicts"),
)


def _backfill_review_closed_at(postgresql: bool) -> None:
    if not postgresql:
        op.execute(
            "UPDATE processing_reports SET review_closed_at = "
            f"({_CLOSED_AT.format(report='processing_reports')}) "
            "WHERE EXISTS (SELECT 1 FROM review_decisions AS e "
            "WHERE e.report_id = processing_reports.id)"
        )
        return
    # Only the column changes: report_fields need no re-sync, so its trigger is held off.
    op.execute("ALTER TABLE processing_reports DISABLE TRIGGER reportlib_report_fields_sync_update")
    op.execute(
        "UPDATE processing_reports AS r SET review_closed_at = c.closed_at "
        "FROM (SELECT d.report_id, min(d.decided_at) AS closed_at "
        "      FROM review_decisions AS d JOIN processing_reports AS p ON p.id = d.report_id "
        "      WHERE d.report_created_at >= p.created_at GROUP BY d.report_id) AS c "
        "WHERE r.id = c.report_id"
    )
    op.execute("ALTER TABLE processing_reports ENABLE TRIGGER reportlib_report_fields_sync_update")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # A populated database takes longer than an interactive statement may.
        op.execute("SET LOCAL statement_timeout = 0")
    op.add_column(
        "processing_reports",
        sa.Column("review_closed_at", sa.DateTime(timezone=True), nullable=True),
    )
    _backfill_review_closed_at(postgresql)
    _swap_indexes()
    _create_rollup_tables()
    day = (
        "CAST((created_at AT TIME ZONE 'UTC') AS DATE)" if postgresql else "substr(created_at, 1, 10)"
    )
    decision_day = day.replace("created_at", "d.report_created_at")
    op.execute(
        f"INSERT INTO rollup_dirty_days (day) SELECT DISTINCT {day} FROM processing_reports "
        f"UNION SELECT {decision_day} FROM review_decisions AS d "
        "WHERE EXISTS (SELECT 1 FROM review_field_verdicts AS v WHERE v.decision_id = d.id)"
    )
    if postgresql:
        for statement in _PG_FUNCTIONS + _PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for trigger, table in _TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        for function in (
            "reportlib_mark_rollup_days",
            "reportlib_reopen_review",
            "reportlib_close_review",
            "reportlib_mark_verdict_days",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    for table in ROLLUP_TABLES:
        op.drop_table(table)
    op.drop_index("ix_review_decisions_report_created_at", table_name="review_decisions")
    op.drop_index("ix_processing_reports_processing_time", table_name="processing_reports")
    op.drop_index("ix_processing_reports_review_closed", table_name="processing_reports")
    op.drop_index("ix_processing_reports_open_queue_confidence", table_name="processing_reports")
    op.drop_index("ix_processing_reports_open_queue", table_name="processing_reports")
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
    with op.batch_alter_table("processing_reports") as batch:
        batch.drop_column("review_closed_at")
