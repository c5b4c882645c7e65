"""reportlib inside a host application: engines and sessions the host built itself.

Every engine here comes from ``sqlalchemy.create_engine`` (or ``create_async_engine``)
with no reportlib options: no JSON codec, no SQLite pragmas, no session time zone. The
same values must go in and come out as through :func:`reportlib.make_engine`. These
tests fail if the JSON codec moves back from the column types to the engine.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import simplejson
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from reportlib import (
    Base,
    ReportInput,
    ReportValidationError,
    UnknownEmailError,
    create_processing_report,
    create_processing_reports,
    ensure_incoming_email,
    get_processing_report,
    get_reports_by_date_range,
    get_reports_needing_review,
    make_engine,
    migrate,
    queries,
    review,
)
from reportlib.models import ProcessingReport
from tests.conftest import PostgresDatabases
from tests.factories import checkpoints, extracted, next_email_id

README = Path(__file__).resolve().parent.parent / "README.md"
SYNC_DRIVERS = ("psycopg2", "psycopg", "sqlite")
ASYNC_DRIVERS = ("psycopg_async", "asyncpg")
# Digits no float holds: only an exact codec brings them back.
BIG = Decimal("12345678901234567890.123456789")


def _pg_url(database_url: str, driver: str) -> str:
    drivername = {
        "psycopg2": "postgresql+psycopg2",
        "psycopg": "postgresql+psycopg",
        "psycopg_async": "postgresql+psycopg",
        "asyncpg": "postgresql+asyncpg",
    }[driver]
    return make_url(database_url).set(drivername=drivername).render_as_string(False)


def _migrated_sqlite(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def _migrated_postgres(pg_databases: PostgresDatabases, prefix: str) -> str:
    url = _pg_url(pg_databases.create(prefix), "psycopg2")
    engine = create_engine(url)  # the migrations run on a host engine too
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def host_pg_url(pg_databases: PostgresDatabases) -> str:
    return _migrated_postgres(pg_databases, "reportlib_host")


@pytest.fixture(scope="module")
def host_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _migrated_sqlite(tmp_path_factory.mktemp("host") / "app.db")


def _url_for(request: pytest.FixtureRequest, driver: str, *, pg: str, sqlite: str) -> str:
    if driver == "sqlite":
        return str(request.getfixturevalue(sqlite))
    return _pg_url(str(request.getfixturevalue(pg)), driver)


@pytest.fixture(scope="module", params=SYNC_DRIVERS)
def host_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """What a host builds: ``create_engine(url)`` and nothing else."""
    url = _url_for(request, request.param, pg="host_pg_url", sqlite="host_sqlite_url")
    engine = create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(host_engine: Engine) -> Iterator[Session]:
    """A host session joined to an outer transaction that is rolled back after the test."""
    with host_engine.connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            transaction.rollback()


def typed(value: Any) -> Any:
    """``value`` with every leaf paired with its type, so ``==`` tells 1.5 from Decimal("1.5")."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def stored_text(db: Session, email_id: int) -> str:
    """The JSON text the database holds, read past every codec."""
    column = (
        "CAST(extracted_fields AS TEXT)"
        if db.get_bind(ProcessingReport).dialect.name == "postgresql"
        else "extracted_fields"
    )
    value = db.execute(
        text(f"SELECT {column} FROM processing_reports WHERE email_id = :e"), {"e": email_id}
    ).scalar_one()
    assert isinstance(value, str)
    return value


AMOUNTS = extracted(
    debt_amount=Decimal("1234.56"),
    interest={"rate": Decimal("0.0475"), "total": BIG, "float": 0.1, "count": 3},
    instalments=[Decimal("100.10"), Decimal("200.20")],
)
EXPECTED_FIELDS = {
    "client_name": {"value": "Erika Mustermann", "confidence": 0.92, "source": "email_body"},
    "creditor_name": {
        "value": "Stadtwerke Beispiel GmbH",
        "confidence": 0.88,
        "source": "email_body",
    },
    "debt_amount": {
        "value": Decimal("1234.56"),
        "confidence": 0.81,
        "source": "attachment:invoice.pdf",
    },
    "reference_numbers": {"value": ["AZ-2026-0001"], "confidence": 0.77, "source": "email_subject"},
    "instalments": {
        "value": [Decimal("100.10"), Decimal("200.20")],
        "confidence": 0.5,
        "source": "unknown",
    },
    "interest": {
        "value": {"rate": Decimal("0.0475"), "total": BIG, "float": Decimal("0.1"), "count": 3},
        "confidence": 0.5,
        "source": "unknown",
    },
}


