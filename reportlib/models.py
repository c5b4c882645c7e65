"""ORM models. The migrations under ``alembic/`` create exactly these tables.

Per-field figures are read from each report's ``extracted_fields`` and ``missing_fields``
(:func:`reportlib.rollups.report_field_rows`) when a rollup is computed; no table holds a
copy of them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from reportlib.dialect import (
    FloatValue,
    JSONDocument,
    UTCDateTime,
    utcnow,
)

ROUTES = ("high", "medium", "low")
#: Width of a processing-time bucket in milliseconds (exact percentiles read one bucket).
PROCESSING_TIME_BUCKET_MS = 256
#: A report's processing-time bucket in SQL, as the index on it is written (integer
#: division on both backends; times are never negative).
PROCESSING_TIME_BUCKET_SQL = f"processing_time_ms / {PROCESSING_TIME_BUCKET_MS}"
REVIEW_OUTCOMES = ("approved", "corrected", "rejected")
FIELD_VERDICTS = ("correct", "corrected", "absent")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IncomingEmail(Base):
    """An email the pipeline received. The pipeline owns the emails; we keep what we show."""

    __tablename__ = "incoming_emails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    subject: Mapped[str | None] = mapped_column(String(500))
    sender: Mapped[str | None] = mapped_column(String(320))
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"IncomingEmail(id={self.id!r})"


class ProcessingReport(Base):
    """What the pipeline extracted from one email, and how sure it was."""

    __tablename__ = "processing_reports"
    __table_args__ = (
        CheckConstraint(
            "overall_confidence >= 0 AND overall_confidence <= 1", name="overall_confidence_range"
        ),
        CheckConstraint(
            "confidence_route IN ('high', 'medium', 'low')", name="confidence_route_known"
        ),
        CheckConstraint("sources_processed >= 0", name="sources_processed_nonnegative"),
        CheckConstraint("total_tokens_used >= 0", name="total_tokens_used_nonnegative"),
        CheckConstraint(
            "processing_time_ms IS NULL OR processing_time_ms >= 0",
            name="processing_time_ms_nonnegative",
        ),
        # The review queue: flagged reports, oldest first.
        Index(
            "ix_processing_reports_review_queue",
            "created_at",
            postgresql_where=text("needs_review"),
            sqlite_where=text("needs_review = 1"),
        ),
        # The open review queue (flagged, no decision on the current processing): a few
        # thousand entries however many reports exist, oldest first or least confident first.
        Index(
            "ix_processing_reports_open_queue",
            "created_at",
            "id",
            "intent",
            "confidence_route",
            "review_reason",
            "overall_confidence",
            # A queue page reads from the index alone (PostgreSQL).
            postgresql_include=["email_id", "missing_fields"],
            postgresql_where=text("needs_review AND review_closed_at IS NULL"),
            sqlite_where=text("needs_review = 1 AND review_closed_at IS NULL"),
        ),
        Index(
            "ix_processing_reports_open_queue_confidence",
            "overall_confidence",
            "created_at",
            "id",
            postgresql_where=text("needs_review AND review_closed_at IS NULL"),
            sqlite_where=text("needs_review = 1 AND review_closed_at IS NULL"),
        ),
        # Flagged reports by when their review closed: the queue as it stood at an instant.
        Index(
            "ix_processing_reports_review_closed",
            "review_closed_at",
            "created_at",
            postgresql_where=text("needs_review AND review_closed_at IS NOT NULL"),
            sqlite_where=text("needs_review = 1 AND review_closed_at IS NOT NULL"),
        ),
        # The window by time; on PostgreSQL it also covers what the rollups read from a
        # report, so rebuilding a day (and reading a day not rolled up yet) skips the wide
        # rows.
        Index(
            "ix_processing_reports_created_at",
            "created_at",
            postgresql_include=[
                "intent",
                "confidence_route",
                "needs_review",
                "overall_confidence",
                "total_tokens_used",
                "processing_time_ms",
                "review_closed_at",
            ],
        ),
        # Exact percentiles of a filtered window: the raw values of one rollup bucket,
        # bucket by bucket in time order. New reports land at the end of their bucket's
        # range (a few hot pages), not at random points of the index as they did when
        # it was keyed by the raw time.
        Index(
            "ix_processing_reports_time_bucket",
            text(f"({PROCESSING_TIME_BUCKET_SQL})"),
            "created_at",
            postgresql_include=["processing_time_ms", "intent", "confidence_route"],
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("incoming_emails.id"), unique=True, nullable=False
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime(), nullable=False, server_default=utcnow()
    )
    extracted_fields: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument(float_confidences=True), nullable=False
    )
    missing_fields: Mapped[list[str] | None] = mapped_column(JSONDocument())
    overall_confidence: Mapped[float] = mapped_column(FloatValue(), nullable=False)
    confidence_route: Mapped[str] = mapped_column(String(20), nullable=False)
    needs_review: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    review_reason: Mapped[str | None] = mapped_column(String(100))
    intent: Mapped[str | None] = mapped_column(String(50))
    sources_processed: Mapped[int] = mapped_column(
        Integer, nullable=False, default=1, server_default=text("1")
    )
    total_tokens_used: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    processing_time_ms: Mapped[int | None] = mapped_column(Integer)
    # When the first decision on the current processing was made (None: none yet).
    # Kept by database triggers on review_decisions and on re-processing; see 0003.
    review_closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # When retention or an erasure request removed this report's values (None: they are
    # here). See reportlib.lifecycle for what a redacted report keeps; 0009.
    values_erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # The rate this report was drawn at as an audit sample (None: it is not one): the
    # pipeline did not flag it, and the writer put it into the review queue anyway, with
    # the reason "audit sample". See reportlib.sampling; 0013.
    audit_rate: Mapped[float | None] = mapped_column(FloatValue())

    email: Mapped[IncomingEmail] = relationship(lazy="raise")

    def __repr__(self) -> str:
        # Ids and scores only: extracted values are personal data.
        return (
            f"ProcessingReport(id={self.id!r}, email_id={self.email_id!r}, "
            f"route={self.confidence_route!r}, needs_review={self.needs_review!r})"
        )


class ReviewClaim(Base):
    """Who is working on a flagged report, until when. One row per report at most."""

    __tablename__ = "review_claims"

    report_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("processing_reports.id", ondelete="CASCADE"), primary_key=True
    )
    reviewer: Mapped[str] = mapped_column(String(200), nullable=False)
    claimed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)

    def __repr__(self) -> str:
        return f"ReviewClaim(report_id={self.report_id!r}, reviewer={self.reviewer!r})"


class ReviewDecision(Base):
    """A reviewer's verdict on one processing of a report. Append-only: the database
    refuses every UPDATE and DELETE except setting ``note`` to NULL (redaction, 0009)."""

    __tablename__ = "review_decisions"
    __table_args__ = (
        CheckConstraint("outcome IN ('approved', 'corrected', 'rejected')", name="outcome_known"),
        Index("ix_review_decisions_report_id_decided_at", "report_id", "decided_at"),
        # Verdicts by the day of the processing they reviewed (the quality rollup).
        Index("ix_review_decisions_report_created_at", "report_created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("processing_reports.id"), nullable=False
    )
    email_id: Mapped[int] = mapped_column(Integer, nullable=False)
    reviewer: Mapped[str] = mapped_column(String(200), nullable=False)
    decided_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime(), nullable=False, server_default=utcnow(), index=True
    )
    # When the reviewed processing was written: a later re-processing re-opens the review.
    report_created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)

    verdicts: Mapped[list[ReviewFieldVerdict]] = relationship(
        back_populates="decision", lazy="selectin", order_by="ReviewFieldVerdict.field_name"
    )

    def __repr__(self) -> str:
        return (
            f"ReviewDecision(id={self.id!r}, report_id={self.report_id!r}, "
            f"outcome={self.outcome!r})"
        )


class ReviewFieldVerdict(Base):
    """A reviewer's verdict on one field within a decision. Append-only: the database
    refuses every UPDATE and DELETE except setting ``corrected_value`` to NULL (0009)."""

    __tablename__ = "review_field_verdicts"
    __table_args__ = (
        CheckConstraint("verdict IN ('correct', 'corrected', 'absent')", name="verdict_known"),
        UniqueConstraint("decision_id", "field_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("review_decisions.id"), nullable=False
    )
    field_name: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    verdict: Mapped[str] = mapped_column(String(20), nullable=False)
    corrected_value: Mapped[Any | None] = mapped_column(JSONDocument())
    # What the pipeline said about the field when it was reviewed (None: marked missing).
    extracted_confidence: Mapped[float | None] = mapped_column(Float)
    was_missing: Mapped[bool] = mapped_column(Boolean, nullable=False)

    decision: Mapped[ReviewDecision] = relationship(back_populates="verdicts")

    def __repr__(self) -> str:
        return (
            f"ReviewFieldVerdict(decision_id={self.decision_id!r}, "
            f"field_name={self.field_name!r}, verdict={self.verdict!r})"
        )


class AuditEvent(Base):
    """Who saw or changed what, and when. Never holds extracted values. Append-only."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime(), nullable=False, server_default=utcnow(), index=True
    )
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    action: Mapped[str] = mapped_column(String(50), nullable=False)
    email_id: Mapped[int | None] = mapped_column(Integer, index=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())

    def __repr__(self) -> str:
        return f"AuditEvent(id={self.id!r}, action={self.action!r}, email_id={self.email_id!r})"


