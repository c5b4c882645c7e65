"""Is the extractor's confidence telling the truth? Answers from reviewer verdicts.

Every number here is aggregated in SQL: from the verdict rollup (``rollup_verdicts``, see
:mod:`reportlib.rollups`) when the window is whole UTC days and the bins and thresholds
fall on the 0.01 grid, as the dashboard's do; otherwise from ``review_field_verdicts``
joined to ``review_decisions``. Both give the same numbers. Python only fills empty bins,
divides counts and sums the per-bin gaps. Definitions (the tests recompute every number with them):

* **Which verdicts count**: every stored verdict, once. A report is decided at most once
  per processing, so a report decided again after re-processing contributes the verdicts
  of each processing, each with the confidence the pipeline gave *that* processing.
  Rejected reports count too: their field verdicts are still verdicts on the values.
* **Window**: ``start <= report_created_at < end`` (either side optional), i.e. when the
  reviewed processing was written, so the quality page lines up with the date filter of
  the other pages.
* **Calibration** uses verdicts on *extracted* fields (``was_missing`` false, confidence
  known). Correct means verdict ``correct``; ``corrected``, and ``absent`` on an extracted
  field (the value was bogus), are wrong.
* **Bin** ``i`` of ``n`` covers ``[i/n, (i+1)/n)``; the last bin also holds 1.0. Bin
  edges are the doubles ``i/n``, compared directly, so both backends agree exactly.
* **ECE** (expected calibration error) = ``sum over non-empty bins of
  n_b / N * |accuracy_b - mean_confidence_b|``.
* **Threshold what-if** for threshold ``t``, over the same extracted verdicts: values with
  confidence ``< t`` would be sent to review; of those ``>= t`` (passed unreviewed), the
  wrong ones would slip through. Only reviewed values are known to be right or wrong, so
  the projection is over reviewed reports (those the pipeline flagged), not all traffic.
* **Missed vs truly absent**: verdicts on fields the pipeline marked missing; ``corrected``
  means the value was there and the extractor missed it, ``absent`` that it truly is not
  in the email.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    case,
    false,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.orm import Session

from reportlib.checks import check_int, check_window, share
from reportlib.errors import ReportValidationError
from reportlib.models import (
    CENTILES,
    FIELD_VERDICTS,
    ReviewDecision,
    ReviewFieldVerdict,
    centile_column,
    centile_sum_column,
)
from reportlib.rollups import (
    BY_TABLE,
    STATEMENT_CACHE_SIZE,
    SourceRead,
    SourceShape,
    plan_source,
    read_dirty,
    source_rows,
)

DEFAULT_BINS: Final = 10
MAX_BINS: Final = 50
DEFAULT_THRESHOLDS: Final = tuple(round(0.50 + 0.05 * step, 2) for step in range(10))
MAX_THRESHOLDS: Final = 50
MAX_FIELDS: Final = 50
#: The last day an open-ended window reaches in the rollups.
LAST_DAY: Final = dt.date(9999, 12, 30)
#: Distinct field names read from the verdict rollup (each page shows at most MAX_FIELDS).
MAX_ROLLUP_FIELDS: Final = 1000


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """One bin of a reliability diagram; ``field_name`` None means all fields."""

    field_name: str | None
    bin_index: int
    lower: float
    upper: float
    n: int
    correct: int
    mean_confidence: float | None
    accuracy: float | None


@dataclass(frozen=True, slots=True)
class FieldCalibration:
    """Calibration of one field (or of all fields when ``field_name`` is None)."""

    field_name: str | None
    n: int
    correct: int
    mean_confidence: float | None
    accuracy: float | None
    ece: float | None
    bins: tuple[CalibrationBin, ...]


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    """Reliability diagrams overall and for the ``MAX_FIELDS`` most-reviewed fields."""

    n_bins: int
    overall: FieldCalibration
    fields: tuple[FieldCalibration, ...]
    fields_truncated: bool

    def bin_rows(self) -> list[CalibrationBin]:
        """Every bin, overall first, as rows for a frame (``pd.DataFrame(report.bin_rows())``)."""
        return [b for part in (self.overall, *self.fields) for b in part.bins]


@dataclass(frozen=True, slots=True)
class ThresholdOutcome:
    """What a per-field threshold ``t`` would have done to the reviewed values."""

    field_name: str | None
    threshold: float
    n: int
    wrong: int
    sent_to_review: int
    review_share: float | None
    passed: int
    wrong_passed: int
    # Of the values passed unreviewed, the share that is wrong.
    wrong_passed_share: float | None
    # Of all wrong values, the share that would pass unreviewed.
    wrong_escape_share: float | None


@dataclass(frozen=True, slots=True)
class ReviewThresholdWhatIf:
    """Threshold outcomes overall (``field_name`` None) and per field, threshold ascending."""

    thresholds: tuple[float, ...]
    rows: tuple[ThresholdOutcome, ...]
    fields_truncated: bool


@dataclass(frozen=True, slots=True)
class MissingOutcome:
    """For one field (None: all) the pipeline marked missing: missed or truly absent."""

    field_name: str | None
    n: int
    missed: int
    truly_absent: int
    missed_share: float | None
    absent_share: float | None


@dataclass(frozen=True, slots=True)
class MissingReport:
    """Missed-vs-absent overall and for the ``MAX_FIELDS`` fields most often marked missing."""

    overall: MissingOutcome
    fields: tuple[MissingOutcome, ...]
    fields_truncated: bool

    def rows(self) -> list[MissingOutcome]:
        """Overall first, then per field, as rows for a frame."""
        return [self.overall, *self.fields]


# --------------------------------------------------------------------------- helpers


def _window(start: dt.datetime | None, end: dt.datetime | None) -> list[ColumnElement[bool]]:
    start, end = check_window(start, end)
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(ReviewDecision.report_created_at >= start)
    if end is not None:
        conditions.append(ReviewDecision.report_created_at < end)
    return conditions


def _check_fields(fields: Sequence[str] | None) -> tuple[str, ...] | None:
    if fields is None:
        return None
    if isinstance(fields, str) or not all(isinstance(name, str) for name in fields):
        raise ReportValidationError("fields", "must be a list of field names")
    names = tuple(dict.fromkeys(fields))
    if not 1 <= len(names) <= MAX_FIELDS:
        raise ReportValidationError("fields", f"must name 1 to {MAX_FIELDS} fields")
    return names


def _rollup_days(
    start: dt.datetime | None, end: dt.datetime | None
) -> tuple[dt.date | None, dt.date] | None:
    """The whole UTC days ``[start, end)`` covers, or None when either edge falls inside a
    day (then only the raw verdicts can answer)."""
    for edge in (start, end):
        if edge is not None and edge.astimezone(dt.UTC).time() != dt.time.min:
            return None
    first = None if start is None else start.astimezone(dt.UTC).date()
    last = LAST_DAY if end is None else end.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    return first, last


def _verdict_read(
    db: Session, start: dt.datetime | None, end: dt.datetime | None, columns: Sequence[str]
) -> SourceRead | None:
    days = _rollup_days(start, end)
    if days is None:
        return None
    first, last = days
    dirty = read_dirty(db, start=first, end=last)
    return plan_source(
        BY_TABLE["rollup_verdicts"], start=first, end=last, dirty=dirty, columns=columns
    )


@dataclass(frozen=True, slots=True)
class _CentileCounts:
    """Verdicts on extracted values per field and exact confidence centile:
    ``counts[field][centile] = (verdicts, correct, confidence_sum)``."""

    counts: dict[str, dict[int, tuple[int, int, float]]]

    def top_fields(self, wanted: tuple[str, ...] | None, max_fields: int) -> tuple[list[str], bool]:
        totals = {
            name: sum(n for n, _, _ in by_centile.values())
            for name, by_centile in self.counts.items()
            if wanted is None or name in wanted
        }
        ranked = sorted(totals, key=lambda name: (-totals[name], name))
        return ranked[:max_fields], len(ranked) > max_fields

    def overall(self) -> dict[int, tuple[int, int, float]]:
        merged: dict[int, tuple[int, int, float]] = {}
        for by_centile in self.counts.values():
            for centile, (n, correct, total) in by_centile.items():
                m = merged.get(centile, (0, 0, 0.0))
                merged[centile] = (m[0] + n, m[1] + correct, m[2] + total)
        return merged


#: The verdict rollup's columns the calibration and the what-if read.
CENTILE_COLUMNS: Final = tuple(
    name for c in range(CENTILES) for name in (centile_column(c), centile_sum_column(c))
)


def _centile_counts(db: Session, read: SourceRead) -> _CentileCounts:
    """One grouped read of the verdict rollup (fields x verdicts rows): the rest is
    arithmetic on those rows' centile columns."""
    rows = db.execute(_centile_counts_statement(read.shape), read.params).all()
    counts: dict[str, dict[int, tuple[int, int, float]]] = {}
    for row in rows:
        name, verdict = row[0], row[1]
        numbers, sums = row[2 : 2 + CENTILES], row[2 + CENTILES :]
        by_centile = counts.setdefault(name, {})
        for centile in range(CENTILES):
            n = int(numbers[centile] or 0)
            if n:
                seen, correct, total = by_centile.get(centile, (0, 0, 0.0))
                by_centile[centile] = (
                    seen + n,
                    correct + (n if verdict == "correct" else 0),
                    total + float(sums[centile] or 0.0),
                )
    return _CentileCounts({name: by for name, by in counts.items() if by})


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _centile_counts_statement(shape: SourceShape) -> Select[Any]:
    source = source_rows(shape)
    return (
        select(
            source.c.field_name,
            source.c.verdict,
            *(func.sum(source.c[centile_column(c)]) for c in range(CENTILES)),
            *(func.sum(source.c[centile_sum_column(c)]) for c in range(CENTILES)),
        )
        .where(~source.c.was_missing)
        .group_by(source.c.field_name, source.c.verdict)
        .order_by(source.c.field_name, source.c.verdict)
        .limit(MAX_ROLLUP_FIELDS * len(FIELD_VERDICTS))
    )


