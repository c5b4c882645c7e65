"""Audit samples: drawn by the writer from the email id alone, at the rate of the report's
route and intent, stored with that rate, the same on re-processing and in every writer
path, and never for a report the pipeline flagged. Both backends."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from reportlib import (
    ProcessingReport,
    ReportInput,
    create_processing_reports,
    ensure_incoming_email,
)
from reportlib.config import ConfigurationError, get_settings
from reportlib.sampling import AUDIT_REASON, AuditRates, audit_draw
from tests.factories import checkpoints, extracted, make_report, next_email_id


@pytest.fixture
def rates(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def configure(default: float, overrides: str = "") -> None:
        monkeypatch.setenv("AUDIT_SAMPLE_RATE", str(default))
        monkeypatch.setenv("AUDIT_SAMPLE_OVERRIDES", overrides)
        get_settings.cache_clear()

    return configure


def stored(db: Session, email_id: int) -> tuple[bool, str | None, float | None]:
    report = db.scalars(select(ProcessingReport).where(ProcessingReport.email_id == email_id)).one()
    return report.needs_review, report.review_reason, report.audit_rate


def test_the_draw_is_a_keyed_hash_of_the_email_id_spread_evenly() -> None:
    # An independent spelling of the documented rule: BLAKE2b, 8 bytes, keyed by person.
    def expected(email_id: int) -> float:
        digest = hashlib.blake2b(
            email_id.to_bytes(8, "big", signed=True), digest_size=8, person=b"reportlib-audit"
        ).digest()
        return int.from_bytes(digest, "big") / 2**64

    draws = [audit_draw(i) for i in range(1, 100_001)]
    assert draws[:50] == [expected(i) for i in range(1, 51)]
    assert all(0.0 <= d < 1.0 for d in draws)
    # Binomial standard deviation at p=0.02, n=100,000: 0.00044. Five of them.
    assert abs(sum(d < 0.02 for d in draws) / len(draws) - 0.02) < 0.0023
    assert abs(sum(d < 0.5 for d in draws) / len(draws) - 0.5) < 0.008


def test_an_intent_rate_wins_over_its_routes_which_wins_over_the_default() -> None:
    rates = AuditRates.from_overrides(0.02, {"high": 0.01, "low": 0.05, "debt_claim": 0.3})
    assert rates.rate("high", "payment_reminder") == 0.01
    assert rates.rate("low", None) == 0.05
    assert rates.rate("medium", "other") == 0.02
    assert rates.rate("high", "debt_claim") == 0.3
    assert AuditRates().enabled is False
    assert AuditRates.from_overrides(0.0, {"low": 0.1}).enabled is True


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("AUDIT_SAMPLE_RATE", "1.5", "AUDIT_SAMPLE_RATE"),
        ("AUDIT_SAMPLE_RATE", "-0.1", "AUDIT_SAMPLE_RATE"),
        ("AUDIT_SAMPLE_OVERRIDES", "high=2", "AUDIT_SAMPLE_OVERRIDES"),
        ("AUDIT_SAMPLE_OVERRIDES", "low", "AUDIT_SAMPLE_OVERRIDES"),
        ("AUDIT_SAMPLE_OVERRIDES", "=0.1", "AUDIT_SAMPLE_OVERRIDES"),
        ("AUDIT_SAMPLE_OVERRIDES", "low=often", "AUDIT_SAMPLE_OVERRIDES"),
        ("AUDIT_SAMPLE_OVERRIDES", "low=nan", "AUDIT_SAMPLE_OVERRIDES"),
    ],
)
def test_bad_rates_fail_fast_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=named):
        get_settings()


def test_no_rate_no_sample(db: Session) -> None:
    email_ids = [make_report(db).email_id for _ in range(40)]
    assert {stored(db, e) for e in email_ids} == {(False, None, None)}


def test_the_writer_samples_unflagged_reports_by_draw_and_rate(
    db: Session, rates: Callable[..., None]
) -> None:
    rates(0.3, "low=0.6,debt_claim=0.9")
    cases = []
    for index in range(150):
        route = ("high", "medium", "low")[index % 3]
        intent = "debt_claim" if index % 5 == 0 else "payment_reminder"
        flagged = index % 7 == 0
        report = make_report(
            db,
            confidence_route=route,
            agent_checkpoints=checkpoints(intent),
            needs_review=flagged,
            review_reason="low overall confidence" if flagged else None,
        )
        cases.append((report.email_id, route, intent, flagged))
    sampled = 0
    for email_id, route, intent, flagged in cases:
        rate = 0.9 if intent == "debt_claim" else 0.6 if route == "low" else 0.3
        if flagged:
            assert stored(db, email_id) == (True, "low overall confidence", None)
        elif audit_draw(email_id) < rate:
            assert stored(db, email_id) == (True, AUDIT_REASON, rate)
            sampled += 1
        else:
            assert stored(db, email_id) == (False, None, None)
    assert sampled > 20  # the check above saw both outcomes


def test_re_processing_draws_the_same_and_a_flag_replaces_the_sample(
    db: Session, rates: Callable[..., None]
) -> None:
    rates(0.5)
    email_id = next(
        e for e in iter(next_email_id, None) if audit_draw(e) < 0.5
    )  # an email inside the sample
    make_report(db, email_id=email_id)
    assert stored(db, email_id) == (True, AUDIT_REASON, 0.5)
    make_report(db, email_id=email_id, overall_confidence=0.9)
    assert stored(db, email_id) == (True, AUDIT_REASON, 0.5)
    make_report(db, email_id=email_id, needs_review=True, review_reason="missing debt_amount")
    assert stored(db, email_id) == (True, "missing debt_amount", None)
    # Out of the sample at a lower rate: re-processing clears what was stored.
    rates(0.0)
    make_report(db, email_id=email_id)
    assert stored(db, email_id) == (False, None, None)


def test_the_batch_writer_draws_what_the_single_writer_draws(
    db: Session, rates: Callable[..., None]
) -> None:
    rates(0.4, "high=0.2")
    singles = [make_report(db, confidence_route=("high", "low")[i % 2]).email_id for i in range(60)]
    batch_ids = [next_email_id() for _ in range(60)]
    for email_id in batch_ids:
        ensure_incoming_email(db, email_id)
    written = create_processing_reports(
        db,
        [
            ReportInput(
                email_id=email_id,
                extracted_data=extracted(),
                agent_checkpoints=checkpoints(),
                overall_confidence=0.85,
                confidence_route=("high", "low")[i % 2],
                needs_review=False,
            )
            for i, email_id in enumerate(batch_ids)
        ],
    )
    assert written == 60
    db.expire_all()
    for email_id in singles + batch_ids:
        report = db.scalars(
            select(ProcessingReport).where(ProcessingReport.email_id == email_id)
        ).one()
        rate = 0.2 if report.confidence_route == "high" else 0.4
        expected = rate if audit_draw(email_id) < rate else None
        assert report.audit_rate == expected, email_id
        assert report.needs_review is (expected is not None)
        assert report.review_reason == (AUDIT_REASON if expected is not None else None)
