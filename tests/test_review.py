"""Review loop: claims, decisions, queue, history and statistics on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
import statistics
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from reportlib import (
    AuditEvent,
    ProcessingReport,
    ReviewClaim,
    ReviewDecision,
    ReviewError,
    ReviewFieldVerdict,
    create_processing_report,
    migrate,
)
from reportlib.db import make_engine, make_sessionmaker
from reportlib.review import (
    AlreadyDecidedError,
    Claim,
    ClaimConflictError,
    DecisionRecord,
    DecisionSummary,
    FieldVerdict,
    NotClaimedError,
    NotInQueueError,
    QueueItem,
    QueueStats,
    ReviewerThroughput,
    ReviewField,
    ReviewInputError,
    StaleReportError,
    VerdictRecord,
    claim_next_report,
    claim_report,
    count_review_queue,
    decide_report,
    get_queue_stats,
    get_review_history,
    get_review_item,
    list_decisions,
    list_review_queue,
    parse_corrected_value,
    release_claim,
)
from tests.conftest import PostgresDatabases
from tests.factories import checkpoints, extracted, make_report

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
ALL_CORRECT = {
    "client_name": "correct",
    "creditor_name": "correct",
    "debt_amount": "correct",
    "reference_numbers": "correct",
}


def new_intent() -> str:
    return f"t{uuid.uuid4().hex[:16]}"


def flagged(
    db: Session,
    intent: str,
    created_at: dt.datetime = T0,
    *,
    extracted_data: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ProcessingReport:
    return make_report(
        db,
        extracted_data=extracted_data,
        agent_checkpoints=checkpoints(intent=intent),
        needs_review=kwargs.pop("needs_review", True),
        review_reason=kwargs.pop("review_reason", "low overall confidence"),
        created_at=created_at,
        **kwargs,
    )


def snapshot(db: Session) -> dict[str, Any]:
    """Every row of the review tables: equal before and after a refused call."""
    return {
        "claims": db.execute(select(ReviewClaim.__table__).order_by(ReviewClaim.report_id)).all(),
        "decisions": db.execute(select(ReviewDecision.__table__).order_by(ReviewDecision.id)).all(),
        "verdicts": db.execute(
            select(ReviewFieldVerdict.__table__).order_by(ReviewFieldVerdict.id)
        ).all(),
        "audit": db.execute(select(AuditEvent.__table__).order_by(AuditEvent.id)).all(),
    }


def claimed(db: Session, report: ProcessingReport, reviewer: str, now: dt.datetime) -> Claim:
    return claim_report(db, report_id=report.id, reviewer=reviewer, now=now)


# --------------------------------------------------------------------------- claims


def test_next_item_is_oldest_free_report_and_queue_shows_holders(db: Session) -> None:
    intent = new_intent()
    old = flagged(db, intent, T0)
    middle = flagged(db, intent, T0 + HOUR, overall_confidence=0.4, confidence_route="low")
    new = flagged(db, intent, T0 + 2 * HOUR)
    flagged(db, intent, T0 - HOUR, needs_review=False)  # not in the queue at all
    now = T0 + 3 * HOUR

    first = claim_next_report(db, reviewer="alice", now=now, intent=intent)
    second = claim_next_report(db, reviewer=" bob ", now=now, intent=intent)

    assert first == Claim(old.id, old.email_id, "alice", now, now + 15 * MIN)
    assert second == Claim(middle.id, middle.email_id, "bob", now, now + 15 * MIN)
    later = now + 5 * MIN

    def item(report: ProcessingReport, holder: str | None) -> QueueItem:
        return QueueItem(
            report_id=report.id,
            email_id=report.email_id,
            created_at=report.created_at,
            age_seconds=(later - report.created_at).total_seconds(),
            review_reason="low overall confidence",
            intent=intent,
            confidence_route=report.confidence_route,
            overall_confidence=report.overall_confidence,
            claimed_by=holder,
            claim_expires_at=None if holder is None else now + 15 * MIN,
            earlier_decisions=0,
        )

    queue = list_review_queue(db, now=later, intent=intent)
    assert queue == [item(old, "alice"), item(middle, "bob"), item(new, None)]
    assert list_review_queue(db, now=later, intent=intent, sort="lowest_confidence") == [
        item(middle, "bob"),
        item(old, "alice"),
        item(new, None),
    ]
    assert list_review_queue(db, now=later, intent=intent, sort="newest", limit=1) == [
        item(new, None)
    ]
    assert list_review_queue(db, now=later, intent=intent, claimed=False) == [item(new, None)]
    assert list_review_queue(db, now=later, intent=intent, held_by="bob") == [item(middle, "bob")]
    assert list_review_queue(db, now=later, intent=intent, offset=2) == [item(new, None)]
    assert count_review_queue(db, now=later, intent=intent) == 3
    assert count_review_queue(db, now=later, intent=intent, claimed=True) == 2
    assert list_review_queue(db, now=later, intent=intent, route="low") == [item(middle, "bob")]


def test_next_item_resumes_own_claim_unless_asked_not_to(db: Session) -> None:
    intent = new_intent()
    first = flagged(db, intent, T0)
    second = flagged(db, intent, T0 + MIN)
    now = T0 + HOUR

    claim_next_report(db, reviewer="alice", now=now, intent=intent)
    resumed = claim_next_report(db, reviewer="alice", now=now + 10 * MIN, intent=intent)
    assert resumed == Claim(first.id, first.email_id, "alice", now, now + 25 * MIN)

    fresh = claim_next_report(db, reviewer="alice", now=now + 11 * MIN, intent=intent, resume=False)
    assert fresh == Claim(second.id, second.email_id, "alice", now + 11 * MIN, now + 26 * MIN)
    assert claim_next_report(db, reviewer="bob", now=now + 12 * MIN, intent=intent) is None


def test_claim_conflicts_until_it_expires(db: Session) -> None:
    intent = new_intent()
    report = flagged(db, intent)
    start = T0 + HOUR
    claimed(db, report, "alice", start)

    with pytest.raises(ClaimConflictError) as refused:
        claimed(db, report, "bob", start + 14 * MIN)
    assert (refused.value.holder, refused.value.expires_at) == ("alice", start + 15 * MIN)
    assert "alice" not in str(refused.value)
    assert claim_next_report(db, reviewer="bob", now=start + 14 * MIN, intent=intent) is None

    # At the expiry instant the item is free again, for "next item" and for a direct claim.
    taken = claim_next_report(db, reviewer="bob", now=start + 15 * MIN, intent=intent)
    assert taken == Claim(report.id, report.email_id, "bob", start + 15 * MIN, start + 30 * MIN)
    short = claim_report(
        db, report_id=report.id, reviewer="bob", now=start + 16 * MIN, claim_minutes=1
    )
    assert short == Claim(report.id, report.email_id, "bob", start + 15 * MIN, start + 17 * MIN)
    assert claimed(db, report, "carol", start + 17 * MIN).reviewer == "carol"
    assert [i.claimed_by for i in list_review_queue(db, now=start + 17 * MIN, intent=intent)] == [
        "carol"
    ]
    assert [i.claimed_by for i in list_review_queue(db, now=start + 33 * MIN, intent=intent)] == [
        None
    ]


def test_claim_uses_configured_minutes(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from reportlib.config import get_settings

    monkeypatch.setenv("REVIEW_CLAIM_MINUTES", "3")
    get_settings.cache_clear()
    report = flagged(db, new_intent())
    assert claimed(db, report, "alice", T0 + HOUR).expires_at == T0 + HOUR + 3 * MIN


def test_claim_without_now_uses_the_database_clock(db: Session) -> None:
    report = flagged(db, new_intent(), created_at=dt.datetime.now(dt.UTC) - HOUR)
    before = dt.datetime.now(dt.UTC) - 5 * MIN  # generous: the database clock may differ a bit
    claim = claim_report(db, report_id=report.id, reviewer="alice")
    assert before <= claim.claimed_at <= dt.datetime.now(dt.UTC) + 5 * MIN
    assert claim.expires_at - claim.claimed_at == 15 * MIN


def test_claim_refuses_reports_outside_the_queue(db: Session) -> None:
    intent = new_intent()
    unflagged = flagged(db, intent, needs_review=False)
    decided = flagged(db, intent)
    claimed(db, decided, "alice", T0 + HOUR)
    decide_report(
        db,
        report_id=decided.id,
        reviewer="alice",
        outcome="approved",
        verdicts=ALL_CORRECT,
        now=T0 + HOUR + MIN,
    )
    before = snapshot(db)
    with pytest.raises(NotInQueueError, match=f"report {unflagged.id} is not flagged"):
        claimed(db, unflagged, "bob", T0 + 2 * HOUR)
    with pytest.raises(AlreadyDecidedError, match=f"report {decided.id} was already decided"):
        claimed(db, decided, "bob", T0 + 2 * HOUR)
    missing_id = (db.scalar(select(func.max(ProcessingReport.id))) or 0) + 1000
    with pytest.raises(ReviewError, match="does not exist"):
        claim_report(db, report_id=missing_id, reviewer="bob", now=T0)
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("reviewer", "problem"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * 201, "at most 200"),
        ("bob\x00", "control characters"),
        ("bob\nalice", "control characters"),
        ("bob\u202e", "control characters"),
        (42, "must be text"),
    ],
)
def test_reviewer_identity_is_validated(db: Session, reviewer: Any, problem: str) -> None:
    report = flagged(db, new_intent())
    before = snapshot(db)
    with pytest.raises(ReviewInputError) as refused:
        claim_report(db, report_id=report.id, reviewer=reviewer, now=T0 + HOUR)
    assert (refused.value.field, problem in refused.value.problem) == ("reviewer", True)
    assert snapshot(db) == before


def test_release_claim_only_releases_ones_own(db: Session) -> None:
    intent = new_intent()
    report = flagged(db, intent)
    claimed(db, report, "alice", T0 + HOUR)
    assert release_claim(db, report_id=report.id, reviewer="bob", now=T0 + HOUR) is False
    assert release_claim(db, report_id=report.id, reviewer="alice", now=T0 + HOUR) is True
    assert release_claim(db, report_id=report.id, reviewer="alice", now=T0 + HOUR) is False
    assert claimed(db, report, "bob", T0 + HOUR + MIN).reviewer == "bob"
    actions = db.execute(
        select(AuditEvent.actor, AuditEvent.action, AuditEvent.details)
        .where(AuditEvent.email_id == report.email_id)
        .order_by(AuditEvent.id)
    ).all()
    assert [tuple(row) for row in actions] == [
        ("alice", "review_claimed", {"report_id": report.id, "claim_minutes": 15}),
        ("alice", "review_claim_released", {"report_id": report.id}),
        ("bob", "review_claimed", {"report_id": report.id, "claim_minutes": 15}),
    ]


# --------------------------------------------------------------------------- decisions


def test_decision_is_stored_with_verdicts_and_releases_the_claim(db: Session) -> None:
    intent = new_intent()
    data = extracted(debt_amount=None)
    report = flagged(db, intent, extracted_data=data)
    claimed(db, report, "alice", T0 + HOUR)
    decided_at = T0 + HOUR + 4 * MIN

    record = decide_report(
        db,
        report_id=report.id,
        reviewer="alice",
        outcome="corrected",
        verdicts={
            "client_name": "correct",
            "creditor_name": FieldVerdict("corrected", "Stadtwerke Anders GmbH"),
            "debt_amount": FieldVerdict("corrected", 99.95),
            "reference_numbers": {"verdict": "absent"},
        },
        note="Betrag aus dem Anhang",
        report_created_at=report.created_at,
        now=decided_at,
    )

    verdicts = (
        VerdictRecord("client_name", "correct", None, 0.92, False),
        VerdictRecord("creditor_name", "corrected", "Stadtwerke Anders GmbH", 0.88, False),
        VerdictRecord("debt_amount", "corrected", Decimal("99.95"), None, True),
        VerdictRecord("reference_numbers", "absent", None, 0.77, False),
    )
    expected = DecisionRecord(
        id=record.id,
        report_id=report.id,
        email_id=report.email_id,
        reviewer="alice",
        decided_at=decided_at,
        report_created_at=T0,
        outcome="corrected",
        note="Betrag aus dem Anhang",
        verdicts=verdicts,
        for_current_processing=True,
    )
    assert record == expected
    assert get_review_history(db, report_id=report.id) == [expected]
    assert db.scalar(select(func.count()).where(ReviewClaim.report_id == report.id)) == 0
    assert list_review_queue(db, now=decided_at, intent=intent) == []
    item = get_review_item(db, email_id=report.email_id, now=decided_at)
    assert item is not None
    assert (item.is_open, item.needs_review, item.claim, item.history) == (
        False,
        True,
        None,
        (expected,),
    )
    assert list_decisions(db, start=decided_at, end=decided_at + MIN) == [
        DecisionSummary(
            id=record.id,
            report_id=report.id,
            email_id=report.email_id,
            reviewer="alice",
            decided_at=decided_at,
            report_created_at=T0,
            outcome="corrected",
            has_note=True,
            fields_correct=1,
            fields_corrected=2,
            fields_absent=1,
        )
    ]
    audit = db.execute(
        select(AuditEvent.occurred_at, AuditEvent.actor, AuditEvent.action, AuditEvent.details)
        .where(AuditEvent.email_id == report.email_id)
        .order_by(AuditEvent.id)
    ).all()
    assert [tuple(row) for row in audit] == [
        (T0 + HOUR, "alice", "review_claimed", {"report_id": report.id, "claim_minutes": 15}),
        (
            decided_at,
            "alice",
            "review_decided",
            {
                "report_id": report.id,
                "decision_id": record.id,
                "outcome": "corrected",
                "verdicts": {
                    "client_name": "correct",
                    "creditor_name": "corrected",
                    "debt_amount": "corrected",
                    "reference_numbers": "absent",
                },
                "unnamed_fields_count": 0,
                "has_note": True,
            },
        ),
    ]


def test_review_item_lists_fields_key_fields_first(db: Session) -> None:
    data = extracted(reference_numbers=[], iban="DE00 0000", extraction_metadata={})
    report = flagged(db, new_intent(), extracted_data=data)
    claim = claimed(db, report, "alice", T0 + HOUR)
    item = get_review_item(db, report_id=report.id, now=T0 + HOUR)
    assert item is not None
    assert item.claim == claim
    assert item.fields == (
        ReviewField("client_name", "Erika Mustermann", 0.5, "unknown", False, True),
        ReviewField("creditor_name", "Stadtwerke Beispiel GmbH", 0.5, "unknown", False, True),
        ReviewField("debt_amount", Decimal("1234.56"), 0.5, "unknown", False, True),
        ReviewField("reference_numbers", None, None, None, True, True),
        ReviewField("iban", "DE00 0000", 0.5, "unknown", False, False),
    )
    assert "Erika" not in repr(item)
    assert get_review_item(db, report_id=report.id + 10_000, now=T0) is None


@pytest.mark.parametrize(
    "scenario", ["no_claim", "someone_elses_claim", "expired_claim", "twice", "stale", "unflagged"]
)
def test_refused_decisions_write_nothing(db: Session, scenario: str) -> None:
    intent = new_intent()
    report = flagged(db, intent, needs_review=scenario != "unflagged")
    start = T0 + HOUR
    expected_error: type[ReviewError] = NotClaimedError
    kwargs: dict[str, Any] = {}
    if scenario == "someone_elses_claim":
        claimed(db, report, "bob", start)
        expected_error = ClaimConflictError
    elif scenario == "expired_claim":
        claimed(db, report, "alice", start - 20 * MIN)
    elif scenario == "twice":
        claimed(db, report, "alice", start - 5 * MIN)
        decide_report(
            db,
            report_id=report.id,
            reviewer="alice",
            outcome="approved",
            verdicts=ALL_CORRECT,
            now=start - MIN,
        )
        claim = db.get(ReviewClaim, report.id)
        assert claim is None
        expected_error = AlreadyDecidedError
    elif scenario == "stale":
        claimed(db, report, "alice", start)
        kwargs["report_created_at"] = T0 - MIN
        expected_error = StaleReportError
    elif scenario == "unflagged":
        expected_error = NotInQueueError
    before = snapshot(db)
    with pytest.raises(expected_error):
        decide_report(
            db,
            report_id=report.id,
            reviewer="alice",
            outcome="approved",
            verdicts=ALL_CORRECT,
            now=start + MIN,
            **kwargs,
        )
    assert snapshot(db) == before


CANARY = "Canary-Wert-5d1c"


@pytest.mark.parametrize(
    ("outcome", "verdicts", "field", "problem"),
    [
        ("approved", {**ALL_CORRECT, "client_name": "maybe"}, "verdicts.client_name", "one of"),
        ("approved", {"client_name": "correct"}, "verdicts.creditor_name", "needs a verdict"),
        ("approved", {**ALL_CORRECT, "iban": "correct"}, "verdicts.iban", "not a field"),
        ("approved", {**ALL_CORRECT, CANARY + " x": "correct"}, "verdicts[4]", "not a field"),
        (
            "corrected",
            {**ALL_CORRECT, "debt_amount": "corrected"},
            "verdicts.debt_amount.corrected_value",
            "empty",
        ),
        (
            "corrected",
            {**ALL_CORRECT, "debt_amount": FieldVerdict("corrected", "  ")},
            "verdicts.debt_amount.corrected_value",
            "empty",
        ),
        (
            "corrected",
            {**ALL_CORRECT, "debt_amount": FieldVerdict("corrected", float("nan"))},
            "verdicts.debt_amount.corrected_value",
            "finite",
        ),
        (
            "corrected",
            {**ALL_CORRECT, "client_name": FieldVerdict("corrected", CANARY + "\x00")},
            "verdicts.client_name.corrected_value",
            "NUL",
        ),
        (
            "corrected",
            {**ALL_CORRECT, "client_name": FieldVerdict("corrected", {CANARY: object()})},
            "verdicts.client_name.corrected_value",
            "cannot be stored",
        ),
        (
            "corrected",
            {**ALL_CORRECT, "client_name": FieldVerdict("corrected", "Erika Mustermann")},
            "verdicts.client_name.corrected_value",
            "equals the extracted value",
        ),
        (
            "corrected",
            {**ALL_CORRECT, "debt_amount": FieldVerdict("corrected", 1234.56)},
            "verdicts.debt_amount.corrected_value",
            "equals the extracted value",
        ),
        (
            "approved",
            {**ALL_CORRECT, "client_name": FieldVerdict("absent", CANARY)},
            "verdicts.client_name.corrected_value",
            "only allowed with 'corrected'",
        ),
        (
            "approved",
            {**ALL_CORRECT, "client_name": FieldVerdict("corrected", CANARY)},
            "outcome",
            "'approved' but",
        ),
        ("approved", {**ALL_CORRECT, "client_name": "absent"}, "outcome", "'approved' but"),
        ("corrected", ALL_CORRECT, "outcome", "no field was corrected"),
        ("accepted", ALL_CORRECT, "outcome", "one of"),
        ("approved", [("client_name", "correct")], "verdicts", "must map"),
        (
            "approved",
            {**ALL_CORRECT, "client_name": 1},
            "verdicts.client_name",
            "must be a verdict",
        ),
    ],
)
def test_invalid_verdicts_are_refused_naming_the_field(
    db: Session, outcome: str, verdicts: Any, field: str, problem: str
) -> None:
    report = flagged(db, new_intent())
    claimed(db, report, "alice", T0 + HOUR)
    before = snapshot(db)
    with pytest.raises(ReviewInputError) as refused:
        decide_report(
            db,
            report_id=report.id,
            reviewer="alice",
            outcome=outcome,
            verdicts=verdicts,
            now=T0 + HOUR + MIN,
        )
    assert refused.value.field == field
    assert problem in refused.value.problem
    assert isinstance(refused.value, ValueError)
    assert CANARY not in str(refused.value) and "Erika" not in str(refused.value)
    assert snapshot(db) == before


def test_missing_fields_take_absent_or_a_value(db: Session) -> None:
    data = extracted(debt_amount=None, reference_numbers=None)
    report = flagged(db, new_intent(), extracted_data=data)
    claimed(db, report, "alice", T0 + HOUR)
    base = {"client_name": "correct", "creditor_name": "correct"}
    with pytest.raises(ReviewInputError, match="was marked missing"):
        decide_report(
            db,
            report_id=report.id,
            reviewer="alice",
            outcome="approved",
            verdicts={**base, "debt_amount": "correct", "reference_numbers": "absent"},
            now=T0 + HOUR + MIN,
        )
    # Truly absent everywhere: nothing was corrected, so the report is approved.
    record = decide_report(
        db,
        report_id=report.id,
        reviewer="alice",
        outcome="approved",
        verdicts={**base, "debt_amount": "absent", "reference_numbers": "absent"},
        now=T0 + HOUR + MIN,
    )
    assert [(v.field_name, v.verdict, v.was_missing) for v in record.verdicts] == [
        ("client_name", "correct", False),
        ("creditor_name", "correct", False),
        ("debt_amount", "absent", True),
        ("reference_numbers", "absent", True),
    ]


def test_rejected_report_keeps_its_verdicts(db: Session) -> None:
    report = flagged(db, new_intent())
    claimed(db, report, "alice", T0 + HOUR)
    record = decide_report(
        db,
        report_id=report.id,
        reviewer="alice",
        outcome="rejected",
        verdicts=ALL_CORRECT,
        note="   ",
        now=T0 + HOUR + MIN,
    )
    assert (record.outcome, record.note, len(record.verdicts)) == ("rejected", None, 4)


def test_reprocessing_reopens_the_report_and_keeps_history(db: Session) -> None:
    intent = new_intent()
    report = flagged(db, intent)
    claimed(db, report, "alice", T0 + HOUR)
    first = decide_report(
        db,
        report_id=report.id,
        reviewer="alice",
        outcome="corrected",
        verdicts={**ALL_CORRECT, "debt_amount": FieldVerdict("corrected", Decimal("12.00"))},
        now=T0 + HOUR + MIN,
    )
    assert list_review_queue(db, intent=intent) == []

    again = create_processing_report(
        db,
        report.email_id,
        extracted(debt_amount=Decimal("12.00")),
        checkpoints(intent=intent),
        0.5,
        "low",
        True,
        "low overall confidence",
    )
    assert again.id == report.id and again.created_at > first.decided_at
    assert [i.report_id for i in list_review_queue(db, intent=intent)] == [report.id]
    assert list_review_queue(db, intent=intent)[0].earlier_decisions == 1
    item = get_review_item(db, report_id=report.id)
    assert item is not None and item.is_open
    old = DecisionRecord(**{**_fields(first), "for_current_processing": False})
    assert item.history == (old,)

    claim = claim_next_report(db, reviewer="bob", intent=intent)
    assert claim is not None and claim.report_id == report.id
    second = decide_report(
        db,
        report_id=report.id,
        reviewer="bob",
        outcome="approved",
        verdicts=ALL_CORRECT,
        report_created_at=again.created_at,
    )
    assert second.report_created_at == again.created_at
    assert get_review_history(db, report_id=report.id) == [second, old]
    assert get_review_history(db, report_id=report.id, limit=1) == [second]

    # Re-processed without a flag: out of the queue, history intact.
    create_processing_report(
        db, report.email_id, extracted(), checkpoints(intent=intent), 0.95, "high", False
    )
    assert list_review_queue(db, intent=intent) == []
    assert [d.id for d in get_review_history(db, report_id=report.id)] == [second.id, first.id]


def _fields(record: DecisionRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in DecisionRecord.__dataclass_fields__}


def test_parse_corrected_value() -> None:
    assert parse_corrected_value("debt_amount", " 1234,50 ", like=Decimal("1.00")) == Decimal(
        "1234.50"
    )
    assert parse_corrected_value("debt_amount", "99.9") == Decimal("99.9")
    assert parse_corrected_value("reference_numbers", "AZ 1, AZ 2\nAZ 3") == [
        "AZ 1",
        "AZ 2",
        "AZ 3",
    ]
    assert parse_corrected_value("refs", "A, B", like=["x"]) == ["A", "B"]
    assert parse_corrected_value("client_name", "  Max Muster ") == "Max Muster"
    with pytest.raises(ReviewInputError) as refused:
        parse_corrected_value("debt_amount", CANARY)
    assert (refused.value.field, CANARY in str(refused.value)) == (
        "verdicts.debt_amount.corrected_value",
        False,
    )
    with pytest.raises(ReviewInputError, match="empty"):
        parse_corrected_value("client_name", "  ")
    with pytest.raises(ReviewInputError, match="finite"):
        parse_corrected_value("debt_amount", "Infinity")


def test_list_queries_validate_arguments(db: Session) -> None:
    with pytest.raises(ReviewInputError, match="sort"):
        list_review_queue(db, now=T0, sort="created_at; DROP TABLE x")
    with pytest.raises(ReviewInputError, match="limit"):
        list_review_queue(db, now=T0, limit=1001)
    with pytest.raises(ReviewInputError, match="route"):
        list_review_queue(db, now=T0, route="urgent")
    with pytest.raises(ReviewInputError, match="now"):
        list_review_queue(db, now=dt.datetime(2026, 1, 1))
    with pytest.raises(ReviewInputError, match="end"):
        get_queue_stats(db, now=T0, start=T0, end=T0)
    with pytest.raises(ReviewInputError, match="outcome"):
        list_decisions(db, outcome="maybe")


# --------------------------------------------------------------------------- statistics


def _expected_stats(
    db: Session, now: dt.datetime, start: dt.datetime, end: dt.datetime
) -> QueueStats:
    """Recompute the queue statistics from the raw rows in plain Python."""
    reports = db.execute(
        select(ProcessingReport.id, ProcessingReport.created_at, ProcessingReport.needs_review)
    ).all()
    decisions = db.execute(
        select(
            ReviewDecision.id,
            ReviewDecision.report_id,
            ReviewDecision.reviewer,
            ReviewDecision.outcome,
            ReviewDecision.decided_at,
            ReviewDecision.report_created_at,
        )
    ).all()
    claims = db.execute(select(ReviewClaim.report_id, ReviewClaim.expires_at)).all()
    open_reports = [
        r
        for r in reports
        if r.needs_review
        and not any(d.report_id == r.id and d.decided_at >= r.created_at for d in decisions)
    ]
    held = {c.report_id for c in claims if c.expires_at > now}
    claimed_count = sum(r.id in held for r in open_reports)
    today = now.date()
    window = [d for d in decisions if start <= d.decided_at < end]

    def seconds(d: Any) -> float:
        return (d.decided_at - d.report_created_at).total_seconds()

    per_reviewer: dict[str, list[Any]] = {}
    for d in window:
        per_reviewer.setdefault(d.reviewer, []).append(d)
    days = (end - start).total_seconds() / 86400

    def working_gaps(rows: list[Any]) -> list[float]:
        ordered = sorted(rows, key=lambda d: (d.decided_at, d.id))
        gaps = [(b.decided_at - a.decided_at).total_seconds() for a, b in pairwise(ordered)]
        return [g for g in gaps if g <= 600]

    throughput = [
        ReviewerThroughput(
            reviewer=name,
            decisions=len(rows),
            approved=sum(d.outcome == "approved" for d in rows),
            corrected=sum(d.outcome == "corrected" for d in rows),
            rejected=sum(d.outcome == "rejected" for d in rows),
            decisions_per_day=len(rows) / days,
            median_seconds_to_decision=statistics.median(seconds(d) for d in rows),
            timed_decisions=len(working_gaps(rows)),
            active_seconds=sum(working_gaps(rows)),
            median_seconds_per_item=statistics.median(working_gaps(rows))
            if working_gaps(rows)
            else None,
        )
        for name, rows in per_reviewer.items()
    ]
    throughput.sort(key=lambda t: (-t.decisions, t.reviewer))
    return QueueStats(
        now=now,
        open_count=len(open_reports),
        claimed_count=claimed_count,
        unclaimed_count=len(open_reports) - claimed_count,
        oldest_open_created_at=min((r.created_at for r in open_reports), default=None),
        resolved_today=sum(d.decided_at.date() == today for d in decisions),
        window_start=start,
        window_end=end,
        decisions_in_window=len(window),
        median_seconds_to_decision=statistics.median(seconds(d) for d in window)
        if window
        else None,
        throughput=tuple(throughput),
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_queue_stats_match_a_recomputation_from_raw_rows(db: Session, seed: int) -> None:
    rng = random.Random(seed)
    intent = new_intent()
    now = dt.datetime(2026, 3, 12, 15, 30, tzinfo=dt.UTC)
    reviewers = ["alice", "bob", "carol", "dave"]
    for _ in range(30):
        created = now - dt.timedelta(seconds=rng.randint(3600, 12 * 86400))
        report = flagged(db, intent, created, needs_review=rng.random() < 0.9)
        if not report.needs_review:
            continue
        roll = rng.random()
        reviewer = rng.choice(reviewers)
        if roll < 0.55:
            decided_at = created + dt.timedelta(seconds=rng.randint(60, 3 * 86400))
            decided_at = min(decided_at, now - dt.timedelta(seconds=rng.randint(1, 3000)))
            claimed(db, report, reviewer, decided_at - MIN)
            decide_report(
                db,
                report_id=report.id,
                reviewer=reviewer,
                outcome=rng.choice(["approved", "rejected"]),
                verdicts=ALL_CORRECT,
                now=decided_at,
            )
        elif roll < 0.8:
            claimed(db, report, reviewer, now - dt.timedelta(minutes=rng.randint(0, 40)))

    start = now - dt.timedelta(days=rng.choice([1, 3, 7]))
    stats = get_queue_stats(db, now=now, start=start, end=now)
    expected = _expected_stats(db, now, start, now)
    assert stats == _approx_equal_to(expected)
    assert stats.open_count > stats.claimed_count > 0
    assert stats.decisions_in_window > 0
    default_window = get_queue_stats(db, now=now)
    assert default_window == _approx_equal_to(_expected_stats(db, now, now - 7 * 24 * HOUR, now))


class _approx_equal_to:
    """Compare a QueueStats with floats to within a millisecond (SQLite keeps milliseconds)."""

    def __init__(self, expected: QueueStats) -> None:
        self.expected = expected

    def __eq__(self, actual: object) -> bool:
        assert isinstance(actual, QueueStats)

        def norm(stats: QueueStats) -> dict[str, Any]:
            out = dict(_fields_of(stats))
            out["median_seconds_to_decision"] = _round(out["median_seconds_to_decision"])
            out["throughput"] = tuple(
                {
                    **_fields_of(t),
                    "median_seconds_to_decision": _round(t.median_seconds_to_decision),
                    "active_seconds": _round(t.active_seconds),
                    "median_seconds_per_item": _round(t.median_seconds_per_item),
                }
                for t in stats.throughput
            )
            return out

        assert norm(actual) == norm(self.expected)
        return True


def _fields_of(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def test_queue_stats_on_an_empty_window(db: Session) -> None:
    far = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
    stats = get_queue_stats(db, now=far, start=far - HOUR, end=far)
    assert (stats.resolved_today, stats.decisions_in_window, stats.median_seconds_to_decision) == (
        0,
        0,
        None,
    )
    assert stats.throughput == ()


# --------------------------------------------------------------------------- concurrency


@pytest.fixture(scope="module")
def pg_review_engine(pg_databases: PostgresDatabases) -> Iterator[Engine]:
    engine = make_engine(pg_databases.create("reportlib_review"), pool_size=10, max_overflow=5)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _committed_reports(sessions: sessionmaker[Session], intent: str, count: int) -> list[int]:
    with sessions.begin() as db:
        return [flagged(db, intent, T0 + dt.timedelta(seconds=index)).id for index in range(count)]


def test_concurrent_next_item_claims_never_hand_out_an_item_twice(
    pg_review_engine: Engine,
) -> None:
    sessions = make_sessionmaker(pg_review_engine)
    intent = new_intent()
    report_ids = _committed_reports(sessions, intent, 36)
    workers = 6
    barrier = threading.Barrier(workers)

    def work(worker: int) -> list[int]:
        reviewer = f"reviewer-{worker}"
        mine: list[int] = []
        barrier.wait()
        while True:
            with sessions.begin() as db:
                claim = claim_next_report(db, reviewer=reviewer, intent=intent)
            if claim is None:
                return mine
            assert claim.reviewer == reviewer
            mine.append(claim.report_id)
            with sessions.begin() as db:
                decide_report(
                    db,
                    report_id=claim.report_id,
                    reviewer=reviewer,
                    outcome="approved",
                    verdicts=ALL_CORRECT,
                )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(work, range(workers)))

    claimed_ids = [report_id for result in results for report_id in result]
    assert Counter(claimed_ids) == Counter(report_ids)  # every item claimed exactly once
    with sessions() as db:
        decided = db.execute(
            select(ReviewDecision.report_id, ReviewDecision.reviewer).where(
                ReviewDecision.report_id.in_(report_ids)
            )
        ).all()
        assert sorted(decided) == sorted(
            (report_id, f"reviewer-{worker}")
            for worker, result in enumerate(results)
            for report_id in result
        )
        assert db.scalar(select(func.count()).where(ReviewClaim.report_id.in_(report_ids))) == 0


def test_concurrent_first_claims_get_distinct_items(pg_review_engine: Engine) -> None:
    sessions = make_sessionmaker(pg_review_engine)
    intent = new_intent()
    report_ids = _committed_reports(sessions, intent, 8)
    barrier = threading.Barrier(8)

    def work(worker: int) -> Claim | None:
        barrier.wait()
        with sessions.begin() as db:
            return claim_next_report(db, reviewer=f"r{worker}", intent=intent)

    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = list(pool.map(work, range(8)))

    assert all(claim is not None for claim in claims)
    assert sorted(claim.report_id for claim in claims if claim) == sorted(report_ids)
    with sessions() as db:
        holders = db.execute(
            select(ReviewClaim.report_id, ReviewClaim.reviewer).where(
                ReviewClaim.report_id.in_(report_ids)
            )
        ).all()
    assert sorted(holders) == sorted((c.report_id, c.reviewer) for c in claims if c)


def test_concurrent_claims_of_one_report_have_one_winner(pg_review_engine: Engine) -> None:
    sessions = make_sessionmaker(pg_review_engine)
    (report_id,) = _committed_reports(sessions, new_intent(), 1)
    barrier = threading.Barrier(8)

    def work(worker: int) -> str:
        barrier.wait()
        try:
            with sessions.begin() as db:
                claim_report(db, report_id=report_id, reviewer=f"r{worker}")
        except ClaimConflictError:
            return "refused"
        return f"r{worker}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(work, range(8)))

    winners = [o for o in outcomes if o != "refused"]
    assert len(winners) == 1 and outcomes.count("refused") == 7
    with sessions() as db:
        assert db.get(ReviewClaim, report_id).reviewer == winners[0]  # type: ignore[union-attr]
        audit = db.scalars(
            select(AuditEvent.actor).where(
                AuditEvent.action == "review_claimed",
                AuditEvent.details["report_id"].as_integer() == report_id,
            )
        ).all()
    assert audit == winners


def test_active_time_skips_breaks_and_gives_items_per_hour(db: Session) -> None:
    """One reviewer decides at 0, 2, 5, 30 and 31 minutes: gaps of 120, 180, 1500 and 60 s.
    The 25-minute gap is a break, so three decisions are timed, over 360 s."""
    intent = new_intent()
    start = dt.datetime(2026, 4, 2, 9, 0, tzinfo=dt.UTC)
    minutes = [0, 2, 5, 30, 31]
    outcomes = ["approved", "rejected", "approved", "rejected", "approved"]
    for minute, outcome in zip(minutes, outcomes, strict=True):
        report = flagged(db, intent, start - dt.timedelta(hours=5))
        claimed(db, report, "erin", start + dt.timedelta(minutes=minute) - MIN)
        decide_report(
            db,
            report_id=report.id,
            reviewer="erin",
            outcome=outcome,
            verdicts=ALL_CORRECT,
            now=start + dt.timedelta(minutes=minute),
        )
    stats = get_queue_stats(db, now=start + HOUR, start=start - HOUR, end=start + HOUR)
    (erin,) = [t for t in stats.throughput if t.reviewer == "erin"]
    assert erin.decisions == 5
    assert erin.timed_decisions == 3  # the 25-minute gap is a break
    assert erin.active_seconds == pytest.approx(120 + 180 + 60, abs=0.01)
    assert erin.median_seconds_per_item == pytest.approx(120, abs=0.01)
    assert erin.items_per_active_hour == pytest.approx(3 / (360 / 3600))
    assert erin.changed_share == pytest.approx(2 / 5)
