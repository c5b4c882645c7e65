"""Quality analytics checked against a pandas recomputation from the raw verdict rows."""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reportlib import (
    AuditEvent,
    ProcessingReport,
    ReportValidationError,
    ReviewClaim,
    ReviewDecision,
    ReviewFieldVerdict,
    rollups,
)
from reportlib.demo import seed_demo
from reportlib.demo_review import DEFAULT_REVIEWERS, _verdict, seed_review_history
from reportlib.quality import (
    DEFAULT_THRESHOLDS,
    CalibrationBin,
    CalibrationReport,
    FieldCalibration,
    MissingOutcome,
    MissingReport,
    ReviewThresholdWhatIf,
    ThresholdOutcome,
    get_calibration,
    get_missing_outcomes,
    get_review_threshold_what_if,
)
from reportlib.review import (
    FieldVerdict,
    ReviewField,
    claim_report,
    count_review_queue,
    decide_report,
)
from tests.factories import checkpoints, make_report

KEY_FIELDS = ("client_name", "creditor_name", "debt_amount", "reference_numbers")
# Bin edges and thresholds themselves, and the ends of the scale, besides random values.
EDGE_CONFIDENCES = (0.0, 0.1, 0.3, 0.5, 0.55, 0.7, 0.75, 0.9, 0.95, 1.0, 0.2999999, 0.6000001)
VALUES: dict[str, Any] = {
    "client_name": "Erika Beispiel",
    "creditor_name": "Stadtwerke Beispiel GmbH",
    "debt_amount": Decimal("120.50"),
    "reference_numbers": ["AZ 1/2"],
    "iban": "DE00 1234",
}
CORRECTED: dict[str, Any] = {
    "client_name": "Erik Beispiel",
    "creditor_name": "Stadtwerke Anders GmbH",
    "debt_amount": Decimal("210.05"),
    "reference_numbers": ["AZ 2/1"],
    "iban": "DE00 4321",
}


def _confidence(rng: random.Random) -> float:
    if rng.random() < 0.35:
        return rng.choice(EDGE_CONFIDENCES)
    return round(rng.random(), rng.choice((2, 3, 6)))


def _write_reviewed_report(
    db: Session, rng: random.Random, intent: str, created: dt.datetime, email_id: int | None
) -> ProcessingReport:
    """One flagged report with random fields, claimed and decided with random verdicts."""
    names = [name for name in KEY_FIELDS if rng.random() > 0.2]
    if rng.random() < 0.3:
        names.append("iban")
    confidences = {name: _confidence(rng) for name in names}
    data: dict[str, Any] = {name: VALUES[name] for name in names}
    data["extraction_metadata"] = {
        name: {"confidence": confidences[name], "source": "email_body"} for name in names
    }
    report = make_report(
        db,
        email_id=email_id,
        extracted_data=data,
        agent_checkpoints=checkpoints(intent=intent),
        needs_review=True,
        review_reason="low overall confidence",
        created_at=created,
    )
    verdicts: dict[str, FieldVerdict] = {}
    for name in KEY_FIELDS:
        if name in confidences:
            roll = rng.random()
            if roll < confidences[name]:
                verdicts[name] = FieldVerdict("correct")
            elif roll < confidences[name] + (1 - confidences[name]) * 0.7:
                verdicts[name] = FieldVerdict("corrected", CORRECTED[name])
            else:
                verdicts[name] = FieldVerdict("absent")
        else:
            missed = rng.random() < 0.4
            verdicts[name] = (
                FieldVerdict("corrected", CORRECTED[name]) if missed else FieldVerdict("absent")
            )
    if "iban" in confidences:
        verdicts["iban"] = FieldVerdict(rng.choice(["correct", "absent"]))
    changed = any(
        v.verdict == "corrected" or (v.verdict == "absent" and name in confidences)
        for name, v in verdicts.items()
    )
    outcome = "rejected" if rng.random() < 0.1 else ("corrected" if changed else "approved")
    reviewer = rng.choice(["alice", "bob"])
    claim_report(db, report_id=report.id, reviewer=reviewer, now=created + dt.timedelta(minutes=5))
    decide_report(
        db,
        report_id=report.id,
        reviewer=reviewer,
        outcome=outcome,
        verdicts=verdicts,
        now=created + dt.timedelta(minutes=9),
    )
    return report


def _build(db: Session, seed: int, start: dt.datetime, count: int = 36) -> None:
    rng = random.Random(seed)
    intent = f"t{uuid.uuid4().hex[:16]}"
    reports = []
    for index in range(count):
        created = start + dt.timedelta(hours=index * 5, seconds=rng.randint(0, 3600))
        reports.append(_write_reviewed_report(db, rng, intent, created, None))
    # Some emails are re-processed later and reviewed again: each processing counts.
    for report in rng.sample(reports, 6):
        created = start + dt.timedelta(hours=count * 5 + rng.randint(1, 40))
        _write_reviewed_report(db, rng, intent, created, report.email_id)
    # Verdicts outside the window must not count.
    _write_reviewed_report(db, rng, intent, start - dt.timedelta(days=3), None)


