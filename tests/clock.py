"""Keeping tests clear of the UTC day boundary where "today" is part of the expectation."""

from __future__ import annotations

import datetime as dt
import time


def clear_of_utc_midnight(seconds: float) -> None:
    """Wait for the next UTC day if fewer than ``seconds`` remain of this one.

    For tests whose expectation is "today" on both sides of an action (the database's
    "resolved today" before and after a decision, two demo seeds compared with each
    other): they then run within one UTC day, whenever the suite starts.
    """
    now = dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    left = (midnight - now).total_seconds()
    if left < seconds:
        time.sleep(left + 1)