def _on_centile_grid(value: float) -> bool:
    return round(value * 100) / 100 == value


def _extracted() -> list[ColumnElement[bool]]:
    return [
        ReviewFieldVerdict.was_missing == false(),
        ReviewFieldVerdict.extracted_confidence.is_not(None),
    ]


def _top_fields(
    db: Session,
    conditions: Sequence[ColumnElement[bool]],
    fields: tuple[str, ...] | None,
    max_fields: int,
) -> tuple[list[str], bool]:
    """The most-reviewed field names under ``conditions`` (at most ``max_fields``)."""
    if fields is not None:
        conditions = [*conditions, ReviewFieldVerdict.field_name.in_(fields)]
    n = func.count()
    names = list(
        db.scalars(
            select(ReviewFieldVerdict.field_name)
            .select_from(ReviewFieldVerdict)
            .join(ReviewDecision, ReviewDecision.id == ReviewFieldVerdict.decision_id)
            .where(*conditions)
            .group_by(ReviewFieldVerdict.field_name)
            .order_by(n.desc(), ReviewFieldVerdict.field_name)
            .limit(max_fields + 1)
        )
    )
    return names[:max_fields], len(names) > max_fields


def _is_correct() -> ColumnElement[int]:
    return case((ReviewFieldVerdict.verdict == "correct", 1), else_=0)


