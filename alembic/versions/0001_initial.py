"""Processing reports, per-field facts, review loop and audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

If the host database already has an ``incoming_emails`` table, it is reused: the host
owns it, so we only add the nullable descriptive columns it lacks and never drop it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
TIMESTAMP = sa.DateTime(timezone=True)
APPEND_ONLY_TABLES = ("review_decisions", "review_field_verdicts", "audit_events")


def _utcnow() -> sa.TextClause:
    if op.get_bind().dialect.name == "postgresql":
        return sa.text("statement_timestamp()")
    return sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")


def _create_or_adopt_incoming_emails() -> str:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("incoming_emails"):
        op.create_table(
            "incoming_emails",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("subject", sa.String(500), nullable=True),
            sa.Column("sender", sa.String(320), nullable=True),
            sa.Column("received_at", TIMESTAMP, nullable=True),
            sa.PrimaryKeyConstraint("id", name="pk_incoming_emails"),
        )
        return "reportlib"
    existing = {column["name"] for column in inspector.get_columns("incoming_emails")}
    if "id" not in existing:
        raise RuntimeError("the existing incoming_emails table has no id column to reference")
    wanted = {
        "subject": sa.String(500),
        "sender": sa.String(320),
        "received_at": TIMESTAMP,
    }
    for name, type_ in wanted.items():
        if name not in existing:
            op.add_column("incoming_emails", sa.Column(name, type_, nullable=True))
    return "host"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "reportlib_schema_info",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_reportlib_schema_info"),
    )
    owner = _create_or_adopt_incoming_emails()
    op.execute(
        sa.text(
            "INSERT INTO reportlib_schema_info (key, value) VALUES ('incoming_emails_owner', :owner)"
        ).bindparams(owner=owner)
    )

    op.create_table(
        "processing_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, server_default=_utcnow(), nullable=False),
        sa.Column("extracted_fields", JSON_DOCUMENT, nullable=False),
        sa.Column("missing_fields", JSON_DOCUMENT, nullable=True),
        sa.Column("overall_confidence", sa.Float(), nullable=False),
        sa.Column("confidence_route", sa.String(20), nullable=False),
        sa.Column("needs_review", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("review_reason", sa.String(100), nullable=True),
        sa.Column("intent", sa.String(50), nullable=True),
        sa.Column("sources_processed", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("total_tokens_used", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("processing_time_ms", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "overall_confidence >= 0 AND overall_confidence <= 1",
            name=op.f("ck_processing_reports_overall_confidence_range"),
        ),
        sa.CheckConstraint(
            "confidence_route IN ('high', 'medium', 'low')",
            name=op.f("ck_processing_reports_confidence_route_known"),
        ),
        sa.CheckConstraint(
            "sources_processed >= 0",
            name=op.f("ck_processing_reports_sources_processed_nonnegative"),
        ),
        sa.CheckConstraint(
            "total_tokens_used >= 0",
            name=op.f("ck_processing_reports_total_tokens_used_nonnegative"),
        ),
        sa.CheckConstraint(
            "processing_time_ms IS NULL OR processing_time_ms >= 0",
            name=op.f("ck_processing_reports_processing_time_ms_nonnegative"),
        ),
        sa.ForeignKeyConstraint(
            ["email_id"],
            ["incoming_emails.id"],
            name="fk_processing_reports_email_id_incoming_emails",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_processing_reports"),
        sa.UniqueConstraint("email_id", name="uq_processing_reports_email_id"),
    )
    op.create_index(
        "ix_processing_reports_created_at", "processing_reports", ["created_at"], unique=False
    )
    op.create_index(
        "ix_processing_reports_review_queue",
        "processing_reports",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("needs_review"),
        sqlite_where=sa.text("needs_review = 1"),
    )

    op.create_table(
        "report_fields",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("field_name", sa.String(100), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
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

    op.create_table(
        "review_claims",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("claimed_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["processing_reports.id"],
            name="fk_review_claims_report_id_processing_reports",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("report_id", name="pk_review_claims"),
    )
    op.create_index("ix_review_claims_expires_at", "review_claims", ["expires_at"], unique=False)

    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("email_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("decided_at", TIMESTAMP, server_default=_utcnow(), nullable=False),
        sa.Column("report_created_at", TIMESTAMP, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('approved', 'corrected', 'rejected')",
            name=op.f("ck_review_decisions_outcome_known"),
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["processing_reports.id"],
            name="fk_review_decisions_report_id_processing_reports",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_review_decisions"),
    )
    op.create_index(
        "ix_review_decisions_decided_at", "review_decisions", ["decided_at"], unique=False
    )
    op.create_index(
        "ix_review_decisions_report_id_decided_at",
        "review_decisions",
        ["report_id", "decided_at"],
        unique=False,
    )

    op.create_table(
        "review_field_verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("field_name", sa.String(100), nullable=False),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("corrected_value", JSON_DOCUMENT, nullable=True),
        sa.Column("extracted_confidence", sa.Float(), nullable=True),
        sa.Column("was_missing", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "verdict IN ('correct', 'corrected', 'absent')",
            name=op.f("ck_review_field_verdicts_verdict_known"),
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["review_decisions.id"],
            name="fk_review_field_verdicts_decision_id_review_decisions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_review_field_verdicts"),
        sa.UniqueConstraint(
            "decision_id", "field_name", name="uq_review_field_verdicts_decision_id"
        ),
    )
    op.create_index(
        "ix_review_field_verdicts_field_name", "review_field_verdicts", ["field_name"], unique=False
    )

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, server_default=_utcnow(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("email_id", sa.Integer(), nullable=True),
        sa.Column("details", JSON_DOCUMENT, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_occurred_at", "audit_events", ["occurred_at"], unique=False)
    op.create_index("ix_audit_events_email_id", "audit_events", ["email_id"], unique=False)

    if dialect == "postgresql":
        _create_postgresql_triggers()
    else:
        _create_sqlite_triggers()


# report_fields mirrors extracted_fields and missing_fields, so per-field aggregates read a
# narrow indexed table instead of parsing JSON for every report in the window. A trigger
# keeps it exact for every writer, including hand-written SQL and bulk loads.
_PG_SYNC_FUNCTION = """
CREATE FUNCTION reportlib_sync_report_fields() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM report_fields WHERE report_id = NEW.id;
    END IF;
    INSERT INTO report_fields
        (report_id, field_name, created_at, intent, confidence_route, confidence, is_missing)
    SELECT NEW.id, f.key, NEW.created_at, NEW.intent, NEW.confidence_route,
           (f.value ->> 'confidence')::double precision, false
    FROM jsonb_each(NEW.extracted_fields) AS f
    WHERE jsonb_typeof(f.value) = 'object'
    UNION ALL
    SELECT NEW.id, m.name, NEW.created_at, NEW.intent, NEW.confidence_route, NULL, true
    FROM jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(NEW.missing_fields) = 'array'
             THEN NEW.missing_fields ELSE '[]'::jsonb END
    ) AS m(name)
    ON CONFLICT (report_id, field_name) DO NOTHING;
    RETURN NULL;
