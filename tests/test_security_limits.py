"""Security hardening, round 2, at the library level: bounded input, masked sources,
verified logins only, local mode's environment allow-list, Sentry's allow-lists, the
audit actor filter and database failures that waiting will not fix.

Each test names the finding it covers (rows of the issue's table).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sentry_sdk
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from reportlib import create_processing_report, ensure_incoming_email
from reportlib.access import email_from_claims, local_mode_environment_allowed, source_kind
from reportlib.audit import list_audit_events, record_audit_event
from reportlib.config import ConfigurationError, Settings, get_settings
from reportlib.errors import (
    DatabaseAccessError,
    DatabaseUnavailableError,
    ReportTooLargeError,
    ReportValidationError,
)
from reportlib.health import ACCESS_MESSAGE, check_database, is_database_access_error
from reportlib.monitoring import (
    add_breadcrumb,
    capture_message,
    init_sentry,
    processing_scope,
    shutdown_sentry,
)
from reportlib.service import build_report_values, check_json_value
from tests.factories import next_email_id

if TYPE_CHECKING:
    from tests.sentry_receiver import SentryReceiver

pytest_plugins = ["tests.sentry_receiver"]


def _build(extracted: dict[str, Any]) -> dict[str, Any]:
    return build_report_values(
        email_id=1,
        extracted_data=extracted,
        agent_checkpoints={},
        overall_confidence=0.5,
        confidence_route="low",
        needs_review=False,
    )


# -- 13: bounded input ---------------------------------------------------------------


def test_defaults_bound_values_lists_and_reports() -> None:
    settings = Settings()
    assert (settings.max_value_bytes, settings.max_list_items, settings.max_report_bytes) == (
        65_536,
        1_000,
        1_048_576,
    )


@pytest.mark.parametrize(
    ("extracted", "field", "problem"),
    [
        ({"client_name": "x" * 10_000_000}, "client_name", "is longer than 65536 bytes"),
        ({"reference_numbers": list(range(1_000_000))}, "reference_numbers", "more than 1000"),
        ({"client_name": ["ä" * 1000] * 40}, "client_name", "is larger than 65536 bytes"),
        (
            {
                "client_name": "Erika",
                "extraction_metadata": {"client_name": {"source": "s" * 70_000}},
            },
            "extraction_metadata.client_name.source",
            "is longer than 65536 bytes",
        ),
        (
            {f"field_{n}": "v" * 60_000 for n in range(20)},
            "extracted_data",
            "is larger than 1048576 bytes in total",
        ),
        ({f"f{n}": 1 for n in range(1_001)}, "extracted_data", "has more than 1000 fields"),
    ],
    ids=["10MB-string", "million-list", "nested-size", "source", "report", "field-count"],
)
def test_oversized_input_raises_a_typed_error_naming_the_field(
    extracted: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(ReportTooLargeError) as caught:
        _build(extracted)
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert isinstance(caught.value, ReportValidationError)  # callers that catch it still do
    assert "xxxx" not in str(caught.value) and "Erika" not in str(caught.value)


def test_corrected_values_share_the_limits() -> None:
    # reportlib.review validates corrected values with the same helper.
    with pytest.raises(ReportTooLargeError) as caught:
        check_json_value("y" * 70_000, "verdicts.client_name.corrected_value")
    assert caught.value.field == "verdicts.client_name.corrected_value"
    with pytest.raises(ReportTooLargeError):
        check_json_value(["a"] * 5_000, "verdicts.reference_numbers.corrected_value")


def test_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_VALUE_BYTES", "100")
    monkeypatch.setenv("MAX_LIST_ITEMS", "3")
    get_settings.cache_clear()
    with pytest.raises(ReportTooLargeError, match="client_name: is longer than 100 bytes"):
        _build({"client_name": "x" * 101})
    with pytest.raises(ReportTooLargeError, match="more than 3 items"):
        _build({"reference_numbers": ["a", "b", "c", "d"]})
    assert _build({"client_name": "x" * 90, "reference_numbers": ["a", "b", "c"]})


def test_within_the_limits_reads_back(db: Session) -> None:
    email_id = next_email_id()
    ensure_incoming_email(db, email_id)
    value = "ü" * 20_000  # 40 KB of UTF-8: under the 64 KB default
    report = create_processing_report(db, email_id, {"client_name": value}, {}, 0.5, "low", False)
    assert report.extracted_fields["client_name"]["value"] == value


# -- 12: settings errors never repeat the bad value ----------------------------------


def test_roles_error_does_not_repeat_the_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_ROLES", "erika.mustermann@example.com")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    assert "DASHBOARD_ROLES" in str(caught.value)
    assert "erika" not in str(caught.value).lower()


# -- 6: sources for ops ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("attachment:Mahnung_Erika_Mustermann.pdf", "attachment"),
        ("email_body", "email_body"),
        ("email_subject", "email_subject"),
        ("Subject", "subject"),
        ("Mahnung_Erika_Mustermann.pdf", "other"),
        ("Erika Mustermann, IBAN DE89 3704 0044 0532 0130 00", "other"),
        ("Erika Mustermann: IBAN DE89", "other"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_source_kind_is_an_allow_list(source: object, kind: str) -> None:
    assert source_kind(source) == kind


# -- 9: only email_verified is True counts ------------------------------------------------


@pytest.mark.parametrize("verified", ["false", "true", 0, 1, "False", None, [True]])
def test_email_verified_must_be_the_boolean_true(verified: object) -> None:
    assert email_from_claims({"email": "lead@example.com", "email_verified": verified}) is None
    assert email_from_claims({"email": "lead@example.com"}) is None
    assert (
        email_from_claims({"email": "lead@example.com", "email_verified": True})
        == "lead@example.com"
    )


# -- 2: local mode's environments ------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "allowed"),
    [
        ("development", True),
        ("demo", True),
        ("test", True),
        (" Development ", True),
        ("production", False),
        ("prod", False),
        ("prd", False),
        ("live", False),
        ("production-eu", False),
        ("staging", False),
        ("", False),
    ],
)
def test_local_mode_environments_are_an_allow_list(environment: str, allowed: bool) -> None:
    assert local_mode_environment_allowed(environment) is allowed


# -- 11: the audit actor filter ignores case ------------------------------------------------


def test_audit_actor_filter_matches_regardless_of_case(db: Session) -> None:
    now = dt.datetime.now(dt.UTC)
    email_id = next_email_id()
    record_audit_event(db, actor="Anna Keller", action="review_claimed", email_id=email_id)
    record_audit_event(db, actor="lead@example.com", action="audit_log_viewed")
    window = {"start": now - dt.timedelta(hours=1), "end": now + dt.timedelta(hours=1)}
    for typed in ("anna keller", "Anna Keller", "ANNA KELLER"):
        found = list_audit_events(db, actor=typed, email_id=email_id, **window)
        assert [(e.actor, e.email_id) for e in found] == [("Anna Keller", email_id)]
    assert [e.actor for e in list_audit_events(db, actor="LEAD@example.com", **window)] == [
        "lead@example.com"
    ]


# -- 13: failures that waiting will not fix -------------------------------------------------


@pytest.fixture
def missing_database_engine(pg_url: str) -> Iterator[Engine]:
    url = pg_url.rsplit("/", 1)[0] + "/reportlib_no_such_database_round2"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    yield engine
    engine.dispose()


@pytest.fixture
def unknown_role_engine(pg_url: str) -> Iterator[Engine]:
    url = pg_url.replace("postgres@", "no_such_role_round2@", 1)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    yield engine
    engine.dispose()


@pytest.mark.parametrize("which", ["missing_database_engine", "unknown_role_engine"])
def test_unknown_database_or_user_says_it_will_not_recover(
    which: str, request: pytest.FixtureRequest
) -> None:
    engine: Engine = request.getfixturevalue(which)
    with pytest.raises(DatabaseAccessError) as caught:
        check_database(engine)
    assert isinstance(caught.value, DatabaseUnavailableError)
    assert str(caught.value) == ACCESS_MESSAGE
    assert "will not fix itself" in ACCESS_MESSAGE and "minute" not in ACCESS_MESSAGE
    assert "no_such" not in str(caught.value) and caught.value.__cause__ is None
    assert is_database_access_error(caught.value)


def test_boundary_does_not_promise_recovery_for_access_errors() -> None:
    from dashboard.boundary import database_problem

    message = database_problem(DatabaseAccessError(ACCESS_MESSAGE))
    assert message == ACCESS_MESSAGE
    assert "try again" not in (message or "").lower()


# -- 10: Sentry allow-lists ------------------------------------------------------------------


def _settings(dsn: str) -> Settings:
    return Settings(
        sentry_dsn=dsn,
        environment="test",
        sentry_traces_sample_rate=0.0,
        sentry_profiles_sample_rate=0.0,
    )


@pytest.fixture
def sentry(sentry_receiver: SentryReceiver) -> Iterator[SentryReceiver]:
    shutdown_sentry()
    with sentry_sdk.isolation_scope():
        assert init_sentry(_settings(sentry_receiver.dsn))
        yield sentry_receiver
    shutdown_sentry()


def test_breadcrumb_data_is_an_allow_list_of_keys_and_shapes(sentry: SentryReceiver) -> None:
    with processing_scope(4711, "agent_2_extraction", "corr-1"):
        add_breadcrumb(
            "extraction",
            "fields extracted",
            data={
                "debtor": "Erika Mustermann",
                "iban_number": "DE89370400440532013000",
                "fields": 4,
                "confidence": 0.8,
                "route": "medium",
                "intent": "Erika Mustermann",  # an enum key with free text: dropped
                "stage": "extract",
                "report_id": 17,
                "email_id": "erika@example.com",  # an id key with an address: dropped
                "missing": ["iban", "Erika Mustermann"],  # one item is not an enum word
            },
        )
        capture_message("checked", level="warning")
    sentry_sdk.flush(timeout=5)
    (event,) = sentry.wait_for_events(1)
    (crumb,) = event["breadcrumbs"]["values"]
    assert crumb["data"] == {
        "fields": 4,
        "confidence": 0.8,
        "route": "medium",
        "stage": "extract",
        "report_id": 17,
    }


def test_foreign_log_messages_are_sent_as_logger_and_level_only(sentry: SentryReceiver) -> None:
    name = "Erika Mustermann"
    foreign = logging.getLogger("hostapp.pipeline")
    own = logging.getLogger("reportlib.round2")
    with processing_scope(4712, "agent_2_extraction"):
        foreign.warning(f"extracted {name} owing 1234.56")  # noqa: G004 - the finding
        own.warning("stored report %s", name)
        foreign.error(f"could not store {name}")  # noqa: G004 - the finding
    sentry_sdk.flush(timeout=5)
    (event,) = sentry.wait_for_events(1)
    assert (event["logger"], event["level"], event["logentry"]) == (
        "hostapp.pipeline",
        "error",
        {"message": "(log message withheld)"},
    )
    crumbs = [
        {k: v for k, v in c.items() if k != "timestamp"} for c in event["breadcrumbs"]["values"]
    ]
    assert crumbs == [
        {"type": "log", "category": "hostapp.pipeline", "level": "warning"},
        {
            "type": "log",
            "category": "reportlib.round2",
            "level": "warning",
            "message": "stored report %s",
        },
    ]
    assert name.encode() not in b"".join(sentry.raw_bodies())


def test_tag_values_must_fit_their_shape(sentry: SentryReceiver) -> None:
    with processing_scope(4713, "agent_2_extraction", "corr-2"):
        sentry_sdk.set_tag("intent", "Erika Mustermann owes 1234")
        sentry_sdk.set_tag("route", "Erika")
        sentry_sdk.set_tag("stage", "extract")
        sentry_sdk.set_tag("page", "review")
        capture_message("tagged", level="warning")
        sentry_sdk.set_tag("actor", "erika@example.com")
        capture_message("tagged again", level="warning")
    sentry_sdk.flush(timeout=5)
    first, second = sentry.wait_for_events(2)
    assert first["tags"] == {
        "email_id": "4713",
        "actor": "agent_2_extraction",
        "correlation_id": "corr-2",
        "stage": "extract",
        "page": "review",
    }
    assert "actor" not in second["tags"]
    assert b"Erika" not in b"".join(sentry.raw_bodies())