def write(db: Session, data: dict[str, Any] | None = None, **kwargs: Any) -> ProcessingReport:
    email_id = kwargs.pop("email_id", None) or next_email_id()
    ensure_incoming_email(db, email_id, subject="Mahnung", sender="inkasso@example.test")
    arguments: dict[str, Any] = {
        "overall_confidence": 0.82,
        "confidence_route": "medium",
        "needs_review": True,
        "review_reason": "low confidence on debt_amount",
        "processing_time_ms": 2300,
    }
    arguments.update(kwargs)
    return create_processing_report(
        db, email_id, AMOUNTS if data is None else data, checkpoints(), **arguments
    )


# ------------------------------------------------------------------ the service round trip


def test_decimal_in_decimal_out(db: Session) -> None:
    report = write(db)
    # What RETURNING handed back, what a fresh SELECT reads, and what the database holds.
    assert typed(report.extracted_fields) == typed(EXPECTED_FIELDS)
    db.expire_all()
    again = get_processing_report(db, report.email_id)
    assert again is not None
    assert typed(again.extracted_fields) == typed(EXPECTED_FIELDS)
    assert typed(again.missing_fields) == []
    assert typed(again.overall_confidence) == ("float", 0.82)
    raw = simplejson.loads(stored_text(db, report.email_id), use_decimal=True)
    assert raw["debt_amount"]["value"] == Decimal("1234.56")
    assert raw["interest"]["value"]["total"] == BIG


def test_upsert_replaces_in_place(db: Session) -> None:
    first = write(db)
    email_id, report_id = first.email_id, first.id
    second = write(
        db,
        extracted(debt_amount=Decimal("99.95"), client_name=None),
        email_id=email_id,
        needs_review=False,
        review_reason=None,
    )
    assert (second.id, second.email_id) == (report_id, email_id)
    db.expire_all()
    stored = get_processing_report(db, email_id)
    assert stored is not None
    assert typed(stored.extracted_fields["debt_amount"]["value"]) == ("Decimal", Decimal("99.95"))
    assert stored.missing_fields == ["client_name"]
    assert "interest" not in stored.extracted_fields
    assert db.query(ProcessingReport).filter_by(email_id=email_id).count() == 1


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"overall_confidence": math.nan}, "overall_confidence", "must be a finite number"),
        ({"confidence_route": "urgent"}, "confidence_route", "must be one of high, medium, low"),
        ({"data": extracted(debt_amount=object())}, "debt_amount", "cannot be stored as JSON"),
        ({"data": extracted(debt_amount=Decimal("NaN"))}, "debt_amount", "must be a finite"),
        ({"data": extracted(client_name="a\x00b")}, "client_name", "contains a NUL character"),
    ],
)
def test_validation_errors_and_nothing_written(
    db: Session, change: dict[str, Any], field: str, problem: str
) -> None:
    email_id = next_email_id()
    change = dict(change)  # shared by every driver's run
    data = change.pop("data", None)
    with pytest.raises(ReportValidationError) as caught:
        write(db, data, email_id=email_id, **change)
    assert caught.value.field == field
    assert caught.value.problem.startswith(problem)
    assert get_processing_report(db, email_id) is None


def test_unknown_email_without_foreign_key_enforcement(db: Session) -> None:
    # A host's SQLite engine has PRAGMA foreign_keys off: reportlib checks references itself.
    email_id = next_email_id()
    with pytest.raises(UnknownEmailError):
        create_processing_report(db, email_id, extracted(), checkpoints(), 0.9, "high", False)
    batch = [ReportInput(email_id, extracted(), checkpoints(), 0.9, "high", False)]
    with pytest.raises(UnknownEmailError):
        create_processing_reports(db, batch)
    assert get_processing_report(db, email_id) is None