def _is_wrong() -> ColumnElement[int]:
    return case((ReviewFieldVerdict.verdict != "correct", 1), else_=0)


def check_thresholds(thresholds: Sequence[float] | None) -> tuple[float, ...]:
    """Sorted, distinct thresholds in [0, 1]; the default is 0.50, 0.55, ..., 0.95."""
    if thresholds is None:
        return DEFAULT_THRESHOLDS
    if isinstance(thresholds, (str, bytes)):
        raise ReportValidationError("thresholds", "must be a list of numbers")
    values: set[float] = set()
    for value in thresholds:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ReportValidationError("thresholds", "must be numbers between 0 and 1")
        as_float = float(value)
        if not math.isfinite(as_float) or not 0.0 <= as_float <= 1.0:
            raise ReportValidationError("thresholds", "must be numbers between 0 and 1")
        values.add(as_float)
    if not 1 <= len(values) <= MAX_THRESHOLDS:
        raise ReportValidationError("thresholds", f"must hold 1 to {MAX_THRESHOLDS} values")
    return tuple(sorted(values))


# --------------------------------------------------------------------------- calibration


def _calibration(
    field_name: str | None, n_bins: int, rows: dict[int, tuple[int, int, float]]
) -> FieldCalibration:
    bins: list[CalibrationBin] = []
    total = sum(n for n, _, _ in rows.values())
    correct_total = sum(c for _, c, _ in rows.values())
    confidence_total = sum(s for _, _, s in rows.values())
    ece = 0.0
    for index in range(n_bins):
        n, correct, confidence_sum = rows.get(index, (0, 0, 0.0))
        mean = share(confidence_sum, n)
        accuracy = share(correct, n)
        if mean is not None and accuracy is not None:
            ece += n / total * abs(accuracy - mean)
        bins.append(
            CalibrationBin(
                field_name=field_name,
                bin_index=index,
                lower=index / n_bins,
                upper=(index + 1) / n_bins,
                n=n,
                correct=correct,
                mean_confidence=mean,
                accuracy=accuracy,
            )
        )
    return FieldCalibration(
        field_name=field_name,
        n=total,
        correct=correct_total,
        mean_confidence=share(confidence_total, total),
        accuracy=share(correct_total, total),
        ece=ece if total else None,
        bins=tuple(bins),
    )


