"""Audit samples: a share of the reports the pipeline did not flag, reviewed anyway, so that
the accuracy of what passes unreviewed can be measured (:mod:`reportlib.accuracy`).

The choice is made by the writer, in the statement that stores the report
(:func:`reportlib.service.create_processing_report` and the batch writer), from two things
only: the email id and the rate that applies to the report's route and intent. The email id
is hashed to a number in [0, 1) (:func:`audit_draw`); the report is an audit sample when
that number is below the rate. So the choice is reproducible anywhere, the same on every
re-processing of the email, and independent of everything the pipeline extracted. An audit
sample enters the review queue (``needs_review``) with the reason :data:`AUDIT_REASON`, and
its rate is stored with it (``processing_reports.audit_rate``), so estimates can weight each
audited value by ``1 / rate``. Reports the pipeline flagged are never audit samples.

Rates come from the settings: ``AUDIT_SAMPLE_RATE`` (0 by default: no sampling) and
``AUDIT_SAMPLE_OVERRIDES`` such as ``high=0.01,low=0.05,debt_claim=0.03``. A key that names a
route (``high``, ``medium``, ``low``) sets that route's rate; any other key names an intent.
An intent's rate wins over its route's, which wins over the default.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from reportlib.models import ROUTES

if TYPE_CHECKING:
    from reportlib.config import Settings

#: The review reason of an audit sample.
AUDIT_REASON: Final = "audit sample"
#: Fixed for good: changing it would re-draw every email, and re-processing would then
#: move reports in and out of the sample.
_PERSON: Final = b"reportlib-audit"
_SCALE: Final = float(2**64)


def audit_draw(email_id: int) -> float:
    """The email's number in [0, 1): a keyed BLAKE2b hash of its id, the same on every
    machine and every processing."""
    digest = hashlib.blake2b(
        int(email_id).to_bytes(8, "big", signed=True), digest_size=8, person=_PERSON
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True)
class AuditRates:
    """The sampling rate of each route and intent."""

    default: float = 0.0
    by_route: Mapping[str, float] = field(default_factory=dict)
    by_intent: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_overrides(cls, default: float, overrides: Mapping[str, float]) -> AuditRates:
        """Split ``AUDIT_SAMPLE_OVERRIDES`` into route and intent rates."""
        return cls(
            default=default,
            by_route={k: v for k, v in overrides.items() if k in ROUTES},
            by_intent={k: v for k, v in overrides.items() if k not in ROUTES},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditRates:
        """The rates of ``AUDIT_SAMPLE_RATE`` and ``AUDIT_SAMPLE_OVERRIDES``."""
        return cls.from_overrides(settings.audit_sample_rate, settings.audit_sample_overrides)

    @property
    def enabled(self) -> bool:
        """Whether any report can be sampled at all."""
        return (
            self.default > 0
            or any(v > 0 for v in self.by_route.values())
            or any(v > 0 for v in self.by_intent.values())
        )

    def rate(self, route: str, intent: str | None) -> float:
        """The rate for a report of ``route`` and ``intent``."""
        if intent is not None and intent in self.by_intent:
            return self.by_intent[intent]
        return self.by_route.get(route, self.default)

    def sample_rate(self, email_id: int, route: str, intent: str | None) -> float | None:
        """The rate an unflagged report was sampled at, or None when it is not sampled."""
        rate = self.rate(route, intent)
        if rate > 0 and audit_draw(email_id) < rate:
            return rate
        return None


__all__ = ["AUDIT_REASON", "AuditRates", "audit_draw"]
