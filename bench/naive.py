"""The naive approach, for comparison: load the window into pandas, compute in Python.

This is what a user might write without the query module: ``pd.read_sql`` of every
column of the 30-day window (JSON included) plus the review decisions, then the same
numbers as the Overview, Confidence, Missing-fields and Review pages with pandas. It
runs in its own process (see :mod:`bench.probe`) so its peak memory can be read.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from typing import Any

import pandas as pd
from sqlalchemy import create_engine, text

from reportlib.config import normalize_database_url

BIN_COUNT = 20


def _as_obj(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def compute(url: str, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> dict[str, Any]:
    """Load the window and compute the pages' numbers; returns timings and a few results."""
    timings: dict[str, float] = {}
    engine = create_engine(normalize_database_url(url))
    started = time.perf_counter()
    with engine.connect() as connection:
        frame = pd.read_sql(
            text(
                "SELECT * FROM processing_reports WHERE created_at >= :start AND created_at < :end"
            ),
            connection,
            params={"start": start, "end": end},
        )
        decisions = pd.read_sql(
            text("SELECT report_id, decided_at FROM review_decisions"), connection
        )
    engine.dispose()
    timings["load_s"] = time.perf_counter() - started

    started = time.perf_counter()
    frame["extracted_fields"] = frame["extracted_fields"].map(_as_obj)
    frame["missing_fields"] = frame["missing_fields"].map(_as_obj)
    frame["day"] = frame["created_at"].dt.tz_convert("UTC").dt.date

    # Overview
    kpis = {
        "reports": len(frame),
        "avg_confidence": float(frame["overall_confidence"].mean()),
        "flagged": int(frame["needs_review"].sum()),
        "tokens": int(frame["total_tokens_used"].sum()),
        "p50_ms": float(frame["processing_time_ms"].quantile(0.5)),
        "p95_ms": float(frame["processing_time_ms"].quantile(0.95)),
    }
    last_decision = decisions.groupby("report_id")["decided_at"].max()
    flagged = frame[frame["needs_review"]]
    decided = flagged["id"].map(last_decision)
    open_items = flagged[decided.isna() | (decided < flagged["created_at"])]
    kpis["open_in_window"] = len(open_items)
    daily = frame.groupby(["day", "confidence_route"]).agg(
        reports=("id", "size"),
        flagged=("needs_review", "sum"),
        confidence=("overall_confidence", "sum"),
    )

    # Confidence
    bins = (frame["overall_confidence"] * BIN_COUNT).clip(upper=BIN_COUNT - 1).astype(int)
    histogram = frame.groupby([bins, "confidence_route"]).size()
    per_field = pd.DataFrame(
        [
            (name, item.get("confidence"))
            for fields in frame["extracted_fields"]
            for name, item in fields.items()
            if isinstance(item, dict)
        ],
        columns=["field", "confidence"],
    )
    field_summary = per_field.groupby("field")["confidence"].agg(["count", "mean", "min", "max"])
    field_bins = (per_field["confidence"] * BIN_COUNT).clip(upper=BIN_COUNT - 1).astype(int)
    field_histogram = per_field.groupby([per_field["field"], field_bins]).size()
    by_intent = frame.groupby("intent", dropna=False).agg(
        reports=("id", "size"), avg=("overall_confidence", "mean"), flagged=("needs_review", "sum")
    )
    below = int((frame["overall_confidence"] < 0.8).sum())

    # Missing fields
    missing = frame[["id", "day", "intent", "missing_fields"]].explode("missing_fields")
    missing = missing.dropna(subset=["missing_fields"])
    frequency = missing.groupby("missing_fields").size()
    missing_daily = missing.groupby(["day", "missing_fields"]).size()
    missing_intent = missing.groupby(["intent", "missing_fields"], dropna=False).size()
    pairs: dict[tuple[str, str], int] = {}
    for names in frame["missing_fields"]:
        for a, b in itertools.product(names or [], repeat=2):
            pairs[(a, b)] = pairs.get((a, b), 0) + 1
    count_distribution = frame["missing_fields"].map(lambda v: len(v or [])).value_counts()
    timings["compute_s"] = time.perf_counter() - started
    return {
        "timings": timings,
        "rows": len(frame),
        "kpis": kpis,
        "sizes": {
            "daily": len(daily),
            "histogram": len(histogram),
            "field_summary": len(field_summary),
            "field_histogram": len(field_histogram),
            "by_intent": len(by_intent),
            "below": below,
            "frequency": len(frequency),
            "missing_daily": len(missing_daily),
            "missing_intent": len(missing_intent),
            "pairs": len(pairs),
            "count_distribution": len(count_distribution),
        },
    }