def get_calibration(
    db: Session,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    n_bins: int = DEFAULT_BINS,
    fields: Sequence[str] | None = None,
    max_fields: int = MAX_FIELDS,
) -> CalibrationReport:
    """Reliability diagram and ECE overall and per field (see the module docstring).

    ``fields`` restricts the per-field part to those names (the overall part always
    covers every field); otherwise the ``max_fields`` fields with most verdicts are shown
    and ``fields_truncated`` says whether any were left out. Every bin is returned, empty
    ones with ``n == 0``.
    """
    n_bins = check_int(n_bins, "n_bins", 2, MAX_BINS)
    max_fields = check_int(max_fields, "max_fields", 1, MAX_FIELDS)
    wanted = _check_fields(fields)
    conditions = [*_window(start, end), *_extracted()]
    read = _verdict_read(db, start, end, CENTILE_COLUMNS) if 100 % n_bins == 0 else None
    if read is not None:
        return _rollup_calibration(db, read, n_bins, wanted, max_fields)
    names, truncated = _top_fields(db, conditions, wanted, max_fields)

    confidence = ReviewFieldVerdict.extracted_confidence
    # Highest edge first, so each value lands in the bin whose lower edge it reaches.
    bin_index = case(
        *((confidence >= literal(k / n_bins, Float()), k) for k in range(n_bins - 1, 0, -1)),
        else_=0,
    )
    binned = (
        select(
            ReviewFieldVerdict.field_name.label("field_name"),
            bin_index.label("bin_index"),
            _is_correct().label("is_correct"),
            confidence.label("confidence"),
        )
        .select_from(ReviewFieldVerdict)
        .join(ReviewDecision, ReviewDecision.id == ReviewFieldVerdict.decision_id)
        .where(*conditions)
        .subquery()
    )
    measures = (func.count(), func.sum(binned.c.is_correct), func.sum(binned.c.confidence))
    overall_rows = db.execute(
        select(binned.c.bin_index, *measures)
        .group_by(binned.c.bin_index)
        .order_by(binned.c.bin_index)
        .limit(MAX_BINS)
    ).all()
    per_field: dict[str, dict[int, tuple[int, int, float]]] = {name: {} for name in names}
    if names:
        field_rows = db.execute(
            select(binned.c.field_name, binned.c.bin_index, *measures)
            .where(binned.c.field_name.in_(names))
            .group_by(binned.c.field_name, binned.c.bin_index)
            .order_by(binned.c.field_name, binned.c.bin_index)
            .limit(MAX_FIELDS * MAX_BINS)
        ).all()
        for name, index, n, correct, confidence_sum in field_rows:
            per_field[name][int(index)] = (int(n), int(correct), float(confidence_sum))
    overall = {
        int(index): (int(n), int(correct), float(confidence_sum))
        for index, n, correct, confidence_sum in overall_rows
    }
    return CalibrationReport(
        n_bins=n_bins,
        overall=_calibration(None, n_bins, overall),
        fields=tuple(_calibration(name, n_bins, per_field[name]) for name in names),
        fields_truncated=truncated,
    )