END;
$$;
"""

_PG_APPEND_ONLY_FUNCTION = """
CREATE FUNCTION reportlib_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME;
END;
$$;
"""


def _create_postgresql_triggers() -> None:
    op.execute(_PG_SYNC_FUNCTION)
    op.execute(
        "CREATE TRIGGER reportlib_report_fields_sync AFTER INSERT OR UPDATE "
        "ON processing_reports FOR EACH ROW EXECUTE FUNCTION reportlib_sync_report_fields()"
    )
    op.execute(_PG_APPEND_ONLY_FUNCTION)
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER reportlib_{table}_append_only BEFORE UPDATE OR DELETE "
            f"ON {table} FOR EACH ROW EXECUTE FUNCTION reportlib_append_only()"
        )


_SQLITE_FIELD_INSERTS = """
    INSERT OR IGNORE INTO report_fields
        (report_id, field_name, created_at, intent, confidence_route, confidence, is_missing)
    SELECT NEW.id, f.key, NEW.created_at, NEW.intent, NEW.confidence_route,
           CAST(json_extract(f.value, '$.confidence') AS REAL), 0
    FROM json_each(NEW.extracted_fields) AS f
    WHERE f.type = 'object';
    INSERT OR IGNORE INTO report_fields
        (report_id, field_name, created_at, intent, confidence_route, confidence, is_missing)
    SELECT NEW.id, m.value, NEW.created_at, NEW.intent, NEW.confidence_route, NULL, 1
    FROM json_each(
        CASE WHEN json_type(NEW.missing_fields) = 'array' THEN NEW.missing_fields ELSE '[]' END
    ) AS m;
"""


def _create_sqlite_triggers() -> None:
    op.execute(
        "CREATE TRIGGER reportlib_report_fields_insert AFTER INSERT ON processing_reports "
        f"BEGIN {_SQLITE_FIELD_INSERTS} END"
    )
    op.execute(
        "CREATE TRIGGER reportlib_report_fields_update AFTER UPDATE ON processing_reports "
        f"BEGIN DELETE FROM report_fields WHERE report_id = NEW.id; {_SQLITE_FIELD_INSERTS} END"
    )
    for table in APPEND_ONLY_TABLES:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER reportlib_{table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only'); END"
            )


def downgrade() -> None:
    bind = op.get_bind()
    owner = bind.execute(
        sa.text("SELECT value FROM reportlib_schema_info WHERE key = 'incoming_emails_owner'")
    ).scalar()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS reportlib_report_fields_sync ON processing_reports")
        for table in APPEND_ONLY_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS reportlib_{table}_append_only ON {table}")
    for table in ("audit_events", "review_field_verdicts", "review_decisions", "review_claims"):
        op.drop_table(table)
    op.drop_table("report_fields")
    op.drop_table("processing_reports")
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS reportlib_sync_report_fields()")
        op.execute("DROP FUNCTION IF EXISTS reportlib_append_only()")
    if owner == "reportlib":
        op.drop_table("incoming_emails")
    op.drop_table("reportlib_schema_info")
