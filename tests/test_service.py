"""The report service on SQLite and PostgreSQL: shapes, upsert, reads, bad input."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reportlib import (
    IncomingEmail,
    ProcessingReport,
    ReportInput,
    ReportValidationError,
    UnknownEmailError,
    create_processing_report,
    create_processing_reports,
    ensure_incoming_email,
    get_processing_report,
    get_reports_by_date_range,
    get_reports_needing_review,
    service,
)
from reportlib.errors import ReportTooLargeError
from reportlib.rollups import report_field_rows
from tests.factories import checkpoints, extracted, make_report, next_email_id

UTC = dt.UTC


def _row_counts(db: Session) -> tuple[int, int]:
    fields = report_field_rows(true()).subquery()
    return (
        db.scalar(select(func.count()).select_from(ProcessingReport)) or 0,
        db.scalar(select(func.count()).select_from(fields)) or 0,
    )


def _fields(db: Session, report_id: int) -> list[tuple[str, float | None, bool]]:
    """The report's per-field rows, as the rollups read them from its JSON."""
    fields = report_field_rows(ProcessingReport.id == report_id).subquery()
    rows = db.execute(
        select(fields.c.field_name, fields.c.confidence, fields.c.is_missing).order_by(
            fields.c.field_name
        )
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_report_is_built_from_pipeline_output(db: Session) -> None:
    email_id = next_email_id()
    ensure_incoming_email(db, email_id, subject="Mahnung")
    data = {
        "client_name": "Erika Mustermann",
        "creditor_name": "",
        "debt_amount": Decimal("1234.50"),
        "reference_numbers": ["AZ 1", "AZ 2"],
        "iban_hint": "DE00 TEST",
        "extraction_metadata": {
            "client_name": {"confidence": 0.7, "source": "email_body"},
            "debt_amount": {"confidence": 0.6},
            "reference_numbers": {"source": "attachment:letter.pdf"},
        },
    }
    report = create_processing_report(
        db,
        email_id,
        data,
        {
            "agent_1_intent": {"intent": "debt_claim"},
            "agent_2_extraction": {
                "field_confidence": {"client_name": 0.95},
                "sources_processed": 3,
                "total_tokens_used": 4200,
            },
        },
        0.81,
        "medium",
        True,
        "missing creditor_name",
        2300,
    )
    db.expire_all()
    stored = get_processing_report(db, email_id)
    assert stored is not None and stored.id == report.id
    assert stored.extracted_fields == {
        "client_name": {"value": "Erika Mustermann", "confidence": 0.95, "source": "email_body"},
        "debt_amount": {"value": Decimal("1234.50"), "confidence": 0.6, "source": "unknown"},
        "reference_numbers": {
            "value": ["AZ 1", "AZ 2"],
            "confidence": 0.5,
            "source": "attachment:letter.pdf",
        },
        "iban_hint": {"value": "DE00 TEST", "confidence": 0.5, "source": "unknown"},
    }
    assert stored.missing_fields == ["creditor_name"]
    assert (
        stored.overall_confidence,
        stored.confidence_route,
        stored.needs_review,
        stored.review_reason,
        stored.intent,
        stored.sources_processed,
        stored.total_tokens_used,
        stored.processing_time_ms,
    ) == (0.81, "medium", True, "missing creditor_name", "debt_claim", 3, 4200, 2300)
    assert stored.created_at.tzinfo is not None
    assert _fields(db, report.id) == [
        ("client_name", 0.95, False),
        ("creditor_name", None, True),
        ("debt_amount", 0.6, False),
        ("iban_hint", 0.5, False),
        ("reference_numbers", 0.5, False),
    ]


def test_defaults_when_checkpoints_are_empty(db: Session) -> None:
    email_id = next_email_id()
    ensure_incoming_email(db, email_id)
    report = create_processing_report(db, email_id, {}, {}, 0.1, "low", True)
    assert (report.intent, report.sources_processed, report.total_tokens_used) == (None, 1, 0)
    assert report.extracted_fields == {}
    assert report.missing_fields == [
        "client_name",
        "creditor_name",
        "debt_amount",
        "reference_numbers",
    ]


def test_money_keeps_exact_digits(db: Session) -> None:
    amount = Decimal("1000000000000000.07")
    report = make_report(db, extracted_data=extracted(debt_amount=amount))
    db.expire_all()
    stored = get_processing_report(db, report.email_id)
    assert stored is not None
    assert stored.extracted_fields["debt_amount"]["value"] == amount
    assert isinstance(stored.extracted_fields["debt_amount"]["value"], Decimal)


def test_upsert_updates_in_place(db: Session) -> None:
    first = make_report(db, needs_review=False, created_at=dt.datetime(2026, 1, 5, tzinfo=UTC))
    second = create_processing_report(
        db,
        first.email_id,
        {"client_name": "Neu"},
        checkpoints(intent="payment_reminder"),
        0.42,
        "low",
        True,
        "low overall confidence",
    )
    assert second.id == first.id
    assert db.scalar(select(func.count()).where(ProcessingReport.email_id == first.email_id)) == 1
    db.expire_all()
    stored = get_processing_report(db, first.email_id)
    assert stored is not None
    assert (stored.confidence_route, stored.needs_review, stored.intent) == (
        "low",
        True,
        "payment_reminder",
    )
    assert stored.created_at > dt.datetime(2026, 1, 6, tzinfo=UTC)
    assert _fields(db, first.id) == [
        ("client_name", 0.5, False),
        ("creditor_name", None, True),
        ("debt_amount", None, True),
        ("reference_numbers", None, True),
    ]


def test_key_fields_are_configurable(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from reportlib.config import get_settings

    monkeypatch.setenv("KEY_FIELDS", "client_name,iban")
    get_settings.cache_clear()
    report = make_report(db, extracted_data={"client_name": "X"})
    assert report.missing_fields == ["iban"]
    explicit = make_report(db)
    assert explicit.missing_fields == ["iban"]
    keyword = create_processing_report(
        db, explicit.email_id, {}, {}, 0.5, "low", False, key_fields=["debt_amount"]
    )
    assert keyword.missing_fields == ["debt_amount"]


def test_writer_flushes_but_never_commits(engine: Any) -> None:
    from reportlib.db import make_sessionmaker

    email_id = next_email_id()
    sessions = make_sessionmaker(engine)
    with sessions() as db:
        ensure_incoming_email(db, email_id)
        create_processing_report(db, email_id, extracted(), checkpoints(), 0.9, "high", False)
        assert get_processing_report(db, email_id) is not None
        db.rollback()
    with sessions() as db:
        assert get_processing_report(db, email_id) is None
        assert db.get(IncomingEmail, email_id) is None


def test_date_range_is_inclusive_in_utc_and_newest_first(db: Session) -> None:
    stamps = {
        "before": dt.datetime(2026, 3, 9, 23, 59, 59, 999999, tzinfo=UTC),
        "start": dt.datetime(2026, 3, 10, 0, 0, tzinfo=UTC),
        "middle": dt.datetime(2026, 3, 11, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "end": dt.datetime(2026, 3, 12, 23, 59, 59, 999999, tzinfo=UTC),
        "after": dt.datetime(2026, 3, 13, 0, 0, tzinfo=UTC),
    }
    ids = {name: make_report(db, created_at=stamp).email_id for name, stamp in stamps.items()}
    found = get_reports_by_date_range(db, dt.date(2026, 3, 10), dt.date(2026, 3, 12))
    assert [r.email_id for r in found] == [ids["end"], ids["middle"], ids["start"]]
    assert (
        get_reports_by_date_range(db, dt.date(2026, 3, 13), dt.date(2026, 3, 13))[0].email_id
        == (ids["after"])
    )
    with pytest.raises(ReportValidationError, match="end_date"):
        get_reports_by_date_range(db, dt.date(2026, 3, 12), dt.date(2026, 3, 10))


def test_reports_needing_review_newest_first_and_limited(db: Session) -> None:
    base = dt.datetime(2030, 1, 1, tzinfo=UTC)
    flagged = [
        make_report(db, needs_review=True, review_reason="r", created_at=base + dt.timedelta(i))
        for i in range(3)
    ]
    make_report(db, needs_review=False, created_at=base + dt.timedelta(10))
    found = get_reports_needing_review(db, limit=2)
    assert [r.id for r in found] == [flagged[2].id, flagged[1].id]
    with pytest.raises(ReportValidationError, match="limit"):
        get_reports_needing_review(db, limit=0)


SECRET = "Geheim Mustermann 4711"


def _call(db: Session, email_id: int, **overrides: Any) -> None:
    args: dict[str, Any] = {
        "extracted_data": extracted(client_name=SECRET),
        "agent_checkpoints": checkpoints(),
        "overall_confidence": 0.9,
        "confidence_route": "high",
        "needs_review": False,
        "review_reason": None,
        "processing_time_ms": 100,
    }
    args.update(overrides)
    create_processing_report(db, email_id, **args)


BAD_INPUTS: list[tuple[dict[str, Any], str]] = [
    ({"overall_confidence": 1.01}, "overall_confidence"),
    ({"overall_confidence": -0.1}, "overall_confidence"),
    ({"overall_confidence": math.nan}, "overall_confidence"),
    ({"overall_confidence": math.inf}, "overall_confidence"),
    ({"overall_confidence": "0.9"}, "overall_confidence"),
    ({"overall_confidence": True}, "overall_confidence"),
    ({"confidence_route": "urgent"}, "confidence_route"),
    ({"needs_review": "yes"}, "needs_review"),
    ({"review_reason": "x" * 101}, "review_reason"),
    ({"processing_time_ms": -1}, "processing_time_ms"),
    ({"processing_time_ms": 2**40}, "processing_time_ms"),
    ({"agent_checkpoints": checkpoints(total_tokens_used=-5)}, "total_tokens_used"),
    ({"agent_checkpoints": checkpoints(sources_processed=-1)}, "sources_processed"),
    ({"agent_checkpoints": checkpoints(field_confidence={"client_name": 1.5})}, "client_name"),
    ({"agent_checkpoints": checkpoints(field_confidence={"client_name": math.nan})}, "client_name"),
    ({"agent_checkpoints": {"agent_1_intent": {"intent": "i" * 51}}}, "intent"),
    ({"agent_checkpoints": {"agent_1_intent": "debt_claim"}}, "agent_1_intent"),
    ({"extracted_data": extracted(client_name=SECRET, debt_amount=math.inf)}, "debt_amount"),
    ({"extracted_data": extracted(client_name=SECRET, debt_amount=Decimal("NaN"))}, "debt_amount"),
    ({"extracted_data": extracted(client_name=SECRET + "\x00")}, "client_name"),
    ({"extracted_data": extracted(client_name=SECRET + "\ud800")}, "client_name"),
    ({"extracted_data": extracted(client_name=SECRET, creditor_name=object())}, "creditor_name"),
    ({"extracted_data": extracted(client_name=SECRET, creditor_name={1: "x"})}, "creditor_name"),
    ({"extracted_data": ["not", "a", "mapping"]}, "extracted_data"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_INPUTS)
def test_bad_input_names_the_field_and_writes_nothing(
    db: Session, overrides: dict[str, Any], field: str
) -> None:
    email_id = next_email_id()
    ensure_incoming_email(db, email_id)
    before = _row_counts(db)
    with pytest.raises(ReportValidationError) as caught:
        _call(db, email_id, **overrides)
    assert field in caught.value.field
    assert SECRET not in str(caught.value) and "4711" not in str(caught.value)
    assert _row_counts(db) == before


def test_bad_email_id(db: Session) -> None:
    for email_id in (0, -3, 2**31, "7", True, None):
        with pytest.raises(ReportValidationError, match="email_id"):
            _call(db, email_id)  # type: ignore[arg-type]


def test_unknown_email_is_a_clear_error_and_transaction_stays_usable(db: Session) -> None:
    before = _row_counts(db)
    with pytest.raises(UnknownEmailError, match="email_id"):
        _call(db, 2_000_000_000)
    assert _row_counts(db) == before
    assert make_report(db).id > 0  # the session still works (no aborted transaction)


@pytest.mark.parametrize(
    "values",
    [
        {"overall_confidence": 1.5},
        {"overall_confidence": -0.5},
        {"overall_confidence": float("inf")},
        {"overall_confidence": float("nan")},
        {"confidence_route": "urgent"},
        {"total_tokens_used": -1},
        {"sources_processed": -1},
        {"processing_time_ms": -1},
    ],
)
def test_database_refuses_bad_rows_written_around_the_service(
    db: Session, values: dict[str, Any]
) -> None:
    email_id = next_email_id()
    ensure_incoming_email(db, email_id)
    row = {
        "email_id": email_id,
        "extracted_fields": {},
        "overall_confidence": 0.5,
        "confidence_route": "low",
        **values,
    }
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(insert(ProcessingReport.__table__).values(**row))


def test_field_rows_follow_every_write(db: Session) -> None:
    report = make_report(db)
    db.execute(
        update(ProcessingReport)
        .where(ProcessingReport.id == report.id)
        .values(
            extracted_fields={"client_name": {"value": "x", "confidence": 0.3}}, missing_fields=None
        )
    )
    assert _fields(db, report.id) == [("client_name", 0.3, False)]


def test_field_rows_of_documents_written_around_the_service(db: Session) -> None:
    """What the report_fields triggers kept: an entry that is an object is extracted (its
    confidence as a float, or none); a missing name counts once, and not when extracted."""
    report = make_report(db)
    db.execute(
        update(ProcessingReport)
        .where(ProcessingReport.id == report.id)
        .values(
            extracted_fields={
                "client_name": {"value": "x", "confidence": 0.25},
                "debt_amount": {"value": 1},
                "iban": "not an entry",
                "notes": ["not", "an", "entry"],
            },
            missing_fields=["client_name", "reference_numbers", "reference_numbers", "iban"],
        )
    )
    assert _fields(db, report.id) == [
        ("client_name", 0.25, False),
        ("debt_amount", None, False),
        ("iban", None, True),
        ("reference_numbers", None, True),
    ]
    db.execute(
        update(ProcessingReport)
        .where(ProcessingReport.id == report.id)
        .values(extracted_fields=["not", "an", "object"], missing_fields={"not": "an array"})
    )
    assert _fields(db, report.id) == []


def test_batch_writes_validate_everything_first(db: Session) -> None:
    ids = [next_email_id() for _ in range(3)]
    for email_id in ids:
        ensure_incoming_email(db, email_id)
    good = [ReportInput(i, extracted(), checkpoints(), 0.9, "high", False) for i in ids]
    before = _row_counts(db)
    bad = [*good[:2], ReportInput(ids[2], extracted(), checkpoints(), 2.0, "high", False)]
    with pytest.raises(ReportValidationError, match=r"reports\[2\]\.overall_confidence"):
        create_processing_reports(db, bad)
    with pytest.raises(UnknownEmailError, match=r"reports\[\d\]\.email_id"):
        create_processing_reports(
            db, [*good, ReportInput(2_000_000_001, {}, {}, 0.5, "low", False)]
        )
    assert _row_counts(db) == before

    assert create_processing_reports(db, reversed(good)) == 3
    latest = ReportInput(ids[0], {"client_name": "Z"}, {}, 0.3, "low", True, "again")
    assert create_processing_reports(db, [good[0], latest]) == 1
    db.expire_all()
    first = get_processing_report(db, ids[0])
    assert first is not None and (first.confidence_route, first.review_reason) == ("low", "again")
    # The database clock set created_at: look the reports up by their own UTC day (not
    # the local date.today(), which is another day in other time zones or after midnight).
    reports = [get_processing_report(db, email_id) for email_id in ids]
    stamps = [report.created_at for report in reports if report is not None]
    assert len(stamps) == len(ids)
    assert all(abs(stamp - dt.datetime.now(UTC)) < dt.timedelta(minutes=5) for stamp in stamps)
    days = sorted(stamp.astimezone(UTC).date() for stamp in stamps)
    found = {r.email_id for r in get_reports_by_date_range(db, days[0], days[-1])}
    assert set(ids) <= found


def test_batch_errors_name_the_input_position_and_write_nothing(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pieces of two: on PostgreSQL the bad report comes after earlier pieces were written
    # (and rolled back).
    monkeypatch.setattr(service, "_STAGE_PIECE", 2)
    ids = [next_email_id() for _ in range(5)]
    for email_id in ids:
        ensure_incoming_email(db, email_id)
    good = [ReportInput(i, extracted(), checkpoints(), 0.9, "high", False) for i in ids]
    before = _row_counts(db)
    unknown = [ReportInput(2_000_000_000 + n, {}, {}, 0.5, "low", False) for n in (1, 2)]
    with pytest.raises(UnknownEmailError) as caught:
        create_processing_reports(db, [*good[:3], unknown[0], *good[3:], unknown[1]])
    assert caught.value.field == "reports[3].email_id"
    oversized = ReportInput(ids[-1] + 1, {"client_name": "x" * 70_000}, {}, 0.5, "low", False)
    with pytest.raises(ReportTooLargeError) as caught_too_large:
        create_processing_reports(db, [*good, oversized])
    assert caught_too_large.value.field == "reports[5].client_name"
    replaced = ReportInput(ids[0], {}, {}, "high", "low", False)
    with pytest.raises(ReportValidationError) as caught_replaced:
        create_processing_reports(db, [replaced, *good])  # checked, though not written
    assert caught_replaced.value.field == "reports[0].overall_confidence"
    assert _row_counts(db) == before
    # The caller's transaction goes on: the valid batch is written in full.
    assert create_processing_reports(db, good) == 5
    assert _row_counts(db) == (before[0] + 5, before[1] + 20)


def test_batch_over_several_statements_keeps_the_last_report_of_each_email(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "_STAGE_PIECE", 3)
    ids = [next_email_id() for _ in range(10)]
    for email_id in ids:
        ensure_incoming_email(db, email_id)
    first = [ReportInput(i, {"client_name": f"first {i}"}, {}, 0.5, "low", False) for i in ids]
    again = [
        ReportInput(i, {"client_name": f"again {i}"}, {}, 0.6, "medium", True, "again")
        for i in ids[::3]
    ]
    # Emails out of order, the second report of some in a later piece than the first.
    inputs = [*first[:5], *again[:2], *reversed(first[5:]), *again[2:]]
    assert create_processing_reports(db, inputs, chunk_size=4) == 10
    db.expire_all()
    stored = {
        report.email_id: (report.extracted_fields["client_name"]["value"], report.review_reason)
        for report in (get_processing_report(db, email_id) for email_id in ids)
        if report is not None
    }
    assert stored == {
        i: (f"again {i}", "again") if i in ids[::3] else (f"first {i}", None) for i in ids
    }


def test_batch_lists_a_key_field_named_twice_once(db: Session) -> None:
    email_id = next_email_id()
    ensure_incoming_email(db, email_id)
    batch = [ReportInput(email_id, {"iban": "DE00"}, {}, 0.5, "low", False)]
    create_processing_reports(db, batch, key_fields=["client_name", "iban", "client_name"])
    db.expire_all()
    report = get_processing_report(db, email_id)
    assert report is not None and report.missing_fields == ["client_name"]


def test_batch_writes_round_trip_every_character_and_number(db: Session) -> None:
    # On PostgreSQL batches travel as COPY text: its delimiters and escapes must survive.
    hostile = "tab\there\nnew line\r\\back\\slash \\N \\t ü€😀 \"quoted\" 'single'"
    ids = [next_email_id() for _ in range(3)]
    for email_id in ids:
        ensure_incoming_email(db, email_id)
    inputs = [
        ReportInput(
            ids[0],
            {
                "client_name": hostile,
                "debt_amount": Decimal("1000000000000000.07"),
                "reference_numbers": [hostile, "\\N"],
                "extraction_metadata": {"client_name": {"confidence": 0.1 + 0.2, "source": hostile}},
            },
            checkpoints(intent=hostile[:50]),
            0.30000000000000004,
            "low",
            True,
            hostile[:100],
            None,
        ),
        ReportInput(ids[1], {}, {}, 1.0, "high", False, None, 0),
        ReportInput(ids[2], {"client_name": "\\N"}, {}, 0.0, "medium", False, "\\N", 7),
    ]
    assert create_processing_reports(db, inputs) == 3
    db.expire_all()
    first, second, third = (get_processing_report(db, email_id) for email_id in ids)
    assert first is not None and second is not None and third is not None
    fields = first.extracted_fields
    assert fields["client_name"] == {"value": hostile, "confidence": 0.1 + 0.2, "source": hostile}
    assert fields["debt_amount"]["value"] == Decimal("1000000000000000.07")
    assert fields["reference_numbers"]["value"] == [hostile, "\\N"]
    assert (first.intent, first.review_reason) == (hostile[:50], hostile[:100])
    assert first.overall_confidence == 0.30000000000000004 and first.processing_time_ms is None
    assert (second.extracted_fields, second.intent, second.review_reason) == ({}, None, None)
    assert (second.overall_confidence, second.processing_time_ms) == (1.0, 0)
    assert third.extracted_fields["client_name"]["value"] == "\\N"
    assert third.review_reason == "\\N" and third.missing_fields is not None


def test_ensure_incoming_email_keeps_known_details(db: Session) -> None:
    email_id = next_email_id()
    received = dt.datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
    ensure_incoming_email(db, email_id, subject="Mahnung", sender="a@example.test")
    ensure_incoming_email(db, email_id, received_at=received)
    db.expire_all()
    email = db.get(IncomingEmail, email_id)
    assert email is not None
    assert (email.subject, email.sender, email.received_at) == (
        "Mahnung",
        "a@example.test",
        received,
    )
    with pytest.raises(ReportValidationError, match="received_at"):
        ensure_incoming_email(db, email_id, received_at=dt.datetime(2026, 2, 1))