def _raw(db: Session, start: dt.datetime | None, end: dt.datetime | None) -> pd.DataFrame:
    rows = db.execute(
        select(
            ReviewFieldVerdict.field_name,
            ReviewFieldVerdict.verdict,
            ReviewFieldVerdict.extracted_confidence,
            ReviewFieldVerdict.was_missing,
            ReviewDecision.report_created_at,
        ).join(ReviewDecision, ReviewDecision.id == ReviewFieldVerdict.decision_id)
    ).all()
    frame = pd.DataFrame(
        [tuple(row) for row in rows],
        columns=["field", "verdict", "confidence", "was_missing", "created"],
    )
    keep = [
        (start is None or created >= start) and (end is None or created < end)
        for created in frame["created"]
    ]
    return frame[keep].reset_index(drop=True)


def _top(frame: pd.DataFrame, limit: int) -> tuple[list[str], bool]:
    counts = frame.groupby("field").size().reset_index(name="n")
    counts = counts.sort_values(["n", "field"], ascending=[False, True])
    names = list(counts["field"])
    return names[:limit], len(names) > limit


def _expected_calibration(frame: pd.DataFrame, n_bins: int, max_fields: int) -> CalibrationReport:
    extracted = frame[~frame["was_missing"] & frame["confidence"].notna()].copy()
    edges = [k / n_bins for k in range(1, n_bins)]
    extracted["bin"] = np.searchsorted(edges, extracted["confidence"].to_numpy(), side="right")
    extracted["ok"] = extracted["verdict"] == "correct"

    def one(part: pd.DataFrame, name: str | None) -> FieldCalibration:
        total = len(part)
        bins = []
        ece = 0.0
        for index in range(n_bins):
            members = part[part["bin"] == index]
            n = len(members)
            mean = float(members["confidence"].mean()) if n else None
            accuracy = float(members["ok"].mean()) if n else None
            if n:
                ece += n / total * abs(accuracy - mean)  # type: ignore[operator]
            bins.append(
                CalibrationBin(
                    name, index, index / n_bins, (index + 1) / n_bins, n,
                    int(members["ok"].sum()), mean, accuracy,
                )
            )  # fmt: skip
        return FieldCalibration(
            field_name=name,
            n=total,
            correct=int(part["ok"].sum()),
            mean_confidence=float(part["confidence"].mean()) if total else None,
            accuracy=float(part["ok"].mean()) if total else None,
            ece=ece if total else None,
            bins=tuple(bins),
        )

    names, truncated = _top(extracted, max_fields)
    return CalibrationReport(
        n_bins=n_bins,
        overall=one(extracted, None),
        fields=tuple(one(extracted[extracted["field"] == name], name) for name in names),
        fields_truncated=truncated,
    )


def _expected_whatif(
    frame: pd.DataFrame, thresholds: tuple[float, ...], max_fields: int
) -> ReviewThresholdWhatIf:
    extracted = frame[~frame["was_missing"] & frame["confidence"].notna()]
    names, truncated = _top(extracted, max_fields)
    rows = []
    for name in [None, *names]:
        part = extracted if name is None else extracted[extracted["field"] == name]
        wrong = part["verdict"] != "correct"
        for t in thresholds:
            below = int((part["confidence"] < t).sum())
            passed = len(part) - below
            wrong_passed = int(((part["confidence"] >= t) & wrong).sum())
            rows.append(
                ThresholdOutcome(
                    field_name=name,
                    threshold=t,
                    n=len(part),
                    wrong=int(wrong.sum()),
                    sent_to_review=below,
                    review_share=below / len(part) if len(part) else None,
                    passed=passed,
                    wrong_passed=wrong_passed,
                    wrong_passed_share=wrong_passed / passed if passed else None,
                    wrong_escape_share=wrong_passed / wrong.sum() if wrong.sum() else None,
                )
            )
    return ReviewThresholdWhatIf(thresholds=thresholds, rows=tuple(rows), fields_truncated=truncated)


def _expected_missing(frame: pd.DataFrame, max_fields: int) -> MissingReport:
    missing = frame[frame["was_missing"]]
    names, truncated = _top(missing, max_fields)

    def one(part: pd.DataFrame, name: str | None) -> MissingOutcome:
        n = len(part)
        missed = int((part["verdict"] == "corrected").sum())
        absent = int((part["verdict"] == "absent").sum())
        return MissingOutcome(
            name, n, missed, absent, missed / n if n else None, absent / n if n else None
        )

    return MissingReport(
        overall=one(missing, None),
        fields=tuple(one(missing[missing["field"] == name], name) for name in names),
        fields_truncated=truncated,
    )


