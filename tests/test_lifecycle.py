"""Retention purge and erasure on request: values go, figures and history stay.

Each test gets its own migrated database on SQLite and on PostgreSQL, because a purge
commits batch by batch.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Text, cast, func, inspect, literal, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from reportlib import dialect, jsoncodec, lifecycle, migrate, quality, queries, review, rollups
from reportlib.config import ConfigurationError, get_settings
from reportlib.db import make_engine, make_sessionmaker, session_scope
from reportlib.demo import seed_demo
from reportlib.demo_review import seed_review_history
from reportlib.errors import ReportValidationError, UnknownEmailError
from reportlib.lifecycle import RedactionCounts
from reportlib.models import AuditEvent, IncomingEmail, ProcessingReport, ReviewDecision
from reportlib.queries import ReportFilter
from reportlib.review import FieldVerdict, claim_report, decide_report
from tests.conftest import PostgresDatabases
from tests.factories import checkpoints, extracted, make_report
from tests.test_rollups import KEY_FIELDS, _assert_same

CANARY = "Canary7f3a"  # in every personal place of the old reports
KEEP = "Keepme9b2c"  # in the personal places of a recent report, which stays
DAY = dt.timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database of its own (purges commit)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("pg_databases")
        url = databases.create("reportlib_lifecycle")
    engine = make_engine(url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _now(engine: Engine) -> dt.datetime:
    with Session(engine) as db:
        return lifecycle._now(db, None)  # noqa: SLF001 - the database clock, as the purge reads it


def _personal_report(
    db: Session, *, word: str, created_at: dt.datetime, decide: bool = True
) -> ProcessingReport:
    """A flagged report with ``word`` in its values, source, subject and sender, and (with
    ``decide``) a decision whose note and corrected value hold it too."""
    data = extracted(
        client_name=f"{word} Mustermann",
        reference_numbers=[f"AZ-{word}"],
        iban=f"DE00{word}",
        extraction_metadata={
            "client_name": {"confidence": 0.61, "source": f"attachment:{word}.pdf"}
        },
    )
    report = make_report(
        db,
        extracted_data=data,
        needs_review=True,
        review_reason="low confidence",
        confidence_route="low",
        overall_confidence=0.41,
        subject=f"Mahnung {word}",
        sender=f"{word.lower()}@example.test",
    )
    db.execute(
        ProcessingReport.__table__.update()
        .where(ProcessingReport.id == report.id)
        .values(created_at=created_at)
    )
    db.refresh(report)
    if decide:
        at = created_at + dt.timedelta(hours=2)
        claim_report(db, report_id=report.id, reviewer="alice@example.com", now=at)
        decide_report(
            db,
            report_id=report.id,
            reviewer="alice@example.com",
            outcome="corrected",
            verdicts={
                "client_name": FieldVerdict("corrected", f"{word} Musterfrau"),
                "creditor_name": "correct",
                "debt_amount": "correct",
                "reference_numbers": "correct",
                "iban": "absent",
            },
            note=f"called {word} back",
            now=at + dt.timedelta(minutes=5),
        )
    return report


def _seed(engine: Engine, now: dt.datetime) -> list[int]:
    """Demo data over 60 days with review history, old and recent personal reports."""
    with session_scope(engine) as db:
        seed_demo(db, count=160, seed=5, days=60, now=now)
        seed_review_history(db, rng=random.Random(5), now=now)
        old = [
            _personal_report(db, word=CANARY, created_at=now - (40 + i) * DAY).email_id
            for i in range(3)
        ]
        _personal_report(db, word=CANARY, created_at=now - 45 * DAY, decide=False)
        _personal_report(db, word=KEEP, created_at=now - 2 * DAY)
        # An email without a report, received long ago.
        db.add(
            IncomingEmail(
                id=9_000_001,
                subject=f"Re: {CANARY}",
                sender=f"{CANARY}@example.test",
                received_at=now - 50 * DAY,
            )
        )
    _refresh(engine)
    return old


def _refresh(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    while rollups.refresh_with_retries(sessions, max_days=30):
        pass


def _occurrences(engine: Engine, word: str) -> list[str]:
    """Every table and column whose text holds ``word``, whatever its type."""
    found = []
    inspector = inspect(engine)
    with engine.connect() as connection:
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                hits = connection.execute(
                    text(
                        f'SELECT count(*) FROM "{table}" '
                        f'WHERE lower(CAST("{column["name"]}" AS TEXT)) LIKE :pattern'
                    ),
                    {"pattern": f"%{word.lower()}%"},
                ).scalar_one()
                if hits:
                    found.append(f"{table}.{column['name']}")
    return found


def _numbers(db: Session, now: dt.datetime) -> dict[str, Any]:
    """Every figure of every aggregate page, for a few windows."""
    today = now.date()
    filters = [
        ReportFilter.last_days(90, today=today),
        ReportFilter(today - 50 * DAY, today - 20 * DAY, ("debt_claim", queries.NONE_LABEL)),
        ReportFilter(today - 60 * DAY, today, (), ("low",)),
    ]
    out: dict[str, Any] = {}
    for index, flt in enumerate(filters):
        out[f"{index}:kpis"] = dataclasses.astuple(queries.overview_kpis(db, flt=flt, now=now))
        out[f"{index}:count"] = queries.count_reports(db, flt=flt)
        out[f"{index}:intents"] = queries.list_intents(db, flt=flt)
        out[f"{index}:what_if"] = dataclasses.astuple(
            queries.route_threshold_what_if(db, flt=flt, threshold=0.57)
        )
        for name in (
            "daily_trends",
            "confidence_histogram",
            "field_confidence_summary",
            "confidence_by_intent",
            "missing_field_frequency",
            "missing_fields_daily",
            "missing_fields_by_intent",
            "missing_field_cooccurrence",
            "missing_count_distribution",
            "review_queue_reasons",
        ):
            out[f"{index}:{name}"] = getattr(queries, name)(db, flt=flt)
        out[f"{index}:field_histogram"] = queries.field_confidence_histogram(
            db, flt=flt, fields=KEY_FIELDS
        )
        out[f"{index}:queue"] = queries.count_review_queue_in_window(db, flt=flt)
    start, end = now - 90 * DAY, now + DAY
    out["calibration"] = repr(quality.get_calibration(db, start=start, end=end))
    out["threshold"] = repr(quality.get_review_threshold_what_if(db, start=start, end=end))
    out["missing"] = repr(quality.get_missing_outcomes(db, start=start, end=end))
    return out


def test_redaction_keeps_field_names_and_confidences_only() -> None:
    document = {
        "client_name": {"value": "Erika", "confidence": 0.93, "source": "email_body"},
        "reference_numbers": {"value": ["AZ 1"], "source": "x"},
        "odd": "not an entry",
    }
    assert lifecycle.redact_extracted_fields(document) == {
        "client_name": {"confidence": 0.93},
        "reference_numbers": {},
        "odd": None,
    }
    assert lifecycle.redact_extracted_fields(["no", "object"]) == {}


ODD_DOCUMENTS = [
    {"client_name": {"value": "Erika", "confidence": 0.1 + 0.2, "source": "body"}},
    {"amount": {"value": 1.5, "confidence": 0.12345678901234567890123}},
    {"a": {"confidence": True}, "b": {"confidence": "0.9"}, "c": {"confidence": None}},
    {"a": "text", "b": 7, "c": [1, 2], "d": None, "e": {}, "f": {"confidence": 1}},
    {"nested": {"value": {"deep": "Erika"}, "confidence": 0.5, "extra": {"x": 1}}},
    {},
    ["not", "an", "object"],
    "text",
    42,
]


@pytest.mark.parametrize("document", ODD_DOCUMENTS)
def test_redaction_in_the_database_equals_the_python_rule(db: Session, document: Any) -> None:
    """PostgreSQL redacts a batch in one UPDATE; it must give exactly what the Python rule
    gives (SQLite has no such expression and redacts in Python)."""
    stored = cast(literal(jsoncodec.dumps(document)), JSONB)
    expression = dialect.redacted_entries_in_database(
        db, stored, kept_number_keys=lifecycle.KEPT_FIELD_KEYS
    )
    if db.get_bind().dialect.name == "sqlite":
        assert expression is None
        return
    assert expression is not None
    text_value = db.scalar(select(cast(expression, Text)))
    assert jsoncodec.loads(text_value, float_confidences=False) == jsoncodec.loads(
        jsoncodec.dumps(lifecycle.redact_extracted_fields(document)), float_confidences=False
    )


def test_purge_removes_every_old_value_and_no_figure_changes(fresh: Engine) -> None:
    now = _now(fresh)
    _seed(fresh, now)
    with Session(fresh) as db:
        before = _numbers(db, now)
        expected = lifecycle.count_expired(db, cutoff=now - 30 * DAY)
    # The three decided canary reports are in scope whatever the time of day.
    assert expected.reports > 40 and expected.decisions >= 3 and expected.verdicts >= 3
    assert expected.emails == expected.reports + 1  # and the email without a report
    assert _occurrences(fresh, CANARY)  # the scan does see values

    seen: list[tuple[RedactionCounts, RedactionCounts]] = []
    done = lifecycle.purge_expired(
        make_sessionmaker(fresh),
        actor="retention-job",
        retention_days=30,
        batch_size=40,
        now=now,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert done == expected
    assert len(seen) >= 5 and seen[-1] == (expected, expected)

    assert _occurrences(fresh, CANARY) == []
    assert set(_occurrences(fresh, KEEP)) == {
        "processing_reports.extracted_fields",
        "incoming_emails.subject",
        "incoming_emails.sender",
        "review_decisions.note",
        "review_field_verdicts.corrected_value",
    }
    with Session(fresh) as db:
        # Changed hours are read from the raw rows until the next refresh: same numbers.
        _assert_same(_numbers(db, now), before)
    _refresh(fresh)
    with Session(fresh) as db:
        assert rollups.verify_rollups(db) == []
        _assert_same(_numbers(db, now), before)
        audit = db.scalars(select(AuditEvent).where(AuditEvent.action == "values_purged")).one()
        assert (audit.actor, audit.email_id) == ("retention-job", None)
        assert audit.details == {
            "scope": "retention",
            "retention_days": 30,
            "cutoff_date": (now - 30 * DAY).date().isoformat(),
            **expected.as_details(),
        }
        assert lifecycle.count_expired(db, cutoff=now - 30 * DAY) == RedactionCounts()
    # Idempotent: a second run finds nothing left.
    again = lifecycle.purge_expired(
        make_sessionmaker(fresh), actor="retention-job", retention_days=30
    )
    assert again == RedactionCounts()


def test_erasure_of_one_email_and_of_one_sender(fresh: Engine) -> None:
    now = _now(fresh)
    with session_scope(fresh) as db:
        first = _personal_report(db, word=CANARY, created_at=now - DAY)
        second = _personal_report(db, word=CANARY, created_at=now - 2 * DAY)
        other = _personal_report(db, word=KEEP, created_at=now - DAY)
    with Session(fresh) as db:
        before = _numbers(db, now)
        dry = lifecycle.erase_email(db, email_id=first.email_id, actor="dpo", dry_run=True)
        db.commit()
    assert dry == RedactionCounts(reports=1, emails=1, decisions=1, verdicts=1)
    assert len(_occurrences(fresh, CANARY)) > 3  # a dry run writes nothing

    with session_scope(fresh) as db:
        counts = lifecycle.erase_email(db, email_id=first.email_id, actor="dpo")
    assert counts == dry
    with session_scope(fresh) as db:
        assert lifecycle.erase_email(db, email_id=first.email_id, actor="dpo") == RedactionCounts()
        detail = queries.get_report_detail(db, email_id=first.email_id)
        assert detail is not None and detail.values_erased_at is not None
        assert {f.name: (f.value, f.source) for f in detail.fields} == {
            name: (None, None)
            for name in ("client_name", "creditor_name", "debt_amount", "reference_numbers", "iban")
        }
        assert (detail.subject, detail.sender) == (None, None)
        kept = queries.get_report_detail(db, email_id=second.email_id)
        assert kept is not None and kept.values_erased_at is None

    with session_scope(fresh) as db:
        counts = lifecycle.erase_sender(db, sender=f" {CANARY.upper()}@Example.TEST ", actor="dpo")
    assert counts == RedactionCounts(reports=1, emails=1, decisions=1, verdicts=1)
    assert _occurrences(fresh, CANARY) == []
    assert _occurrences(fresh, KEEP)
    with Session(fresh) as db:
        _assert_same(_numbers(db, now), before)
        rows = db.scalars(
            select(AuditEvent).where(AuditEvent.action == "values_erased").order_by(AuditEvent.id)
        ).all()
        assert [(row.actor, row.email_id, row.details) for row in rows] == [
            (
                "dpo",
                first.email_id,
                {
                    "scope": "email",
                    "email_ids": [first.email_id],
                    "emails_matched_count": 1,
                    **dry.as_details(),
                },
            ),
            (
                "dpo",
                first.email_id,
                {
                    "scope": "email",
                    "email_ids": [first.email_id],
                    "emails_matched_count": 1,
                    **RedactionCounts().as_details(),
                },
            ),
            (
                "dpo",
                None,
                {
                    "scope": "sender",
                    "email_ids": [second.email_id],
                    "emails_matched_count": 1,
                    **counts.as_details(),
                },
            ),
        ]
        assert db.get(ProcessingReport, other.id).values_erased_at is None  # type: ignore[union-attr]


def test_erasure_is_all_or_nothing(fresh: Engine) -> None:
    """A failure after the report was redacted (here: the database refusing the email's
    update) leaves every value in place."""
    now = _now(fresh)
    with session_scope(fresh) as db:
        report = _personal_report(db, word=CANARY, created_at=now - DAY)
    places = _occurrences(fresh, CANARY)
    with fresh.begin() as connection:
        if fresh.dialect.name == "postgresql":
            connection.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END; $$"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE UPDATE ON incoming_emails "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE UPDATE ON incoming_emails "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
    with pytest.raises(Exception, match="refused"), session_scope(fresh) as db:
        lifecycle.erase_email(db, email_id=report.email_id, actor="dpo")
    assert _occurrences(fresh, CANARY) == places
    with Session(fresh) as db:
        assert (
            db.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "values_erased")
            )
            == 0
        )
        assert db.get(ProcessingReport, report.id).values_erased_at is None  # type: ignore[union-attr]


def test_reprocessing_brings_values_back(fresh: Engine) -> None:
    now = _now(fresh)
    with session_scope(fresh) as db:
        report = _personal_report(db, word=CANARY, created_at=now - DAY, decide=False)
    with session_scope(fresh) as db:
        lifecycle.erase_email(db, email_id=report.email_id, actor="dpo")
    with session_scope(fresh) as db:
        again = make_report(db, email_id=report.email_id, agent_checkpoints=checkpoints())
        assert again.id == report.id
    with Session(fresh) as db:
        fresh_report = db.get(ProcessingReport, report.id)
        assert fresh_report is not None and fresh_report.values_erased_at is None
        assert fresh_report.extracted_fields["client_name"]["value"] == "Erika Mustermann"


def test_bad_input_is_refused_naming_the_field(db: Session) -> None:
    cases: list[tuple[Any, str]] = [
        (lambda: lifecycle.erase_email(db, email_id=0, actor="dpo"), "email_id"),
        (lambda: lifecycle.erase_email(db, email_id=True, actor="dpo"), "email_id"),
        (lambda: lifecycle.erase_email(db, email_id=1, actor=" "), "actor"),
        (lambda: lifecycle.erase_sender(db, sender="", actor="dpo"), "sender"),
        (lambda: lifecycle.erase_sender(db, sender="a\u202eb@x", actor="dpo"), "sender"),
        (lambda: lifecycle.erase_sender(db, sender="x" * 400, actor="dpo"), "sender"),
        (lambda: lifecycle.retention_cutoff(now=dt.datetime(2026, 1, 1), retention_days=3), "now"),
        (
            lambda: lifecycle.retention_cutoff(now=dt.datetime.now(dt.UTC), retention_days=0),
            "retention_days",
        ),
        (lambda: lifecycle.purge_expired(lambda: db, actor="dpo"), "retention_days"),
        (
            lambda: lifecycle.purge_expired(
                lambda: db, actor="dpo", retention_days=3, batch_size=0
            ),
            "batch_size",
        ),
    ]
    for call, field in cases:
        with pytest.raises(ReportValidationError) as caught:
            call()
        assert caught.value.field == field
    with pytest.raises(UnknownEmailError):
        lifecycle.erase_email(db, email_id=2_000_000_000, actor="dpo")
    assert (
        db.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action.in_(["values_erased", "values_purged"]))
        )
        == 0
    )


@pytest.mark.parametrize("raw", ["0", "-3", "soon", "36501"])
def test_retention_days_must_be_a_positive_number(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("RETENTION_DAYS", raw)
    with pytest.raises(ConfigurationError, match="RETENTION_DAYS"):
        get_settings()


def test_retention_days_unset_or_empty_keeps_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETENTION_DAYS", raising=False)
    assert get_settings().retention_days is None
    get_settings.cache_clear()
    monkeypatch.setenv("RETENTION_DAYS", "")
    assert get_settings().retention_days is None
    get_settings.cache_clear()
    monkeypatch.setenv("RETENTION_DAYS", "400")
    assert get_settings().retention_days == 400


def test_decisions_stay_after_erasure(fresh: Engine) -> None:
    now = _now(fresh)
    with session_scope(fresh) as db:
        report = _personal_report(db, word=CANARY, created_at=now - DAY)
    with session_scope(fresh) as db:
        lifecycle.erase_email(db, email_id=report.email_id, actor="dpo")
    with Session(fresh) as db:
        decision = db.scalars(select(ReviewDecision)).one()
        assert (decision.outcome, decision.note, decision.reviewer) == (
            "corrected",
            None,
            "alice@example.com",
        )
        assert [(v.field_name, v.verdict, v.corrected_value) for v in decision.verdicts] == [
            ("client_name", "corrected", None),
            ("creditor_name", "correct", None),
            ("debt_amount", "correct", None),
            ("iban", "absent", None),
            ("reference_numbers", "correct", None),
        ]


def test_an_erased_open_report_cannot_be_claimed_or_decided(db: Session) -> None:
    """Nothing is left to check once the values are gone: claiming and deciding are
    refused (naming the report, not a value), "Next item" passes it over, the queue's
    figures keep it, and re-processing the email brings it back for review."""
    now = lifecycle._now(db, None)  # noqa: SLF001 - the database clock
    erased = _personal_report(db, word=CANARY, created_at=now - 3 * DAY, decide=False)
    claimed = _personal_report(db, word=KEEP, created_at=now - 2 * DAY, decide=False)
    claim_report(db, report_id=claimed.id, reviewer="bob@example.com", now=now)
    count_before = review.count_review_queue(db, now=now)
    lifecycle.erase_email(db, email_id=erased.email_id, actor="dpo@example.com", now=now)
    lifecycle.erase_email(db, email_id=claimed.email_id, actor="dpo@example.com", now=now)

    assert review.count_review_queue(db, now=now) == count_before
    with pytest.raises(review.ValuesErasedError) as caught:
        claim_report(db, report_id=erased.id, reviewer="alice@example.com", now=now)
    assert str(erased.id) in str(caught.value) and CANARY not in str(caught.value)
    with pytest.raises(review.ValuesErasedError):  # claimed before the erasure
        decide_report(
            db,
            report_id=claimed.id,
            reviewer="bob@example.com",
            outcome="approved",
            verdicts=dict.fromkeys(KEY_FIELDS, "correct"),
            now=now,
        )
    while item := review.claim_next_report(db, reviewer="carol@example.com", now=now):
        assert item.report_id not in {erased.id, claimed.id}
        decide_report(
            db,
            report_id=item.report_id,
            reviewer="carol@example.com",
            outcome="rejected",
            verdicts=dict.fromkeys(
                [f.name for f in review.get_review_item(db, report_id=item.report_id).fields],
                "absent",
            ),
            now=now,
        )
    assert review.count_review_queue(db, now=now) == 2
    shown = review.get_review_item(db, report_id=erased.id, now=now)
    assert shown is not None and shown.is_open and shown.values_erased_at is not None

    again = make_report(
        db,
        email_id=erased.email_id,
        extracted_data=extracted(client_name="Reprocessed Person"),
        needs_review=True,
        review_reason="low confidence",
        confidence_route="low",
        overall_confidence=0.4,
    )
    db.refresh(again)  # a database trigger cleared the erasure mark
    assert again.id == erased.id and again.values_erased_at is None
    assert claim_report(db, report_id=erased.id, reviewer="alice@example.com", now=now)
