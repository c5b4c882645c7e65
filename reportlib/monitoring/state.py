"""What the API and the filters share: the running client, the personal keys in force,
and the quiet log of Sentry's own failures."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from reportlib.monitoring.allowlists import PERSONAL_KEYS

# The package's name, as before it was split into modules: hosts and tests filter on it.
log = logging.getLogger("reportlib.monitoring")


@dataclasses.dataclass
class SentryState:
    """The client this package started, what it was started with, and the personal keys."""

    client: Any = None  # the client init_sentry created, if it is still ours
    signature: tuple[Any, ...] | None = None
    warned_disabled: bool = False
    personal_keys: frozenset[str] = PERSONAL_KEYS


sentry_state = SentryState()


def internal_failure(operation: str, exc: BaseException) -> None:
    """Log that a Sentry ``operation`` failed, at debug level, without values."""
    # Type only: the message of an arbitrary exception may carry values.
    log.debug("Sentry %s failed (%s)", operation, type(exc).__name__)