class AlertEvent(Base):
    """One state change of an alert rule (see :mod:`reportlib.alerts`): figures, filters
    and a dashboard link, never extracted values. A rule's latest row is its state."""

    __tablename__ = "alert_events"
    __table_args__ = (
        CheckConstraint("state IN ('firing', 'resolved')", name="state_known"),
        Index("ix_alert_events_rule_occurred_at", "rule", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(100), nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    metric: Mapped[str] = mapped_column(String(50), nullable=False)
    severity: Mapped[str] = mapped_column(String(10), nullable=False)
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    volume: Mapped[int] = mapped_column(Integer, nullable=False)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    window_end: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    link: Mapped[str] = mapped_column(Text, nullable=False)

    def __repr__(self) -> str:
        return f"AlertEvent(id={self.id!r}, rule={self.rule!r}, state={self.state!r})"


# --------------------------------------------------------------------------------------
# Rollups: per UTC day of ``created_at``, intent and route, what the dashboard's pages sum.
# Rebuilt a whole day at a time from the raw rows (reportlib.rollups), so every figure,
# minimum and maximum included, equals the raw computation. Days changed since their last
# rebuild are listed in rollup_dirty_days and read from the raw rows until then.
# --------------------------------------------------------------------------------------

#: Fixed-width confidence bins of the histograms (width 0.05; the last one holds 1.0).
CONFIDENCE_BINS = 20
#: Confidence centiles: ``c`` with ``c/100 <= confidence < (c+1)/100`` (100 for 1.0).
CENTILES = 101
#: Processing-time buckets; the last one also holds every longer time.
PROCESSING_TIME_BUCKETS = 64
#: Stand-in ``closed_day`` for review items still open (sorts after every real day).
OPEN_DAY = dt.date(9999, 12, 31)


def bin_column(index: int) -> str:
    """Name of the column counting confidence bin ``index``."""
    return f"bin_{index:02d}"


def centile_column(centile: int) -> str:
    """Name of the column counting confidence centile ``centile``."""
    return f"centile_{centile:03d}"


def centile_sum_column(centile: int) -> str:
    """Name of the column summing the confidences in centile ``centile``."""
    return f"confidence_sum_{centile:03d}"


def ms_bucket_column(bucket: int) -> str:
    """Name of the column counting processing-time bucket ``bucket``."""
    return f"ms_bucket_{bucket:02d}"


def _counts(names: list[str]) -> list[Column[Any]]:
    return [Column(name, Integer, nullable=False) for name in names]


def _hour() -> Column[Any]:
    # NULL: the row covers its whole day; 0-23: one UTC hour of it (recent days).
    return Column("hour", SmallInteger)


def _rollup_table(name: str, *columns: Column[Any]) -> Table:
    keys: list[Column[Any]] = [
        Column("day", Date, nullable=False),
        _hour(),
        Column("intent", String(50)),
        Column("route", String(20), nullable=False),
    ]
    return Table(name, Base.metadata, *keys, *columns, Index(f"ix_{name}_day", "day"))


# Histograms are columns, not rows: a day has one row per intent, route and flag however
# many reports it holds, so reading a window costs the same at any traffic.
rollup_reports = _rollup_table(
    "rollup_reports",
    Column("needs_review", Boolean, nullable=False),
    Column("reports", Integer, nullable=False),
    Column("confidence_sum", Float, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("timed_reports", Integer, nullable=False),
    *_counts([bin_column(i) for i in range(CONFIDENCE_BINS)]),
    *_counts([centile_column(c) for c in range(CENTILES)]),
    *_counts([ms_bucket_column(b) for b in range(PROCESSING_TIME_BUCKETS)]),
)

# Without intent and route: the exact values of one bucket for an unfiltered window.
rollup_processing_time_values = Table(
    "rollup_processing_time_values",
    Base.metadata,
    Column("day", Date, nullable=False),
    _hour(),
    Column("processing_time_ms", Integer, nullable=False),
    Column("reports", Integer, nullable=False),
    # A lookup reads each day's range from the index alone (PostgreSQL).
    Index(
        "ix_rollup_processing_time_values_day",
        "day",
        "processing_time_ms",
        postgresql_include=["reports", "hour"],
    ),
)

rollup_fields = _rollup_table(
    "rollup_fields",
    Column("field_name", String(100), nullable=False),
    Column("extracted", Integer, nullable=False),
    Column("missing", Integer, nullable=False),
    Column("scored", Integer, nullable=False),
    Column("confidence_sum", Float),
    Column("confidence_min", Float),
    Column("confidence_max", Float),
    *_counts([bin_column(i) for i in range(CONFIDENCE_BINS)]),
)

# The set of missing fields of each report, as the JSON text of its missing_fields list.
rollup_missing_sets = _rollup_table(
    "rollup_missing_sets",
    Column("missing_set", Text),
    Column("reports", Integer, nullable=False),
)

# Flagged reports by the day they were written, their review reason and the day their
# review closed (OPEN_DAY while open).
rollup_review_queue = Table(
    "rollup_review_queue",
    Base.metadata,
    Column("day", Date, nullable=False),
    _hour(),
    Column("intent", String(50)),
    Column("route", String(20), nullable=False),
    Column("review_reason", String(100)),
    Column("closed_day", Date, nullable=False),
    Column("items", Integer, nullable=False),
    Index("ix_rollup_review_queue_day", "day"),
    Index("ix_rollup_review_queue_closed_day", "closed_day", "day"),
)

# Reviewer verdicts by the UTC day of the processing they reviewed (report_created_at),
# field, kind and verdict: counts and confidence sums per exact confidence centile, and
# how many had no confidence.
rollup_verdicts = Table(
    "rollup_verdicts",
    Base.metadata,
    Column("day", Date, nullable=False),
    _hour(),
    Column("field_name", String(100), nullable=False),
    Column("was_missing", Boolean, nullable=False),
    Column("verdict", String(20), nullable=False),
    Column("verdicts", Integer, nullable=False),
    Column("unscored", Integer, nullable=False),
    *_counts([centile_column(c) for c in range(CENTILES)]),
    *[Column(centile_sum_column(c), Float, nullable=False) for c in range(CENTILES)],
    Index("ix_rollup_verdicts_day", "day"),
)

# The UTC hours changed since their last rebuild (hour NULL: the whole day). No unique
# key: a writer checks NOT EXISTS and never waits on another writer's uncommitted mark
# (two writers may list the same hour twice, which is harmless).
rollup_dirty_days = Table(
    "rollup_dirty_days",
    Base.metadata,
    Column("day", Date, nullable=False),
    Column("hour", SmallInteger),
    Index("ix_rollup_dirty_days_day", "day", "hour"),
)

ROLLUP_TABLES: tuple[Table, ...] = (
    rollup_reports,
    rollup_processing_time_values,
    rollup_fields,
    rollup_missing_sets,
    rollup_review_queue,
    rollup_verdicts,
)
