"""Missing-fields page: frequency, daily counts, by intent, co-occurrence and how many
fields each report misses."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

import pandas as pd
from sqlalchemy import (
    Select,
    func,
    select,
)
from sqlalchemy.orm import Session

from reportlib.checks import (
    share,
)
from reportlib.dialect import as_date
from reportlib.queries.window import (
    MAX_GROUPS,
    NONE_LABEL,
    Dims,
    ReportFilter,
    dim_conditions,
    key_field_names,
    ordered_fields,
    records_frame,
    rollup_read,
    sum_or_zero,
    with_truncation,
)
from reportlib.rollups import STATEMENT_CACHE_SIZE, Dirty, SourceShape, read_dirty, source_rows

#: At most this many distinct sets of missing fields are read per breakdown.
MAX_MISSING_SETS: Final = 10_000


def count_reports(session: Session, *, flt: ReportFilter) -> int:
    """Number of reports in the filtered window."""
    read = rollup_read(session, "rollup_reports", flt, columns=("reports",))
    return int(
        session.execute(_count_statement(read.shape, Dims.of(flt)), read.params).scalar_one()
    )


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _count_statement(shape: SourceShape, dims: Dims) -> Select[Any]:
    s = source_rows(shape)
    return select(sum_or_zero(s.c.reports)).where(*dim_conditions(dims, s))


# A window holds a few distinct sets, each on many rows: each is parsed once.
@functools.lru_cache(maxsize=4096)
def _missing_names(missing_set: str | None) -> tuple[str, ...]:
    """The distinct field names of one report's ``missing_fields`` JSON text."""
    if missing_set is None:
        return ()
    try:
        names = json.loads(missing_set)
    except ValueError:
        return ()
    if not isinstance(names, list):
        return ()
    return tuple(dict.fromkeys(str(name) for name in names if name is not None))


def _missing_sets(
    session: Session, flt: ReportFilter, dirty: Dirty, *by: str
) -> tuple[list[tuple[tuple[Any, ...], tuple[str, ...], int]], bool]:
    """Reports per (``by`` columns, set of missing fields): ``[(by values, names, n)]``,
    and whether :data:`MAX_MISSING_SETS` cut sets off.

    Every report is in exactly one set (an empty one when nothing was missing), so the
    same rows give the totals too. SQL groups by the whole set; splitting a set into its
    fields is left to the caller.
    """
    read = rollup_read(session, "rollup_missing_sets", flt, dirty, columns=("reports",))
    rows = session.execute(_missing_sets_statement(read.shape, Dims.of(flt), by), read.params).all()
    sets = [(tuple(row[: len(by)]), _missing_names(row[len(by)]), int(row[-1])) for row in rows]
    return sets[:MAX_MISSING_SETS], len(sets) > MAX_MISSING_SETS


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _missing_sets_statement(shape: SourceShape, dims: Dims, by: tuple[str, ...]) -> Select[Any]:
    s = source_rows(shape)
    keys = [s.c[name] for name in by]
    return (
        select(*keys, s.c.missing_set, func.sum(s.c.reports))
        .where(*dim_conditions(dims, s))
        .group_by(*keys, s.c.missing_set)
        .order_by(*keys, s.c.missing_set)
        .limit(MAX_MISSING_SETS + 1)
    )


def _top_missing(counts: dict[str, int], limit: int) -> dict[str, int]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return dict(ranked)


