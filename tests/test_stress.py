"""Concurrent writers on PostgreSQL: nothing lost, nothing duplicated, nothing mixed.

Several processes upsert reports for a small, overlapping set of emails, in a different
random order each. Every payload is distinguishable (a unique token in an extra field, and
confidences, route, counts and values derived from that token), so the final row of each
email must be exactly one payload that was really written - never a mix of two. The
per-field rows the rollups read must match the final report exactly.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import random
import re
import zlib
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text, true
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from reportlib import migrate
from reportlib.db import make_engine, session_scope
from reportlib.models import ProcessingReport
from reportlib.rollups import report_field_rows
from reportlib.service import (
    ReportInput,
    create_processing_report,
    create_processing_reports,
    ensure_incoming_email,
)

PROCESSES = 4
UPSERTS_PER_PROCESS = 300
BATCHES_PER_PROCESS = 40
BATCH_SIZE = 8
EMAIL_IDS = tuple(range(7001, 7013))  # 12 emails shared by every process
KEY_FIELDS = ("client_name", "creditor_name", "debt_amount", "reference_numbers")
INTENTS = ("debt_claim", "payment_plan", "dispute", "other")
COLUMNS = (
    "email_id",
    "extracted_fields",
    "missing_fields",
    "overall_confidence",
    "confidence_route",
    "needs_review",
    "review_reason",
    "intent",
    "sources_processed",
    "total_tokens_used",
    "processing_time_ms",
)
_MULTI_ROW_EMAIL_PARAM = re.compile(r"^email_id(?:_m|__)(\d+)$")

pytestmark = pytest.mark.postgres


# -- payloads: everything derived from (token, email_id) ---------------------------------
def _number(token: str, email_id: int, salt: str) -> int:
    return zlib.crc32(f"{salt}|{token}|{email_id}".encode())


def _confidence(token: str, email_id: int, salt: str) -> float:
    return (_number(token, email_id, salt) % 10_001) / 10_000


def _route(confidence: float) -> str:
    return "high" if confidence >= 0.8 else "medium" if confidence >= 0.5 else "low"


def payload(token: str, email_id: int) -> dict[str, Any]:
    """The arguments one writer passes for ``email_id``; unique per token."""
    variant = _number(token, email_id, "variant") % 4
    overall = _confidence(token, email_id, "overall")
    route = _route(overall)
    extracted: dict[str, Any] = {
        "client_name": f"Client {token}",
        "creditor_name": f"Creditor {token}" if variant != 1 else None,
        "debt_amount": Decimal(_number(token, email_id, "amount") % 10**9) / 100,
        "reference_numbers": [f"AZ-{token}", f"K-{email_id}"] if variant != 2 else [],
        "stress_token": token,
        "extraction_metadata": {
            "client_name": {
                "confidence": _confidence(token, email_id, "client"),
                "source": "email_body",
            },
            "debt_amount": {
                "confidence": _confidence(token, email_id, "amount"),
                "source": f"attachment:{token}.pdf",
            },
        },
    }
    return {
        "extracted_data": extracted,
        "agent_checkpoints": {
            "agent_1_intent": {"intent": INTENTS[variant]},
            "agent_2_extraction": {
                "sources_processed": 1 + variant,
                "total_tokens_used": _number(token, email_id, "tokens") % 100_000,
                "field_confidence": {"creditor_name": _confidence(token, email_id, "creditor")},
            },
        },
        "overall_confidence": overall,
        "confidence_route": route,
        "needs_review": route != "high",
        "review_reason": f"route {route} for {token}" if route != "high" else None,
        "processing_time_ms": _number(token, email_id, "time") % 60_000,
    }


def expected_row(token: str, email_id: int) -> dict[str, Any]:
    """The stored ``COLUMNS`` for ``payload(token, email_id)``, written out independently."""
    args = payload(token, email_id)
    data = args["extracted_data"]
    meta = data["extraction_metadata"]
    extraction = args["agent_checkpoints"]["agent_2_extraction"]
    fields: dict[str, Any] = {
        "client_name": {
            "value": data["client_name"],
            "confidence": meta["client_name"]["confidence"],
            "source": "email_body",
        },
        "debt_amount": {
            "value": data["debt_amount"],
            "confidence": meta["debt_amount"]["confidence"],
            "source": meta["debt_amount"]["source"],
        },
        "stress_token": {"value": token, "confidence": 0.5, "source": "unknown"},
    }
    if data["creditor_name"] is not None:
        fields["creditor_name"] = {
            "value": data["creditor_name"],
            "confidence": extraction["field_confidence"]["creditor_name"],
            "source": "unknown",
        }
    if data["reference_numbers"]:
        fields["reference_numbers"] = {
            "value": data["reference_numbers"],
            "confidence": 0.5,
            "source": "unknown",
        }
    return {
        "email_id": email_id,
        "extracted_fields": fields,
        "missing_fields": [name for name in KEY_FIELDS if name not in fields],
        "overall_confidence": args["overall_confidence"],
        "confidence_route": args["confidence_route"],
        "needs_review": args["needs_review"],
        "review_reason": args["review_reason"],
        "intent": args["agent_checkpoints"]["agent_1_intent"]["intent"],
        "sources_processed": extraction["sources_processed"],
        "total_tokens_used": extraction["total_tokens_used"],
        "processing_time_ms": args["processing_time_ms"],
    }


# -- workers (separate processes) ----------------------------------------------------------
def _single_writer(url: str, index: int, start: Any, results: Any) -> None:
    """Upsert one report per transaction, emails in this process's own random order."""
    rng = random.Random(1000 + index)
    engine = make_engine(url)
    written: list[tuple[int, str, int, str]] = []  # email, token, report id, created_at
    errors: list[str] = []
    start.wait(timeout=60)
    for seq in range(UPSERTS_PER_PROCESS):
        email_id = rng.choice(EMAIL_IDS)
        token = f"s{index}-{seq}"
        try:
            with session_scope(engine) as session:
                report = create_processing_report(session, email_id, **payload(token, email_id))
                written.append((email_id, token, report.id, report.created_at.isoformat()))
        except Exception as error:  # counted and reported by class: the test expects none
            errors.append(type(error).__name__)
    engine.dispose()
    results.put({"index": index, "written": written, "errors": errors})


