"""Review queue page and the drill-down: open items in the window, their count and
reasons, and one report's extraction."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Subquery,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import Session

from reportlib.checks import (
    check_int,
    one_of,
)
from reportlib.dialect import json_array_length
from reportlib.models import (
    OPEN_DAY,
    IncomingEmail,
    ProcessingReport,
)
from reportlib.queries.window import (
    MAX_GROUPS,
    NONE_LABEL,
    Dims,
    Labels,
    ReportFilter,
    clean_labels,
    dim_conditions,
    filter_params,
    key_field_names,
    label_values,
    most_frequent_first,
    open_review_condition,
    ordered_fields,
    report_window,
    rollup_read,
    sum_or_zero,
    with_truncation,
)
from reportlib.rollups import STATEMENT_CACHE_SIZE, SourceRead, SourceShape, source_rows
from reportlib.service import INT32_MAX

#: Largest page the review queue returns; also the CSV export cap.
MAX_QUEUE_ROWS: Final = 10_000
#: Allow-list of review queue orders; ties always fall back to age, then id.
QUEUE_SORTS: Final[dict[str, str]] = {
    "oldest": "Oldest first",
    "lowest_confidence": "Lowest confidence first",
}


def _reason_labels(reasons: Sequence[str]) -> tuple[str, ...]:
    return clean_labels(reasons, "reasons", 100) if reasons else ()


QUEUE_COLUMNS: Final = (
    "email_id",
    "created_at",
    "review_reason",
    "intent",
    "confidence_route",
    "overall_confidence",
    "missing_fields",
)


def review_queue_page(
    session: Session,
    *,
    flt: ReportFilter,
    sort: str = "oldest",
    limit: int = 50,
    offset: int = 0,
    reasons: Sequence[str] = (),
) -> pd.DataFrame:
    """One page of open review items created in the filtered window.

    ``sort`` is ``"oldest"`` (by ``created_at``) or ``"lowest_confidence"``; ties fall back
    to age, then report id, so pages never overlap. ``reasons`` limits to those review
    reasons (:data:`NONE_LABEL` for none). Columns: :data:`QUEUE_COLUMNS`; ``created_at``
    is UTC, ``missing_fields`` is the number of missing fields.
    """
    one_of(sort, QUEUE_SORTS, "sort")
    check_int(limit, "limit", 1, MAX_QUEUE_ROWS)
    check_int(offset, "offset", 0, INT32_MAX)
    labels = _reason_labels(reasons)
    params = {
        **filter_params(flt),
        "reasons": label_values(labels),
        "row_limit": limit,
        "row_offset": offset,
    }
    rows = session.execute(
        _queue_page_statement(Dims.of(flt), Labels.of(labels), sort), params
    ).all()
    frame = pd.DataFrame.from_records([tuple(row) for row in rows], columns=list(QUEUE_COLUMNS))
    return frame.astype(
        {
            "email_id": "int64",
            "overall_confidence": "float64",
            "missing_fields": "int64",
            "created_at": "datetime64[us, UTC]",
        }
    )


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _queue_page_statement(dims: Dims, reasons: Labels, sort: str) -> Select[*tuple[Any, ...]]:
    r = ProcessingReport
    order: list[Any] = [r.created_at, r.id]
    if sort == "lowest_confidence":
        order.insert(0, r.overall_confidence)
    by_reason = reasons.condition(r.review_reason, "reasons")
    return (
        select(
            r.email_id,
            r.created_at,
            r.review_reason,
            r.intent,
            r.confidence_route,
            r.overall_confidence,
            json_array_length(r.missing_fields).label("missing_fields"),
        )
        .where(
            *report_window(dims),
            open_review_condition(),
            *([] if by_reason is None else [by_reason]),
        )
        .order_by(*order)
        .limit(bindparam("row_limit", type_=Integer()))
        .offset(bindparam("row_offset", type_=Integer()))
    )


def _open_items(session: Session, flt: ReportFilter) -> SourceRead:
    """Queue rollup rows of the window (open ones have the stand-in closed_day)."""
    return rollup_read(session, "rollup_review_queue", flt, columns=("items",))


def _open_conditions(s: Subquery, dims: Dims, reasons: Labels) -> list[ColumnElement[bool]]:
    by_reason = reasons.condition(s.c.review_reason, "reasons")
    return [
        s.c.closed_day == OPEN_DAY,
        *dim_conditions(dims, s),
        *([] if by_reason is None else [by_reason]),
    ]


def count_review_queue_in_window(
    session: Session, *, flt: ReportFilter, reasons: Sequence[str] = ()
) -> int:
    """Number of open review items created in the filtered window (from the queue rollup:
    a few rows per day, however long the backlog)."""
    labels = _reason_labels(reasons)
    read = _open_items(session, flt)
    read.params["reasons"] = label_values(labels)
    stmt = _open_count_statement(read.shape, Dims.of(flt), Labels.of(labels))
    return int(session.execute(stmt, read.params).scalar_one())


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _open_count_statement(shape: SourceShape, dims: Dims, reasons: Labels) -> Select[Any]:
    s = source_rows(shape)
    return select(sum_or_zero(s.c["items"])).where(*_open_conditions(s, dims, reasons))


def review_queue_reasons(session: Session, *, flt: ReportFilter) -> pd.DataFrame:
    """Review reasons of open items in the window, most frequent first (at most
    :data:`MAX_GROUPS`). Columns: ``review_reason`` (:data:`NONE_LABEL` for none),
    ``items``."""
    read = _open_items(session, flt)
    rows = session.execute(_reasons_statement(read.shape, Dims.of(flt)), read.params).all()
    frame = pd.DataFrame.from_records(
        [
            (NONE_LABEL if reason is None else reason, int(items))
            for reason, items in rows[:MAX_GROUPS]
        ],
        columns=["review_reason", "items"],
    )
    return with_truncation(frame, len(rows) > MAX_GROUPS)


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _reasons_statement(shape: SourceShape, dims: Dims) -> Select[Any]:
    s = source_rows(shape)
    n = func.sum(s.c["items"])
    return (
        select(s.c.review_reason, n)
        .where(*_open_conditions(s, dims, Labels()))
        .group_by(s.c.review_reason)
        .order_by(*most_frequent_first(s.c.review_reason, n))
        .limit(MAX_GROUPS + 1)
    )


@dataclass(frozen=True, slots=True)
class FieldDetail:
    """One extracted field of a report. ``value`` is untrusted text from an email."""

    name: str
    value: Any
    confidence: float | None
    source: str | None


@dataclass(frozen=True, slots=True)
class ReportDetail:
    """Everything the drill-down shows about one report and its email."""

    report_id: int
    email_id: int
    created_at: dt.datetime
    overall_confidence: float
    confidence_route: str
    needs_review: bool
    open_for_review: bool
    review_reason: str | None
    intent: str | None
    sources_processed: int
    total_tokens_used: int
    processing_time_ms: int | None
    subject: str | None
    sender: str | None
    received_at: dt.datetime | None
    fields: tuple[FieldDetail, ...] = field(default=())
    missing_fields: tuple[str, ...] = field(default=())
    # When retention or an erasure request removed the values (None: they are shown).
    values_erased_at: dt.datetime | None = None
    #: The rate this report was drawn at as an audit sample (None: it is not one).
    audit_rate: float | None = None

    @property
    def blind(self) -> bool:
        """An open audit sample: its confidences and route are not shown before the
        decision, so that the machine's score does not sway the reviewer."""
        return self.audit_rate is not None and self.open_for_review


