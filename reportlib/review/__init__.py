"""The review loop: claim a flagged report, decide per field, keep the history.

A report is *open* while it is flagged and no decision exists for its current processing
(:func:`reportlib.queries.open_review_condition`). Re-processing moves ``created_at`` to
now, so a report flagged again re-enters the queue with its earlier decisions visible.

Claims are single atomic upserts, so two reviewers never hold the same report; on
PostgreSQL "next item" also skips rows another transaction is claiming right now
(``FOR UPDATE SKIP LOCKED``). Every time-dependent function takes ``now``: ``None``
means the database clock, read once per call, so claims, decisions and audit rows of one
call agree. Writers validate everything before the first write, flush and never commit.

Decisions, verdicts and notes hold personal data: nothing here logs them, error messages
name fields and reports, never values, and audit rows carry ids, field names and outcomes.
"""

from __future__ import annotations

from reportlib.dialect import (
    seconds_between,
)
from reportlib.errors import ReviewError
from reportlib.review.claims import (
    claim_next_report,
    claim_report,
    release_claim,
)
from reportlib.review.decisions import (
    decide_report,
    parse_corrected_value,
)
from reportlib.review.reads import (
    count_review_queue,
    get_review_history,
    get_review_item,
    list_review_queue,
)
from reportlib.review.records import (
    CLAIM_ATTEMPTS,
    FIELD_KINDS,
    MAX_LIMIT,
    MAX_OFFSET,
    NOTE_MAX,
    SORTS,
    AlreadyDecidedError,
    Claim,
    ClaimConflictError,
    DecisionRecord,
    DecisionSummary,
    FieldVerdict,
    NotClaimedError,
    NotInQueueError,
    QueueItem,
    QueueStats,
    ReviewerThroughput,
    ReviewField,
    ReviewInputError,
    ReviewItem,
    StaleReportError,
    ValuesErasedError,
    VerdictRecord,
    check_reviewer,
)
from reportlib.review.stats import (
    get_queue_stats,
    list_decisions,
)

__all__ = [
    "CLAIM_ATTEMPTS",
    "FIELD_KINDS",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "NOTE_MAX",
    "SORTS",
    "ReviewError",
    "SORTS",
    "AlreadyDecidedError",
    "Claim",
    "ClaimConflictError",
    "DecisionRecord",
    "DecisionSummary",
    "FieldVerdict",
    "NotClaimedError",
    "NotInQueueError",
    "QueueItem",
    "QueueStats",
    "ReviewField",
    "ReviewInputError",
    "ReviewItem",
    "ReviewerThroughput",
    "StaleReportError",
    "ValuesErasedError",
    "VerdictRecord",
    "check_reviewer",
    "claim_next_report",
    "claim_report",
    "count_review_queue",
    "decide_report",
    "get_queue_stats",
    "get_review_history",
    "get_review_item",
    "list_decisions",
    "list_review_queue",
    "parse_corrected_value",
    "release_claim",
    "seconds_between",
]