def test_batch_api(db: Session) -> None:
    ids = [next_email_id() for _ in range(3)]
    for email_id in ids:
        ensure_incoming_email(db, email_id)
    written = create_processing_reports(
        db,
        [
            ReportInput(
                email_id,
                extracted(debt_amount=Decimal(f"{n}000.0{n}")),
                checkpoints(),
                0.5 + n / 10,
                "medium",
                n == 0,
            )
            for n, email_id in enumerate(ids)
        ],
    )
    assert written == 3
    stored = [get_processing_report(db, email_id) for email_id in ids]
    assert [
        (typed(r.extracted_fields["debt_amount"]), r.overall_confidence)
        for r in stored
        if r is not None
    ] == [
        (typed({"value": Decimal(f"{n}000.0{n}"), "confidence": 0.81, "source": s}), 0.5 + n / 10)
        for n, s in enumerate(["attachment:invoice.pdf"] * 3)
    ]
    assert [r.email_id for r in get_reports_needing_review(db)] == [ids[0]]
    today = dt.datetime.now(dt.UTC).date()
    in_range = get_reports_by_date_range(db, today - dt.timedelta(days=1), today)
    assert sorted(r.email_id for r in in_range) == ids


# ------------------------------------------------------------------ review and queries


def test_review_decision(db: Session) -> None:
    report = write(db)
    review.claim_report(db, report_id=report.id, reviewer="alice")
    record = review.decide_report(
        db,
        report_id=report.id,
        reviewer="alice",
        outcome="corrected",
        verdicts={
            "client_name": "correct",
            "creditor_name": "correct",
            "debt_amount": review.FieldVerdict("corrected", Decimal("1299.95")),
            "reference_numbers": "correct",
            "instalments": "correct",
            "interest": review.FieldVerdict("corrected", {"rate": Decimal("0.0500")}),
        },
    )
    db.expire_all()
    (stored,) = review.get_review_history(db, report_id=report.id)
    assert stored.id == record.id
    assert [(v.field_name, v.verdict, typed(v.corrected_value)) for v in stored.verdicts] == [
        ("client_name", "correct", ("NoneType", None)),
        ("creditor_name", "correct", ("NoneType", None)),
        ("debt_amount", "corrected", ("Decimal", Decimal("1299.95"))),
        ("instalments", "correct", ("NoneType", None)),
        ("interest", "corrected", {"rate": ("Decimal", Decimal("0.0500"))}),
        ("reference_numbers", "correct", ("NoneType", None)),
    ]
    assert all(isinstance(v.extracted_confidence, float) for v in stored.verdicts)


def test_review_refuses_a_missing_report(db: Session) -> None:
    with pytest.raises(review.ReviewError):
        review.decide_report(
            db, report_id=2_000_000_000, reviewer="alice", outcome="approved", verdicts={}
        )


def test_dashboard_queries(db: Session) -> None:
    report = write(db)
    detail = queries.get_report_detail(db, email_id=report.email_id)
    assert detail is not None
    assert [(f.name, typed(f.value), f.confidence) for f in detail.fields[:3]] == [
        ("client_name", ("str", "Erika Mustermann"), 0.92),
        ("creditor_name", ("str", "Stadtwerke Beispiel GmbH"), 0.88),
        ("debt_amount", ("Decimal", Decimal("1234.56")), 0.81),
    ]
    today = dt.datetime.now(dt.UTC).date()
    flt = queries.ReportFilter(start=today - dt.timedelta(days=1), end=today + dt.timedelta(days=1))
    assert queries.count_reports(db, flt=flt) == 1
    # Per-field rows come from the database's triggers parsing the stored JSON.
    summary = queries.field_confidence_summary(db, flt=flt)
    assert summary.to_dict("records") == [
        {
            "field": name,
            "extracted": 1,
            "missing": 0,
            "avg_confidence": confidence,
            "min_confidence": confidence,
            "max_confidence": confidence,
        }
        for name, confidence in [
            ("client_name", 0.92),
            ("creditor_name", 0.88),
            ("debt_amount", 0.81),
            ("reference_numbers", 0.77),
            ("instalments", 0.5),
            ("interest", 0.5),
        ]
    ]


