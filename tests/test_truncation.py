"""Bounded breakdowns say when their bound left groups out (one row more is fetched)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from reportlib import queries
from reportlib.queries import MAX_GROUPS, ReportFilter, is_truncated
from tests.factories import checkpoints, extracted, make_report


def _report(db: Session, i: int) -> None:
    name = f"extra_{i:02d}"
    metadata: dict[str, Any] = dict(extracted()["extraction_metadata"])
    metadata[name] = {"confidence": 0.5, "source": "email_body"}
    make_report(
        db,
        extracted_data=extracted(**{name: "x"}, extraction_metadata=metadata),
        agent_checkpoints=checkpoints(intent=f"intent_{i:02d}"),
        confidence_route="medium",
        needs_review=True,
        review_reason=f"reason {i:02d}",
    )


def _flags(db: Session, flt: ReportFilter) -> dict[str, bool]:
    return {
        "field summary": is_truncated(queries.field_confidence_summary(db, flt=flt)),
        "confidence by intent": is_truncated(queries.confidence_by_intent(db, flt=flt)),
        "missing by intent": is_truncated(queries.missing_fields_by_intent(db, flt=flt)),
        "review reasons": is_truncated(queries.review_queue_reasons(db, flt=flt)),
    }


def test_breakdowns_report_truncation_exactly_past_their_bound(db: Session) -> None:
    today = dt.datetime.now(dt.UTC).date()
    flt = ReportFilter(today - dt.timedelta(days=1), today)
    # Four key fields plus MAX_GROUPS others fit; so do MAX_GROUPS intents and reasons.
    for i in range(MAX_GROUPS):
        _report(db, i)
    assert _flags(db, flt) == dict.fromkeys(_flags(db, flt), False)
    summary = queries.field_confidence_summary(db, flt=flt)
    assert len(summary) == MAX_GROUPS + 4

    _report(db, MAX_GROUPS)
    assert _flags(db, flt) == dict.fromkeys(_flags(db, flt), True)
    assert len(queries.field_confidence_summary(db, flt=flt)) == MAX_GROUPS + 4
    assert len(queries.confidence_by_intent(db, flt=flt)) == MAX_GROUPS
    assert len(queries.review_queue_reasons(db, flt=flt)) == MAX_GROUPS
    # Totals still count every report.
    assert queries.count_review_queue_in_window(db, flt=flt) == MAX_GROUPS + 1
