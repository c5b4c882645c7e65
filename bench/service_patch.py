"""The write path with statements built once, as proposed for ``reportlib/service.py``.

Profiling ``create_processing_report`` shows most of its Python time is spent building
a new ``INSERT ... SELECT ... ON CONFLICT`` construct for every call (eleven ``literal()``
columns, ``exists()``, ``excluded`` and ``returning`` each allocate expression objects),
and ``create_processing_reports`` compiles a fresh 1,000-row multi-VALUES statement for
every chunk. Here the statements are built once per dialect with ``bindparam()``
placeholders: SQLAlchemy then reuses the compiled form and its cache key, and the batch
goes through ``executemany`` with RETURNING, which SQLAlchemy pages into multi-row
VALUES statements ("insertmanyvalues").

Same validation (``build_report_values``), same SQL semantics, same return values. The
harness measures these next to the current functions; BENCHMARKS.md gives the patch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reportlib.errors import ReportValidationError, UnknownEmailError
from reportlib.models import IncomingEmail, ProcessingReport, utcnow
from reportlib.service import _UPDATED_ON_CONFLICT, ReportInput, build_report_values

_COLUMNS = ("email_id", *_UPDATED_ON_CONFLICT)


def _insert_for(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"unsupported database backend: {dialect}")


def _on_conflict(stmt: Any) -> Any:
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[ProcessingReport.__table__.c.email_id],
        set_={**{name: excluded[name] for name in _UPDATED_ON_CONFLICT}, "created_at": utcnow()},
    )


@functools.cache
def single_upsert(dialect: str) -> Any:
    """INSERT ... SELECT :params WHERE EXISTS (email) ON CONFLICT ... RETURNING the report."""
    table = ProcessingReport.__table__
    source = select(
        *(bindparam(name, type_=table.c[name].type).label(name) for name in _COLUMNS)
    ).where(exists().where(IncomingEmail.id == bindparam("email_id")))
    stmt = _insert_for(dialect)(table).from_select(list(_COLUMNS), source)
    # A Core INSERT read back as ORM objects: insert(ProcessingReport) with a parameter
    # dict would switch the ORM into its bulk-insert mode instead.
    return select(ProcessingReport).from_statement(_on_conflict(stmt).returning(*table.c))


@functools.cache
def batch_upsert(dialect: str) -> Any:
    """INSERT ... VALUES ON CONFLICT ... RETURNING id, for executemany over known emails.

    RETURNING is what lets SQLAlchemy's "insertmanyvalues" page the rows into multi-row
    VALUES statements: without it, an upsert falls back to one round trip per row.
    """
    table = ProcessingReport.__table__
    return _on_conflict(_insert_for(dialect)(table)).returning(table.c.id)


def create_processing_report(
    db: Session,
    email_id: int,
    extracted_data: Mapping[str, Any],
    agent_checkpoints: Mapping[str, Any],
    overall_confidence: float,
    confidence_route: str,
    needs_review: bool,
    review_reason: str | None = None,
    processing_time_ms: int | None = None,
    *,
    key_fields: Sequence[str] | None = None,
) -> ProcessingReport:
    """As :func:`reportlib.create_processing_report`, with the statement built once."""
    values = build_report_values(
        email_id=email_id,
        extracted_data=extracted_data,
        agent_checkpoints=agent_checkpoints,
        overall_confidence=overall_confidence,
        confidence_route=confidence_route,
        needs_review=needs_review,
        review_reason=review_reason,
        processing_time_ms=processing_time_ms,
        key_fields=key_fields,
    )
    db.flush()
    stmt = single_upsert(db.get_bind().dialect.name)
    report = db.scalars(stmt, values, execution_options={"populate_existing": True}).one_or_none()
    if report is None:
        raise UnknownEmailError()
    return report


def create_processing_reports(
    db: Session,
    reports: Iterable[ReportInput],
    *,
    key_fields: Sequence[str] | None = None,
    chunk_size: int = 1000,
) -> int:
    """As :func:`reportlib.create_processing_reports`, through one prebuilt executemany."""
    by_email: dict[int, dict[str, Any]] = {}
    for position, item in enumerate(reports):
        try:
            values = build_report_values(
                email_id=item.email_id,
                extracted_data=item.extracted_data,
                agent_checkpoints=item.agent_checkpoints,
                overall_confidence=item.overall_confidence,
                confidence_route=item.confidence_route,
                needs_review=item.needs_review,
                review_reason=item.review_reason,
                processing_time_ms=item.processing_time_ms,
                key_fields=key_fields,
            )
        except ReportValidationError as exc:
            raise ReportValidationError(f"reports[{position}].{exc.field}", exc.problem) from None
        by_email[values["email_id"]] = values
    if not by_email:
        return 0
    ordered = [by_email[key] for key in sorted(by_email)]
    known = set(
        db.scalars(select(IncomingEmail.id).where(IncomingEmail.id.in_(list(by_email)))).all()
    )
    if len(known) != len(by_email):
        position = next(i for i, row in enumerate(ordered) if row["email_id"] not in known)
        raise UnknownEmailError(f"reports[{position}].email_id")
    db.flush()
    stmt = batch_upsert(db.get_bind().dialect.name)
    for start in range(0, len(ordered), chunk_size):
        db.execute(stmt, ordered[start : start + chunk_size]).all()
    return len(ordered)