def test_session_that_binds_by_mapper(host_engine: Engine) -> None:
    # Hosts with several databases bind reportlib's tables by mapper, with no default bind.
    with host_engine.connect() as connection:
        transaction = connection.begin()
        with Session(binds={Base: connection}, join_transaction_mode="create_savepoint") as db:
            report = write(db)
            assert queries.get_report_detail(db, email_id=report.email_id) is not None
            review.claim_report(db, report_id=report.id, reviewer="alice")
        transaction.rollback()


# ------------------------------------------------------------------ the codec is the column's


def _refuse(*_: Any) -> Any:
    raise AssertionError("the engine's JSON codec was used")


@pytest.mark.parametrize("driver", SYNC_DRIVERS)
def test_engine_json_codec_is_never_used(request: pytest.FixtureRequest, driver: str) -> None:
    url = _url_for(request, driver, pg="host_pg_url", sqlite="host_sqlite_url")
    engine = create_engine(url, json_serializer=_refuse, json_deserializer=_refuse)
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            with Session(bind=connection) as db:
                report = write(db)
                db.expire_all()
                stored = get_processing_report(db, report.email_id)
                assert stored is not None
                assert typed(stored.extracted_fields) == typed(EXPECTED_FIELDS)
            transaction.rollback()
    finally:
        engine.dispose()


def test_make_engine_sets_no_json_codec(host_sqlite_url: str) -> None:
    engine = make_engine(host_sqlite_url)
    try:
        assert (engine.dialect._json_serializer, engine.dialect._json_deserializer) == (None, None)
    finally:
        engine.dispose()


def test_make_engine_on_psycopg3(host_pg_url: str) -> None:
    engine = make_engine(_pg_url(host_pg_url, "psycopg"))
    try:
        with engine.connect() as connection:
            assert connection.dialect.driver == "psycopg"
            assert connection.execute(text("SHOW timezone")).scalar_one() == "UTC"
    finally:
        engine.dispose()


# ------------------------------------------------------------------ async hosts


def _run_async(url: str, body: Callable[[AsyncSession], Any]) -> Any:
    """Run ``body`` on an AsyncSession joined to an outer transaction that is rolled back."""

    async def scenario() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                transaction = await connection.begin()
                db = AsyncSession(
                    bind=connection,
                    join_transaction_mode="create_savepoint",
                    expire_on_commit=False,
                )
                try:
                    return await body(db)
                finally:
                    await db.close()
                    await transaction.rollback()
        finally:
            await engine.dispose()

    return asyncio.run(scenario())


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
def test_async_session_runs_every_kind_of_call(host_pg_url: str, driver: str) -> None:
    first, second = next_email_id(), next_email_id()
    today = dt.datetime.now(dt.UTC).date()

    async def body(db: AsyncSession) -> dict[str, Any]:
        report = await db.run_sync(write, email_id=first)
        await db.run_sync(ensure_incoming_email, second)
        batch = [ReportInput(second, AMOUNTS, checkpoints(), 0.9, "high", False)]
        written = await db.run_sync(create_processing_reports, batch)
        with pytest.raises(ReportValidationError) as caught:
            await db.run_sync(write, overall_confidence=1.5)
        await db.run_sync(review.claim_report, report_id=report.id, reviewer="alice")
        decision = await db.run_sync(
            review.decide_report,
            report_id=report.id,
            reviewer="alice",
            outcome="corrected",
            verdicts={name: "correct" for name in EXPECTED_FIELDS if name != "debt_amount"}
            | {"debt_amount": review.FieldVerdict("corrected", Decimal("1299.95"))},
        )
        db.expire_all()
        stored = await db.run_sync(get_processing_report, second)
        in_range = await db.run_sync(get_reports_by_date_range, today, today + dt.timedelta(days=1))
        flagged = await db.run_sync(get_reports_needing_review)
        detail = await db.run_sync(queries.get_report_detail, email_id=first)
        return {
            "written": written,
            "error": (caught.value.field, caught.value.problem),
            "stored": typed(stored.extracted_fields) if stored else None,
            "in_range": sorted(r.email_id for r in in_range),
            "flagged": [r.email_id for r in flagged],
            "corrected": [typed(v.corrected_value) for v in decision.verdicts if v.corrected_value],
            "detail": [(f.name, typed(f.value)) for f in detail.fields] if detail else None,
        }

    assert _run_async(_pg_url(host_pg_url, driver), body) == {
        "written": 1,
        "error": ("overall_confidence", "must be between 0 and 1"),
        "stored": typed(EXPECTED_FIELDS),
        "in_range": [first, second],
        "flagged": [first],
        "corrected": [("Decimal", Decimal("1299.95"))],
        "detail": [(name, typed(entry["value"])) for name, entry in EXPECTED_FIELDS.items()],
    }


