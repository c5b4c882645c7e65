"""Sentry helpers, checked against a real receiver: what arrives, and what never does.

Every test starts and ends with the SDK shut down and runs in its own isolation scope, so
no other test module sends to these receivers or sees this module's tags and breadcrumbs.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import requests
import sentry_sdk
import uvicorn
from fastapi import FastAPI, Request
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from reportlib import ProcessingReport, create_processing_report, ensure_incoming_email, monitoring
from reportlib.config import Settings
from reportlib.errors import ReportValidationError
from reportlib.monitoring import (
    LOG_MESSAGE_WITHHELD,
    add_breadcrumb,
    capture_exception,
    capture_message,
    capture_page_error,
    init_sentry,
    processing_scope,
    set_processing_context,
    shutdown_sentry,
)
from tests.factories import next_email_id

if TYPE_CHECKING:
    from tests.sentry_receiver import SentryReceiver

# The receiver fixtures (sentry_receiver, sentry_dsn) live with the receiver.
pytest_plugins = ["tests.sentry_receiver"]

MONITORING_LOGGER = "reportlib.monitoring"


@pytest.fixture(autouse=True)
def _clean_sdk() -> Iterator[None]:
    """No client before or after a test; tags and breadcrumbs die with the test's scope."""
    shutdown_sentry()
    with sentry_sdk.isolation_scope():
        yield
    shutdown_sentry()
    assert monitoring._state.client is None


def settings_for(dsn: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "sentry_dsn": dsn,
        "environment": "test",
        "sentry_traces_sample_rate": 0.0,
        "sentry_profiles_sample_rate": 0.0,
    }
    values.update(overrides)
    return Settings(**values)


def strip_timestamps(crumbs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in crumb.items() if k != "timestamp"} for crumb in crumbs]


def exception_summary(event: dict[str, Any]) -> list[tuple[str, str]]:
    return [(entry["type"], entry["value"]) for entry in event["exception"]["values"]]


# -- start-up ------------------------------------------------------------------------


