"""Every dashboard number equals a straightforward pandas recomputation from the raw rows.

Reports are written through the public service, then the raw ``processing_reports`` and
``review_decisions`` rows are read back and each figure is recomputed in pandas from the
JSON columns, in Python rather than with the rollups' SQL. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, event, select, text, update
from sqlalchemy.orm import Session

from reportlib import migrate, queries, rollups
from reportlib.db import make_engine
from reportlib.errors import ReportValidationError
from reportlib.models import ProcessingReport, ReviewDecision
from reportlib.queries import NONE_LABEL, ReportFilter
from tests.factories import checkpoints, make_report, next_email_id

KEY_FIELDS = ("client_name", "creditor_name", "debt_amount", "reference_numbers")
ROUTES = ("high", "medium", "low")
INTENTS = ("debt_claim", "payment_plan", "dispute", None)
TODAY = dt.date(2026, 6, 30)
NOW = dt.datetime(2026, 6, 30, 15, 30, tzinfo=dt.UTC)
UTC = dt.UTC


# ---------------------------------------------------------------------------------------
# Seeding
# ---------------------------------------------------------------------------------------


def _confidence(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.25:  # exact bin edges and the ends of the range
        return rng.choice([0.0, 0.05, 0.15, 0.35, 0.5, 0.55, 0.8, 0.95, 1.0])
    if kind < 0.6:
        return round(rng.random(), 2)
    return rng.random()


def _extracted(rng: random.Random, *, all_missing: bool = False) -> dict[str, Any]:
    if all_missing:
        return {}
    values: dict[str, Any] = {
        "client_name": "Erika Mustermann",
        "creditor_name": "Stadtwerke Beispiel GmbH",
        "debt_amount": Decimal("1234.56"),
        "reference_numbers": ["AZ-1", "AZ-2"],
    }
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for name, value in values.items():
        if rng.random() < 0.3:
            data[name] = rng.choice([None, ""]) if rng.random() < 0.5 else None
            continue
        data[name] = value
        metadata[name] = {"confidence": _confidence(rng), "source": "email_body"}
    if rng.random() < 0.3:
        data["contract_number"] = "V-99"
        metadata["contract_number"] = {"confidence": _confidence(rng), "source": "attachment"}
    data["extraction_metadata"] = metadata
    return data


def _at(day: dt.date, seconds: float) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=UTC) + dt.timedelta(seconds=seconds)


def seed(db: Session, *, n: int = 90, seed_value: int = 20261129, days: int = 70) -> None:
    """``n`` random reports over the ``days`` before TODAY, plus UTC-boundary cases and
    review decisions before and after each report's processing."""
    rng = random.Random(seed_value)
    for index in range(n):
        day = TODAY - dt.timedelta(days=rng.randrange(days))
        if index % 10 == 0:
            created = _at(day, 0)  # exactly midnight UTC
        elif index % 10 == 1:
            created = _at(day, 86_400 - 1e-6)  # the last microsecond of the day
        else:
            created = _at(day, rng.uniform(0, 86_399))
        if created > NOW:
            created = NOW - dt.timedelta(minutes=rng.randrange(1, 600))
        flagged = rng.random() < 0.35
        report = make_report(
            db,
            extracted_data=_extracted(rng, all_missing=index % 17 == 0),
            agent_checkpoints=checkpoints(
                intent=rng.choice(INTENTS),
                sources_processed=rng.randrange(0, 4),
                total_tokens_used=rng.randrange(0, 5000),
            ),
            overall_confidence=_confidence(rng),
            confidence_route=rng.choice(ROUTES),
            needs_review=flagged,
            review_reason=rng.choice(["low_confidence", "missing_fields", None])
            if flagged
            else None,
            processing_time_ms=None if rng.random() < 0.15 else rng.randrange(0, 9000),
            created_at=created,
        )
        if flagged and rng.random() < 0.5:
            # Some decisions reviewed an earlier processing (before created_at): those
            # reports stay open. Others were decided after it, some of them after NOW's
            # period boundaries, which matters for the queue snapshots.
            offset = dt.timedelta(hours=rng.uniform(-72, 24 * 20))
            decided = created + offset
            db.add(
                ReviewDecision(
                    report_id=report.id,
                    email_id=report.email_id,
                    reviewer="reviewer-a",
                    decided_at=decided,
                    # A decision before this processing reviewed an earlier one.
                    report_created_at=created
                    if decided >= created
                    else decided - dt.timedelta(hours=1),
                    outcome="approved",
                )
            )
    db.flush()


# ---------------------------------------------------------------------------------------
# Independent recomputation from raw rows
# ---------------------------------------------------------------------------------------


@dataclass
class Raw:
    reports: pd.DataFrame
    decisions: pd.DataFrame


def load_raw(db: Session) -> Raw:
    rows = db.execute(select(ProcessingReport.__table__)).mappings().all()
    reports = pd.DataFrame([dict(row) for row in rows])
    reports["created_at"] = [
        value if value.tzinfo else value.replace(tzinfo=UTC) for value in reports["created_at"]
    ]
    reports["day"] = [value.astimezone(UTC).date() for value in reports["created_at"]]
    decision_rows = db.execute(
        select(
            ReviewDecision.report_id, ReviewDecision.decided_at, ReviewDecision.report_created_at
        )
    ).all()
    decisions = pd.DataFrame(
        decision_rows, columns=["report_id", "decided_at", "report_created_at"]
    )
    return Raw(reports, decisions)