def _batch_writer(url: str, index: int, start: Any, results: Any) -> None:
    """Write batches of overlapping emails, each batch in a different random key order."""
    rng = random.Random(2000 + index)
    engine = make_engine(url)
    unsorted_statements: list[list[int]] = []
    multi_row_statements = 0

    @event.listens_for(engine, "before_cursor_execute")
    def _record_row_order(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        nonlocal multi_row_statements
        if statement.startswith("INSERT INTO processing_reports") and "FROM reportlib_batch_stage" in statement:
            # The COPY path: one upsert from the staged rows, in email_id order.
            multi_row_statements += 1
            if not statement.rstrip().split(" ON CONFLICT")[0].endswith("ORDER BY email_id"):
                unsorted_statements.append([])
        elif statement.startswith("INSERT INTO processing_reports") and isinstance(
            parameters, dict
        ):
            keyed = sorted(
                (int(match.group(1)), value)
                for key, value in parameters.items()
                if (match := _MULTI_ROW_EMAIL_PARAM.match(key))
            )
            order = [email_id for _, email_id in keyed]
            if len(order) > 1:
                multi_row_statements += 1
            if order != sorted(order):
                unsorted_statements.append(order)

    written: list[tuple[int, str]] = []
    errors: list[str] = []
    start.wait(timeout=60)
    for seq in range(BATCHES_PER_PROCESS):
        emails = rng.sample(EMAIL_IDS, BATCH_SIZE)  # a random subset in a random order
        items = [(email_id, f"b{index}-{seq}") for email_id in emails]
        if seq % 5 == 0:  # the same email twice in one batch: the later report wins
            items.append((emails[0], f"b{index}-{seq}-again"))
        batch = [ReportInput(email_id=e, **payload(token, e)) for e, token in items]
        try:
            with session_scope(engine) as session:
                count = create_processing_reports(session, batch)
            if count != len(set(emails)):
                errors.append(f"count {count} != {len(set(emails))}")
            last = {email_id: token for email_id, token in items}
            written.extend(last.items())
        except Exception as error:  # counted and reported by class: the test expects none
            errors.append(type(error).__name__)
    engine.dispose()
    results.put(
        {
            "index": index,
            "written": written,
            "errors": errors,
            "unsorted": unsorted_statements,
            "multi_row_statements": multi_row_statements,
        }
    )


def run_writers(url: str, target: Any) -> list[dict[str, Any]]:
    # fork: a spawned child re-imports the world, which costs seconds on a loaded 2-core
    # machine. Children build their own engines and never touch the parent's pools.
    context = multiprocessing.get_context("fork")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(url, index, start, results))
        for index in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcome = [results.get(timeout=120) for _ in processes]  # drain before joining
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return sorted(outcome, key=lambda result: result["index"])


