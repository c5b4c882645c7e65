"""Audit trail: value-free details, bounded ordered listing, append-only, no leaked values."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from reportlib import AuditEvent, ReportValidationError, jsoncodec
from reportlib.audit import (
    AuditEntry,
    check_audit_details,
    count_audit_events,
    list_audit_events,
    record_audit_event,
)
from reportlib.review import (
    FieldVerdict,
    ReviewInputError,
    claim_next_report,
    decide_report,
    get_review_history,
    release_claim,
)
from tests.factories import checkpoints, extracted, make_report

T0 = dt.datetime(2026, 4, 1, 8, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


def actor() -> str:
    return f"auditor-{uuid.uuid4().hex[:10]}@example.test"


def test_recorded_events_list_newest_first_with_filters(db: Session) -> None:
    who, other = actor(), actor()
    ids = [
        record_audit_event(
            db,
            actor=who,
            action="drilldown_viewed",
            email_id=7,
            details={"role": "reviewer", "page": "/review", "masked": False},
            occurred_at=T0,
        ),
        record_audit_event(
            db,
            actor=who,
            action="csv_exported",
            details={
                "page": "/missing-fields",
                "row_count": 120,
                "fields": ["client_name", "debt_amount"],
                "start_date": "2026-03-01",
                "end_date": dt.date(2026, 3, 31),
                "email_ids": [1, 2, 3],
            },
            occurred_at=T0 + MIN,
        ),
        record_audit_event(db, actor=other, action="audit_log_viewed", occurred_at=T0 + MIN),
        record_audit_event(db, actor=who, action="drilldown_viewed", email_id=8, occurred_at=T0),
    ]
    assert ids == sorted(ids)
    entries = list_audit_events(db, start=T0, end=T0 + 2 * MIN)
    expected = [
        AuditEntry(ids[2], T0 + MIN, other, "audit_log_viewed", None, None),
        AuditEntry(
            ids[1],
            T0 + MIN,
            who,
            "csv_exported",
            None,
            {
                "page": "/missing-fields",
                "row_count": 120,
                "fields": ["client_name", "debt_amount"],
                "start_date": "2026-03-01",
                "end_date": "2026-03-31",
                "email_ids": [1, 2, 3],
            },
        ),
        AuditEntry(ids[3], T0, who, "drilldown_viewed", 8, None),
        AuditEntry(
            ids[0],
            T0,
            who,
            "drilldown_viewed",
            7,
            {"role": "reviewer", "page": "/review", "masked": False},
        ),
    ]
    assert entries == expected
    assert list_audit_events(db, start=T0, end=T0 + 2 * MIN, limit=2, offset=1) == expected[1:3]
    assert list_audit_events(db, actor=who, action="drilldown_viewed") == expected[2:]
    assert list_audit_events(db, actor=other) == expected[:1]
    assert list_audit_events(db, start=T0 + MIN, end=T0 + 2 * MIN) == expected[:2]
    assert list_audit_events(db, email_id=7, actor=who) == expected[3:]
    assert count_audit_events(db, start=T0, end=T0 + 2 * MIN) == 4
    assert count_audit_events(db, actor=who) == 3


def test_default_time_is_the_database_clock(db: Session) -> None:
    who = actor()
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    record_audit_event(db, actor=who, action="audit_log_viewed")
    (entry,) = list_audit_events(db, actor=who)
    assert before <= entry.occurred_at <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)


@pytest.mark.parametrize(
    ("details", "field"),
    [
        ({"client_name": "Erika Mustermann"}, "details.client_name"),
        ({"value": "Erika Mustermann"}, "details.value"),
        ({"note": "Erika Mustermann"}, "details.note"),
        ({"report_id": "12"}, "details.report_id"),
        ({"report_id": True}, "details.report_id"),
        ({"report_id": -1}, "details.report_id"),
        ({"row_count": 1.5}, "details.row_count"),
        ({"fields": ["Erika Mustermann"]}, "details.fields"),
        ({"fields": "client_name"}, "details.fields"),
        ({"field": "debt_amount=1234.56"}, "details.field"),
        ({"verdicts": {"client_name": "Erika"}}, "details.verdicts"),
        ({"verdicts": {"Erika Mustermann": "correct"}}, "details.verdicts"),
        ({"outcome": "Erika"}, "details.outcome"),
        ({"role": "root"}, "details.role"),
        ({"page": "javascript:alert(1)"}, "details.page"),
        ({"page": "/review?email_id=5&name=Erika"}, "details.page"),
        ({"has_note": "Erika"}, "details.has_note"),
        ({"start_date": "2026-13-01"}, "details.start_date"),
        ({"start_date": "Erika"}, "details.start_date"),
        ({"email_ids": [1, "Erika"]}, "details.email_ids"),
        ({"Erika Mustermann": 1}, "details"),
        ({1: 1}, "details"),
        ({f"k{i}_count": i for i in range(31)}, "details"),
        ("Erika", "details"),
    ],
)
def test_details_that_could_hold_a_value_are_refused(db: Session, details: Any, field: str) -> None:
    before = db.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(ReportValidationError) as refused:
        record_audit_event(db, actor=actor(), action="csv_exported", details=details)
    assert refused.value.field == field
    assert "Erika" not in str(refused.value)
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == before


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"actor": ""}, "actor"),
        ({"actor": "a\x00b"}, "actor"),
        ({"actor": "x" * 201}, "actor"),
        ({"action": "deleted_everything"}, "action"),
        ({"email_id": 0.5}, "email_id"),
        ({"email_id": 2**31}, "email_id"),
        ({"occurred_at": dt.datetime(2026, 1, 1)}, "occurred_at"),
    ],
)
def test_bad_arguments_are_refused(db: Session, kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"actor": actor(), "action": "drilldown_viewed", **kwargs}
    before = db.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(ReportValidationError) as refused:
        record_audit_event(db, **arguments)
    assert refused.value.field == field
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == before


def test_listing_is_bounded_and_validated(db: Session) -> None:
    with pytest.raises(ReportValidationError, match="limit"):
        list_audit_events(db, limit=0)
    with pytest.raises(ReportValidationError, match="limit"):
        list_audit_events(db, limit=1001)
    with pytest.raises(ReportValidationError, match="offset"):
        list_audit_events(db, offset=-1)
    with pytest.raises(ReportValidationError, match="start"):
        list_audit_events(db, start=dt.datetime(2026, 1, 1))
    with pytest.raises(ReportValidationError, match="end"):
        list_audit_events(db, start=T0, end=T0 - MIN)
    with pytest.raises(ReportValidationError, match="action"):
        list_audit_events(db, action="drop table")
    who = actor()
    for index in range(5):
        record_audit_event(db, actor=who, action="audit_log_viewed", occurred_at=T0 + index * MIN)
    assert [e.occurred_at for e in list_audit_events(db, actor=who, limit=3)] == [
        T0 + 4 * MIN,
        T0 + 3 * MIN,
        T0 + 2 * MIN,
    ]


def test_check_audit_details_keeps_allowed_shapes() -> None:
    details = {
        "id": 1,
        "report_id": 2,
        "decision_ids": [3, 4],
        "count": 0,
        "rows": 10,
        "limit": 100,
        "offset": 0,
        "claim_minutes": 15,
        "field": "debt_amount",
        "field_names": ["extraction_metadata.debt_amount"],
        "missing_fields": ["reference_numbers"],
        "outcome": "rejected",
        "verdict": "absent",
        "verdicts": {"client_name": "corrected"},
        "role": "admin",
        "page": "/",
        "is_masked": True,
        "was_exported": False,
        "date": "2026-02-28",
    }
    assert check_audit_details(details) == details
    assert check_audit_details(None) is None
    assert check_audit_details({}) is None


def test_audit_rows_are_append_only(db: Session) -> None:
    entry_id = record_audit_event(db, actor=actor(), action="audit_log_viewed")
    for statement in (
        update(AuditEvent).where(AuditEvent.id == entry_id).values(actor="someone else"),
        delete(AuditEvent).where(AuditEvent.id == entry_id),
    ):
        savepoint = db.begin_nested()
        with pytest.raises(DBAPIError, match="append-only"):
            db.execute(statement)
        savepoint.rollback()
    assert db.scalar(select(AuditEvent.actor).where(AuditEvent.id == entry_id)) is not None


CANARIES = (
    "Kanarienvogel-Klient-51f",
    "Kanarienvogel-Glaeubiger-51f",
    "KANARIEN-AZ-51f",
    "987654.32",
    "Kanarienvogel-Notiz-51f",
    "Kanarienvogel-Korrektur-51f",
    "KANARIEN-NACHTRAG-51f",
    "13579.11",
)


def test_review_work_leaves_audit_rows_without_values(db: Session) -> None:
    intent = f"t{uuid.uuid4().hex[:16]}"
    reviewer = actor()
    data = extracted(
        client_name=CANARIES[0],
        creditor_name=CANARIES[1],
        reference_numbers=None,
        debt_amount=Decimal(CANARIES[3]),
        **{"iban_holder": "Kanarienvogel-Extra-51f"},
    )
    first = make_report(
        db,
        extracted_data=data,
        agent_checkpoints=checkpoints(intent=intent),
        needs_review=True,
        review_reason="low overall confidence",
        created_at=T0,
    )
    second = make_report(
        db,
        extracted_data=data,
        agent_checkpoints=checkpoints(intent=intent),
        needs_review=True,
        created_at=T0 + MIN,
    )
    claim = claim_next_report(db, reviewer=reviewer, now=T0 + 5 * MIN, intent=intent)
    assert claim is not None and claim.report_id == first.id
    verdicts: dict[str, Any] = {
        "client_name": FieldVerdict("corrected", CANARIES[5]),
        "creditor_name": "correct",
        "debt_amount": FieldVerdict("corrected", Decimal(CANARIES[7])),
        "reference_numbers": FieldVerdict("corrected", [CANARIES[6]]),
        "iban_holder": "absent",
    }
    # A refused decision carrying values leaves no trace of them either.
    with pytest.raises(ReviewInputError) as refused:
        decide_report(
            db,
            report_id=first.id,
            reviewer=reviewer,
            outcome="approved",
            verdicts={**verdicts, "creditor_name": FieldVerdict("corrected", CANARIES[1])},
            note=CANARIES[4],
            now=T0 + 6 * MIN,
        )
    assert not any(canary in str(refused.value) for canary in CANARIES)
    decide_report(
        db,
        report_id=first.id,
        reviewer=reviewer,
        outcome="corrected",
        verdicts=verdicts,
        note=CANARIES[4],
        now=T0 + 7 * MIN,
    )
    claim_next_report(db, reviewer=reviewer, now=T0 + 8 * MIN, intent=intent)
    assert release_claim(db, report_id=second.id, reviewer=reviewer, now=T0 + 9 * MIN)

    # The values are stored where they belong ...
    (decision,) = get_review_history(db, report_id=first.id)
    assert decision.note == CANARIES[4]
    assert [v.corrected_value for v in decision.verdicts if v.verdict == "corrected"] == [
        CANARIES[5],
        Decimal(CANARIES[7]),
        [CANARIES[6]],
    ]
    # ... and nowhere in the audit trail.
    rows = db.execute(
        select(AuditEvent.actor, AuditEvent.action, AuditEvent.email_id, AuditEvent.details)
        .where(AuditEvent.email_id.in_([first.email_id, second.email_id]))
        .order_by(AuditEvent.id)
    ).all()
    assert [(row.action, row.email_id) for row in rows] == [
        ("review_claimed", first.email_id),
        ("review_decided", first.email_id),
        ("review_claimed", second.email_id),
        ("review_claim_released", second.email_id),
    ]
    dumped = json.dumps([[str(value) for value in row[:3]] for row in rows]) + "".join(
        jsoncodec.dumps(row.details) for row in rows
    )
    for canary in (*CANARIES, "Kanarienvogel", "KANARIEN", "987654", "13579"):
        assert canary not in dumped
    assert rows[1].details == {
        "report_id": first.id,
        "decision_id": decision.id,
        "outcome": "corrected",
        "verdicts": {
            "client_name": "corrected",
            "creditor_name": "correct",
            "debt_amount": "corrected",
            "iban_holder": "absent",
            "reference_numbers": "corrected",
        },
        "unnamed_fields_count": 0,
        "has_note": True,
    }


def test_odd_field_names_are_counted_not_named(db: Session) -> None:
    intent = f"t{uuid.uuid4().hex[:16]}"
    reviewer = actor()
    data = extracted(**{"Kanarien Feld 51f": "x"})
    report = make_report(
        db,
        extracted_data=data,
        agent_checkpoints=checkpoints(intent=intent),
        needs_review=True,
        created_at=T0,
    )
    claim_next_report(db, reviewer=reviewer, now=T0 + MIN, intent=intent)
    decision = decide_report(
        db,
        report_id=report.id,
        reviewer=reviewer,
        outcome="approved",
        verdicts={
            "client_name": "correct",
            "creditor_name": "correct",
            "debt_amount": "correct",
            "reference_numbers": "correct",
            "Kanarien Feld 51f": "correct",
        },
        now=T0 + 2 * MIN,
    )
    assert len(decision.verdicts) == 5
    (entry,) = list_audit_events(db, actor=reviewer, action="review_decided")
    assert entry.details is not None
    assert entry.details["unnamed_fields_count"] == 1
    assert "Kanarien" not in jsoncodec.dumps(entry.details)