def _close(actual: Any, expected: Any, path: str = "") -> None:
    """Structural equality with floats compared to 1e-9 (SQL sums in another order)."""
    if hasattr(expected, "__dataclass_fields__"):
        assert type(actual) is type(expected), path
        for name in expected.__dataclass_fields__:
            _close(getattr(actual, name), getattr(expected, name), f"{path}.{name}")
    elif isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected), path
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _close(a, e, f"{path}[{index}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, float), path
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12), (path, actual, expected)
    else:
        assert actual == expected, (path, actual, expected)


START = dt.datetime(2025, 6, 2, tzinfo=dt.UTC)
END = START + dt.timedelta(days=30)


@pytest.mark.parametrize(
    ("seed", "n_bins", "thresholds", "max_fields"),
    [(3, 10, None, 50), (4, 7, (0.3, 0.5, 0.7, 1.0, 0.0), 2)],
)
@pytest.mark.parametrize("refreshed", [False, True], ids=["raw-days", "rollups"])
def test_quality_numbers_match_a_pandas_recomputation(
    db: Session,
    seed: int,
    n_bins: int,
    thresholds: tuple[float, ...] | None,
    max_fields: int,
    refreshed: bool,
) -> None:
    _build(db, seed, START)
    if refreshed:
        # Every day from the verdict rollup (bins and thresholds on the 0.01 grid) or,
        # for 7 bins, from the raw verdicts: both must give the same numbers.
        assert rollups.refresh_rollups(db)
        assert rollups.dirty_days(db) == [] and rollups.verify_rollups(db) == []
    frame = _raw(db, START, END)
    assert len(frame) > 100 and frame["was_missing"].any() and (~frame["was_missing"]).any()

    calibration = get_calibration(db, start=START, end=END, n_bins=n_bins, max_fields=max_fields)
    _close(calibration, _expected_calibration(frame, n_bins, max_fields))
    assert calibration.overall.n > 0 and 0 < calibration.overall.ece < 1  # type: ignore[operator]
    assert len(calibration.bin_rows()) == n_bins * (1 + len(calibration.fields))
    per_field_total = sum(f.n for f in calibration.fields)
    assert (
        pd.DataFrame(calibration.bin_rows())["n"].sum() == calibration.overall.n + per_field_total
    )
    assert (per_field_total < calibration.overall.n) == calibration.fields_truncated

    whatif = get_review_threshold_what_if(
        db, start=START, end=END, thresholds=thresholds, max_fields=max_fields
    )
    levels = DEFAULT_THRESHOLDS if thresholds is None else tuple(sorted(thresholds))
    _close(whatif, _expected_whatif(frame, levels, max_fields))

    missing = get_missing_outcomes(db, start=START, end=END, max_fields=max_fields)
    _close(missing, _expected_missing(frame, max_fields))
    assert missing.overall.missed > 0 and missing.overall.truly_absent > 0
    assert missing.rows()[0] == missing.overall

    # Without a window, the recomputation covers every verdict in the database.
    everything = _raw(db, None, None)
    _close(get_calibration(db, n_bins=n_bins), _expected_calibration(everything, n_bins, 50))


def test_field_filter_restricts_the_per_field_part(db: Session) -> None:
    _build(db, 5, START, count=20)
    frame = _raw(db, START, END)
    chosen = frame[frame["field"].isin(["debt_amount", "iban"])]
    report = get_calibration(db, start=START, end=END, fields=["iban", "debt_amount", "iban"])
    expected = _expected_calibration(frame, 10, 50)
    _close(report.overall, expected.overall)
    _close(report.fields, _expected_calibration(chosen, 10, 50).fields)
    whatif = get_review_threshold_what_if(db, start=START, end=END, fields=["debt_amount"])
    assert {row.field_name for row in whatif.rows} == {None, "debt_amount"}