def _float_or_none(value: Any) -> float | None:
    # Decimal from the exact JSON codec, or anything a foreign writer stored.
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def get_report_detail(
    session: Session, *, email_id: int, key_fields: Sequence[str] | None = None
) -> ReportDetail | None:
    """The report for ``email_id`` with its email's details, or None if there is none.

    Fields are listed key fields first (settings order), then the rest by name.
    """
    check_int(email_id, "email_id", 1, INT32_MAX)
    keys = key_field_names(key_fields)
    r = ProcessingReport
    e = IncomingEmail
    row = session.execute(
        select(r, e.subject, e.sender, e.received_at)
        .outerjoin(e, e.id == r.email_id)
        .where(r.email_id == email_id)
        .limit(1)
    ).one_or_none()
    if row is None:
        return None
    report, subject, sender, received_at = row
    is_open: Any = session.execute(
        select(literal_column("1")).where(r.id == report.id, open_review_condition()).limit(1)
    ).first()
    extracted = report.extracted_fields if isinstance(report.extracted_fields, dict) else {}
    fields = []
    for name in ordered_fields(extracted, keys):
        item = extracted[name]
        if isinstance(item, dict):
            source = item.get("source")
            fields.append(
                FieldDetail(
                    name=name,
                    value=item.get("value"),
                    confidence=_float_or_none(item.get("confidence")),
                    source=None if source is None else str(source),
                )
            )
        else:
            fields.append(FieldDetail(name=name, value=item, confidence=None, source=None))
    missing = report.missing_fields if isinstance(report.missing_fields, list) else []
    return ReportDetail(
        report_id=report.id,
        email_id=report.email_id,
        created_at=report.created_at,
        overall_confidence=report.overall_confidence,
        confidence_route=report.confidence_route,
        needs_review=report.needs_review,
        open_for_review=is_open is not None,
        review_reason=report.review_reason,
        intent=report.intent,
        sources_processed=report.sources_processed,
        total_tokens_used=report.total_tokens_used,
        processing_time_ms=report.processing_time_ms,
        subject=subject,
        sender=sender,
        received_at=received_at,
        fields=tuple(fields),
        missing_fields=tuple(str(name) for name in missing),
        values_erased_at=report.values_erased_at,
        audit_rate=report.audit_rate,
    )