def test_without_dsn_nothing_is_sent_even_with_sentry_dsn_in_the_environment(
    sentry_receiver: SentryReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The SDK would fall back to this variable if it were initialised with dsn=None.
    monkeypatch.setenv("SENTRY_DSN", sentry_receiver.dsn)
    with caplog.at_level(logging.WARNING, logger=MONITORING_LOGGER):
        assert init_sentry(settings_for(None)) is False
        assert init_sentry(settings_for("   ")) is False

    warnings = [r for r in caplog.records if r.name == MONITORING_LOGGER]
    assert [(r.levelname, r.getMessage()) for r in warnings] == [
        ("WARNING", "Sentry is off: SENTRY_DSN is not set, so no errors are reported")
    ]
    assert not sentry_sdk.get_client().is_active()

    set_processing_context(1, "agent_1_intent")
    add_breadcrumb("extraction", "fields extracted", data={"fields": 3})
    assert capture_message("nothing should arrive", level="error") is None
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        assert capture_exception(exc) is None
        assert capture_page_error(exc, page="Overview", filters={}) is None
    with pytest.raises(ValueError), processing_scope(2, "agent_2_extraction"):
        raise ValueError("escapes unchanged")
    logging.getLogger("pipeline").error("an error log")
    sentry_sdk.flush(timeout=2)
    assert not sentry_receiver.wait_for(lambda r: bool(r.envelopes), timeout=1.0)

    # Control: the same receiver does get events once a DSN is configured.
    assert init_sentry(settings_for(sentry_receiver.dsn)) is True
    event_id = capture_message("now it arrives")
    sentry_sdk.flush(timeout=5)
    assert [e["event_id"] for e in sentry_receiver.wait_for_events(1)] == [event_id]


def test_init_twice_keeps_one_client_and_sends_once(sentry_receiver: SentryReceiver) -> None:
    settings = settings_for(sentry_receiver.dsn, environment="staging")
    assert init_sentry(settings) is True
    client = sentry_sdk.get_client()
    assert init_sentry(settings) is True
    assert sentry_sdk.get_client() is client

    event_id = capture_message("once")
    sentry_sdk.flush(timeout=5)
    events = sentry_receiver.wait_for_events(1)
    assert not sentry_receiver.wait_for(lambda r: len(r.items("event")) > 1, timeout=0.5)
    assert [(e["event_id"], e["message"], e["environment"]) for e in events] == [
        (event_id, "once", "staging")
    ]
    assert set(events[0]["sdk"]["integrations"]) >= {
        "fastapi",
        "starlette",
        "sqlalchemy",
        "logging",
    }
    envelope = sentry_receiver.envelopes[0]
    assert envelope.content_encoding == "gzip"
    assert "sentry_key=0123456789abcdef0123456789abcdef" in envelope.auth_header


def test_sentry_environment_overrides_environment(sentry_receiver: SentryReceiver) -> None:
    # The default sample rates: tracing and profiling configured, errors unaffected.
    settings = settings_for(
        sentry_receiver.dsn,
        sentry_environment="prod-eu",
        sentry_traces_sample_rate=0.1,
        sentry_profiles_sample_rate=0.1,
    )
    assert init_sentry(settings)
    capture_message("where am I")
    sentry_sdk.flush(timeout=5)
    assert [e["environment"] for e in sentry_receiver.wait_for_events(1)] == ["prod-eu"]


def test_turning_the_dsn_off_stops_sending(
    sentry_receiver: SentryReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    assert init_sentry(settings_for(sentry_receiver.dsn))
    capture_message("before")
    with caplog.at_level(logging.WARNING, logger=MONITORING_LOGGER):
        assert init_sentry(settings_for(None)) is False  # closes the client, flushing it
    assert [e["message"] for e in sentry_receiver.events()] == ["before"]
    assert capture_message("after") is None
    sentry_sdk.flush(timeout=2)
    assert not sentry_receiver.wait_for(lambda r: len(r.items("event")) > 1, timeout=0.5)


# -- context, tags, breadcrumbs --------------------------------------------------------


def test_processing_context_and_tags_arrive(sentry_receiver: SentryReceiver) -> None:
    assert init_sentry(settings_for(sentry_receiver.dsn))
    set_processing_context(4711, "agent_2_extraction", "corr-7f3a")
    first = capture_message("extraction failed", level="error")
    set_processing_context(4712, "agent_3_validation")
    second = capture_message("validation failed", level="warning")
    sentry_sdk.flush(timeout=5)

    events = sentry_receiver.wait_for_events(2)
    assert [
        (e["event_id"], e["level"], e["message"], e.get("tags", {}), e["contexts"]["processing"])
        for e in events
    ] == [
        (
            first,
            "error",
            "extraction failed",
            {"email_id": "4711", "actor": "agent_2_extraction", "correlation_id": "corr-7f3a"},
            {"email_id": 4711, "actor": "agent_2_extraction", "correlation_id": "corr-7f3a"},
        ),
        (
            second,
            "warning",
            "validation failed",
            {"email_id": "4712", "actor": "agent_3_validation"},
            {"email_id": 4712, "actor": "agent_3_validation", "correlation_id": "none"},
        ),
    ]


def test_breadcrumbs_precede_the_event(sentry_receiver: SentryReceiver) -> None:
    assert init_sentry(settings_for(sentry_receiver.dsn))
    with processing_scope(31, "agent_2_extraction", "corr-31"):
        add_breadcrumb("fetch", "email loaded", data={"attachments": 2})
        add_breadcrumb(
            "extraction",
            "fields extracted",
            data={"fields": 4, "confidence": 0.82, "route": "medium", "missing": ["iban"]},
        )
        add_breadcrumb("storage", "report stored", level="warning", data={"report_id": 17})
        add_breadcrumb("storage", "odd level", level="loud")
        event_id = capture_message("review needed", level="warning")
    sentry_sdk.flush(timeout=5)

    (event,) = sentry_receiver.wait_for_events(1)
    assert event["event_id"] == event_id
    crumbs = event.get("breadcrumbs", {}).get("values", [])
    assert strip_timestamps(crumbs) == [
        {
            "type": "default",
            "category": "fetch",
            "level": "info",
            "message": "email loaded",
            "data": {"attachments": 2},
        },
        {
            "type": "default",
            "category": "extraction",
            "level": "info",
            "message": "fields extracted",
            "data": {"fields": 4, "confidence": 0.82, "route": "medium", "missing": ["iban"]},
        },
        {
            "type": "default",
            "category": "storage",
            "level": "warning",
            "message": "report stored",
            "data": {"report_id": 17},
        },
        {"type": "default", "category": "storage", "level": "info", "message": "odd level"},
    ]
    stamps = [crumb["timestamp"] for crumb in crumbs] + [event["timestamp"]]
    assert stamps == sorted(stamps)


def test_each_email_starts_with_no_breadcrumbs_and_context_ends_with_the_scope(
    sentry_receiver: SentryReceiver,
) -> None:
    assert init_sentry(settings_for(sentry_receiver.dsn))
    add_breadcrumb("startup", "worker ready")
    with processing_scope(1, "agent_1_intent"):
        add_breadcrumb("intent", "classified")
        capture_message("first email")
    with processing_scope(2, "agent_1_intent"):
        capture_message("second email")
    capture_message("between emails")
    sentry_sdk.flush(timeout=5)

    events = sentry_receiver.wait_for_events(3)
    assert [
        (
            e["message"],
            e.get("tags", {}),
            e["contexts"].get("processing"),
            [c["message"] for c in e.get("breadcrumbs", {}).get("values", [])],
        )
        for e in events
    ] == [
        (
            "first email",
            {"email_id": "1", "actor": "agent_1_intent"},
            {"email_id": 1, "actor": "agent_1_intent", "correlation_id": "none"},
            ["classified"],
        ),
        (
            "second email",
            {"email_id": "2", "actor": "agent_1_intent"},
            {"email_id": 2, "actor": "agent_1_intent", "correlation_id": "none"},
            [],
        ),
        ("between emails", {}, None, ["worker ready"]),
    ]


def test_concurrent_jobs_never_share_context(sentry_receiver: SentryReceiver) -> None:
    assert init_sentry(settings_for(sentry_receiver.dsn))
    jobs = 6
    barrier = threading.Barrier(jobs)
    failures: list[BaseException] = []

    def job(n: int) -> None:
        try:
            with processing_scope(9000 + n, f"agent_{n}", f"corr-{n}"):
                add_breadcrumb("extraction", "started", data={"job": n})
                barrier.wait(timeout=10)  # every job is inside its scope at once
                add_breadcrumb("extraction", "finished", data={"job": n})
                barrier.wait(timeout=10)
                if n % 2:
                    raise RuntimeError("odd jobs fail")
                capture_message("job done")
        except RuntimeError:
            pass
        except BaseException as exc:  # surfaced below; a thread cannot fail the test
            failures.append(exc)

    threads = [threading.Thread(target=job, args=(n,)) for n in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    capture_message("main thread")
    sentry_sdk.flush(timeout=5)

    events = sentry_receiver.wait_for_events(jobs + 1)
    seen = {}
    for event in events:
        processing = event["contexts"].get("processing")
        if processing is None:
            assert (
                event["message"],
                event.get("tags", {}),
                event.get("breadcrumbs", {}).get("values", []),
            ) == (
                "main thread",
                {},
                [],
            )
            continue
        n = processing["email_id"] - 9000
        seen[n] = (
            event.get("tags", {}),
            processing,
            [(c["message"], c["data"]) for c in event.get("breadcrumbs", {}).get("values", [])],
            [x["type"] for x in event.get("exception", {}).get("values", [])],
        )
    assert seen == {
        n: (
            {"email_id": str(9000 + n), "actor": f"agent_{n}", "correlation_id": f"corr-{n}"},
            {"email_id": 9000 + n, "actor": f"agent_{n}", "correlation_id": f"corr-{n}"},
            [("started", {"job": n}), ("finished", {"job": n})],
            ["RuntimeError"] if n % 2 else [],
        )
        for n in range(jobs)
    }


def test_processing_scope_reports_and_reraises_the_same_exception(
    sentry_receiver: SentryReceiver,
) -> None:
    assert init_sentry(settings_for(sentry_receiver.dsn))
    original = LookupError("no such field")
    with pytest.raises(LookupError) as caught, processing_scope(55, "agent_2_extraction"):
        raise original
    assert caught.value is original
    # Reporting it again (as an outer handler would) is deduplicated by the SDK.
    capture_exception(original)
    sentry_sdk.flush(timeout=5)

    events = sentry_receiver.wait_for_events(1)
    assert not sentry_receiver.wait_for(lambda r: len(r.items("event")) > 1, timeout=0.5)
    assert [(exception_summary(e), e.get("tags", {})) for e in events] == [
        (
            [("LookupError", "LookupError (message withheld)")],
            {"email_id": "55", "actor": "agent_2_extraction"},
        )
    ]


def test_dashboard_page_error(sentry_receiver: SentryReceiver) -> None:
    assert init_sentry(settings_for(sentry_receiver.dsn))
    filters = {"start": "2026-03-01", "end": "2026-03-31", "intent": "debt_claim", "route": "low"}
    try:
        raise KeyError("overall_confidence")
    except KeyError as exc:
        event_id = capture_page_error(exc, page="Confidence", filters=filters)
    capture_message("after the page error")
    sentry_sdk.flush(timeout=5)

    page_event, later = sentry_receiver.wait_for_events(2)
    assert page_event["event_id"] == event_id
    assert (
        page_event["level"],
        page_event.get("tags", {}),
        page_event["contexts"]["dashboard"],
        exception_summary(page_event),
    ) == (
        "error",
        {"page": "Confidence"},
        {"page": "Confidence", "filters": filters},
        [("KeyError", "KeyError (message withheld)")],
    )
    # The page context was scoped to that one report.
    assert (later.get("tags", {}), "dashboard" in later["contexts"]) == ({}, False)


# -- helpers never raise -------------------------------------------------------------


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("cannot print")

    __repr__ = __str__


def exercise_every_helper() -> list[Any]:
    results: list[Any] = []
    set_processing_context(1, "agent_1_intent", "corr")
    odd: dict[Any, Any] = {1: object(), "set": {1, 2}, "bad": Unprintable()}
    add_breadcrumb("odd", "data", data=odd)
    results.append(capture_message("hello"))
    # A fresh exception each time: the SDK drops a repeat of the last one it reported.
    results.append(capture_exception(ValueError("boom")))
    results.append(capture_page_error(KeyError("k"), page="Overview", filters={"route": "low"}))
    results.append(
        capture_page_error(OSError("x"), page="Overview", filters={"x": Unprintable()})  # type: ignore[dict-item]
    )
    results.append(capture_exception())  # nothing being handled
    with processing_scope(2, "agent_2_extraction"):
        results.append(capture_message("inside"))
    return results


def test_helpers_never_raise_with_a_malformed_dsn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=MONITORING_LOGGER):
        assert init_sentry(settings_for("not-a-dsn")) is False
    messages = [r.getMessage() for r in caplog.records if r.name == MONITORING_LOGGER]
    assert messages == [
        "Sentry is off: SENTRY_DSN could not be used (BadDsn), so no errors are reported"
    ]
    assert "not-a-dsn" not in caplog.text
    assert exercise_every_helper() == [None] * 6


def test_helpers_never_raise_when_the_receiver_is_down(
    sentry_receiver: SentryReceiver,
) -> None:
    dsn = sentry_receiver.dsn
    sentry_receiver.stop()
    assert init_sentry(settings_for(dsn)) is True
    results = exercise_every_helper()
    # Events are built and queued (ids returned) although nothing can be delivered.
    assert [isinstance(r, str) for r in results] == [True, True, True, False, False, True]
    sentry_sdk.flush(timeout=2)
    assert sentry_receiver.envelopes == []


def test_filters_fail_closed() -> None:
    class Exploding(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("cannot iterate")

    event: Any = {"event_id": "abc123", "platform": "python", "contexts": Exploding(a=1)}
    assert monitoring._before_send(event, {}) == {
        "event_id": "abc123",
        "platform": "python",
        "level": "error",
        "message": "event withheld: it could not be checked for personal data",
    }
    assert (
        monitoring._before_send_transaction({"type": "transaction", "tags": Exploding()}, {})
        is None
    )
    assert monitoring._before_breadcrumb({"category": "x", "data": Exploding()}, {}) is None


# -- personal data never leaves ------------------------------------------------------


def make_canaries() -> dict[str, Any]:
    """A unique marker per personal value, so a leak names the field it came from."""
    token = uuid.uuid4().hex
    names = [
        "client_name",
        "creditor_name",
        "reference_a",
        "reference_b",
        "iban",
        "debtor_address",
        "source",
        "subject",
        "sender",
    ]
    canaries: dict[str, Any] = {name: f"cnry{name.replace('_', '')}{token}" for name in names}
    # An amount nobody else would print: nine random digits, then two decimals.
    canaries["debt_amount"] = Decimal(
        f"{secrets.randbelow(9 * 10**8) + 10**8}.{secrets.randbelow(90) + 10}"
    )
    return canaries


def canary_needles(canaries: dict[str, Any]) -> dict[str, str]:
    needles = {name: str(value) for name, value in canaries.items()}
    needles["debt_amount_digits"] = str(canaries["debt_amount"]).split(".")[0]
    return needles


def canary_report(canaries: dict[str, Any]) -> dict[str, Any]:
    fields = ["client_name", "creditor_name", "debt_amount", "reference_numbers", "iban"]
    return {
        "client_name": canaries["client_name"],
        "creditor_name": canaries["creditor_name"],
        "debt_amount": canaries["debt_amount"],
        "reference_numbers": [canaries["reference_a"], canaries["reference_b"]],
        "iban": canaries["iban"],
        "debtor_address": {"street": canaries["debtor_address"]},
        "extraction_metadata": {
            name: {"confidence": 0.9, "source": canaries["source"]} for name in fields
        },
    }


def parse_amount(report: dict[str, Any]) -> Decimal:
    # Values sit in local variables and in the messages of a chained exception.
    client = report["client_name"]
    amount_text = str(report["debt_amount"])
    references = {ref: client for ref in report["reference_numbers"]}
    try:
        return Decimal(references[client])
    except KeyError:
        raise ValueError(f"cannot parse amount {amount_text} for {client}") from None


def test_canaries_never_reach_sentry(
    engine: Engine, sentry_receiver: SentryReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    backend = engine.dialect.name
    canaries = make_canaries()
    needles = canary_needles(canaries)
    report = canary_report(canaries)
    assert init_sentry(settings_for(sentry_receiver.dsn, sentry_traces_sample_rate=1.0))
    pipeline_log = logging.getLogger("pipeline.extraction")
    caplog.set_level(logging.INFO, logger="pipeline.extraction")
    email_id = next_email_id()

    with (
        engine.connect() as connection,
        sentry_sdk.start_transaction(op="job", name="process email"),
    ):
        outer = connection.begin()
        (constraint,) = [
            check["name"]
            for check in inspect(connection).get_check_constraints("processing_reports")
            if "overall_confidence" in check["sqltext"]
        ]
        db = Session(bind=connection, join_transaction_mode="create_savepoint")
        ensure_incoming_email(db, email_id, subject=canaries["subject"], sender=canaries["sender"])

        # 1. A validation error from the service.
        with pytest.raises(ReportValidationError), processing_scope(email_id, "agent_3_store"):
            create_processing_report(db, email_id, report, {}, 1.5, "high", False)

        # 2. A CHECK violation from the database, through the ORM (validation bypassed).
        with pytest.raises(IntegrityError) as orm_error, processing_scope(email_id, "orm"):
            db.add(
                ProcessingReport(
                    email_id=email_id,
                    extracted_fields={k: {"value": v} for k, v in report.items()},
                    missing_fields=[],
                    overall_confidence=1.5,
                    confidence_route="high",
                    needs_review=False,
                    review_reason=canaries["client_name"][:100],
                )
            )
            db.flush()
        db.rollback()
        assert needles["client_name"] in str(orm_error.value)  # the message does carry values
        if backend == "postgresql":
            assert "Failing row contains" in str(orm_error.value)

        # 3. The same through raw SQL with the values written into the statement.
        literal = json.dumps({"client_name": canaries["client_name"]})
        with pytest.raises(DBAPIError) as sql_error, processing_scope(email_id, "raw-sql"):
            with db.begin_nested():
                db.execute(
                    text(
                        "INSERT INTO processing_reports (email_id, extracted_fields, "
                        "overall_confidence, confidence_route, needs_review, review_reason, "
                        f"sources_processed, total_tokens_used) VALUES ({email_id}, "
                        f"'{literal}', 1.5, 'high', false, '{canaries['iban']}', 1, 0)"
                    )
                )
        assert needles["iban"] in str(sql_error.value)

        # 4. Values in local variables and in chained and grouped exception messages.
        with pytest.raises(RuntimeError), processing_scope(email_id, "agent_2_extraction"):
            try:
                parse_amount(report)
            except ValueError as exc:
                raise RuntimeError(f"extraction failed for {canaries['creditor_name']}") from exc
        with pytest.raises(ExceptionGroup), processing_scope(email_id, "batch"):
            raise ExceptionGroup(
                canaries["debtor_address"],
                [KeyError(canaries["reference_a"]), ValueError(canaries["reference_b"])],
            )

        # 5. Logged errors, log breadcrumbs, and callers that put values where they should not.
        with processing_scope(email_id, "agent_4_report", "corr-canary"):
            add_breadcrumb(
                "extraction",
                "fields extracted",
                data={"fields": 5, "client_name": canaries["client_name"], "confidence": 0.9},
            )
            sentry_sdk.set_tag("debtor", canaries["client_name"])
            sentry_sdk.set_user({"email": canaries["sender"], "id": canaries["iban"]})
            sentry_sdk.set_extra("report", report)
            sentry_sdk.set_context("debtor", {"address": canaries["debtor_address"]})
            pipeline_log.info(
                "extracted %s owing %s",
                canaries["client_name"],
                canaries["debt_amount"],
                extra={"creditor": canaries["creditor_name"]},
            )
            pipeline_log.warning("low confidence for %s", canaries["reference_a"])
            pipeline_log.error(
                "could not store report for %s", canaries["client_name"], extra={"report": report}
            )
            pipeline_log.error(ValueError(canaries["iban"]))
            try:
                parse_amount(report)
            except ValueError:
                pipeline_log.exception("storing failed for %s", canaries["creditor_name"])
            capture_message("report stored with warnings", level="warning")
        outer.rollback()
        db.close()

    shutdown_sentry(timeout=10)  # flushes events and the transaction
    events = sentry_receiver.events()

    # The events did arrive, carrying what is useful and safe.
    integrity = {
        "postgresql": f"sqlstate=23514, constraint={constraint}, table=processing_reports",
        "sqlite": f"sqlite=SQLITE_CONSTRAINT_CHECK, constraint={constraint}",
    }[backend]
    dbapi_type = {"postgresql": "CheckViolation", "sqlite": "IntegrityError"}[backend]
    withheld = "message withheld"
    assert [
        (
            e.get("logger"),
            e.get("logentry", {}).get("message", e.get("message")),
            [x["type"] for x in e.get("exception", {}).get("values", [])],
            e.get("tags", {}),
        )
        for e in events
    ] == [
        (
            None,
            None,
            ["ReportValidationError"],
            {"email_id": str(email_id), "actor": "agent_3_store"},
        ),
        (None, None, [dbapi_type, "IntegrityError"], {"email_id": str(email_id), "actor": "orm"}),
        (
            None,
            None,
            [dbapi_type, "IntegrityError"],
            {"email_id": str(email_id), "actor": "raw-sql"},
        ),
        (
            None,
            None,
            ["ValueError", "RuntimeError"],
            {"email_id": str(email_id), "actor": "agent_2_extraction"},
        ),
        (
            None,
            None,
            ["ValueError", "KeyError", "ExceptionGroup"],
            {"email_id": str(email_id), "actor": "batch"},
        ),
        (
            "pipeline.extraction",
            LOG_MESSAGE_WITHHELD,
            [],
            {"email_id": str(email_id), "actor": "agent_4_report", "correlation_id": "corr-canary"},
        ),
        (
            "pipeline.extraction",
            LOG_MESSAGE_WITHHELD,
            [],
            {"email_id": str(email_id), "actor": "agent_4_report", "correlation_id": "corr-canary"},
        ),
        (
            "pipeline.extraction",
            LOG_MESSAGE_WITHHELD,
            ["ValueError"],
            {"email_id": str(email_id), "actor": "agent_4_report", "correlation_id": "corr-canary"},
        ),
        (
            None,
            "report stored with warnings",
            [],
            {"email_id": str(email_id), "actor": "agent_4_report", "correlation_id": "corr-canary"},
        ),
    ]
    # ... and no personal value is anywhere in what was sent.
    assert sentry_receiver.errors == []
    bodies = sentry_receiver.raw_bodies()
    decoded = [
        json.dumps(item.json(), ensure_ascii=False)
        for item in sentry_receiver.items()
        if item.type in {"event", "transaction"}
    ]
    leaks = {
        name: index
        for name, needle in needles.items()
        for index, body in enumerate(bodies)
        if needle.encode() in body
    }
    leaks.update(
        {
            f"{name} (decoded)": index
            for name, needle in needles.items()
            for index, body in enumerate(decoded)
            if needle in body
        }
    )
    assert leaks == {}

    assert exception_summary(events[0]) == [
        ("ReportValidationError", f"ReportValidationError (field=overall_confidence; {withheld})")
    ]
    for event in events[1:3]:
        assert exception_summary(event) == [
            (dbapi_type, f"{dbapi_type} ({integrity}; {withheld})"),
            ("IntegrityError", f"IntegrityError (code=gkpj, {integrity}; {withheld})"),
        ]
    last = events[-1]
    assert strip_timestamps(last["breadcrumbs"]["values"])[:3] == [
        {
            "type": "default",
            "category": "extraction",
            "level": "info",
            "message": "fields extracted",
            "data": {"fields": 5, "confidence": 0.9},
        },
        {
            "type": "log",
            "category": "pipeline.extraction",
            "level": "info",
        },
        {
            "type": "log",
            "category": "pipeline.extraction",
            "level": "warning",
        },
    ]
    assert all("user" not in e and "extra" not in e for e in events)
    assert all(set(e["contexts"]) <= {"processing", "trace", "runtime"} for e in events)
    (transaction,) = sentry_receiver.transactions()
    sql = [s["description"] for s in transaction["spans"] if s.get("op") == "db"]
    assert any("INSERT INTO processing_reports" in statement for statement in sql)


# -- the FastAPI integration ---------------------------------------------------------


def test_fastapi_errors_arrive_without_request_data(sentry_receiver: SentryReceiver) -> None:
    canaries = make_canaries()
    needles = canary_needles(canaries)
    assert init_sentry(settings_for(sentry_receiver.dsn, sentry_traces_sample_rate=1.0))

    app = FastAPI()

    @app.post("/emails/{email_id}/reports")
    async def store_report(email_id: int, request: Request) -> dict[str, str]:
        payload = await request.json()
        set_processing_context(email_id, "api")
        raise RuntimeError(f"cannot store report of {payload['client_name']}")

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            threading.Event().wait(0.05)
        response = requests.post(
            f"http://127.0.0.1:{port}/emails/77/reports",
            params={"debtor": canaries["client_name"]},
            json={"client_name": canaries["client_name"], "iban": canaries["iban"]},
            headers={"X-Debtor": canaries["creditor_name"]},
            cookies={"debtor": canaries["sender"]},
            timeout=10,
        )
        assert response.status_code == 500
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
    shutdown_sentry(timeout=10)

    (event,) = sentry_receiver.events()
    assert (
        event["transaction"],
        event["request"],
        event.get("tags", {}),
        exception_summary(event),
    ) == (
        "/emails/{email_id}/reports",
        {"method": "POST"},
        {"email_id": "77", "actor": "api"},
        [("RuntimeError", "RuntimeError (message withheld)")],
    )
    bodies = sentry_receiver.raw_bodies()
    assert {
        name: i
        for name, needle in needles.items()
        for i, b in enumerate(bodies)
        if needle.encode() in b
    } == {}