def _rollup_calibration(
    db: Session, read: SourceRead, n_bins: int, wanted: tuple[str, ...] | None, max_fields: int
) -> CalibrationReport:
    """:func:`get_calibration` from the verdict rollup: with ``n_bins`` dividing 100, bin
    ``floor(centile * n_bins / 100)`` (capped) is exactly the bin the raw edges give."""
    counts = _centile_counts(db, read)
    names, truncated = counts.top_fields(wanted, max_fields)

    def binned(by_centile: dict[int, tuple[int, int, float]]) -> dict[int, tuple[int, int, float]]:
        bins: dict[int, tuple[int, int, float]] = {}
        for centile, (n, correct, total) in by_centile.items():
            index = min(centile * n_bins // 100, n_bins - 1)
            b = bins.get(index, (0, 0, 0.0))
            bins[index] = (b[0] + n, b[1] + correct, b[2] + total)
        return bins

    return CalibrationReport(
        n_bins=n_bins,
        overall=_calibration(None, n_bins, binned(counts.overall())),
        fields=tuple(_calibration(name, n_bins, binned(counts.counts[name])) for name in names),
        fields_truncated=truncated,
    )


# --------------------------------------------------------------------------- what-if


def get_review_threshold_what_if(
    db: Session,
    *,
    thresholds: Sequence[float] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    fields: Sequence[str] | None = None,
    max_fields: int = MAX_FIELDS,
) -> ReviewThresholdWhatIf:
    """Projected review volume and wrong values passing unreviewed, per threshold.

    Rows come overall first (``field_name`` None), then per field in order of verdict
    count, each with every threshold ascending. ``fields``/``max_fields`` as in
    :func:`get_calibration`.
    """
    levels = check_thresholds(thresholds)
    max_fields = check_int(max_fields, "max_fields", 1, MAX_FIELDS)
    wanted = _check_fields(fields)
    conditions = [*_window(start, end), *_extracted()]
    on_grid = all(map(_on_centile_grid, levels))
    read = _verdict_read(db, start, end, CENTILE_COLUMNS) if on_grid else None
    results: list[tuple[str | None, Sequence[Any]]]
    if read is not None:
        # Exact centiles: confidence < t <=> centile < 100 t for t on the 0.01 grid.
        counts = _centile_counts(db, read)
        names, truncated = counts.top_fields(wanted, max_fields)
        edges = [round(level * 100) for level in levels]

        def outcome_row(by_centile: dict[int, tuple[int, int, float]]) -> list[int]:
            row = [
                sum(n for n, _, _ in by_centile.values()),
                sum(n - correct for n, correct, _ in by_centile.values()),
            ]
            for edge in edges:
                row.append(sum(n for c, (n, _, _) in by_centile.items() if c < edge))
                row.append(sum(n - ok for c, (n, ok, _) in by_centile.items() if c >= edge))
            return row

        results = [(None, outcome_row(counts.overall()))]
        results += [(name, outcome_row(counts.counts[name])) for name in names]
    else:
        names, truncated = _top_fields(db, conditions, wanted, max_fields)
        confidence = ReviewFieldVerdict.extracted_confidence
        wrong = ReviewFieldVerdict.verdict != "correct"
        columns: list[Any] = [func.count(), func.coalesce(func.sum(_is_wrong()), 0)]
        for level in levels:
            bound = literal(level, Float())
            columns.append(func.coalesce(func.sum(case((confidence < bound, 1), else_=0)), 0))
            columns.append(
                func.coalesce(func.sum(case((and_(confidence >= bound, wrong), 1), else_=0)), 0)
            )
        base = (
            select(*columns)
            .select_from(ReviewFieldVerdict)
            .join(ReviewDecision, ReviewDecision.id == ReviewFieldVerdict.decision_id)
            .where(*conditions)
        )
        results = [(None, db.execute(base).one())]
        if names:
            per_field = db.execute(
                base.add_columns(ReviewFieldVerdict.field_name)
                .where(ReviewFieldVerdict.field_name.in_(names))
                .group_by(ReviewFieldVerdict.field_name)
                .limit(MAX_FIELDS)
            ).all()
            by_name = {row[-1]: row for row in per_field}
            results += [(name, by_name[name]) for name in names]

    rows: list[ThresholdOutcome] = []
    for name, row in results:
        n, wrong_total = int(row[0] or 0), int(row[1])
        for position, level in enumerate(levels):
            below = int(row[2 + 2 * position])
            wrong_passed = int(row[3 + 2 * position])
            passed = n - below
            rows.append(
                ThresholdOutcome(
                    field_name=name,
                    threshold=level,
                    n=n,
                    wrong=wrong_total,
                    sent_to_review=below,
                    review_share=share(below, n),
                    passed=passed,
                    wrong_passed=wrong_passed,
                    wrong_passed_share=share(wrong_passed, passed),
                    wrong_escape_share=share(wrong_passed, wrong_total),
                )
            )
    return ReviewThresholdWhatIf(thresholds=levels, rows=tuple(rows), fields_truncated=truncated)


# --------------------------------------------------------------------------- missing


def _missing_outcome(name: str | None, n: int, missed: int, absent: int) -> MissingOutcome:
    return MissingOutcome(
        field_name=name,
        n=n,
        missed=missed,
        truly_absent=absent,
        missed_share=share(missed, n),
        absent_share=share(absent, n),
    )


def get_missing_outcomes(
    db: Session,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    fields: Sequence[str] | None = None,
    max_fields: int = MAX_FIELDS,
) -> MissingReport:
    """How often a field marked missing was really there (missed) or truly absent.

    Per field, in order of how often it was marked missing and reviewed.
    """
    max_fields = check_int(max_fields, "max_fields", 1, MAX_FIELDS)
    wanted = _check_fields(fields)
    conditions = [*_window(start, end), ReviewFieldVerdict.was_missing == true()]
    read = _verdict_read(db, start, end, ("verdicts",))
    per_field: dict[str, MissingOutcome] = {}
    if read is not None:
        # One grouped read; totals and the most-reviewed fields follow from its rows.
        tallies: dict[str, list[int]] = {}
        for name, verdict, count in db.execute(_missing_statement(read.shape), read.params):
            tally = tallies.setdefault(name, [0, 0, 0])
            tally[0] += int(count)
            tally[1] += int(count) if verdict == "corrected" else 0
            tally[2] += int(count) if verdict == "absent" else 0
        n = sum(t[0] for t in tallies.values())
        missed = sum(t[1] for t in tallies.values())
        absent = sum(t[2] for t in tallies.values())
        eligible = [name for name in tallies if wanted is None or name in wanted]
        ranked = sorted(eligible, key=lambda name: (-tallies[name][0], name))
        names, truncated = ranked[:max_fields], len(ranked) > max_fields
        for name in names:
            per_field[name] = _missing_outcome(name, *tallies[name])
    else:
        names, truncated = _top_fields(db, conditions, wanted, max_fields)
        verdict_column = ReviewFieldVerdict.verdict
        measures = (
            func.count(),
            func.coalesce(func.sum(case((verdict_column == "corrected", 1), else_=0)), 0),
            func.coalesce(func.sum(case((verdict_column == "absent", 1), else_=0)), 0),
        )
        base = (
            select(*measures)
            .select_from(ReviewFieldVerdict)
            .join(ReviewDecision, ReviewDecision.id == ReviewFieldVerdict.decision_id)
            .where(*conditions)
        )
        n, missed, absent = db.execute(base).one()
        if names:
            for row in db.execute(
                base.add_columns(ReviewFieldVerdict.field_name)
                .where(ReviewFieldVerdict.field_name.in_(names))
                .group_by(ReviewFieldVerdict.field_name)
                .limit(MAX_FIELDS)
            ):
                per_field[row[3]] = _missing_outcome(row[3], int(row[0]), int(row[1]), int(row[2]))
    return MissingReport(
        overall=_missing_outcome(None, int(n), int(missed), int(absent)),
        fields=tuple(per_field[name] for name in names),
        fields_truncated=truncated,
    )


@functools.lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _missing_statement(shape: SourceShape) -> Select[Any]:
    source = source_rows(shape)
    return (
        select(source.c.field_name, source.c.verdict, func.sum(source.c.verdicts))
        .where(source.c.was_missing)
        .group_by(source.c.field_name, source.c.verdict)
        .order_by(source.c.field_name, source.c.verdict)
        .limit(MAX_ROLLUP_FIELDS * 3)
    )


__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_THRESHOLDS",
    "CalibrationBin",
    "CalibrationReport",
    "FieldCalibration",
    "MissingOutcome",
    "MissingReport",
    "ThresholdOutcome",
    "ReviewThresholdWhatIf",
    "check_thresholds",
    "get_calibration",
    "get_missing_outcomes",
    "get_review_threshold_what_if",
]
