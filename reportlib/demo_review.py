"""Synthetic review history for the demo: a few reviewers working through the queue.

Verdicts follow the confidences: for most fields a value with confidence ``c`` is
correct with probability ``c`` (a calibrated extractor), while ``debt_amount`` is
overconfident (at 0.9 only about 70 % correct), so the quality page has something true to
show. Everything is written through the real review services (claim, then decide) with
back-dated times, so decisions, verdicts, claims and audit rows are exactly what a real
reviewer would leave behind. Recent reports, and a share of older ones, stay open.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from reportlib.config import get_settings
from reportlib.demo import CREDITORS
from reportlib.models import ProcessingReport, ReviewClaim
from reportlib.queries import open_review_condition
from reportlib.review import (
    FieldVerdict,
    ReviewField,
    check_reviewer,
    claim_report,
    decide_report,
)
from reportlib.review.decisions import review_fields
from reportlib.review.records import db_now

DEFAULT_REVIEWERS = (
    "anna.keller@inkasso.example",
    "murat.yilmaz@inkasso.example",
    "julia.nowak@inkasso.example",
)
# The first reviewer does most of the work, as in any real team.
REVIEWER_WEIGHTS = (0.5, 0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.1)


def _calibrated(confidence: float) -> float:
    return confidence


def _overconfident(confidence: float) -> float:
    return confidence * 0.7 / 0.9


#: P(value correct | confidence) per field; fields not listed are calibrated.
CORRECTNESS: Mapping[str, Callable[[float], float]] = {"debt_amount": _overconfident}
#: P(the extractor missed a value that was there | field marked missing).
MISSED_SHARE: Mapping[str, float] = {
    "client_name": 0.25,
    "creditor_name": 0.5,
    "debt_amount": 0.45,
    "reference_numbers": 0.35,
}
#: Among wrong extracted values, the share that was not in the email at all.
BOGUS_SHARE = 0.15
NOTES = (
    "Betrag aus dem Anhang übernommen.",
    "Aktenzeichen im Betreff geprüft.",
    "Rückfrage an Gläubiger nötig.",
)
REJECTION_NOTES = ("Kein Forderungsschreiben.", "Doppelte Zusendung.")
FIRST_NAMES = ("Lena", "Jonas", "Mia", "Paul", "Emma", "Felix", "Hannah", "Lukas", "Marie")
LAST_NAMES = ("Schulz", "Becker", "Hoffmann", "Wagner", "Fischer", "Weber", "Koch", "Richter")


def _fake_name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _fake_reference(rng: random.Random) -> str:
    prefix = rng.choice(("AZ ", "Kd.-Nr. ", "Rechnung ", "Vertrag "))
    return f"{prefix}{rng.randint(2019, 2026)}/{rng.randint(10000, 999999)}"


def _fake_amount(rng: random.Random) -> Decimal:
    return Decimal(str(round(rng.lognormvariate(6.2, 1.0), 2))).quantize(Decimal("0.01"))


def _value_for_missing(name: str, rng: random.Random) -> Any:
    if name == "client_name":
        return _fake_name(rng)
    if name == "creditor_name":
        return rng.choice(CREDITORS)
    if name == "debt_amount":
        return _fake_amount(rng)
    if name == "reference_numbers":
        return [_fake_reference(rng)]
    return "nachgetragen"


def _corrected(name: str, value: Any, rng: random.Random) -> Any | None:
    """A plausible right value differing from the wrong ``value``; None if none comes to mind."""
    for _attempt in range(10):
        candidate: Any
        if isinstance(value, bool):
            return None
        if isinstance(value, (Decimal, int, float)):
            factor = Decimal(str(round(rng.choice((0.1, 0.5, 0.9, 1.1, 2.0, 10.0)), 2)))
            candidate = (Decimal(str(value)) * factor).quantize(Decimal("0.01"))
        elif isinstance(value, list) and value:
            candidate = list(value)
            candidate[rng.randrange(len(candidate))] = _fake_reference(rng)
        elif name == "creditor_name":
            candidate = rng.choice(CREDITORS)
        elif name == "client_name":
            candidate = _fake_name(rng)
        elif isinstance(value, str) and len(value) > 1:
            position = rng.randrange(len(value) - 1)
            chars = list(value)
            chars[position], chars[position + 1] = chars[position + 1], chars[position]
            candidate = "".join(chars)
        else:
            return None
        if candidate != value:
            return candidate
    return None


def _verdict(field: ReviewField, rng: random.Random) -> FieldVerdict:
    if field.was_missing:
        if rng.random() < MISSED_SHARE.get(field.name, 0.3):
            return FieldVerdict("corrected", _value_for_missing(field.name, rng))
        return FieldVerdict("absent")
    confidence = 0.5 if field.confidence is None else field.confidence
    p_correct = CORRECTNESS.get(field.name, _calibrated)(confidence)
    if rng.random() < p_correct:
        return FieldVerdict("correct")
    if rng.random() < BOGUS_SHARE:
        return FieldVerdict("absent")
    corrected = _corrected(field.name, field.value, rng)
    return FieldVerdict("absent") if corrected is None else FieldVerdict("corrected", corrected)


def _outcome(
    fields: Sequence[ReviewField], verdicts: Mapping[str, FieldVerdict], rng: random.Random
) -> str:
    changed = any(
        verdicts[f.name].verdict == "corrected"
        or (verdicts[f.name].verdict == "absent" and not f.was_missing)
        for f in fields
    )
    if rng.random() < (0.08 if changed else 0.03):
        return "rejected"
    return "corrected" if changed else "approved"


#: The demo's reviewers work in sittings of this many minutes (``session_minutes``).
DEMO_SITTING_MINUTES = 45


def seed_review_history(
    db: Session,
    *,
    rng: random.Random,
    reviewers: Sequence[str] = DEFAULT_REVIEWERS,
    share: float = 0.8,
    now: dt.datetime | None = None,
    max_decisions: int = 5000,
    median_hours_to_decision: float = 6.0,
    session_minutes: float = 0.0,
) -> int:
    """Decide about ``share`` of the open flagged reports, as ``reviewers`` would have.

    Each decision comes a log-normal delay (median ``median_hours_to_decision``) after
    the report's ``created_at``, by a reviewer chosen with decreasing weights, preceded by
    a claim a few minutes earlier. Reports whose decision would fall after ``now``
    (default: the database clock) stay open, as do the ``1 - share`` left untouched.
    Considers at most the ``max_decisions / share`` most recent open reports nobody
    holds. Returns the number of decisions written. Flushes; the caller commits.

    With ``session_minutes``, reviewers work in sittings as people do: decisions that fall
    within that many minutes of a sitting's first one go to the same reviewer, one to seven
    minutes apart, so the review statistics have active time to measure.
    """
    names = [check_reviewer(name) for name in reviewers]
    if not names:
        raise ValueError("reviewers must name at least one reviewer")
    if not 0.0 <= share <= 1.0:
        raise ValueError("share must be between 0 and 1")
    if max_decisions < 0:
        raise ValueError("max_decisions must not be negative")
    current = db_now(db) if now is None else now
    weights = [REVIEWER_WEIGHTS[i % len(REVIEWER_WEIGHTS)] for i in range(len(names))]
    key_fields = get_settings().key_fields
    candidates_limit = max(1, math.ceil(max_decisions / share)) if share else 0
    if not candidates_limit:
        return 0
    candidates = db.execute(
        select(
            ProcessingReport.id,
            ProcessingReport.created_at,
            ProcessingReport.extracted_fields,
            ProcessingReport.missing_fields,
        )
        .where(
            open_review_condition(),
            ~exists().where(ReviewClaim.report_id == ProcessingReport.id),
            ProcessingReport.created_at < current,
        )
        .order_by(ProcessingReport.created_at.desc(), ProcessingReport.id.desc())
        .limit(candidates_limit)
    ).all()
    planned: list[_Planned] = []
    for report in reversed(candidates):
        if len(planned) >= max_decisions:
            break
        if rng.random() >= share:
            continue
        delay = max(120.0, rng.lognormvariate(math.log(median_hours_to_decision * 3600), 1.0))
        decided_at = report.created_at + dt.timedelta(seconds=delay)
        if decided_at >= current:
            continue
        handling = dt.timedelta(seconds=rng.uniform(45, 600))
        claimed_at = max(report.created_at + dt.timedelta(seconds=1), decided_at - handling)
        reviewer = rng.choices(names, weights)[0]
        fields = review_fields(report.extracted_fields, report.missing_fields, key_fields)
        verdicts = {f.name: _verdict(f, rng) for f in fields}
        outcome = _outcome(fields, verdicts, rng)
        if outcome == "rejected":
            note: str | None = rng.choice(REJECTION_NOTES)
        else:
            note = rng.choice(NOTES) if rng.random() < 0.1 else None
        planned.append(
            _Planned(
                report.id,
                report.created_at,
                reviewer,
                claimed_at,
                decided_at,
                verdicts,
                outcome,
                note,
            )
        )
    if session_minutes > 0:
        planned = _in_sittings(planned, names, weights, session_minutes, current, rng)
    for p in planned:
        claim_report(db, report_id=p.report_id, reviewer=p.reviewer, now=p.claimed_at)
        decide_report(
            db,
            report_id=p.report_id,
            reviewer=p.reviewer,
            outcome=p.outcome,
            verdicts=p.verdicts,
            note=p.note,
            now=p.decided_at,
            key_fields=key_fields,
        )
    return len(planned)


@dataclass(frozen=True)
class _Planned:
    report_id: int
    created_at: dt.datetime
    reviewer: str
    claimed_at: dt.datetime
    decided_at: dt.datetime
    verdicts: dict[str, Any]
    outcome: str
    note: str | None


def _in_sittings(
    planned: list[_Planned],
    names: list[str],
    weights: list[float],
    session_minutes: float,
    current: dt.datetime,
    rng: random.Random,
) -> list[_Planned]:
    """``planned`` regrouped into sittings: a reviewer takes every decision that falls
    within ``session_minutes`` of the sitting's first, one after another."""
    sitting = random.Random(rng.random())
    length = dt.timedelta(minutes=session_minutes)
    out: list[_Planned] = []
    start = last = current
    reviewer = names[0]
    for p in sorted(planned, key=lambda p: (p.decided_at, p.report_id)):
        in_sitting = bool(out) and p.decided_at <= start + length
        decided_at = p.decided_at
        if in_sitting:
            decided_at = max(
                last + dt.timedelta(seconds=sitting.uniform(60, 420)),
                p.created_at + dt.timedelta(seconds=120),
            )
            in_sitting = decided_at < current
        if not in_sitting:
            decided_at = start = p.decided_at
            reviewer = sitting.choices(names, weights)[0]
        last = decided_at
        claimed_at = max(
            p.created_at + dt.timedelta(seconds=1),
            decided_at - dt.timedelta(seconds=sitting.uniform(30, 50)),
        )
        out.append(replace(p, reviewer=reviewer, claimed_at=claimed_at, decided_at=decided_at))
    return out


__all__ = ["DEFAULT_REVIEWERS", "DEMO_SITTING_MINUTES", "seed_review_history"]
