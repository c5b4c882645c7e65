"""Realistic synthetic reports for the demo and for tests.

The distributions imitate a real extractor: most confidences are high with a low tail,
amounts and reference numbers are harder than names, missing fields go missing together,
and routes and review flags follow from the confidences. Deterministic for a given seed.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final, cast

from faker import Faker
from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from reportlib.models import Base, IncomingEmail, ProcessingReport
from reportlib.sampling import AuditRates
from reportlib.service import ReportInput, create_processing_reports

INTENTS: tuple[tuple[str, float], ...] = (
    ("debt_claim", 0.44),
    ("payment_reminder", 0.21),
    ("payment_plan_offer", 0.10),
    ("dispute_response", 0.08),
    ("settlement_confirmation", 0.07),
    ("information_request", 0.06),
    ("other", 0.04),
)

CREDITORS: tuple[str, ...] = (
    "Stadtwerke München GmbH",
    "Telekom Deutschland GmbH",
    "Vodafone GmbH",
    "EOS Deutscher Inkasso-Dienst GmbH",
    "Creditreform Hamburg",
    "Otto GmbH & Co. KG",
    "Klarna Bank AB",
    "PayPal (Europe) S.à r.l.",
    "Deutsche Bahn AG",
    "E.ON Energie Deutschland GmbH",
    "Vattenfall Europe Sales GmbH",
    "1&1 Telecom GmbH",
    "AOK Nordost",
    "Techniker Krankenkasse",
    "Finanzamt Berlin-Mitte",
    "Rundfunkbeitrag ARD ZDF",
    "Riverty GmbH",
    "Intrum Deutschland GmbH",
    "Lowell Financial Services GmbH",
    "KSP Kanzlei Dr. Seegers, Dr. Frankenheim",
    "Amazon Payments Europe",
    "Zalando SE",
    "Sparkasse KölnBonn",
    "Commerzbank AG",
    "Santander Consumer Bank AG",
    "Barclays Bank Ireland PLC",
    "Fitness First Germany GmbH",
    "McFit GmbH",
    "Vonovia SE",
    "LEG Immobilien SE",
    "Allianz Versicherungs-AG",
    "HUK-COBURG",
    "Mobilcom-Debitel GmbH",
    "O2 Telefónica Germany",
    "Sky Deutschland GmbH",
    "Universitätsklinikum Hamburg-Eppendorf",
    "Zahnarztpraxis Dr. Weber",
    "Stadtkasse Leipzig",
)

SOURCES = ("email_body", "email_subject", "attachment:invoice.pdf", "attachment:letter.pdf")
REASONS_LOW = ("low overall confidence", "low confidence on debt_amount", "conflicting amounts")


@dataclass(frozen=True, slots=True)
class DemoEmail:
    """One synthetic email and the pipeline output for it."""

    email_id: int
    subject: str
    sender: str
    received_at: dt.datetime
    created_at: dt.datetime
    report: ReportInput


def _beta(rng: random.Random, alpha: float, beta: float, tail: float) -> float:
    """Mostly high confidences, with a ``tail`` share drawn from a low, wide distribution."""
    value = rng.betavariate(2.0, 3.0) if rng.random() < tail else rng.betavariate(alpha, beta)
    return round(min(max(value, 0.0), 1.0), 3)


# (alpha, beta, low-tail share): names are easy, amounts and reference numbers harder.
FIELD_DIFFICULTY = {
    "client_name": (22.0, 1.8, 0.03),
    "creditor_name": (25.0, 1.5, 0.02),
    "debt_amount": (10.0, 1.6, 0.07),
    "reference_numbers": (7.0, 2.0, 0.10),
}


def _route(overall: float) -> str:
    if overall >= 0.85:
        return "high"
    if overall >= 0.6:
        return "medium"
    return "low"


def _day_weights(days: int, today: dt.date) -> list[float]:
    weights = []
    for offset in range(days):
        day = today - dt.timedelta(days=days - 1 - offset)
        weekday_factor = 0.35 if day.weekday() >= 5 else 1.0
        growth = 0.8 + 0.4 * offset / max(days - 1, 1)  # volume grows over the period
        weights.append(weekday_factor * growth)
    return weights


def generate_demo_emails(
    *,
    count: int,
    seed: int = 42,
    days: int = 90,
    first_email_id: int = 1,
    now: dt.datetime | None = None,
) -> Iterator[DemoEmail]:
    """Yield ``count`` synthetic emails with reports spread over the last ``days`` days."""
    rng = random.Random(seed)
    fake = Faker("de_DE")
    fake.seed_instance(seed)
    now = now or dt.datetime.now(dt.UTC)
    today = now.date()
    day_offsets = list(range(days))
    weights = _day_weights(days, today)
    creditor_weights = [1.0 / (rank + 1) ** 1.1 for rank in range(len(CREDITORS))]
    intent_names = [name for name, _ in INTENTS]
    intent_weights = [weight for _, weight in INTENTS]

    for index in range(count):
        email_id = first_email_id + index
        day = today - dt.timedelta(days=days - 1 - rng.choices(day_offsets, weights)[0])
        received = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
            seconds=rng.randint(6 * 3600, 20 * 3600)
        )
        created = received + dt.timedelta(seconds=rng.randint(5, 900))
        if created > now:
            created = now - dt.timedelta(seconds=rng.randint(1, 600))
            received = min(received, created - dt.timedelta(seconds=5))
        intent = rng.choices(intent_names, intent_weights)[0]
        creditor = CREDITORS[rng.choices(range(len(CREDITORS)), creditor_weights)[0]]
        sources = rng.choices((1, 2, 3, 4), (0.45, 0.35, 0.15, 0.05))[0]

        # Letters without reference numbers often lack the amount too.
        vague = intent in {"information_request", "other"}
        missing_ref = rng.random() < (0.30 if vague else 0.11)
        missing_amount = rng.random() < (0.45 if missing_ref else 0.05)
        missing_client = rng.random() < (0.08 if vague else 0.025)
        missing_creditor = rng.random() < 0.02

        values: dict[str, Any] = {
            "client_name": None if missing_client else f"{fake.first_name()} {fake.last_name()}",
            "creditor_name": None if missing_creditor else creditor,
            "debt_amount": None
            if missing_amount
            else Decimal(str(round(rng.lognormvariate(6.2, 1.0), 2))).quantize(Decimal("0.01")),
            "reference_numbers": None
            if missing_ref
            else [
                rng.choice(("AZ ", "Kd.-Nr. ", "Rechnung ", "Vertrag "))
                + f"{rng.randint(2019, 2026)}/{rng.randint(10000, 999999)}"
                for _ in range(rng.choices((1, 2, 3), (0.7, 0.25, 0.05))[0])
            ],
        }
        confidences = {
            name: _beta(rng, *FIELD_DIFFICULTY[name])
            for name, value in values.items()
            if value is not None
        }
        metadata = {
            name: {
                "confidence": confidences[name],
                "source": rng.choice(SOURCES[: 1 + sources]) if sources > 1 else "email_body",
            }
            for name in confidences
        }
        n_missing = sum(value is None for value in values.values())
        mean_conf = sum(confidences.values()) / len(confidences) if confidences else 0.2
        overall = mean_conf * (1 - 0.12 * n_missing) + rng.gauss(0.02, 0.07)
        overall = round(min(max(overall, 0.0), 1.0), 3)
        route = _route(overall)
        reason = None
        if route == "low":
            reason = rng.choice(REASONS_LOW)
        elif missing_amount:
            reason = "missing debt_amount"
        elif missing_creditor:
            reason = "missing creditor_name"
        elif route == "medium" and min(confidences.values(), default=1.0) < 0.45:
            reason = "low confidence on " + min(confidences, key=lambda k: confidences[k])
        needs_review = reason is not None
        tokens = int(sum(rng.gauss(1100, 250) for _ in range(sources)) + rng.gauss(700, 120))
        processing_ms = int(rng.lognormvariate(7.6, 0.45) * (0.7 + 0.3 * sources))
        subject = rng.choice(
            (
                "Mahnung",
                "Zahlungserinnerung",
                "Letzte Mahnung vor gerichtlichem Mahnverfahren",
                "Forderungsaufstellung",
                "Ihr Ratenzahlungsangebot",
                "Rückfrage zu Ihrem Schreiben",
                "Bestätigung der Vergleichszahlung",
            )
        )
        domain = "".join(ch for ch in creditor.lower().split()[0] if ch.isalnum()) or "glaeubiger"
        yield DemoEmail(
            email_id=email_id,
            subject=subject,
            sender=f"forderungsmanagement@{domain}.example",
            received_at=received,
            created_at=created,
            report=ReportInput(
                email_id=email_id,
                extracted_data={**values, "extraction_metadata": metadata},
                agent_checkpoints={
                    "agent_1_intent": {"intent": intent, "confidence": _beta(rng, 30, 1.5, 0.02)},
                    "agent_2_extraction": {
                        "field_confidence": confidences,
                        "sources_processed": sources,
                        "total_tokens_used": max(tokens, 200),
                    },
                },
                overall_confidence=overall,
                confidence_route=route,
                needs_review=needs_review,
                review_reason=reason,
                processing_time_ms=max(processing_ms, 50),
            ),
        )


#: The demo's audit samples: 5% of the reports the pipeline passes, 3% of those on the high
#: route, so that the demo's queue holds some to review blind.
DEMO_AUDIT_RATES: Final = AuditRates.from_overrides(0.05, {"high": 0.03})


def seed_demo(
    db: Session,
    *,
    count: int,
    seed: int = 42,
    days: int = 90,
    now: dt.datetime | None = None,
    batch_size: int = 1000,
    audit_rates: AuditRates | None = None,
) -> list[int]:
    """Write ``count`` demo emails and reports after the highest existing email id.

    Reports are written through the batch service, then back-dated to their demo
    ``created_at`` (the database sets ``created_at`` to now on write). ``audit_rates``
    replaces the settings' audit sampling rates (:data:`DEMO_AUDIT_RATES` is the demo's).
    Flushes; the caller commits. Returns the email ids written.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    start = (db.scalar(select(func.max(IncomingEmail.id))) or 0) + 1
    written: list[int] = []
    batch: list[DemoEmail] = []
    for email in generate_demo_emails(
        count=count, seed=seed, days=days, first_email_id=start, now=now
    ):
        batch.append(email)
        if len(batch) >= batch_size:
            written.extend(_write_batch(db, batch, audit_rates))
            batch = []
    if batch:
        written.extend(_write_batch(db, batch, audit_rates))
    return written


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _write_batch(
    db: Session, batch: Sequence[DemoEmail], audit_rates: AuditRates | None
) -> list[int]:
    reports = _table(ProcessingReport)
    db.execute(
        insert(_table(IncomingEmail)),
        [
            {
                "id": e.email_id,
                "subject": e.subject,
                "sender": e.sender,
                "received_at": e.received_at,
            }
            for e in batch
        ],
    )
    create_processing_reports(db, [e.report for e in batch], audit_rates=audit_rates)
    db.execute(
        update(reports)
        .where(reports.c.email_id == bindparam("b_email_id"))
        .values(created_at=bindparam("b_created_at")),
        [{"b_email_id": e.email_id, "b_created_at": e.created_at} for e in batch],
    )
    return [e.email_id for e in batch]