# ------------------------------------------------------------------ the README, as written

README_SYNC_URL = "postgresql+psycopg://app@db/app"
README_ASYNC_URL = "postgresql+asyncpg://app@db/app"


def _readme_blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Writing reports from the pipeline")
    section = text[start : text.index("\n## ", start + 1)]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def _with_url(code: str, readme_url: str, url: str) -> str:
    assert code.count(f'"{readme_url}"') == 1
    return code.replace(f'"{readme_url}"', repr(url))


@pytest.fixture(scope="module")
def readme_pg_url(pg_databases: PostgresDatabases) -> str:
    return _migrated_postgres(pg_databases, "reportlib_readme")


@pytest.fixture(scope="module")
def readme_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _migrated_sqlite(tmp_path_factory.mktemp("readme") / "app.db")


def _assert_stored_as_documented(url: str) -> dt.datetime:
    """Report 4711 holds exactly what the README's "What is stored" block shows."""
    (document,) = _readme_blocks("json")
    # Exact numbers, except the confidences, which read back as float.
    expected = simplejson.loads(document, use_decimal=True)
    expected["overall_confidence"] = float(expected["overall_confidence"])
    for entry in expected["extracted_fields"].values():
        entry["confidence"] = float(entry["confidence"])
    engine = create_engine(url)
    try:
        with Session(engine) as db:
            report = get_processing_report(db, 4711)
            assert report is not None
            assert typed({name: getattr(report, name) for name in expected}) == typed(expected)
            return report.created_at
    finally:
        engine.dispose()


@pytest.mark.parametrize("driver", SYNC_DRIVERS)
def test_readme_example_on_a_host_engine(request: pytest.FixtureRequest, driver: str) -> None:
    url = _url_for(request, driver, pg="readme_pg_url", sqlite="readme_sqlite_url")
    example = _readme_blocks("python")[0]
    namespace: dict[str, Any] = {}
    exec(compile(_with_url(example, README_SYNC_URL, url), "README.md", "exec"), namespace)
    namespace["engine"].dispose()
    _assert_stored_as_documented(url)


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
def test_readme_async_example(readme_pg_url: str, driver: str) -> None:
    example, async_example = _readme_blocks("python")[:2]
    namespace: dict[str, Any] = {}
    # The example's data and imports, without its synchronous write.
    prelude = example.split("with Session.begin() as db:")[0]
    exec(compile(prelude, "README.md", "exec"), namespace)
    url = _pg_url(readme_pg_url, driver)
    exec(compile(_with_url(async_example, README_ASYNC_URL, url), "README.md", "exec"), namespace)

    async def main() -> None:
        try:
            await namespace["store_report"]()
        finally:
            await namespace["async_engine"].dispose()

    before = dt.datetime.now(dt.UTC)
    asyncio.run(main())
    sync_url = _pg_url(readme_pg_url, "psycopg2")
    assert _assert_stored_as_documented(sync_url) >= before - dt.timedelta(seconds=5)