def window(raw: Raw, flt: ReportFilter) -> pd.DataFrame:
    start, end = flt.bounds()
    frame = raw.reports
    keep = (frame["created_at"] >= start) & (frame["created_at"] < end)
    if flt.intents:
        named = [i for i in flt.intents if i != NONE_LABEL]
        ok = frame["intent"].isin(named)
        if NONE_LABEL in flt.intents:
            ok |= frame["intent"].isna()
        keep &= ok
    if flt.routes:
        keep &= frame["confidence_route"].isin(flt.routes)
    return frame[keep]


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks, written out."""
    if not values:
        return None
    ordered = sorted(values)
    h = (len(ordered) - 1) * p
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def expected_queue(raw: Raw, as_of: dt.datetime, flt: ReportFilter) -> tuple[int, Any]:
    frame = raw.reports
    open_ids = []
    for row in frame.itertuples():
        if not row.needs_review or row.created_at >= as_of:
            continue
        if flt.intents and label(row.intent) not in flt.intents:
            continue
        if flt.routes and row.confidence_route not in flt.routes:
            continue
        mine = raw.decisions[raw.decisions["report_id"] == row.id]
        decided = [
            d
            for d, reviewed in zip(mine["decided_at"], mine["report_created_at"], strict=True)
            if reviewed >= row.created_at and d < as_of
        ]
        if not decided:
            open_ids.append(row.id)
    oldest = frame[frame["id"].isin(open_ids)]["created_at"].min() if open_ids else None
    return len(open_ids), oldest


def expected_period(raw: Raw, flt: ReportFilter) -> dict[str, Any]:
    part = window(raw, flt)
    times = [float(v) for v in part["processing_time_ms"].dropna()]
    _, end = flt.bounds()
    size, oldest = expected_queue(raw, min(end, NOW), flt)
    return {
        "reports": len(part),
        "avg_confidence": float(part["overall_confidence"].mean()) if len(part) else None,
        "flagged": int(part["needs_review"].sum()),
        "tokens": int(part["total_tokens_used"].sum()),
        "timed_reports": len(times),
        "p50": percentile(times, 0.5),
        "p95": percentile(times, 0.95),
        "queue_size": size,
        "oldest": oldest,
    }


def actual_period(kpis: queries.PeriodKpis) -> dict[str, Any]:
    return {
        "reports": kpis.reports,
        "avg_confidence": kpis.avg_confidence,
        "flagged": kpis.flagged,
        "tokens": kpis.tokens,
        "timed_reports": kpis.timed_reports,
        "p50": kpis.p50_processing_ms,
        "p95": kpis.p95_processing_ms,
        "queue_size": kpis.queue.size,
        "oldest": kpis.queue.oldest_created_at,
    }


def approx_dict(expected: dict[str, Any]) -> dict[str, Any]:
    return {
        key: pytest.approx(value, rel=1e-9, abs=1e-9) if isinstance(value, float) else value
        for key, value in expected.items()
    }


def bin_of(value: float) -> int:
    return min(math.floor(value * 20), 19)


def field_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (report, field) facts recomputed from the JSON columns."""
    records = []
    for row in frame.itertuples():
        for name, item in (row.extracted_fields or {}).items():
            if isinstance(item, dict):
                records.append(
                    (row.id, row.day, row.intent, name, float(item["confidence"]), False)
                )
        for name in row.missing_fields or []:
            records.append((row.id, row.day, row.intent, name, None, True))
    return pd.DataFrame(
        records, columns=["report_id", "day", "intent", "field", "confidence", "missing"]
    )


def ordered_fields(names: set[str]) -> list[str]:
    return [f for f in KEY_FIELDS if f in names] + sorted(names - set(KEY_FIELDS))


def label(value: Any) -> str:
    """The dashboard's name for an intent or reason; pandas may hold NULL as None or NaN."""
    return NONE_LABEL if value is None or pd.isna(value) else str(value)


def share(part: float, whole: float) -> float:
    return part / whole if whole else float("nan")


def assert_frames(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        actual.reset_index(drop=True),
        expected.reset_index(drop=True),
        check_dtype=False,
        rtol=1e-9,
        atol=1e-12,
    )


# ---------------------------------------------------------------------------------------
# Filters used by the tests
# ---------------------------------------------------------------------------------------

FILTERS = [
    ReportFilter.last_days(30, today=TODAY),
    ReportFilter.last_days(70, today=TODAY),
    ReportFilter(TODAY - dt.timedelta(days=45), TODAY - dt.timedelta(days=10), ("debt_claim",)),
    ReportFilter(TODAY - dt.timedelta(days=60), TODAY, (NONE_LABEL, "dispute"), ("low", "high")),
    ReportFilter(TODAY - dt.timedelta(days=20), TODAY - dt.timedelta(days=20)),
]


