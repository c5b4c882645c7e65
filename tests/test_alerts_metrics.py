"""Alert metrics against an independent recomputation from the raw rows (both backends)."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from reportlib import ProcessingReport, ReviewDecision, ReviewFieldVerdict
from reportlib.alerts import METRICS, Scope, read_metric
from reportlib.alerts.metrics import baseline_ranges, hour_window
from reportlib.review import FieldVerdict, claim_report, decide_report
from tests.factories import checkpoints, make_report

NOW = dt.datetime(2026, 11, 20, 14, 37, 12, tzinfo=dt.UTC)
KEY_FIELDS = ("client_name", "creditor_name", "debt_amount", "reference_numbers")
VALUES: dict[str, Any] = {
    "client_name": "Erika Beispiel",
    "creditor_name": "Stadtwerke Beispiel GmbH",
    "debt_amount": Decimal("120.50"),
    "reference_numbers": ["AZ 1/2"],
}
INTENTS = ("debt_claim", "payment_confirmation", None)
ROUTES = ("high", "medium", "low")


def _seed(db: Session) -> None:
    rng = random.Random(14)
    hour_start = NOW.replace(minute=0, second=0, microsecond=0)
    instants = [hour_start - dt.timedelta(seconds=rng.randrange(9 * 24 * 3600)) for _ in range(420)]
    # The edges: a window's first instant counts, its end does not; the current hour and
    # the future are outside every window.
    instants += [
        hour_start - dt.timedelta(hours=6),
        hour_start - dt.timedelta(hours=6, microseconds=1),
        hour_start - dt.timedelta(days=1, hours=6),
        hour_start,
        hour_start + dt.timedelta(minutes=20),
        NOW + dt.timedelta(hours=3),
    ]
    for created in instants:
        names = [
            name for name in KEY_FIELDS if rng.random() > (0.5 if name == "debt_amount" else 0.15)
        ]
        confidences = {name: round(rng.random(), 3) for name in names}
        data: dict[str, Any] = {name: VALUES[name] for name in names}
        data["extraction_metadata"] = {
            name: {"confidence": confidences[name], "source": "email_body"} for name in names
        }
        flagged = rng.random() < 0.4
        report = make_report(
            db,
            extracted_data=data,
            agent_checkpoints=checkpoints(intent=rng.choice(INTENTS)),  # type: ignore[arg-type]
            overall_confidence=round(rng.random(), 4),
            confidence_route=rng.choice(ROUTES),
            needs_review=flagged,
            review_reason="low overall confidence" if flagged else None,
            created_at=created,
        )
        if flagged and created < NOW and rng.random() < 0.6:
            verdicts = {
                name: (
                    FieldVerdict("correct")
                    if name in confidences and rng.random() < confidences[name]
                    else FieldVerdict("absent")
                )
                for name in KEY_FIELDS
            }
            decided = created + dt.timedelta(minutes=rng.randrange(1, 600))
            claim_report(
                db, report_id=report.id, reviewer="alice", now=decided - dt.timedelta(seconds=30)
            )
            decide_report(
                db,
                report_id=report.id,
                reviewer="alice",
                outcome="rejected",
                verdicts=verdicts,
                now=decided,
            )
    db.flush()


def _reports(db: Session) -> pd.DataFrame:
    r = ProcessingReport
    rows = db.execute(
        select(
            r.id,
            r.created_at,
            r.intent,
            r.confidence_route,
            r.needs_review,
            r.overall_confidence,
            r.missing_fields,
        )
    ).all()
    return pd.DataFrame(
        rows,
        columns=["id", "created_at", "intent", "route", "needs_review", "confidence", "missing"],
    )


def _in(
    frame: pd.DataFrame, ranges: list[tuple[dt.datetime, dt.datetime]], scope: Scope
) -> pd.DataFrame:
    keep = pd.Series(False, index=frame.index)
    for start, end in ranges:
        keep |= (frame.created_at >= start) & (frame.created_at < end)
    if scope.intent is not None:
        keep &= frame.intent == scope.intent
    if scope.route is not None:
        keep &= frame.route == scope.route
    return frame[keep]


def _expected(
    db: Session, metric: str, ranges: list[tuple[dt.datetime, dt.datetime]], scope: Scope
) -> tuple[float | None, int]:
    reports = _reports(db)
    window = _in(reports, ranges, scope)
    n = len(window)
    if metric == "needs_review_rate":
        return (window.needs_review.sum() / n if n else None), n
    if metric == "mean_confidence":
        return (window.confidence.sum() / n if n else None), n
    if metric == "low_route_share":
        return ((window.route == "low").sum() / n if n else None), n
    if metric == "report_volume":
        return n / len(ranges), n
    if metric == "missing_rate":
        missing = sum(scope.field in (m or []) for m in window.missing)
        return (missing / n if n else None), n
    decisions = pd.DataFrame(
        db.execute(select(ReviewDecision.report_id, ReviewDecision.decided_at)).all(),
        columns=["id", "decided_at"],
    )
    if metric in ("open_queue_size", "oldest_open_age_hours"):
        closed = set(decisions[decisions.decided_at < NOW].id)
        dims = _in(reports, [(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), NOW)], scope)
        open_items = dims[dims.needs_review & ~dims.id.isin(closed)]
        size = len(open_items)
        if metric == "open_queue_size":
            return float(size), size
        oldest = open_items.created_at.min()
        return ((NOW - oldest).total_seconds() / 3600 if size else None), size
    assert metric == "ece"
    ((start, end),) = ranges
    v, d = ReviewFieldVerdict, ReviewDecision
    verdicts = pd.DataFrame(
        db.execute(
            select(v.field_name, v.verdict, v.extracted_confidence)
            .join(d, d.id == v.decision_id)
            .where(
                d.report_created_at >= start,
                d.report_created_at < end,
                v.was_missing.is_(False),
                v.extracted_confidence.is_not(None),
            )
        ).all(),
        columns=["field", "verdict", "confidence"],
    )
    if scope.field is not None:
        verdicts = verdicts[verdicts.field == scope.field]
    total = len(verdicts)
    if not total:
        return None, 0
    bins = (verdicts.confidence * 10).astype(int).clip(upper=9)
    ece = 0.0
    for _, group in verdicts.groupby(bins):
        accuracy = (group.verdict == "correct").mean()
        ece += len(group) / total * abs(accuracy - group.confidence.mean())
    return ece, total


SCOPES = [
    Scope(),
    Scope(intent="debt_claim"),
    Scope(route="low"),
    Scope(intent="payment_confirmation", route="medium"),
]


def test_every_metric_equals_the_raw_recomputation(db: Session) -> None:
    _seed(db)
    six = [hour_window(NOW, 6)]
    day = [hour_window(NOW, 24)]
    baseline = baseline_ranges(*six[0], 7)
    checked: set[str] = set()
    nonzero = 0
    for metric, spec in METRICS.items():
        windows = [six, day] + ([baseline] if spec.baseline else [])
        fields: list[str | None] = (
            ["debt_amount", "client_name"]
            if spec.field == "required"
            else [None, "debt_amount"]
            if spec.field == "optional"
            else [None]
        )
        for ranges in windows:
            for scope in SCOPES:
                if (scope.route and not spec.routes) or (scope.intent and not spec.intents):
                    continue
                for field in fields:
                    s = Scope(scope.intent, scope.route, field)
                    got = read_metric(db, metric, ranges, s, now=NOW)
                    value, volume = _expected(db, metric, ranges, s)
                    assert got.volume == volume, (metric, ranges, s)
                    if value is None:
                        assert got.value is None, (metric, ranges, s)
                    else:
                        assert got.value == pytest.approx(value, rel=1e-9, abs=1e-12), (metric, s)
                        nonzero += bool(value)
                    checked.add(metric)
    assert checked == set(METRICS)
    # The data is not empty where it matters: most comparisons had something to compare.
    assert nonzero > 40


def test_hour_windows_are_whole_hours_before_now() -> None:
    assert hour_window(NOW, 6) == (
        dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 20, 14, tzinfo=dt.UTC),
    )
    assert baseline_ranges(*hour_window(NOW, 6), 2) == [
        (dt.datetime(2026, 11, 19, 8, tzinfo=dt.UTC), dt.datetime(2026, 11, 19, 14, tzinfo=dt.UTC)),
        (dt.datetime(2026, 11, 18, 8, tzinfo=dt.UTC), dt.datetime(2026, 11, 18, 14, tzinfo=dt.UTC)),
    ]


def test_an_empty_window_has_no_value(db: Session) -> None:
    far = NOW - dt.timedelta(days=300)
    for metric in ("needs_review_rate", "mean_confidence", "low_route_share"):
        assert read_metric(db, metric, [hour_window(far, 6)], Scope(), now=far).value is None
    assert read_metric(db, "report_volume", [hour_window(far, 6)], Scope(), now=far).value == 0