def missing_field_frequency(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """How often each field was missing: a count and a share of the window's reports.

    Key fields always appear (with 0 when never missing), followed by other fields that
    went missing; most missing first. Columns: ``field``, ``missing``, ``reports``,
    ``share``.
    """
    keys = key_field_names(key_fields)
    dirty = read_dirty(session, start=flt.start, end=flt.end)
    tally: dict[str, int] = defaultdict(int)
    total = 0
    sets, truncated = _missing_sets(session, flt, dirty)
    for _, missing, n in sets:
        total += n
        for name in missing:
            tally[name] += n
    counts = _top_missing(tally, MAX_GROUPS + len(keys))
    names = ordered_fields(list(counts) + list(keys), keys)
    # Most missing first; ties keep key-field order, then names.
    names.sort(key=lambda name: -counts.get(name, 0))
    records = [
        (name, counts.get(name, 0), total, share(counts.get(name, 0), total)) for name in names
    ]
    frame = records_frame(records, ["field", "missing", "reports", "share"], floats=("share",))
    return with_truncation(frame, truncated or len(tally) > len(counts))


def missing_fields_daily(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per UTC day and field: missing count and share of that day's reports.

    One row per (day, field) for every day of the range and every key field plus any
    other field that went missing. Columns: ``day``, ``field``, ``missing``, ``reports``,
    ``share`` (NaN on days without reports).
    """
    keys = key_field_names(key_fields)
    dirty = read_dirty(session, start=flt.start, end=flt.end)
    counts: dict[tuple[dt.date, str], int] = defaultdict(int)
    tally: dict[str, int] = defaultdict(int)
    totals: dict[dt.date, int] = defaultdict(int)
    sets, truncated = _missing_sets(session, flt, dirty, "day")
    for (day,), missing, n in sets:
        totals[as_date(day)] += n
        for name in missing:
            counts[(as_date(day), name)] += n
            tally[name] += n
    kept = _top_missing(tally, MAX_GROUPS + len(keys))
    names = ordered_fields(list(kept) + list(keys), keys)
    records = [
        (
            d,
            name,
            counts.get((d, name), 0),
            totals.get(d, 0),
            share(counts.get((d, name), 0), totals.get(d, 0)),
        )
        for d in flt.dates()
        for name in names
    ]
    frame = records_frame(
        records, ["day", "field", "missing", "reports", "share"], floats=("share",)
    )
    return with_truncation(frame, truncated or len(tally) > len(kept))


def missing_fields_by_intent(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per intent and field: missing count and share of that intent's reports.

    Intents with reports in the window (most reports first, at most :data:`MAX_GROUPS`)
    times key fields plus other fields that went missing. Columns: ``intent``,
    ``field``, ``missing``, ``reports``, ``share``.
    """
    keys = key_field_names(key_fields)
    dirty = read_dirty(session, start=flt.start, end=flt.end)
    counts: dict[tuple[str | None, str], int] = defaultdict(int)
    tally: dict[str, int] = defaultdict(int)
    per_intent: dict[str | None, int] = defaultdict(int)
    sets, truncated = _missing_sets(session, flt, dirty, "intent")
    for (intent,), missing, n in sets:
        per_intent[intent] += n
        for name in missing:
            counts[(intent, name)] += n
            tally[name] += n
    # Most reports first; NULL last among equals, then by name (as list_intents orders).
    intents = sorted(
        per_intent.items(), key=lambda item: (-item[1], item[0] is None, item[0] or "")
    )
    truncated = truncated or len(intents) > MAX_GROUPS
    intents = intents[:MAX_GROUPS]
    kept = _top_missing(tally, MAX_GROUPS + len(keys))
    names = ordered_fields(list(kept) + list(keys), keys)
    records = [
        (
            NONE_LABEL if intent is None else intent,
            name,
            counts.get((intent, name), 0),
            int(n),
            counts.get((intent, name), 0) / int(n),
        )
        for intent, n in intents
        for name in names
    ]
    frame = pd.DataFrame.from_records(
        records, columns=["intent", "field", "missing", "reports", "share"]
    )
    return with_truncation(frame, truncated or len(tally) > len(kept))


def missing_field_cooccurrence(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """Which fields go missing together.

    One row per ordered pair (``field``, ``other``) of fields, including ``field ==
    other`` (the field's own missing count): ``reports`` where both were missing, and
    ``share`` = that count divided by the reports where ``field`` was missing (NaN when
    it never was). Columns: ``field``, ``other``, ``reports``, ``share``.
    """
    keys = key_field_names(key_fields)
    dirty = read_dirty(session, start=flt.start, end=flt.end)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    tally: dict[str, int] = defaultdict(int)
    sets, truncated = _missing_sets(session, flt, dirty)
    for _, missing, n in sets:
        for x in missing:
            tally[x] += n
            for y in missing:
                counts[(x, y)] += n
    kept = _top_missing(tally, MAX_GROUPS + len(keys))
    names = ordered_fields(list(kept) + list(keys), keys)
    records = [
        (x, y, counts.get((x, y), 0), share(counts.get((x, y), 0), counts.get((x, x), 0)))
        for x in names
        for y in names
    ]
    frame = records_frame(records, ["field", "other", "reports", "share"], floats=("share",))
    return with_truncation(frame, truncated or len(tally) > len(kept))


def missing_count_distribution(
    session: Session, *, flt: ReportFilter, key_fields: Sequence[str] | None = None
) -> pd.DataFrame:
    """How many reports miss 0, 1, 2, ... fields (up to the number of key fields, or more
    if a report lists more). Columns: ``missing_fields``, ``reports``, ``share``."""
    keys = key_field_names(key_fields)
    dirty = read_dirty(session, start=flt.start, end=flt.end)
    counts: dict[int, int] = defaultdict(int)
    total = 0
    sets, truncated = _missing_sets(session, flt, dirty)
    for _, missing, n in sets:
        total += n
        if missing:
            counts[len(missing)] += n
    counts[0] = total - sum(counts.values())
    top = max([len(keys), *counts])
    records = [(n, counts.get(n, 0), share(counts.get(n, 0), total)) for n in range(top + 1)]
    frame = records_frame(records, ["missing_fields", "reports", "share"], floats=("share",))
    return with_truncation(frame, truncated)