def test_empty_window_gives_empty_but_complete_results(db: Session) -> None:
    start = dt.datetime(1999, 1, 1, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    calibration = get_calibration(db, start=start, end=end, n_bins=4)
    assert calibration == CalibrationReport(
        n_bins=4,
        overall=FieldCalibration(
            None,
            0,
            0,
            None,
            None,
            None,
            tuple(CalibrationBin(None, i, i / 4, (i + 1) / 4, 0, 0, None, None) for i in range(4)),
        ),
        fields=(),
        fields_truncated=False,
    )
    whatif = get_review_threshold_what_if(db, start=start, end=end, thresholds=[0.5])
    assert whatif == ReviewThresholdWhatIf(
        (0.5,), (ThresholdOutcome(None, 0.5, 0, 0, 0, None, 0, 0, None, None),), False
    )
    assert get_missing_outcomes(db, start=start, end=end) == MissingReport(
        MissingOutcome(None, 0, 0, 0, None, None), (), False
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda db: get_calibration(db, n_bins=1), "n_bins"),
        (lambda db: get_calibration(db, n_bins=51), "n_bins"),
        (lambda db: get_calibration(db, max_fields=0), "max_fields"),
        (lambda db: get_calibration(db, fields="debt_amount"), "fields"),
        (lambda db: get_calibration(db, fields=[]), "fields"),
        (lambda db: get_calibration(db, start=dt.datetime(2026, 1, 1)), "start"),
        (lambda db: get_calibration(db, start=END, end=START), "end"),
        (lambda db: get_review_threshold_what_if(db, thresholds=[1.5]), "thresholds"),
        (lambda db: get_review_threshold_what_if(db, thresholds=[float("nan")]), "thresholds"),
        (lambda db: get_review_threshold_what_if(db, thresholds=[]), "thresholds"),
        (lambda db: get_review_threshold_what_if(db, thresholds=[True]), "thresholds"),
        (lambda db: get_missing_outcomes(db, end=dt.datetime(2026, 1, 1)), "end"),
    ],
)
def test_bad_arguments_are_refused(db: Session, call: Any, field: str) -> None:
    with pytest.raises(ReportValidationError) as refused:
        call(db)
    assert refused.value.field == field


# --------------------------------------------------------------------------- demo history


def test_demo_verdicts_follow_the_confidence_except_for_the_overconfident_field() -> None:
    rng = random.Random(11)

    def share_correct(name: str, confidence: float) -> float:
        field = ReviewField(name, VALUES.get(name, "x"), confidence, "email_body", False, True)
        verdicts = [_verdict(field, rng).verdict for _ in range(6000)]
        return verdicts.count("correct") / len(verdicts)

    assert share_correct("client_name", 0.9) == pytest.approx(0.9, abs=0.02)
    assert share_correct("reference_numbers", 0.6) == pytest.approx(0.6, abs=0.02)
    assert share_correct("debt_amount", 0.9) == pytest.approx(0.7, abs=0.02)
    missing = ReviewField("debt_amount", None, None, None, True, True)
    kinds = {_verdict(missing, rng).verdict for _ in range(200)}
    assert kinds == {"corrected", "absent"}


def test_seeded_review_history_is_realistic_and_consistent(db: Session) -> None:
    now = dt.datetime(2026, 5, 20, 12, 0, tzinfo=dt.UTC)
    before = db.scalar(select(func.count()).select_from(ReviewDecision))
    emails = seed_demo(db, count=400, seed=9, days=30, now=now)
    written = seed_review_history(db, rng=random.Random(9), now=now)
    assert written == db.scalar(select(func.count()).select_from(ReviewDecision)) - before
    assert written > 30

    d, r = ReviewDecision, ProcessingReport
    rows = db.execute(
        select(d.id, d.reviewer, d.decided_at, d.report_created_at, r.created_at, r.extracted_fields,
               r.missing_fields, d.outcome)
        .join(r, r.id == d.report_id)
        .where(r.email_id.in_(emails))
    ).all()  # fmt: skip
    assert len(rows) == written
    assert {row.reviewer for row in rows} <= set(DEFAULT_REVIEWERS)
    assert len({row.reviewer for row in rows}) == len(DEFAULT_REVIEWERS)
    for row in rows:
        assert row.report_created_at == row.created_at < row.decided_at < now
    verdict_names = db.execute(
        select(ReviewFieldVerdict.decision_id, ReviewFieldVerdict.field_name).where(
            ReviewFieldVerdict.decision_id.in_([row.id for row in rows])
        )
    ).all()
    by_decision: dict[int, set[str]] = {}
    for decision_id, name in verdict_names:
        by_decision.setdefault(decision_id, set()).add(name)
    for row in rows:
        assert by_decision[row.id] == set(row.extracted_fields) | set(row.missing_fields or [])
    assert {row.outcome for row in rows} == {"approved", "corrected", "rejected"}
    # Some flagged reports stay open; nobody still holds a claim; each decision was audited.
    assert count_review_queue(db, now=now) > 0
    assert db.scalar(select(func.count()).select_from(ReviewClaim)) == 0
    audited = db.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action.in_(["review_claimed", "review_decided"]))
        .where(AuditEvent.actor.in_(DEFAULT_REVIEWERS))
    )
    assert audited == 2 * written

    # The overconfident field shows the largest calibration gap on the quality page.
    calibration = get_calibration(db)
    gaps = {
        f.field_name: f.mean_confidence - f.accuracy  # type: ignore[operator]
        for f in calibration.fields
        if f.field_name in {"client_name", "creditor_name", "debt_amount", "reference_numbers"}
    }
    assert max(gaps, key=lambda name: gaps[name]) == "debt_amount"
    assert gaps["debt_amount"] > 0.1