#: The demo's planted incident (see :func:`plant_missing_amount_spike`): debt claims in
#: the last hours whose debt_amount went missing, which the example alert rule
#: ``debt_amount_missing_spike`` (``alert_rules.example.toml``) is there to catch.
SPIKE_HOURS = 6
SPIKE_REPORTS = 48
SPIKE_MISSING_SHARE = 0.6


def generate_missing_amount_spike(
    *, seed: int = 42, first_email_id: int = 1, now: dt.datetime | None = None
) -> Iterator[DemoEmail]:
    """Debt claims spread over the last :data:`SPIKE_HOURS` whole UTC hours before ``now``,
    most of them without a debt_amount (as after a bad extractor release)."""
    now = now or dt.datetime.now(dt.UTC)
    end = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(seed + 1)
    emails = generate_demo_emails(
        count=SPIKE_REPORTS, seed=seed + 1, days=1, first_email_id=first_email_id, now=now
    )
    for index, email in enumerate(emails):
        created = end - dt.timedelta(
            seconds=(SPIKE_HOURS * 3600 - 60) * (index + 0.5) / SPIKE_REPORTS
        )
        report = email.report
        data = dict(report.extracted_data)
        checkpoints = {key: dict(value) for key, value in (report.agent_checkpoints or {}).items()}
        checkpoints["agent_1_intent"]["intent"] = "debt_claim"
        if rng.random() < SPIKE_MISSING_SHARE:
            data["debt_amount"] = None
            data["extraction_metadata"] = {
                k: v for k, v in data["extraction_metadata"].items() if k != "debt_amount"
            }
            confidences = dict(checkpoints["agent_2_extraction"]["field_confidence"])
            confidences.pop("debt_amount", None)
            checkpoints["agent_2_extraction"]["field_confidence"] = confidences
        missing = data["debt_amount"] is None
        reason = report.review_reason
        if missing and report.confidence_route != "low":
            reason = "missing debt_amount"
        yield replace(
            email,
            received_at=created - dt.timedelta(seconds=30),
            created_at=created,
            report=replace(
                report,
                extracted_data=data,
                agent_checkpoints=checkpoints,
                needs_review=reason is not None,
                review_reason=reason,
            ),
        )


def plant_missing_amount_spike(
    db: Session, *, seed: int = 42, now: dt.datetime | None = None
) -> list[int]:
    """Write the demo incident of :func:`generate_missing_amount_spike` after the highest
    existing email id; flushes, the caller commits. Returns the email ids written."""
    start = (db.scalar(select(func.max(IncomingEmail.id))) or 0) + 1
    return _write_batch(
        db,
        list(generate_missing_amount_spike(seed=seed, first_email_id=start, now=now)),
        None,
    )
