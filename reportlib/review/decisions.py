"""Decisions: validate per-field verdicts and record them with their audit rows."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    Table,
    delete,
    insert,
    select,
)
from sqlalchemy.orm import Session

from reportlib.audit import is_field_name, record_audit_event
from reportlib.checks import (
    check_aware,
)
from reportlib.config import get_settings
from reportlib.dialect import (
    lock_rows,
)
from reportlib.errors import ReportValidationError, ReviewError
from reportlib.models import (
    FIELD_VERDICTS,
    REVIEW_OUTCOMES,
    ProcessingReport,
    ReviewClaim,
    ReviewDecision,
    ReviewFieldVerdict,
)
from reportlib.queries import open_review_condition
from reportlib.review.records import (
    FIELD_KINDS,
    NOTE_MAX,
    AlreadyDecidedError,
    ClaimConflictError,
    DecisionRecord,
    FieldVerdict,
    NotClaimedError,
    NotInQueueError,
    ReviewField,
    ReviewInputError,
    StaleReportError,
    ValuesErasedError,
    VerdictRecord,
    check_report_id,
    check_reviewer,
    resolve_now,
    verdict_label,
)
from reportlib.service import (
    check_json_text,
    check_json_value,
    is_empty,
)


def _check_note(note: object) -> str | None:
    if note is None:
        return None
    if not isinstance(note, str):
        raise ReviewInputError("note", "must be text")
    if len(note) > NOTE_MAX:
        raise ReviewInputError("note", f"must be at most {NOTE_MAX} characters")
    try:
        check_json_text(note, "note")
    except ReportValidationError as exc:
        raise ReviewInputError(exc.field, exc.problem) from None
    return note if note.strip() else None


def review_fields(
    extracted_fields: Any, missing_fields: Any, key_fields: Sequence[str]
) -> list[ReviewField]:
    """The fields of one processing, key fields first, then the rest by name."""
    extracted = (
        {k: v for k, v in extracted_fields.items() if isinstance(v, Mapping)}
        if isinstance(extracted_fields, Mapping)
        else {}
    )
    missing = [
        name
        for name in (missing_fields if isinstance(missing_fields, list) else [])
        if isinstance(name, str) and name not in extracted
    ]
    names = list(dict.fromkeys([*extracted, *missing]))
    order = {name: position for position, name in enumerate(key_fields)}
    names.sort(key=lambda name: (order.get(name, len(order)), name))
    fields: list[ReviewField] = []
    for name in names:
        meta = extracted.get(name)
        confidence = meta.get("confidence") if meta is not None else None
        source = meta.get("source") if meta is not None else None
        fields.append(
            ReviewField(
                name=name,
                value=meta.get("value") if meta is not None else None,
                confidence=float(confidence)
                if isinstance(confidence, (int, float, decimal.Decimal))
                and not isinstance(confidence, bool)
                else None,
                source=source if isinstance(source, str) else None,
                was_missing=meta is None,
                is_key_field=name in order,
            )
        )
    return fields


def _normalize_verdict(raw: object, label: str) -> FieldVerdict:
    if isinstance(raw, FieldVerdict):
        return raw
    if isinstance(raw, str):
        return FieldVerdict(raw)
    if isinstance(raw, Mapping) and set(raw) <= {"verdict", "corrected_value"}:
        return FieldVerdict(raw.get("verdict", ""), raw.get("corrected_value"))
    raise ReviewInputError(label, "must be a verdict: correct, corrected or absent")


def _validate_verdicts(
    verdicts: object,
    fields: Sequence[ReviewField],
    key_fields: Sequence[str],
) -> list[dict[str, Any]]:
    """Check one verdict per field and return the verdict rows to store."""
    if not isinstance(verdicts, Mapping):
        raise ReviewInputError("verdicts", "must map each field name to a verdict")
    by_name = {f.name: f for f in fields}
    for position, name in enumerate(verdicts):
        if not isinstance(name, str) or (name not in by_name and name not in key_fields):
            raise ReviewInputError(verdict_label(name, position), "is not a field of this report")
    for position, wanted in enumerate(fields):
        if wanted.name not in verdicts:
            raise ReviewInputError(verdict_label(wanted.name, position), "needs a verdict")
    rows: list[dict[str, Any]] = []
    for position, (name, raw) in enumerate(verdicts.items()):
        label = verdict_label(name, position)
        given = _normalize_verdict(raw, label)
        report_field = by_name.get(name)
        was_missing = report_field is None or report_field.was_missing
        if given.verdict not in FIELD_VERDICTS:
            raise ReviewInputError(label, "must be one of " + ", ".join(FIELD_VERDICTS))
        corrected: Any = None
        if given.verdict == "corrected":
            if is_empty(given.corrected_value):
                raise ReviewInputError(
                    f"{label}.corrected_value", "is empty: give the value or choose 'absent'"
                )
            try:
                corrected = check_json_value(given.corrected_value, f"{label}.corrected_value")
            except ReportValidationError as exc:
                raise ReviewInputError(exc.field, exc.problem) from None
            if not was_missing and report_field is not None and corrected == report_field.value:
                raise ReviewInputError(
                    f"{label}.corrected_value", "equals the extracted value: choose 'correct'"
                )
        elif given.corrected_value is not None:
            raise ReviewInputError(f"{label}.corrected_value", "is only allowed with 'corrected'")
        if given.verdict == "correct" and was_missing:
            raise ReviewInputError(
                label, "was marked missing: choose 'absent' or give the value with 'corrected'"
            )
        rows.append(
            {
                "field_name": name,
                "verdict": given.verdict,
                "corrected_value": corrected,
                "extracted_confidence": None
                if was_missing or report_field is None
                else report_field.confidence,
                "was_missing": was_missing,
            }
        )
    rows.sort(key=lambda row: row["field_name"])
    return rows


def _check_outcome(outcome: object, rows: Sequence[Mapping[str, Any]]) -> str:
    if outcome not in REVIEW_OUTCOMES:
        raise ReviewInputError("outcome", "must be one of " + ", ".join(REVIEW_OUTCOMES))
    assert isinstance(outcome, str)
    changed = any(
        row["verdict"] == "corrected" or (row["verdict"] == "absent" and not row["was_missing"])
        for row in rows
    )
    if outcome == "approved" and changed:
        raise ReviewInputError("outcome", "is 'approved' but some field was corrected")
    if outcome == "corrected" and not changed:
        raise ReviewInputError("outcome", "is 'corrected' but no field was corrected")
    return outcome


def decide_report(
    db: Session,
    *,
    report_id: int,
    reviewer: str,
    outcome: str,
    verdicts: Mapping[str, FieldVerdict | str],
    note: str | None = None,
    report_created_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
    key_fields: Sequence[str] | None = None,
) -> DecisionRecord:
    """Record ``reviewer``'s decision on the current processing of ``report_id``.

    ``verdicts`` maps every extracted and every missing field of the report (key fields
    the report lacks are also accepted) to ``"correct"``, ``"absent"`` or
    ``FieldVerdict("corrected", value)``; a field marked missing takes ``"absent"`` or a
    value. The value is validated like extracted values. ``outcome`` is ``approved`` (no
    field corrected), ``corrected`` (some field corrected, or an extracted value was
    bogus) or ``rejected``. Pass ``report_created_at`` as shown to the reviewer to refuse
    a decision on a report re-processed meanwhile (:class:`StaleReportError`).

    Only the holder of an unexpired claim may decide (:class:`NotClaimedError`,
    :class:`ClaimConflictError`); a report already decided for its current processing
    raises :class:`AlreadyDecidedError`; one whose values were erased raises
    :class:`ValuesErasedError`; bad input raises :class:`ReviewInputError` naming the
    field. In every error case nothing is written. On success the claim is
    released and a ``review_decided`` audit row (ids, field names, verdicts; no values)
    written. Flushes; never commits.
    """
    reviewer = check_reviewer(reviewer)
    report_id = check_report_id(report_id)
    note = _check_note(note)
    if outcome not in REVIEW_OUTCOMES:
        raise ReviewInputError("outcome", "must be one of " + ", ".join(REVIEW_OUTCOMES))
    expected = (
        None
        if report_created_at is None
        else check_aware(report_created_at, "report_created_at", error=ReviewInputError)
    )
    keys = tuple(key_fields) if key_fields is not None else get_settings().key_fields
    db.flush()

    report_stmt = (
        select(
            ProcessingReport.email_id,
            ProcessingReport.created_at,
            ProcessingReport.needs_review,
            ProcessingReport.extracted_fields,
            ProcessingReport.missing_fields,
            ProcessingReport.values_erased_at,
            # Flagged but not open means decided: one definition of "open" everywhere.
            open_review_condition().label("is_open"),
            ReviewClaim.reviewer.label("holder"),
            ReviewClaim.expires_at.label("claim_expires_at"),
        )
        .outerjoin(ReviewClaim, ReviewClaim.report_id == ProcessingReport.id)
        .where(ProcessingReport.id == report_id)
    )
    # Hold re-processing of this report off until the decision is committed.
    report_stmt = lock_rows(db, report_stmt, of=ProcessingReport, read=True)
    report = db.execute(report_stmt).one_or_none()
    if report is None:
        raise ReviewError(f"report {report_id} does not exist")
    current = resolve_now(db, now)
    if not report.needs_review:
        raise NotInQueueError(f"report {report_id} is not flagged for review")
    if expected is not None and expected != report.created_at:
        raise StaleReportError(
            f"report {report_id} was re-processed after it was opened; reload it"
        )
    if not report.is_open:
        raise AlreadyDecidedError(
            f"report {report_id} was already decided for its current processing"
        )
    if report.values_erased_at is not None:
        raise ValuesErasedError(report_id, report.values_erased_at)
    if current < report.created_at:
        raise ReviewInputError("now", "is before the report's processing time")
    if report.holder is None:
        raise NotClaimedError(f"claim report {report_id} before deciding")
    if report.claim_expires_at <= current:
        raise NotClaimedError(
            f"claim report {report_id} before deciding"
            + (" (your claim expired)" if report.holder == reviewer else "")
        )
    if report.holder != reviewer:
        raise ClaimConflictError(report_id, report.holder, report.claim_expires_at)

    fields = review_fields(report.extracted_fields, report.missing_fields, keys)
    rows = _validate_verdicts(verdicts, fields, keys)
    outcome = _check_outcome(outcome, rows)

    # First write: consume the claim atomically. Losing a race here writes nothing.
    consumed = db.execute(
        delete(ReviewClaim)
        .where(
            ReviewClaim.report_id == report_id,
            ReviewClaim.reviewer == reviewer,
            ReviewClaim.expires_at > current,
        )
        .returning(ReviewClaim.report_id)
    ).one_or_none()
    if consumed is None:
        raise NotClaimedError(f"your claim on report {report_id} was lost; claim it again")
    decision_id = db.scalars(
        insert(ReviewDecision)
        .values(
            report_id=report_id,
            email_id=report.email_id,
            reviewer=reviewer,
            decided_at=current,
            report_created_at=report.created_at,
            outcome=outcome,
            note=note,
        )
        .returning(ReviewDecision.id)
    ).one()
    # Core executemany: one multi-row INSERT, whatever mix of NULLs the rows hold.
    db.execute(
        insert(cast(Table, ReviewFieldVerdict.__table__)),
        [{"decision_id": decision_id, **row} for row in rows],
    )
    safe_names = [row["field_name"] for row in rows if is_field_name(row["field_name"])]
    record_audit_event(
        db,
        actor=reviewer,
        action="review_decided",
        email_id=report.email_id,
        details={
            "report_id": report_id,
            "decision_id": decision_id,
            "outcome": outcome,
            "verdicts": {
                row["field_name"]: row["verdict"] for row in rows if row["field_name"] in safe_names
            },
            "unnamed_fields_count": len(rows) - len(safe_names),
            "has_note": note is not None,
        },
        occurred_at=current,
    )
    return DecisionRecord(
        id=decision_id,
        report_id=report_id,
        email_id=report.email_id,
        reviewer=reviewer,
        decided_at=current,
        report_created_at=report.created_at,
        outcome=outcome,
        note=note,
        verdicts=tuple(VerdictRecord(**row) for row in rows),
        for_current_processing=True,
    )


def parse_corrected_value(field_name: str, text: str, *, like: Any = None) -> Any:
    """Turn a reviewer's typed text into a value shaped like ``like`` (the extracted value).

    Lists are split on new lines and commas; numbers accept ``1234.56`` or ``1234,56``
    and become ``Decimal``; anything else stays text. Without ``like`` (a field marked
    missing) :data:`FIELD_KINDS` decides. Raises :class:`ReviewInputError` naming the
    field; the text is never echoed.
    """
    label = f"verdicts.{field_name}.corrected_value" if is_field_name(field_name) else "verdicts"
    if not isinstance(text, str) or not text.strip():
        raise ReviewInputError(label, "is empty: give the value or choose 'absent'")
    if isinstance(like, (list, tuple)):
        kind = "list"
    elif isinstance(like, (int, float, decimal.Decimal)) and not isinstance(like, bool):
        kind = "number"
    elif like is None:
        kind = FIELD_KINDS.get(field_name, "text")
    else:
        kind = "text"
    stripped = text.strip()
    if kind == "list":
        parts = [part.strip() for line in stripped.splitlines() for part in line.split(",")]
        return [part for part in parts if part]
    if kind == "number":
        cleaned = stripped.replace(" ", "").replace("\u00a0", "")
        if "," in cleaned and "." not in cleaned:
            cleaned = cleaned.replace(",", ".")
        try:
            number = decimal.Decimal(cleaned)
        except decimal.InvalidOperation:
            raise ReviewInputError(label, "must be a number such as 1234.56") from None
        if not number.is_finite():
            raise ReviewInputError(label, "must be a finite number")
        return number
    return stripped