def disturb(db: Session, *, seed_value: int = 7) -> None:
    """Writes after a rollup refresh: reports moved to other days, intents, routes and
    missing sets, and new review decisions, so some days are dirty and others are not."""
    rng = random.Random(seed_value)
    reports = db.scalars(select(ProcessingReport).order_by(ProcessingReport.id)).all()
    for report in rng.sample(list(reports), 12):
        # A field is either extracted or missing, as the service writes it.
        absent = [name for name in KEY_FIELDS if name not in report.extracted_fields]
        moved = report.created_at - dt.timedelta(days=rng.randrange(-5, 30), hours=rng.random())
        db.execute(
            update(ProcessingReport)
            .where(ProcessingReport.id == report.id)
            .values(
                created_at=min(moved, NOW - dt.timedelta(minutes=5)),
                intent=rng.choice(INTENTS),
                confidence_route=rng.choice(ROUTES),
                missing_fields=rng.sample(absent, rng.randrange(len(absent) + 1)),
                processing_time_ms=rng.choice([None, rng.randrange(0, 9000)]),
            )
        )
    flagged = [r for r in reports if r.needs_review]
    for report in rng.sample(flagged, 4):
        db.refresh(report)
        db.add(
            ReviewDecision(
                report_id=report.id,
                email_id=report.email_id,
                reviewer="reviewer-b",
                decided_at=report.created_at + dt.timedelta(hours=rng.uniform(1, 200)),
                report_created_at=report.created_at,
                outcome="corrected",
            )
        )
    db.flush()


#: How the rollups stand when the numbers are read: never refreshed (every day is read
#: from the raw rows), refreshed (every day from the rollups), or refreshed and then
#: written to again (some days each way).
ROLLUP_STATES = ("raw", "rollups", "mixed")


