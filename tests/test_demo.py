"""Demo data looks like a real extractor's output, and it is consistent with itself."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from reportlib.demo import generate_demo_emails

NOW = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)


def test_demo_distributions_are_realistic_and_consistent() -> None:
    emails = list(generate_demo_emails(count=4000, seed=3, now=NOW))
    reports = [e.report for e in emails]

    for report in reports:
        expected = (
            "high"
            if report.overall_confidence >= 0.85
            else "medium"
            if report.overall_confidence >= 0.6
            else "low"
        )
        assert report.confidence_route == expected
        assert report.needs_review == (report.review_reason is not None)
        if report.confidence_route == "low":
            assert report.needs_review

    routes = Counter(r.confidence_route for r in reports)
    assert routes["high"] > routes["medium"] > routes["low"] > 0
    review_rate = sum(r.needs_review for r in reports) / len(reports)
    assert 0.1 < review_rate < 0.4

    def missing(report: object, name: str) -> bool:
        return report.extracted_data[name] is None  # type: ignore[attr-defined]

    no_ref = [r for r in reports if missing(r, "reference_numbers")]
    with_ref = [r for r in reports if not missing(r, "reference_numbers")]
    share = lambda group: sum(missing(r, "debt_amount") for r in group) / len(group)  # noqa: E731
    assert share(no_ref) > 3 * share(with_ref)

    def mean_confidence(name: str) -> float:
        values = [
            r.agent_checkpoints["agent_2_extraction"]["field_confidence"][name]  # type: ignore[index]
            for r in reports
            if not missing(r, name)
        ]
        return sum(values) / len(values)

    assert mean_confidence("creditor_name") > mean_confidence("reference_numbers")
    assert mean_confidence("client_name") > mean_confidence("debt_amount")

    creditors = Counter(r.extracted_data["creditor_name"] for r in reports)
    assert len(creditors) > 25
    assert creditors.most_common(1)[0][1] > 5 * creditors.most_common()[-1][1]

    for email in emails:
        assert NOW - dt.timedelta(days=90) <= email.created_at <= NOW
        assert email.received_at <= email.created_at


def test_demo_is_deterministic_for_a_seed() -> None:
    first = [e.report for e in generate_demo_emails(count=50, seed=9, now=NOW)]
    second = [e.report for e in generate_demo_emails(count=50, seed=9, now=NOW)]
    other = [e.report for e in generate_demo_emails(count=50, seed=10, now=NOW)]
    assert first == second
    assert first != other