# -- checks ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stress_engine(pg_databases: Any) -> Iterator[Engine]:
    url = pg_databases.create("reportlib_stress")
    # Durability on power loss is not under test; waiting for fsync on a shared disk is
    # only slowness. Visibility and locking, which are under test, are unchanged.
    with pg_databases.admin.connect() as admin:
        database = make_url(url).database
        admin.execute(text(f'ALTER DATABASE "{database}" SET synchronous_commit TO off'))
    engine = make_engine(url)
    migrate.upgrade(engine)
    with session_scope(engine) as session:
        for email_id in EMAIL_IDS:
            ensure_incoming_email(session, email_id, subject="Mahnung", sender="x@example.test")
    yield engine
    engine.dispose()


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def stored_rows(session: Session) -> dict[int, dict[str, Any]]:
    reports = session.scalars(select(ProcessingReport).order_by(ProcessingReport.email_id))
    return {
        report.email_id: {
            "id": report.id,
            "created_at": report.created_at,
            "row": {name: getattr(report, name) for name in COLUMNS},
        }
        for report in reports
    }


def assert_field_rows_match(session: Session, rows: dict[int, dict[str, Any]]) -> None:
    by_report: dict[int, dict[str, tuple[Any, ...]]] = defaultdict(dict)
    for field in session.execute(select(report_field_rows(true()).subquery())):
        by_report[field.report_id][field.field_name] = (
            field.confidence,
            field.is_missing,
            field.created_at,
            field.intent,
            field.confidence_route,
        )
    expected: dict[int, dict[str, tuple[Any, ...]]] = {}
    for stored in rows.values():
        row = stored["row"]
        common = (stored["created_at"], row["intent"], row["confidence_route"])
        fields = {
            name: (entry["confidence"], False, *common)
            for name, entry in row["extracted_fields"].items()
        }
        fields.update({name: (None, True, *common) for name in row["missing_fields"]})
        expected[stored["id"]] = fields
    assert dict(by_report) == expected


def assert_final_rows_are_written_payloads(
    rows: dict[int, dict[str, Any]], written: dict[int, set[str]]
) -> None:
    assert set(rows) == set(written)  # exactly one row per email that was written
    for email_id, stored in rows.items():
        token = stored["row"]["extracted_fields"]["stress_token"]["value"]
        assert token in written[email_id], f"email {email_id}: payload {token} never written"
        assert stored["row"] == expected_row(token, email_id)


def test_concurrent_single_upserts_lose_nothing_and_never_mix(stress_engine: Engine) -> None:
    outcome = run_writers(url_of(stress_engine), _single_writer)

    assert [result["errors"] for result in outcome] == [[] for _ in range(PROCESSES)]
    assert sum(len(result["written"]) for result in outcome) == PROCESSES * UPSERTS_PER_PROCESS
    written: dict[int, set[str]] = defaultdict(set)
    ids: dict[int, set[int]] = defaultdict(set)
    created: dict[tuple[int, str], str] = {}
    for result in outcome:
        for email_id, token, report_id, created_at in result["written"]:
            written[email_id].add(token)
            ids[email_id].add(report_id)
            created[(email_id, token)] = created_at

    with Session(stress_engine) as session:
        rows = stored_rows(session)
        assert_final_rows_are_written_payloads(rows, written)
        # Re-processing updates in place: every writer of an email saw the same report id.
        assert {email_id: {stored["id"]} for email_id, stored in rows.items()} == dict(ids)
        for email_id, stored in rows.items():
            token = stored["row"]["extracted_fields"]["stress_token"]["value"]
            # created_at comes from the same statement as the payload that won.
            returned = dt.datetime.fromisoformat(created[(email_id, token)])
            assert stored["created_at"] == returned
        assert_field_rows_match(session, rows)

    # -- the same through the batch API, over the reports written above ----------------
    ids_before = {email_id: stored["id"] for email_id, stored in rows.items()}
    outcome = run_writers(url_of(stress_engine), _batch_writer)

    assert [result["errors"] for result in outcome] == [[] for _ in range(PROCESSES)]
    # The service sent every multi-row upsert in email_id order: batches cannot deadlock.
    assert [result["multi_row_statements"] for result in outcome] == [
        BATCHES_PER_PROCESS
    ] * PROCESSES
    assert [result["unsorted"] for result in outcome] == [[] for _ in range(PROCESSES)]
    batch_written: dict[int, set[str]] = defaultdict(set)
    for result in outcome:
        for email_id, token in result["written"]:
            batch_written[email_id].add(token)
    assert set(batch_written) == set(EMAIL_IDS)

    with Session(stress_engine) as session:
        rows = stored_rows(session)
        assert_final_rows_are_written_payloads(rows, batch_written)
        assert {email_id: stored["id"] for email_id, stored in rows.items()} == ids_before
        assert_field_rows_match(session, rows)
