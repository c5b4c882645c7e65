"""Test data builders. Values are obviously fake; tests assert on whole structures."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from reportlib import ProcessingReport, create_processing_report, ensure_incoming_email

_ids = itertools.count(1)


def next_email_id() -> int:
    return next(_ids) + 100_000


def extracted(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "client_name": "Erika Mustermann",
        "creditor_name": "Stadtwerke Beispiel GmbH",
        "debt_amount": Decimal("1234.56"),
        "reference_numbers": ["AZ-2026-0001"],
        "extraction_metadata": {
            "client_name": {"confidence": 0.92, "source": "email_body"},
            "creditor_name": {"confidence": 0.88, "source": "email_body"},
            "debt_amount": {"confidence": 0.81, "source": "attachment:invoice.pdf"},
            "reference_numbers": {"confidence": 0.77, "source": "email_subject"},
        },
    }
    data.update(overrides)
    return data


def checkpoints(intent: str = "debt_claim", **extraction: Any) -> dict[str, Any]:
    return {
        "agent_1_intent": {"intent": intent, "confidence": 0.97},
        "agent_2_extraction": {"sources_processed": 2, "total_tokens_used": 1800, **extraction},
    }


def make_report(
    db: Session,
    *,
    email_id: int | None = None,
    extracted_data: dict[str, Any] | None = None,
    agent_checkpoints: dict[str, Any] | None = None,
    overall_confidence: float = 0.85,
    confidence_route: str = "high",
    needs_review: bool = False,
    review_reason: str | None = None,
    processing_time_ms: int | None = 1500,
    created_at: dt.datetime | None = None,
    subject: str | None = "Zahlungserinnerung",
    sender: str | None = "inkasso@example.test",
) -> ProcessingReport:
    """Write one report (and its email) through the public service; optionally backdate it."""
    email_id = email_id or next_email_id()
    ensure_incoming_email(db, email_id, subject=subject, sender=sender)
    report = create_processing_report(
        db,
        email_id,
        extracted_data if extracted_data is not None else extracted(),
        agent_checkpoints if agent_checkpoints is not None else checkpoints(),
        overall_confidence,
        confidence_route,
        needs_review,
        review_reason,
        processing_time_ms,
    )
    if created_at is not None:
        db.execute(
            update(ProcessingReport)
            .where(ProcessingReport.id == report.id)
            .values(created_at=created_at)
        )
        db.refresh(report)
    return report