@pytest.fixture(
    scope="module",
    params=[(backend, state) for backend in ("sqlite", "postgresql") for state in ROLLUP_STATES],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def seeded_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A database of its own per backend and rollup state, seeded once and committed;
    tests only read."""
    backend, state = request.param
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('queries') / 'seeded.db'}"
    else:
        url = request.getfixturevalue("pg_databases").create("reportlib_queries")
    engine = make_engine(url)
    migrate.upgrade(engine)
    with Session(engine) as session:
        seed(session)
        session.commit()
        if state != "raw":
            assert rollups.refresh_rollups(session)
            session.commit()
            assert rollups.dirty_days(session) == []
        if state == "mixed":
            disturb(session)
            session.commit()
            assert rollups.dirty_days(session)
        assert rollups.verify_rollups(session) == []
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def seeded(seeded_engine: Engine) -> Raw:
    with Session(seeded_engine) as session:
        raw = load_raw(session)
    assert len(raw.reports) == 90 and raw.decisions.shape[0] > 5
    return raw


@pytest.fixture
def sdb(seeded_engine: Engine) -> Iterator[Session]:
    with Session(seeded_engine) as session:
        yield session
        session.rollback()


# ---------------------------------------------------------------------------------------
# Randomised data: every function against pandas
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f"{f.start}..{f.end}{f.intents}{f.routes}")
def test_overview_kpis_match_pandas(sdb: Session, seeded: Raw, flt: ReportFilter) -> None:
    kpis = queries.overview_kpis(sdb, flt=flt, now=NOW)
    assert actual_period(kpis.current) == approx_dict(expected_period(seeded, flt))
    assert actual_period(kpis.previous) == approx_dict(expected_period(seeded, flt.previous()))
    assert (kpis.previous.start, kpis.previous.end) == (
        flt.start - dt.timedelta(days=flt.days),
        flt.start - dt.timedelta(days=1),
    )


def test_percentiles_agree_with_pandas_quantile(sdb: Session, seeded: Raw) -> None:
    flt = ReportFilter.last_days(70, today=TODAY)
    times = window(seeded, flt)["processing_time_ms"].dropna().astype(float)
    assert len(times) > 20
    kpis = queries.overview_kpis(sdb, flt=flt, now=NOW).current
    assert kpis.p50_processing_ms == pytest.approx(times.quantile(0.5, interpolation="linear"))
    assert kpis.p95_processing_ms == pytest.approx(times.quantile(0.95, interpolation="linear"))


@pytest.mark.parametrize(
    "flt", FILTERS[:4], ids=lambda f: f"{f.start}..{f.end}{f.intents}{f.routes}"
)
def test_daily_trends_match_pandas(sdb: Session, seeded: Raw, flt: ReportFilter) -> None:
    part = window(seeded, flt)
    records = []
    for day in flt.dates():
        rows = part[part["day"] == day]
        n = len(rows)
        counts = rows["confidence_route"].value_counts()
        records.append(
            (
                day,
                n,
                int(counts.get("high", 0)),
                int(counts.get("medium", 0)),
                int(counts.get("low", 0)),
                int(rows["needs_review"].sum()),
                share(int(rows["needs_review"].sum()), n),
                share(float(rows["overall_confidence"].sum()), n),
            )
        )
    expected = pd.DataFrame(records, columns=list(queries.DAILY_COLUMNS))
    actual = queries.daily_trends(sdb, flt=flt)
    assert_frames(actual, expected)
    assert actual["reports"].sum() == len(part) > 0


@pytest.mark.parametrize(
    "flt", FILTERS[:4], ids=lambda f: f"{f.start}..{f.end}{f.intents}{f.routes}"
)
def test_confidence_histogram_matches_pandas(sdb: Session, seeded: Raw, flt: ReportFilter) -> None:
    part = window(seeded, flt)
    bins = part["overall_confidence"].map(bin_of)
    records = []
    for i in range(20):
        for route in flt.routes or ROUTES:
            n = int(((bins == i) & (part["confidence_route"] == route)).sum())
            records.append((i, i / 20, (i + 1) / 20, queries.bin_label(i), route, n))
    expected = pd.DataFrame(records, columns=["bin", "lower", "upper", "label", "route", "reports"])
    actual = queries.confidence_histogram(sdb, flt=flt)
    assert_frames(actual, expected)
    assert actual["reports"].sum() == len(part) > 0


@pytest.mark.parametrize(
    "flt", FILTERS[:4], ids=lambda f: f"{f.start}..{f.end}{f.intents}{f.routes}"
)
def test_field_confidence_matches_pandas(sdb: Session, seeded: Raw, flt: ReportFilter) -> None:
    fields = field_rows(window(seeded, flt))
    names = ordered_fields(set(fields["field"]) | set(KEY_FIELDS))
    summary = []
    for name in names:
        rows = fields[fields["field"] == name]
        present = rows[~rows["missing"]]["confidence"].astype(float)
        summary.append(
            (
                name,
                len(present),
                int(rows["missing"].sum()),
                float(present.mean()) if len(present) else float("nan"),
                float(present.min()) if len(present) else float("nan"),
                float(present.max()) if len(present) else float("nan"),
            )
        )
    expected_summary = pd.DataFrame(
        summary,
        columns=[
            "field",
            "extracted",
            "missing",
            "avg_confidence",
            "min_confidence",
            "max_confidence",
        ],
    )
    actual_summary = queries.field_confidence_summary(sdb, flt=flt)
    assert_frames(actual_summary, expected_summary)

    histogram = []
    for name in names:
        present = fields[(fields["field"] == name) & ~fields["missing"]]["confidence"].astype(float)
        bins = present.map(bin_of)
        for i in range(20):
            n = int((bins == i).sum())
            histogram.append(
                (name, i, i / 20, (i + 1) / 20, queries.bin_label(i), n, share(n, len(present)))
            )
    expected_histogram = pd.DataFrame(
        histogram, columns=["field", "bin", "lower", "upper", "label", "values", "share"]
    )
    actual_histogram = queries.field_confidence_histogram(sdb, flt=flt, fields=names)
    assert_frames(actual_histogram, expected_histogram)
    assert actual_histogram["values"].sum() == int((~fields["missing"]).sum()) > 0


@pytest.mark.parametrize(
    "flt", FILTERS[:4], ids=lambda f: f"{f.start}..{f.end}{f.intents}{f.routes}"
)
def test_confidence_by_intent_matches_pandas(sdb: Session, seeded: Raw, flt: ReportFilter) -> None:
    part = window(seeded, flt).assign(intent_label=lambda f: f["intent"].map(label))
    records = []
    for name, rows in part.groupby("intent_label"):
        routes = rows["confidence_route"].value_counts()
        flagged = int(rows["needs_review"].sum())
        records.append(
            (
                name,
                len(rows),
                float(rows["overall_confidence"].mean()),
                int(routes.get("high", 0)),
                int(routes.get("medium", 0)),
                int(routes.get("low", 0)),
                flagged,
                flagged / len(rows),
            )
        )
    records.sort(key=lambda r: (-r[1], r[0] == NONE_LABEL, r[0]))
    expected = pd.DataFrame(
        records,
        columns=[
            "intent",
            "reports",
            "avg_confidence",
            "high",
            "medium",
            "low",
            "flagged",
            "needs_review_rate",
        ],
    )
    assert_frames(queries.confidence_by_intent(sdb, flt=flt), expected)
    assert queries.list_intents(sdb, flt=ReportFilter(flt.start, flt.end)) == [
        r[0]
        for r in sorted(
            (
                (label(k), n)
                for k, n in window(seeded, ReportFilter(flt.start, flt.end))["intent"]
                .value_counts(dropna=False)
                .items()
            ),
            key=lambda r: (-r[1], r[0] == NONE_LABEL, r[0]),
        )
    ]


@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.55, 0.8, 1.0])
def test_threshold_what_if_matches_pandas(sdb: Session, seeded: Raw, threshold: float) -> None:
    flt = ReportFilter.last_days(70, today=TODAY)
    part = window(seeded, flt)
    below = part["overall_confidence"] < threshold
    expected = queries.RouteThresholdWhatIf(
        threshold=threshold,
        reports=len(part),
        below=int(below.sum()),
        below_not_flagged=int((below & ~part["needs_review"]).sum()),
        flagged_at_or_above=int((~below & part["needs_review"]).sum()),
    )
    assert queries.route_threshold_what_if(sdb, flt=flt, threshold=threshold) == expected


@pytest.mark.parametrize(
    "flt", FILTERS[:4], ids=lambda f: f"{f.start}..{f.end}{f.intents}{f.routes}"
)
def test_missing_fields_match_pandas(sdb: Session, seeded: Raw, flt: ReportFilter) -> None:
    part = window(seeded, flt)
    fields = field_rows(part)
    missing = fields[fields["missing"]]
    names = ordered_fields(set(missing["field"]) | set(KEY_FIELDS))
    total = len(part)

    counts = {name: int((missing["field"] == name).sum()) for name in names}
    frequency = sorted(names, key=lambda name: -counts[name])
    expected = pd.DataFrame(
        [(name, counts[name], total, share(counts[name], total)) for name in frequency],
        columns=["field", "missing", "reports", "share"],
    )
    assert_frames(queries.missing_field_frequency(sdb, flt=flt), expected)
    assert sum(counts.values()) > 0

    per_day = part.groupby("day").size()
    daily = []
    for day in flt.dates():
        for name in names:
            n = int(((missing["day"] == day) & (missing["field"] == name)).sum())
            day_total = int(per_day.get(day, 0))
            daily.append((day, name, n, day_total, share(n, day_total)))
    assert_frames(
        queries.missing_fields_daily(sdb, flt=flt),
        pd.DataFrame(daily, columns=["day", "field", "missing", "reports", "share"]),
    )

    intents = part["intent"].map(label)
    intent_totals = sorted(
        intents.value_counts().items(), key=lambda r: (-r[1], r[0] == NONE_LABEL, r[0])
    )
    missing_labels = missing["intent"].map(label)
    by_intent = [
        (
            label,
            name,
            int(((missing_labels == label) & (missing["field"] == name)).sum()),
            int(n),
            int(((missing_labels == label) & (missing["field"] == name)).sum()) / n,
        )
        for label, n in intent_totals
        for name in names
    ]
    assert_frames(
        queries.missing_fields_by_intent(sdb, flt=flt),
        pd.DataFrame(by_intent, columns=["intent", "field", "missing", "reports", "share"]),
    )

    per_report = missing.groupby("report_id")["field"].apply(set)
    together = []
    for a in names:
        n_a = sum(1 for s in per_report if a in s)
        for b in names:
            n_ab = sum(1 for s in per_report if a in s and b in s)
            together.append((a, b, n_ab, share(n_ab, n_a)))
    assert_frames(
        queries.missing_field_cooccurrence(sdb, flt=flt),
        pd.DataFrame(together, columns=["field", "other", "reports", "share"]),
    )

    sizes = per_report.map(len).value_counts()
    top = max([len(KEY_FIELDS), *sizes.index])
    distribution = [
        (k, int(total - len(per_report)) if k == 0 else int(sizes.get(k, 0)))
        for k in range(top + 1)
    ]
    assert_frames(
        queries.missing_count_distribution(sdb, flt=flt),
        pd.DataFrame(
            [(k, n, share(n, total)) for k, n in distribution],
            columns=["missing_fields", "reports", "share"],
        ),
    )


def _expected_open(raw: Raw, flt: ReportFilter) -> pd.DataFrame:
    part = window(raw, flt)
    rows = []
    for row in part.itertuples():
        if not row.needs_review:
            continue
        mine = raw.decisions[raw.decisions["report_id"] == row.id]
        if any(reviewed >= row.created_at for reviewed in mine["report_created_at"]):
            continue
        rows.append(
            (
                row.email_id,
                row.created_at,
                row.review_reason,
                row.intent,
                row.confidence_route,
                row.overall_confidence,
                len(row.missing_fields or []),
                row.id,
            )
        )
    return pd.DataFrame(rows, columns=[*queries.QUEUE_COLUMNS, "id"])


@pytest.mark.parametrize("sort", ["oldest", "lowest_confidence"])
def test_review_queue_pages_match_pandas(sdb: Session, seeded: Raw, sort: str) -> None:
    flt = ReportFilter.last_days(70, today=TODAY)
    expected = _expected_open(seeded, flt)
    keys = ["overall_confidence", "created_at", "id"] if sort != "oldest" else ["created_at", "id"]
    expected = expected.sort_values(keys).drop(columns="id")
    assert len(expected) > 5
    assert queries.count_review_queue_in_window(sdb, flt=flt) == len(expected)
    pages = [
        queries.review_queue_page(sdb, flt=flt, sort=sort, limit=4, offset=offset)
        for offset in range(0, len(expected) + 4, 4)
    ]
    combined = pd.concat(pages, ignore_index=True)
    combined["created_at"] = list(combined["created_at"].dt.to_pydatetime())
    assert_frames(combined, expected)


def test_review_queue_reasons_filter(sdb: Session, seeded: Raw) -> None:
    flt = ReportFilter.last_days(70, today=TODAY)
    expected = _expected_open(seeded, flt)
    labels = expected["review_reason"].map(label)
    counts = sorted(labels.value_counts().items(), key=lambda r: (-r[1], r[0] == NONE_LABEL, r[0]))
    assert_frames(
        queries.review_queue_reasons(sdb, flt=flt),
        pd.DataFrame(counts, columns=["review_reason", "items"]),
    )
    for reason, n in counts:
        page = queries.review_queue_page(sdb, flt=flt, reasons=[reason], limit=500)
        assert queries.count_review_queue_in_window(sdb, flt=flt, reasons=[reason]) == n == len(page)
        assert sorted(page["email_id"]) == sorted(expected[labels == reason]["email_id"])


@pytest.mark.parametrize("days_back", [0, 10, 40])
def test_queue_snapshot_matches_pandas(sdb: Session, seeded: Raw, days_back: int) -> None:
    as_of = NOW - dt.timedelta(days=days_back)
    flt = ReportFilter(TODAY, TODAY)
    size, oldest = expected_queue(seeded, as_of, flt)
    assert queries.queue_snapshot(sdb, as_of=as_of) == queries.QueueSnapshot(
        as_of=as_of, size=size, oldest_created_at=oldest
    )


# ---------------------------------------------------------------------------------------
# Edge cases
# ---------------------------------------------------------------------------------------


def test_reports_at_utc_day_boundaries(db: Session) -> None:
    if db.get_bind().dialect.name == "postgresql":
        # A far-from-UTC session time zone must not move the buckets.
        db.execute(text("SET LOCAL TIME ZONE 'Pacific/Kiritimati'"))
    day = dt.date(2026, 6, 10)
    midnight = _at(day, 0)
    last = midnight - dt.timedelta(microseconds=1)
    make_report(db, created_at=last, confidence_route="low", overall_confidence=0.2)
    make_report(db, created_at=midnight, confidence_route="high", overall_confidence=0.9)
    make_report(db, created_at=_at(day, 86_400), confidence_route="medium", overall_confidence=0.5)

    before = ReportFilter(day - dt.timedelta(days=1), day - dt.timedelta(days=1))
    on = ReportFilter(day, day)
    after = ReportFilter(day + dt.timedelta(days=1), day + dt.timedelta(days=1))
    assert [queries.count_reports(db, flt=f) for f in (before, on, after)] == [1, 1, 1]

    trends = queries.daily_trends(
        db, flt=ReportFilter(day - dt.timedelta(days=1), day + dt.timedelta(days=1))
    )
    assert trends[["day", "reports", "high", "medium", "low"]].values.tolist() == [
        [day - dt.timedelta(days=1), 1, 0, 0, 1],
        [day, 1, 1, 0, 0],
        [day + dt.timedelta(days=1), 1, 0, 1, 0],
    ]
    daily_missing = queries.missing_fields_daily(db, flt=on)
    assert daily_missing["reports"].tolist() == [1, 1, 1, 1]
    assert queries.overview_kpis(db, flt=on, now=NOW).current.avg_confidence == pytest.approx(0.9)


def test_report_with_every_field_missing(db: Session) -> None:
    day = dt.date(2026, 6, 1)
    report = make_report(db, extracted_data={}, created_at=_at(day, 3600))
    flt = ReportFilter(day, day)
    assert report.missing_fields == list(KEY_FIELDS) and report.extracted_fields == {}

    frequency = queries.missing_field_frequency(db, flt=flt)
    assert frequency.values.tolist() == [[name, 1, 1, 1.0] for name in KEY_FIELDS]
    summary = queries.field_confidence_summary(db, flt=flt)
    assert summary[["field", "extracted", "missing"]].values.tolist() == [
        [name, 0, 1] for name in KEY_FIELDS
    ]
    assert summary["avg_confidence"].isna().all()
    histogram = queries.field_confidence_histogram(db, flt=flt, fields=KEY_FIELDS)
    assert histogram["values"].sum() == 0 and histogram["share"].isna().all()
    together = queries.missing_field_cooccurrence(db, flt=flt)
    assert together["reports"].tolist() == [1] * 16 and together["share"].tolist() == [1.0] * 16
    distribution = queries.missing_count_distribution(db, flt=flt)
    assert distribution.values.tolist() == [
        [0, 0, 0.0],
        [1, 0, 0.0],
        [2, 0, 0.0],
        [3, 0, 0.0],
        [4, 1, 1.0],
    ]
    detail = queries.get_report_detail(db, email_id=report.email_id)
    assert detail is not None and detail.fields == () and detail.missing_fields == KEY_FIELDS


def test_empty_window(db: Session) -> None:
    make_report(db, created_at=_at(dt.date(2026, 1, 15), 60), needs_review=True)
    flt = ReportFilter(dt.date(2026, 3, 1), dt.date(2026, 3, 3))
    as_of = _at(dt.date(2026, 3, 4), 0)
    kpis = queries.overview_kpis(db, flt=flt, now=NOW)
    assert kpis.current == queries.PeriodKpis(
        start=flt.start,
        end=flt.end,
        reports=0,
        avg_confidence=None,
        flagged=0,
        tokens=0,
        timed_reports=0,
        p50_processing_ms=None,
        p95_processing_ms=None,
        # The January report is still open at the end of the window.
        queue=queries.QueueSnapshot(
            as_of=as_of, size=1, oldest_created_at=_at(dt.date(2026, 1, 15), 60)
        ),
    )
    assert kpis.current.needs_review_share is None
    trends = queries.daily_trends(db, flt=flt)
    assert trends["reports"].tolist() == [0, 0, 0] and trends["avg_confidence"].isna().all()
    assert queries.confidence_histogram(db, flt=flt)["reports"].sum() == 0
    assert len(queries.confidence_histogram(db, flt=flt)) == 60
    assert queries.confidence_by_intent(db, flt=flt).empty
    assert queries.route_threshold_what_if(db, flt=flt, threshold=0.5).below_share is None
    frequency = queries.missing_field_frequency(db, flt=flt)
    assert frequency["missing"].tolist() == [0, 0, 0, 0] and frequency["share"].isna().all()
    assert queries.missing_fields_by_intent(db, flt=flt).empty
    assert queries.missing_field_cooccurrence(db, flt=flt)["reports"].sum() == 0
    assert queries.missing_count_distribution(db, flt=flt)["reports"].tolist() == [0] * 5
    assert queries.review_queue_page(db, flt=flt).empty
    assert queries.count_review_queue_in_window(db, flt=flt) == 0
    assert queries.list_intents(db, flt=flt) == []


def test_single_report(db: Session) -> None:
    day = dt.date(2026, 5, 5)
    created = _at(day, 7200)
    make_report(
        db,
        created_at=created,
        overall_confidence=0.42,
        confidence_route="low",
        needs_review=True,
        review_reason="low_confidence",
        processing_time_ms=1234,
    )
    flt = ReportFilter(day, day)
    now = _at(day, 86_400 + 3600)
    current = queries.overview_kpis(db, flt=flt, now=now).current
    assert current == queries.PeriodKpis(
        start=day,
        end=day,
        reports=1,
        avg_confidence=0.42,
        flagged=1,
        tokens=1800,
        timed_reports=1,
        p50_processing_ms=1234.0,
        p95_processing_ms=1234.0,
        queue=queries.QueueSnapshot(as_of=_at(day, 86_400), size=1, oldest_created_at=created),
    )
    assert current.queue.oldest_age_s == 86_400 - 7200
    histogram = queries.confidence_histogram(db, flt=flt)
    assert histogram[histogram["reports"] > 0][["bin", "route", "reports"]].values.tolist() == [
        [8, "low", 1]
    ]


@pytest.mark.parametrize("routes", [(), ("low",)], ids=["unfiltered", "by route"])
def test_percentiles_in_the_open_ended_last_bucket(db: Session, routes: tuple[str, ...]) -> None:
    """Times past the last bucket's start (16,128 ms) share one open-ended bucket; with a
    route filter they are read from the raw reports by bucket, which must include every
    bucket from the last one on, and leave out reports of other routes."""
    day = dt.date(2026, 5, 6)
    times = [300, 16_128, 16_500, 40_000, 2_000_000]
    for index, ms in enumerate(times):
        make_report(
            db, created_at=_at(day, 60 * index), confidence_route="low", processing_time_ms=ms
        )
    make_report(db, created_at=_at(day, 3600), confidence_route="high", processing_time_ms=90_000)
    kpis = queries.overview_kpis(
        db, flt=ReportFilter(day, day, routes=routes), now=_at(day, 86_400)
    ).current
    expected = pd.Series(times + ([] if routes else [90_000]), dtype=float)
    assert kpis.p50_processing_ms == pytest.approx(expected.quantile(0.5))
    assert kpis.p95_processing_ms == pytest.approx(expected.quantile(0.95))


def test_filtered_percentiles_read_the_bucket_index(db: Session) -> None:
    """The filtered percentile statement names the bucket as the index does: a bound
    divisor, or another spelling of it, would leave the index unused."""
    day = dt.date(2026, 5, 7)
    for index in range(300):
        make_report(db, created_at=_at(day, 60 * index), processing_time_ms=50 * index)
    db.execute(text("ANALYZE processing_reports"))
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        seen.append((statement, params))

    engine = db.get_bind()
    event.listen(engine, "before_cursor_execute", keep)
    try:
        queries.overview_kpis(
            db, flt=ReportFilter(day, day, routes=("high",)), now=_at(day, 86_400)
        )
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    statement, params = next((s, p) for s, p in seen if "processing_time_ms / 256 IN" in s)
    cursor = db.connection().connection.driver_connection.cursor()
    if db.get_bind().dialect.name == "postgresql":
        cursor.execute("EXPLAIN " + statement, params)
    else:
        cursor.execute("EXPLAIN QUERY PLAN " + statement, params)
    plan = "\n".join(str(row) for row in cursor.fetchall())
    assert "ix_processing_reports_time_bucket" in plan


# ---------------------------------------------------------------------------------------
# Review queue semantics, drill-down and validation
# ---------------------------------------------------------------------------------------


def test_open_review_condition_follows_reprocessing(db: Session) -> None:
    created = _at(dt.date(2026, 6, 1), 0)
    report = make_report(db, created_at=created, needs_review=True)
    flt = ReportFilter(dt.date(2026, 6, 1), dt.date(2026, 6, 1))

    def decide(at: dt.datetime) -> None:
        db.add(
            ReviewDecision(
                report_id=report.id,
                email_id=report.email_id,
                reviewer="r",
                decided_at=at,
                report_created_at=created if at >= created else at - dt.timedelta(hours=1),
                outcome="approved",
            )
        )
        db.flush()

    decide(created - dt.timedelta(hours=1))  # reviewed an earlier processing: still open
    assert queries.count_review_queue_in_window(db, flt=flt) == 1
    decide(created + dt.timedelta(hours=5))
    assert queries.count_review_queue_in_window(db, flt=flt) == 0
    # Before the decision the queue held it; after, it did not.
    assert queries.queue_snapshot(db, as_of=created + dt.timedelta(hours=4)).size == 1
    assert queries.queue_snapshot(db, as_of=created + dt.timedelta(hours=6)).size == 0
    detail = queries.get_report_detail(db, email_id=report.email_id)
    assert detail is not None and not detail.open_for_review and detail.needs_review


def test_report_detail_shows_everything(db: Session) -> None:
    email_id = next_email_id()
    received = dt.datetime(2026, 6, 2, 8, 15, tzinfo=UTC)
    from reportlib import ensure_incoming_email

    ensure_incoming_email(
        db, email_id, subject="<b>Mahnung</b>", sender="a@b.test", received_at=received
    )
    data = {
        "creditor_name": "<img src=x onerror=window.__xss=1>",
        "debt_amount": Decimal("100.10"),
        "zeta_extra": "![x](http://127.0.0.1:9/p.png)",
        "extraction_metadata": {
            "creditor_name": {"confidence": 0.61, "source": "email_body"},
            "debt_amount": {"confidence": 0.97, "source": "attachment:a.pdf"},
        },
    }
    make_report(
        db,
        email_id=email_id,
        extracted_data=data,
        agent_checkpoints=checkpoints(intent="dispute", sources_processed=3, total_tokens_used=999),
        overall_confidence=0.7,
        confidence_route="medium",
        needs_review=True,
        review_reason="missing_fields",
        processing_time_ms=4321,
        subject=None,
        sender=None,
    )
    detail = queries.get_report_detail(db, email_id=email_id)
    assert detail is not None
    assert (
        detail.email_id,
        detail.subject,
        detail.sender,
        detail.received_at,
        detail.intent,
        detail.review_reason,
        detail.overall_confidence,
        detail.confidence_route,
        detail.sources_processed,
        detail.total_tokens_used,
        detail.processing_time_ms,
        detail.open_for_review,
        detail.missing_fields,
    ) == (
        email_id,
        "<b>Mahnung</b>",
        "a@b.test",
        received,
        "dispute",
        "missing_fields",
        0.7,
        "medium",
        3,
        999,
        4321,
        True,
        ("client_name", "reference_numbers"),
    )
    assert detail.fields == (
        queries.FieldDetail(
            "creditor_name", "<img src=x onerror=window.__xss=1>", 0.61, "email_body"
        ),
        queries.FieldDetail("debt_amount", Decimal("100.10"), 0.97, "attachment:a.pdf"),
        queries.FieldDetail("zeta_extra", "![x](http://127.0.0.1:9/p.png)", 0.5, "unknown"),
    )
    assert queries.get_report_detail(db, email_id=2_000_000_000) is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": dt.date(2026, 5, 2), "end": dt.date(2026, 5, 1)}, "end"),
        ({"start": dt.date(2025, 1, 1), "end": dt.date(2026, 5, 1)}, "end"),
        (
            {"start": dt.date(2026, 5, 1), "end": dt.date(2026, 5, 1), "routes": ("urgent",)},
            "routes",
        ),
        (
            {"start": dt.date(2026, 5, 1), "end": dt.date(2026, 5, 1), "intents": ("x" * 51,)},
            "intents",
        ),
        ({"start": dt.datetime(2026, 5, 1, tzinfo=UTC), "end": dt.date(2026, 5, 1)}, "start"),
    ],
)
def test_report_filter_rejects_bad_input(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ReportValidationError) as caught:
        ReportFilter(**kwargs)
    assert caught.value.field == field


def test_report_filter_normalises_and_compares_equal() -> None:
    a = ReportFilter(TODAY, TODAY, ("b", "a", "b"), ("low", "high"))
    b = ReportFilter(TODAY, TODAY, ("a", "b"), ("high", "low"))
    assert a == b and hash(a) == hash(b)
    assert (a.intents, a.routes) == (("a", "b"), ("high", "low"))
    assert ReportFilter.last_days(30, today=TODAY).previous() == ReportFilter(
        TODAY - dt.timedelta(days=59), TODAY - dt.timedelta(days=30)
    )


def test_queue_arguments_come_from_allow_lists(db: Session) -> None:
    flt = ReportFilter(TODAY, TODAY)
    for kwargs, field in [
        ({"sort": "created_at; DROP TABLE processing_reports"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": queries.MAX_QUEUE_ROWS + 1}, "limit"),
        ({"offset": -1}, "offset"),
    ]:
        with pytest.raises(ReportValidationError) as caught:
            queries.review_queue_page(db, flt=flt, **kwargs)
        assert caught.value.field == field
    with pytest.raises(ReportValidationError):
        queries.get_report_detail(db, email_id=0)
    with pytest.raises(ReportValidationError):
        queries.route_threshold_what_if(db, flt=flt, threshold=1.5)
    with pytest.raises(ReportValidationError):
        queries.overview_kpis(db, flt=flt, now=dt.datetime(2026, 1, 1))
