"""Personal-data lifecycle: values older than the retention period are purged, and one
email's or one sender's values are erased on request.

A redaction removes exactly the personal values and keeps what the aggregates read:

=====================  ==================================================================
table                  removed / kept
=====================  ==================================================================
processing_reports     ``extracted_fields``: each field keeps its name and its
                       ``confidence``; its ``value`` and ``source`` go (an entry that is not
                       an object becomes JSON ``null``). ``values_erased_at`` records when.
                       Kept: ids, timestamps, ``missing_fields``, confidences, route, flag,
                       review reason, intent, counts, times.
incoming_emails        ``subject`` and ``sender`` become NULL; id and ``received_at`` stay.
review_decisions       ``note`` becomes NULL; reviewer, outcome and timestamps stay.
review_field_verdicts  ``corrected_value`` becomes NULL; field name, verdict kind,
                       extracted confidence and ``was_missing`` stay.
audit_events           untouched (it never holds values); every purge and erasure adds one
                       row with who, when, the scope and the counts.
=====================  ==================================================================

The database allows the two history updates above and refuses every other change to the
history (migration 0009). Every page's figures are computed from what stays, so they are
the same before and after.

Scope of a purge, for a cutoff ``now - RETENTION_DAYS``: reports processed before it; the
decisions made before it and every decision on such a report; the emails of such reports,
and emails without a report received before it. A purge runs in short transactions of
``batch_size`` rows that skip rows a writer holds (PostgreSQL), so the pipeline's writers
wait at most for one batch. An erasure is one transaction (the caller's): all of the
email's values go, or none.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, null, or_, select, update
from sqlalchemy.orm import Session

from reportlib.audit import check_actor, record_audit_event
from reportlib.checks import check_aware, check_identity, check_int
from reportlib.config import get_settings
from reportlib.dialect import (
    allow_long_statements,
    lock_rows,
    redacted_entries_in_database,
    utcnow,
)
from reportlib.errors import ReportValidationError, UnknownEmailError
from reportlib.models import IncomingEmail, ProcessingReport, ReviewDecision, ReviewFieldVerdict
from reportlib.service import INT32_MAX

#: What a field entry of ``extracted_fields`` keeps after a redaction.
KEPT_FIELD_KEYS = ("confidence",)
#: Rows per purge transaction: a writer that needs a row the purge holds waits for up to
#: one batch. See bench/erase.py and BENCHMARKS.md for the waits measured at 1M reports.
DEFAULT_BATCH_SIZE = 200
MAX_BATCH_SIZE = 100_000
MAX_RETENTION_DAYS = 36_500
SENDER_MAX = 320
# A sender is compared with what emails stored, so only what no address holds is refused.
_SENDER_REFUSED = frozenset({"Cc", "Cf", "Cs", "Co"})
#: Statement time limit of a purge's counting and batch transactions (milliseconds).
LONG_STATEMENT_MS = 300_000
#: Most email ids one audit row lists (an erasure by sender may cover more emails).
AUDIT_MAX_IDS = 1000


@dataclass(frozen=True, slots=True)
class RedactionCounts:
    """How many rows a purge or an erasure redacted (or, in a dry run, would redact)."""

    reports: int = 0
    emails: int = 0
    decisions: int = 0
    verdicts: int = 0

    def __add__(self, other: RedactionCounts) -> RedactionCounts:
        return RedactionCounts(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self))
        )

    @property
    def total(self) -> int:
        return self.reports + self.emails + self.decisions + self.verdicts

    def as_details(self) -> dict[str, int]:
        """The counts as audit details (``reports_count`` ...)."""
        return {f"{f.name}_count": getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class _Scope:
    """Which rows a redaction covers: one condition per table."""

    reports: ColumnElement[bool]
    decisions: ColumnElement[bool]
    emails: ColumnElement[bool]


def redact_extracted_fields(document: Any) -> dict[str, Any]:
    """``extracted_fields`` without values: each entry keeps only its ``confidence``.

    Field names stay (the per-field figures and the missing lists name them); an entry
    that is not an object stays a non-object (``null``), so no figure changes.
    """
    if not isinstance(document, dict):
        return {}
    redacted: dict[str, Any] = {}
    for name, entry in document.items():
        if isinstance(entry, dict):
            redacted[name] = {
                key: entry[key]
                for key in KEPT_FIELD_KEYS
                if key in entry and _is_number(entry[key])
            }
        else:
            redacted[name] = None
    return redacted


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)


# -- scopes ---------------------------------------------------------------------------------

r = ProcessingReport
d = ReviewDecision
v = ReviewFieldVerdict
e = IncomingEmail


def _report_has_values() -> ColumnElement[bool]:
    return r.values_erased_at.is_(None)


def _email_has_values() -> ColumnElement[bool]:
    return or_(e.subject.is_not(None), e.sender.is_not(None))


def _verdicts_with_values() -> ColumnElement[bool]:
    return v.corrected_value.is_not(None)


def _decision_has_values() -> ColumnElement[bool]:
    return or_(
        d.note.is_not(None),
        exists().where(v.decision_id == d.id, _verdicts_with_values()),
    )


def _retention_scope(cutoff: dt.datetime) -> _Scope:
    old_report = select(r.id).where(r.created_at < cutoff)
    return _Scope(
        reports=r.created_at < cutoff,
        decisions=or_(
            d.decided_at < cutoff,
            exists().where(r.id == d.report_id, r.created_at < cutoff),
        ),
        emails=or_(
            exists(old_report.where(r.email_id == e.id)),
            and_(
                ~exists().where(r.email_id == e.id),
                e.received_at < cutoff,
            ),
        ),
    )


def _emails_scope(email_ids: Sequence[int]) -> _Scope:
    if not email_ids:
        nothing = false()
        return _Scope(reports=nothing, decisions=nothing, emails=nothing)
    return _Scope(
        reports=r.email_id.in_(email_ids),
        decisions=or_(
            d.email_id.in_(email_ids),
            exists().where(r.id == d.report_id, r.email_id.in_(email_ids)),
        ),
        emails=e.id.in_(email_ids),
    )


# -- counting (dry runs and progress) -------------------------------------------------------


def _count(db: Session, stmt: Select[Any]) -> int:
    return int(db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def _count_scope(db: Session, scope: _Scope) -> RedactionCounts:
    return RedactionCounts(
        reports=_count(db, select(r.id).where(scope.reports, _report_has_values())),
        emails=_count(db, select(e.id).where(scope.emails, _email_has_values())),
        decisions=_count(db, select(d.id).where(scope.decisions, d.note.is_not(None))),
        verdicts=_count(
            db,
            select(v.id)
            .join(d, d.id == v.decision_id)
            .where(scope.decisions, _verdicts_with_values()),
        ),
    )


# -- redaction steps ------------------------------------------------------------------------


def _redact_reports(db: Session, report_ids: Sequence[int], now: dt.datetime) -> int:
    """Redact the reports ``report_ids`` (locked by the caller): one UPDATE for the batch
    where the database can rewrite the JSON itself, else one per report."""
    if not report_ids:
        return 0
    in_database = redacted_entries_in_database(
        db, r.extracted_fields, kept_number_keys=KEPT_FIELD_KEYS
    )
    if in_database is not None:
        result = db.execute(
            update(ProcessingReport)
            .where(r.id.in_(report_ids))
            .values(extracted_fields=in_database, values_erased_at=now)
            .execution_options(synchronize_session="fetch")
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
    rows = db.execute(select(r.id, r.extracted_fields).where(r.id.in_(report_ids))).all()
    changes = [
        {
            "id": row.id,
            "extracted_fields": redact_extracted_fields(row.extracted_fields),
            "values_erased_at": now,
        }
        for row in rows
    ]
    # Bulk UPDATE by primary key: one statement, executed for each row.
    db.execute(update(ProcessingReport), changes)
    return len(changes)


def _redact_decisions(db: Session, decision_ids: Sequence[int]) -> tuple[int, int]:
    if not decision_ids:
        return 0, 0
    notes = db.execute(
        update(ReviewDecision)
        .where(d.id.in_(decision_ids), d.note.is_not(None))
        .values(note=None)
        .execution_options(synchronize_session=False)
    )
    verdicts = db.execute(
        update(ReviewFieldVerdict)
        .where(v.decision_id.in_(decision_ids), _verdicts_with_values())
        .values(corrected_value=null())
        .execution_options(synchronize_session=False)
    )
    return int(notes.rowcount or 0), int(verdicts.rowcount or 0)  # type: ignore[attr-defined]


def _redact_emails(db: Session, email_ids: Sequence[int]) -> int:
    if not email_ids:
        return 0
    result = db.execute(
        update(IncomingEmail)
        .where(e.id.in_(email_ids), _email_has_values())
        .values(subject=None, sender=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _redact_scope(db: Session, scope: _Scope, now: dt.datetime) -> RedactionCounts:
    """Everything in ``scope`` at once, rows locked as they are read (erasures)."""
    report_ids = list(
        db.scalars(
            lock_rows(
                db, select(r.id).where(scope.reports, _report_has_values()).order_by(r.id), of=r
            )
        )
    )
    decision_ids = list(
        db.scalars(
            lock_rows(
                db,
                select(d.id).where(scope.decisions, _decision_has_values()).order_by(d.id),
                of=d,
            )
        )
    )
    email_ids = list(
        db.scalars(
            lock_rows(
                db, select(e.id).where(scope.emails, _email_has_values()).order_by(e.id), of=e
            )
        )
    )
    redacted_reports = _redact_reports(db, report_ids, now)
    notes, verdicts = _redact_decisions(db, decision_ids)
    emails = _redact_emails(db, email_ids)
    db.flush()
    return RedactionCounts(
        reports=redacted_reports, emails=emails, decisions=notes, verdicts=verdicts
    )


# -- erasure on request ---------------------------------------------------------------------


def check_sender(value: object, field: str = "sender") -> str:
    """``value`` stripped: an address of 1 to 320 characters without control characters.
    Errors name ``field``, never the value."""
    return check_identity(value, field, max_length=SENDER_MAX, refused=_SENDER_REFUSED)


def _now(db: Session, now: dt.datetime | None) -> dt.datetime:
    if now is not None:
        return check_aware(now, "now")
    stamp = db.scalar(select(utcnow()))
    if isinstance(stamp, str):  # SQLite hands back the text of the expression
        stamp = dt.datetime.fromisoformat(stamp)
    assert isinstance(stamp, dt.datetime)
    return stamp.replace(tzinfo=stamp.tzinfo or dt.UTC).astimezone(dt.UTC)


def _erase(
    db: Session,
    *,
    email_ids: list[int],
    actor: str,
    scope_name: str,
    audit_email_id: int | None,
    now: dt.datetime | None,
    dry_run: bool,
) -> RedactionCounts:
    scope = _emails_scope(email_ids)
    if dry_run:
        return _count_scope(db, scope)
    stamp = _now(db, now)
    counts = _redact_scope(db, scope, stamp)
    record_audit_event(
        db,
        actor=actor,
        action="values_erased",
        email_id=audit_email_id,
        details={
            "scope": scope_name,
            "email_ids": email_ids[:AUDIT_MAX_IDS],
            "emails_matched_count": len(email_ids),
            **counts.as_details(),
        },
        occurred_at=stamp,
    )
    return counts


def erase_email(
    db: Session,
    *,
    email_id: int,
    actor: str,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> RedactionCounts:
    """Erase every personal value of one email: its report's values, subject, sender,
    the notes and corrected values of every decision on it. Flushes; never commits, so
    the caller's transaction makes it all or nothing. Idempotent: a second call redacts
    nothing and returns zero counts (and still records the request in the audit trail).

    Raises :class:`UnknownEmailError` when no such email exists; ``dry_run`` counts what
    would be redacted and writes nothing.
    """
    check_int(email_id, "email_id", 1, INT32_MAX)
    actor = check_actor(actor)
    if db.get(IncomingEmail, email_id) is None:
        raise UnknownEmailError("email_id")
    return _erase(
        db,
        email_ids=[email_id],
        actor=actor,
        scope_name="email",
        audit_email_id=email_id,
        now=now,
        dry_run=dry_run,
    )


def erase_sender(
    db: Session,
    *,
    sender: str,
    actor: str,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> RedactionCounts:
    """:func:`erase_email` for every email from ``sender`` (compared regardless of case),
    in one transaction. The audit row lists the email ids, never the address."""
    address = check_sender(sender).lower()
    actor = check_actor(actor)
    email_ids = list(db.scalars(select(e.id).where(func.lower(e.sender) == address).order_by(e.id)))
    return _erase(
        db,
        email_ids=email_ids,
        actor=actor,
        scope_name="sender",
        audit_email_id=None,
        now=now,
        dry_run=dry_run,
    )


# -- retention ------------------------------------------------------------------------------


def retention_cutoff(*, now: dt.datetime, retention_days: int) -> dt.datetime:
    """The instant before which values are purged."""
    check_int(retention_days, "retention_days", 1, MAX_RETENTION_DAYS)
    return check_aware(now, "now") - dt.timedelta(days=retention_days)


def count_expired(db: Session, *, cutoff: dt.datetime) -> RedactionCounts:
    """What a purge with ``cutoff`` would redact (rows that still hold values)."""
    return _count_scope(db, _retention_scope(check_aware(cutoff, "cutoff")))


@dataclass(frozen=True, slots=True)
class PurgeBatch:
    """One batch of a purge: what it redacted, and where the next batch starts."""

    counts: RedactionCounts
    after: Any
    done: bool


def purge_reports_batch(
    db: Session, *, cutoff: dt.datetime, after: dt.datetime | None, limit: int, now: dt.datetime
) -> PurgeBatch:
    """Redact up to ``limit`` reports processed before ``cutoff`` (from ``after`` on, in
    ``created_at`` order), skipping rows another transaction holds. Flushes."""
    stmt = select(r.id, r.created_at).where(r.created_at < cutoff, _report_has_values())
    if after is not None:
        stmt = stmt.where(r.created_at >= after)
    rows = db.execute(
        lock_rows(db, stmt.order_by(r.created_at, r.id).limit(limit), of=r, skip_locked=True)
    ).all()
    count = _redact_reports(db, [row.id for row in rows], now)
    db.flush()
    return PurgeBatch(
        RedactionCounts(reports=count),
        after=rows[-1].created_at if rows else after,
        done=len(rows) < limit,
    )


def _free_ids_after(
    db: Session, entity: Any, after: int, limit: int, *conditions: ColumnElement[bool]
) -> list[int]:
    """Up to ``limit`` ids of ``entity`` above ``after`` that meet ``conditions``, ascending,
    locked for this transaction; rows a writer holds are skipped, not waited for."""
    stmt = select(entity.id).where(entity.id > after, *conditions).order_by(entity.id)
    return list(db.scalars(lock_rows(db, stmt.limit(limit), of=entity, skip_locked=True)))


def purge_decisions_batch(
    db: Session, *, cutoff: dt.datetime, after: int, limit: int
) -> PurgeBatch:
    """Redact the notes and corrected values of up to ``limit`` decisions in scope of
    ``cutoff`` with an id above ``after``. Flushes."""
    scope = _retention_scope(cutoff)
    ids = _free_ids_after(db, d, after, limit, scope.decisions, _decision_has_values())
    notes, verdicts = _redact_decisions(db, ids)
    db.flush()
    return PurgeBatch(
        RedactionCounts(decisions=notes, verdicts=verdicts),
        after=ids[-1] if ids else after,
        done=len(ids) < limit,
    )


def purge_emails_batch(db: Session, *, cutoff: dt.datetime, after: int, limit: int) -> PurgeBatch:
    """Clear the subject and sender of up to ``limit`` emails in scope of ``cutoff`` with
    an id above ``after``. Flushes."""
    scope = _retention_scope(cutoff)
    ids = _free_ids_after(db, e, after, limit, scope.emails, _email_has_values())
    count = _redact_emails(db, ids)
    db.flush()
    return PurgeBatch(
        RedactionCounts(emails=count), after=ids[-1] if ids else after, done=len(ids) < limit
    )


Progress = Callable[[RedactionCounts, RedactionCounts], None]


def purge_expired(
    sessions: Callable[[], Session],
    *,
    actor: str,
    retention_days: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RedactionCounts:
    """Purge every value older than the retention period, a batch per transaction.

    ``retention_days`` defaults to ``RETENTION_DAYS``; unset there too, there is nothing
    to purge (values are kept forever) and :class:`ReportValidationError` says so.
    ``progress(done, total)`` is called after each batch. The purge writes one audit row
    with the counts at the end (also when it stops on an error, with what it did).
    It can be stopped and run again: it continues where it stopped.
    """
    actor = check_actor(actor)
    days = retention_days if retention_days is not None else get_settings().retention_days
    if days is None:
        raise ReportValidationError(
            "retention_days", "is not set (RETENTION_DAYS unset keeps values forever)"
        )
    check_int(batch_size, "batch_size", 1, MAX_BATCH_SIZE)
    with sessions() as db:
        # Counting a million rows may take longer than an interactive statement may.
        allow_long_statements(db, timeout_ms=LONG_STATEMENT_MS)
        stamp = _now(db, now)
        cutoff = retention_cutoff(now=stamp, retention_days=days)
        total = count_expired(db, cutoff=cutoff)
        db.rollback()
    if dry_run:
        return total
    done = RedactionCounts()
    try:
        after_created: dt.datetime | None = None
        while True:
            with sessions() as db, db.begin():
                allow_long_statements(db, timeout_ms=LONG_STATEMENT_MS)
                batch = purge_reports_batch(
                    db, cutoff=cutoff, after=after_created, limit=batch_size, now=stamp
                )
            done, after_created = done + batch.counts, batch.after
            if progress is not None:
                progress(done, total)
            if batch.done:
                break
        for step in (purge_decisions_batch, purge_emails_batch):
            after_id = 0
            while True:
                with sessions() as db, db.begin():
                    # Finding a batch may read far (rows without values are passed over);
                    # only the rows it returns are locked.
                    allow_long_statements(db, timeout_ms=LONG_STATEMENT_MS)
                    batch = step(db, cutoff=cutoff, after=after_id, limit=batch_size)
                done, after_id = done + batch.counts, batch.after
                if progress is not None:
                    progress(done, total)
                if batch.done:
                    break
    finally:
        with sessions() as db, db.begin():
            record_audit_event(
                db,
                actor=actor,
                action="values_purged",
                details={
                    "scope": "retention",
                    "retention_days": days,
                    "cutoff_date": cutoff.date(),
                    **done.as_details(),
                },
            )
    return done


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "KEPT_FIELD_KEYS",
    "PurgeBatch",
    "RedactionCounts",
    "check_sender",
    "count_expired",
    "erase_email",
    "erase_sender",
    "purge_decisions_batch",
    "purge_emails_batch",
    "purge_expired",
    "purge_reports_batch",
    "redact_extracted_fields",
    "retention_cutoff",
]
