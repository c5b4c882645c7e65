"""Property-based test of create_processing_report over arbitrary inputs, on both backends.

Every input either stores and reads back equal to what ``expected_outcome`` predicts, or
raises ReportValidationError (UnknownEmailError is one) naming a field that really is
wrong, with a message that echoes no value. Nothing else escapes, and an error writes
nothing: the row counts and any earlier report of the same email are unchanged.

The normalization a reader can rely on, written out by ``expected_outcome``:

* A field is *empty* when its value is None, a string of only whitespace, or an empty
  list/tuple/dict/set. Empty key fields are listed in ``missing_fields`` (in key-field
  order) and left out of ``extracted_fields``; empty extra fields are left out.
* Every other field of ``extracted_data`` (except ``extraction_metadata``) is kept as
  ``{"value", "confidence", "source"}``. Confidence comes from
  ``agent_2_extraction.field_confidence``, else ``extraction_metadata[f].confidence``,
  else 0.5, and reads back as ``float``. Source defaults to ``"unknown"``.
* Inside values: floats read back as ``Decimal(repr(f))``; Decimals and ints keep their
  numeric value exactly (PostgreSQL's JSONB may print ``Decimal("1E+2")`` as ``100``, so an
  integral Decimal can come back as an int of equal value); tuples become lists; bools,
  strings and None are unchanged; dict key order is not significant.
* ``overall_confidence`` reads back as ``float``; ``sources_processed`` defaults to 1 and
  ``total_tokens_used`` to 0 when the checkpoint does not carry them.

The tests at the bottom pin limit cases found by this test (BUG-1 .. BUG-5), fixed since.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from reportlib.config import DEFAULT_KEY_FIELDS
from reportlib.errors import ReportValidationError, UnknownEmailError
from reportlib.models import ROUTES, ProcessingReport
from reportlib.rollups import report_field_rows
from reportlib.service import create_processing_report, ensure_incoming_email

INT32_MAX = 2_147_483_647
EMAIL_ID = 987_001  # never committed: every example is rolled back
MARK = "§"  # every personal-looking string carries it; no message may contain it
MAX_EXAMPLES = 150
REPORTS = ProcessingReport.__table__
# Each report's fields as the rollups read them from its JSON.
FIELDS = report_field_rows(true()).subquery("report_fields")


# -- the oracle: what the service must do with an input ----------------------------------
class Oracle:
    """Collects every problem an input has, and the row it must otherwise produce."""

    def __init__(self) -> None:
        self.problems: set[str] = set()

    def flag(self, field: str) -> None:
        self.problems.add(field)

    def mapping(self, value: Any, field: str) -> Mapping[str, Any] | None:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return value
        self.flag(field)
        return None

    def text_ok(self, value: str) -> bool:
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    def text(self, value: Any, field: str, max_length: int) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > max_length or not self.text_ok(value):
            self.flag(field)
        return value

    def count(self, value: Any, field: str, *, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT32_MAX:
            self.flag(field)
        return value

    def confidence(self, value: Any, field: str) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            self.flag(field)
            return None
        try:
            as_float = float(value)
        except (OverflowError, ValueError):
            self.flag(field)
            return None
        if not math.isfinite(as_float) or not 0.0 <= as_float <= 1.0:
            self.flag(field)
            return None
        return as_float

    def json_value(self, value: Any, field: str, depth: int = 0) -> Any:
        if depth > 32:
            self.flag(field)
            return None
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            if len(str(abs(value))) > 1000 if abs(value) < 10**1001 else True:
                self.flag(field)
            return value
        if isinstance(value, str):
            if not self.text_ok(value):
                self.flag(field)
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                self.flag(field)
                return None
            return Decimal(repr(value))
        if isinstance(value, Decimal):
            if not value.is_finite():
                self.flag(field)
            else:
                digits, exponent = value.as_tuple().digits, int(value.as_tuple().exponent)
                integer_digits = max(len(digits) + exponent, 0)
                if integer_digits + max(-exponent, 0) > 1000:
                    self.flag(field)
            return value
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                if not isinstance(key, str) or not self.text_ok(key):
                    self.flag(field)
                    continue
                out[key] = self.json_value(item, field, depth + 1)
            return out
        if isinstance(value, (list, tuple)):
            return [self.json_value(item, field, depth + 1) for item in value]
        self.flag(field)
        return None


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return len(value) == 0
    return False


def expected_outcome(case: dict[str, Any]) -> tuple[set[str], dict[str, Any]]:
    """(problems, expected row). The row is meaningful only when there is no problem."""
    oracle = Oracle()
    kw = case["kwargs"]
    email_id = kw["email_id"]
    if isinstance(email_id, bool) or not isinstance(email_id, int):
        oracle.flag("email_id")
    elif not 1 <= email_id <= INT32_MAX:
        oracle.flag("email_id")
    data = oracle.mapping(kw["extracted_data"], "extracted_data")
    checkpoints = oracle.mapping(kw["agent_checkpoints"], "agent_checkpoints")
    intent_checkpoint = extraction = field_confidence = None
    if checkpoints is not None:
        intent_checkpoint = oracle.mapping(checkpoints.get("agent_1_intent"), "agent_1_intent")
        extraction = oracle.mapping(checkpoints.get("agent_2_extraction"), "agent_2_extraction")
        if extraction is not None:
            field_confidence = oracle.mapping(
                extraction.get("field_confidence"), "agent_2_extraction.field_confidence"
            )
    metadata = None
    if data is not None:
        metadata = oracle.mapping(data.get("extraction_metadata"), "extraction_metadata")

    overall = oracle.confidence(kw["overall_confidence"], "overall_confidence")
    route = kw["confidence_route"]
    if not (isinstance(route, str) and route in ROUTES):
        oracle.flag("confidence_route")
    if not isinstance(kw["needs_review"], bool):
        oracle.flag("needs_review")
    reason = oracle.text(kw["review_reason"], "review_reason", 100)
    time_ms = oracle.count(kw["processing_time_ms"], "processing_time_ms", optional=True)
    intent = sources = tokens = None
    if intent_checkpoint is not None:
        intent = oracle.text(intent_checkpoint.get("intent"), "agent_1_intent.intent", 50)
    if extraction is not None:
        sources = oracle.count(
            extraction.get("sources_processed", 1), "agent_2_extraction.sources_processed"
        )
        tokens = oracle.count(
            extraction.get("total_tokens_used", 0), "agent_2_extraction.total_tokens_used"
        )

    fields: dict[str, Any] = {}
    missing: list[str] = []
    if data is not None and metadata is not None and field_confidence is not None:
        key_fields = list(DEFAULT_KEY_FIELDS)
        names = key_fields + [k for k in data if k not in key_fields and k != "extraction_metadata"]
        for name in names:
            if not isinstance(name, str) or not 1 <= len(name) <= 100 or not oracle.text_ok(name):
                oracle.flag("extracted_data")
                continue
            value = data.get(name)
            if is_empty(value):
                if name in key_fields:
                    missing.append(name)
                continue
            meta = oracle.mapping(metadata.get(name), f"extraction_metadata.{name}")
            if meta is None:
                continue
            if name in field_confidence:
                raw, where = field_confidence[name], f"agent_2_extraction.field_confidence.{name}"
            elif "confidence" in meta:
                raw, where = meta["confidence"], f"extraction_metadata.{name}.confidence"
            else:
                raw, where = 0.5, name
            source = meta.get("source", "unknown")
            if not isinstance(source, str) or not oracle.text_ok(source):
                oracle.flag(f"extraction_metadata.{name}.source")
            fields[name] = {
                "value": oracle.json_value(value, name),
                "confidence": oracle.confidence(raw, where),
                "source": source,
            }
    row = {
        "email_id": email_id,
        "extracted_fields": fields,
        "missing_fields": missing,
        "overall_confidence": overall,
        "confidence_route": route,
        "needs_review": kw["needs_review"],
        "review_reason": reason,
        "intent": intent,
        "sources_processed": sources,
        "total_tokens_used": tokens,
        "processing_time_ms": time_ms,
    }
    return oracle.problems, row


def assert_same(expected: Any, actual: Any, path: str = "$") -> None:
    """Equality that keeps JSON's kinds apart: True is not 1, "1" is not 1, 1.0 is exact."""
    if expected is None or isinstance(expected, (bool, str)):
        assert type(actual) is type(expected) and actual == expected, path
    elif isinstance(expected, float):
        assert type(actual) is float and actual == expected, path
    elif isinstance(expected, (int, Decimal)):
        assert isinstance(actual, (int, Decimal)) and not isinstance(actual, bool), path
        assert Decimal(actual) == Decimal(expected), path
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), path
        for key, item in expected.items():
            assert_same(item, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for index, item in enumerate(expected):
            assert_same(item, actual[index], f"{path}[{index}]")
    else:  # pragma: no cover - the oracle only produces the kinds above
        raise AssertionError(f"{path}: unexpected kind {type(expected).__name__}")


# -- strategies ---------------------------------------------------------------------------
# Each example corrupts a chosen set of "slots" (none, exactly one, or several): a slot's
# strategy is valid unless it is corrupted. One bad slot at a time is what makes a
# too-lax check visible; several at once check that the first error is still a real one.
SLOTS = (
    "email_id",
    "extracted_data",
    "agent_checkpoints",
    "agent_1_intent",
    "agent_2_extraction",
    "overall_confidence",
    "confidence_route",
    "needs_review",
    "review_reason",
    "processing_time_ms",
    "counts",
    "intent",
    "field_names",
    "values",
    "metadata",
    "field_confidence",
    "field_confidences",
    "source",
)
ODD_TEXT = ["\x00", "a\x00b", "\ud800", "x\udfff"]
BLANKS = ["", " ", "\t\n", "\u00a0", "\u2003 \u2028"]
SAFE_CHARS = st.characters(exclude_characters=MARK + "\x00", exclude_categories=("Cs",))
ANY_CHARS = st.characters(exclude_characters=MARK, exclude_categories=())
HOSTILE = ["<img src=x onerror=alert(1)>", "javascript:alert(1)", "![x](http://host/p.png)"]


def marked(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return strategy.map(lambda text: MARK + text)


def bad_text(min_size: int = 0) -> st.SearchStrategy[str]:
    """Text PostgreSQL cannot store: with a NUL or an unpaired surrogate somewhere."""
    return st.tuples(
        st.text(ANY_CHARS, min_size=min_size, max_size=8), st.sampled_from(ODD_TEXT)
    ).map(lambda parts: parts[0] + parts[1])


def bounded_decimal(d: Decimal) -> bool:
    # Kept within 300 digits either side so good leaves stay under the 1000-digit limit.
    if not d.is_finite():
        return True
    exponent = d.as_tuple().exponent
    return isinstance(exponent, int) and -300 <= exponent and d.adjusted() <= 300


@functools.cache
def json_leaves(bad: bool) -> st.SearchStrategy[Any]:
    if bad:
        return st.one_of(
            st.sampled_from([math.nan, math.inf, -math.inf]),
            st.sampled_from([Decimal("NaN"), Decimal("sNaN"), Decimal("-Infinity")]),
            st.sampled_from([10**5000, -(10**1000), Decimal("1E+1000000"), Decimal("1E-1000")]),
            marked(bad_text()),
            st.sampled_from([b"bytes", {1, 2}, complex(1, 2), range(3), object()]),
        )
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        # Up to 1000 digits; longer numbers are refused (bad leaves).
        st.sampled_from([10**999, -(10**999) + 1, 2**63, -(2**63) - 1]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.decimals(allow_nan=False, allow_infinity=False).filter(bounded_decimal),
        st.sampled_from([Decimal("1000000000000000.07"), Decimal("1E+300"), Decimal("-0.00")]),
        marked(st.text(SAFE_CHARS, max_size=12)),
        marked(st.sampled_from(HOSTILE)),
        st.sampled_from(BLANKS),
    )


@functools.cache
def nested_keys(bad: bool) -> st.SearchStrategy[Any]:
    if bad:
        return st.one_of(st.integers(), st.none(), bad_text())
    return st.one_of(st.text(SAFE_CHARS, max_size=6), st.just("confidence"))


def nest(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


@functools.cache
def json_values(bad: bool) -> st.SearchStrategy[Any]:
    """A JSON-ish value; when ``bad``, one that cannot be stored, somewhere inside."""
    valid_tree = st.recursive(
        json_leaves(False),
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.lists(children, max_size=3).map(tuple),
            st.dictionaries(nested_keys(False), children, max_size=3),
        ),
        max_leaves=8,
    )
    valid = st.one_of(valid_tree, st.builds(nest, st.integers(0, 32), st.just(MARK + "deep")))
    if not bad:
        return valid
    poisoned = st.one_of(
        json_leaves(True),
        st.tuples(st.lists(valid_tree, max_size=2), json_leaves(True)).map(
            lambda parts: [*parts[0], parts[1]]
        ),
        st.tuples(nested_keys(True), valid_tree).map(lambda kv: {"ok": 1, kv[0]: kv[1]}),
        st.builds(nest, st.integers(33, 36), st.just(MARK + "deep")),
    )
    return poisoned


@functools.cache
def confidences(bad: bool) -> st.SearchStrategy[Any]:
    if not bad:
        return st.one_of(
            st.floats(0.0, 1.0),
            st.sampled_from([0, 1, Decimal("0.25"), Decimal("1.000"), 5e-324, -0.0]),
        )
    return st.one_of(
        st.sampled_from([10**400, Decimal("sNaN"), Decimal("1E+1000000")]),
        st.floats().filter(lambda f: not 0.0 <= f <= 1.0),
        st.sampled_from([-1, 2, True, False, None, "0.5", 1.0000001, -1e-300]),
        st.sampled_from([Decimal("NaN"), Decimal("1.0001"), Decimal("-Infinity")]),
    )


@functools.cache
def counts(bad: bool) -> st.SearchStrategy[Any]:
    if not bad:
        return st.one_of(st.integers(0, 100_000), st.sampled_from([0, INT32_MAX]))
    return st.sampled_from([-1, INT32_MAX + 1, 10**30, True, 1.0, "3", None, Decimal(3)])


@functools.cache
def field_names(bad: bool) -> st.SearchStrategy[Any]:
    if bad:
        return st.one_of(
            st.sampled_from(["", "f" * 101]),
            bad_text(min_size=1),
            st.integers(),
            st.none(),
            st.booleans(),
            st.tuples(st.integers()),
        )
    return st.one_of(
        st.sampled_from([*DEFAULT_KEY_FIELDS, "iban", "notes", "due_date"]),
        st.text(SAFE_CHARS, min_size=1, max_size=8).filter(lambda n: n != "extraction_metadata"),
        st.just("f" * 100),
    )


NOT_A_MAPPING = st.sampled_from([[], "text", 3, ("t",), True])


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(["clean", "one", "one", "several"]))
    if mode == "clean":
        bad: set[str] = set()
    elif mode == "one":
        bad = {draw(st.sampled_from(SLOTS))}
    else:
        bad = set(draw(st.sets(st.sampled_from(SLOTS), min_size=2, max_size=4)))

    def pick(slot: str, valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> Any:
        return draw(invalid if slot in bad else valid)

    # extracted_data: key fields (present, empty or absent), extra fields, metadata
    data: dict[Any, Any] = {}
    for name in DEFAULT_KEY_FIELDS:
        if draw(st.integers(0, 4)) > 0:
            data[name] = draw(json_values(False))
    data.update(draw(st.dictionaries(field_names(False), json_values(False), max_size=3)))
    names = [name for name in data if not is_empty(data[name])]
    if "field_names" in bad:
        data[draw(field_names(True))] = draw(marked(st.text(SAFE_CHARS, min_size=1)))
    if "values" in bad:
        data[draw(st.sampled_from([*DEFAULT_KEY_FIELDS, "iban"]))] = draw(json_values(True))
        names = [name for name in data if isinstance(name, str) and not is_empty(data[name])]

    source = st.one_of(
        st.sampled_from(["email_body", "email_subject", "attachment:a.pdf"]),
        marked(st.text(SAFE_CHARS, max_size=10)),
    )
    bad_source = st.one_of(marked(bad_text()), st.integers(), st.none())
    metadata: Any = {}
    for name in names:
        if draw(st.booleans()):
            entry: dict[str, Any] = {}
            if draw(st.booleans()):
                entry["confidence"] = draw(confidences(False))
            if draw(st.booleans()):
                entry["source"] = draw(source)
            metadata[name] = entry
    if names and "source" in bad:
        metadata.setdefault(draw(st.sampled_from(names)), {})["source"] = draw(bad_source)
    if names and "field_confidences" in bad and draw(st.booleans()):
        metadata.setdefault(draw(st.sampled_from(names)), {})["confidence"] = draw(
            confidences(True)
        )
    if names and "metadata" in bad and draw(st.booleans()):
        metadata[draw(st.sampled_from(names))] = draw(NOT_A_MAPPING)
    elif "metadata" in bad:
        metadata = draw(NOT_A_MAPPING)
    if metadata or draw(st.booleans()):
        data["extraction_metadata"] = metadata

    field_confidence: Any = {
        name: draw(confidences(False)) for name in names if draw(st.integers(0, 3)) == 0
    }
    if names and "field_confidences" in bad:
        field_confidence[draw(st.sampled_from(names))] = draw(confidences(True))
    if "field_confidence" in bad:
        field_confidence = draw(NOT_A_MAPPING)
    extraction: Any = {}
    if field_confidence or draw(st.booleans()):
        extraction["field_confidence"] = field_confidence
    for key in ("sources_processed", "total_tokens_used"):
        if draw(st.booleans()) or "counts" in bad:
            extraction[key] = draw(counts("counts" in bad and draw(st.booleans())))
    if "counts" in bad and all(
        isinstance(extraction[k], int) and not isinstance(extraction[k], bool)
        for k in ("sources_processed", "total_tokens_used")
    ):
        extraction["sources_processed"] = draw(counts(True))
    intent_checkpoint: Any = {}
    if draw(st.booleans()) or "intent" in bad:
        intent_checkpoint["intent"] = pick(
            "intent",
            st.one_of(st.none(), st.sampled_from(["debt_claim", "payment_plan", "i" * 50])),
            st.one_of(st.just("i" * 51), bad_text(), st.integers()),
        )
    checkpoints: Any = {
        "agent_1_intent": pick("agent_1_intent", st.just(intent_checkpoint), NOT_A_MAPPING),
        "agent_2_extraction": pick("agent_2_extraction", st.just(extraction), NOT_A_MAPPING),
    }
    kwargs = {
        "email_id": pick(
            "email_id",
            st.just(EMAIL_ID),
            st.sampled_from([0, -1, INT32_MAX + 1, True, 1.0, "1", None]),
        ),
        "extracted_data": pick("extracted_data", st.just(data), NOT_A_MAPPING),
        "agent_checkpoints": pick(
            "agent_checkpoints", st.sampled_from([checkpoints, None]), NOT_A_MAPPING
        ),
        "overall_confidence": draw(confidences("overall_confidence" in bad)),
        "confidence_route": pick(
            "confidence_route",
            st.sampled_from(ROUTES),
            st.sampled_from(["HIGH", " high", "", None, 1]),
        ),
        "needs_review": pick("needs_review", st.booleans(), st.sampled_from([0, 1, None, "true"])),
        "review_reason": pick(
            "review_reason",
            st.one_of(
                st.none(),
                marked(st.text(SAFE_CHARS, max_size=20)),
                st.just(MARK + "r" * 99),  # exactly the 100 characters allowed
            ),
            st.one_of(
                st.just(MARK + "r" * 100),
                marked(st.text(SAFE_CHARS, min_size=100, max_size=120)),
                marked(bad_text()),
                st.integers(),
            ),
        ),
        "processing_time_ms": draw(
            st.one_of(st.none(), counts(False))
            if "processing_time_ms" not in bad
            else counts(True).filter(lambda value: value is not None)
        ),
    }
    return {
        "kwargs": kwargs,
        "bad": sorted(bad),
        # Mostly the email row exists; a middle value is rarely drawn, so test for it.
        "email_exists": draw(st.integers(0, 6)) != 3,
        "earlier_report": draw(st.booleans()),
    }


# -- the property -------------------------------------------------------------------------
def table_counts(db: Session) -> tuple[int, int]:
    return (
        db.execute(select(func.count()).select_from(REPORTS)).scalar_one(),
        db.execute(select(func.count()).select_from(FIELDS)).scalar_one(),
    )


def snapshot(db: Session, email_id: int) -> tuple[Any, list[Any]]:
    row = db.execute(select(REPORTS).where(REPORTS.c.email_id == email_id)).mappings().first()
    if row is None:
        return None, []
    fields = db.execute(
        select(FIELDS).where(FIELDS.c.report_id == row["id"]).order_by(FIELDS.c.field_name)
    ).all()
    return dict(row), [tuple(field) for field in fields]


def check_case(db: Session, case: dict[str, Any]) -> str:
    """Run one input inside a savepoint that is always rolled back; returns the outcome."""
    kwargs = case["kwargs"]
    problems, expected = expected_outcome(case)
    email_id = kwargs["email_id"]
    if isinstance(email_id, bool) or not isinstance(email_id, int) or not 0 < email_id <= INT32_MAX:
        email_id = EMAIL_ID  # the row the test sets up; the call itself must be refused
    savepoint = db.begin_nested()
    try:
        if case["email_exists"]:
            ensure_incoming_email(db, email_id)
            if case["earlier_report"]:
                create_processing_report(
                    db, email_id, {"client_name": "earlier"}, {}, 0.4, "low", True
                )
        before = table_counts(db)
        before_snapshot = snapshot(db, email_id)
        earlier = before_snapshot[0]
        try:
            report = create_processing_report(db, **kwargs)
        except ReportValidationError as error:
            unknown_email = not problems and not case["email_exists"]
            assert isinstance(error, UnknownEmailError) == unknown_email
            assert error.field in (problems or {"email_id"}), (error.field, problems)
            assert MARK not in str(error)
            assert table_counts(db) == before
            assert snapshot(db, email_id) == before_snapshot
            return "rejected"
        assert not problems, f"stored an input with problems {problems}"
        assert case["email_exists"]

        stored, field_rows = snapshot(db, email_id)
        assert stored is not None
        for name, value in expected.items():
            assert_same(value, stored[name], name)
            assert_same(value, getattr(report, name), f"returned {name}")
        assert report.id == stored["id"]
        if earlier is not None:
            assert stored["id"] == earlier["id"]  # re-processing updates in place
        assert table_counts(db)[0] == before[0] + (earlier is None)
        extracted = expected["extracted_fields"]
        assert field_rows == sorted(
            [
                (
                    stored["id"],
                    name,
                    stored["created_at"],
                    expected["intent"],
                    expected["confidence_route"],
                    entry["confidence"],
                    False,
                )
                for name, entry in extracted.items()
            ]
            + [
                (
                    stored["id"],
                    name,
                    stored["created_at"],
                    expected["intent"],
                    expected["confidence_route"],
                    None,
                    True,
                )
                for name in expected["missing_fields"]
            ],
            key=lambda row: row[1],
        )
        return "stored"
    finally:
        savepoint.rollback()
        db.expunge_all()


def boundary_case(
    expect: str,
    *,
    data: Any = None,
    email_exists: bool = True,
    earlier_report: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """A hand-written input on one side of a limit, with the outcome it must have."""
    kwargs: dict[str, Any] = {
        "email_id": EMAIL_ID,
        "extracted_data": {"client_name": MARK + "Erika"} if data is None else data,
        "agent_checkpoints": {},
        "overall_confidence": 0.5,
        "confidence_route": "medium",
        "needs_review": False,
        "review_reason": None,
        "processing_time_ms": None,
    }
    kwargs.update(overrides)
    return {
        "kwargs": kwargs,
        "bad": [],
        "email_exists": email_exists,
        "earlier_report": earlier_report,
        "expect": expect,
    }


def intent_of(intent: Any) -> dict[str, Any]:
    return {"agent_1_intent": {"intent": intent}}


# Each limit from both sides, run on every test run besides the generated inputs.
BOUNDARIES = [
    boundary_case("stored", review_reason=MARK + "r" * 99),
    boundary_case("rejected", review_reason=MARK + "r" * 100),
    boundary_case("stored", agent_checkpoints=intent_of("i" * 50)),
    boundary_case("rejected", agent_checkpoints=intent_of("i" * 51)),
    boundary_case("stored", data={"f" * 100: MARK + "x"}),
    boundary_case("rejected", data={"f" * 101: MARK + "x"}),
    boundary_case("rejected", data={"": MARK + "x"}),
    boundary_case("stored", data={"debt_amount": nest(32, MARK + "deep")}),
    boundary_case("rejected", data={"debt_amount": nest(33, MARK + "deep")}),
    boundary_case("stored", processing_time_ms=INT32_MAX),
    boundary_case("rejected", processing_time_ms=INT32_MAX + 1),
    boundary_case("rejected", processing_time_ms=-1),
    boundary_case("stored", overall_confidence=1.0),
    boundary_case("stored", overall_confidence=0),
    boundary_case("rejected", overall_confidence=1.0000000000000002),
    boundary_case("rejected", overall_confidence=-5e-324),
    boundary_case("stored", email_id=INT32_MAX),
    boundary_case("rejected", email_id=INT32_MAX + 1),
    boundary_case("rejected", email_id=0),
    boundary_case("rejected", email_exists=False),  # UnknownEmailError
    boundary_case("stored", data={"client_name": "\u00a0\t", "creditor_name": MARK + "GmbH"}),
    boundary_case("stored", data={"debt_amount": Decimal("1000000000000000.07")}),
    boundary_case("stored", data={"notes": [MARK + "<img src=x onerror=alert(1)>"]}),
    boundary_case("stored", earlier_report=True, overall_confidence=0.9, confidence_route="high"),
    boundary_case("rejected", earlier_report=True, confidence_route="HIGH"),
    boundary_case("rejected", data={"client_name": MARK + "a\x00b"}),
    boundary_case("rejected", data={"client_name": {MARK + "\ud800": 1}}),
]


def test_create_processing_report_stores_exactly_or_rejects_cleanly(db: Session) -> None:
    outcomes: Counter[str] = Counter()

    def run_one(case: dict[str, Any]) -> None:
        outcome = check_case(db, case)
        if "expect" in case:
            assert outcome == case["expect"]
        outcomes[outcome] += 1

    for case in BOUNDARIES:
        run_one = example(case=case)(run_one)
    run = settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )(given(case=cases())(run_one))
    run()
    # Both paths must really be exercised, or the property says little.
    assert outcomes["stored"] >= MAX_EXAMPLES // 10, outcomes
    assert outcomes["rejected"] >= MAX_EXAMPLES // 10, outcomes


# -- known bugs: each pinned by an example and the exact expectation ----------------------
def base_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "email_id": EMAIL_ID,
        "extracted_data": {"client_name": MARK + "Erika"},
        "agent_checkpoints": {},
        "overall_confidence": 0.5,
        "confidence_route": "medium",
        "needs_review": False,
    }
    kwargs.update(overrides)
    return kwargs


def rejected_cleanly(db: Session, kwargs: dict[str, Any], field: str) -> None:
    savepoint = db.begin_nested()
    try:
        ensure_incoming_email(db, EMAIL_ID)
        before = table_counts(db)
        with pytest.raises(ReportValidationError) as caught:
            create_processing_report(db, **kwargs)
        assert caught.value.field == field
        assert MARK not in str(caught.value)
        assert table_counts(db) == before
    finally:
        savepoint.rollback()
        db.expunge_all()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"overall_confidence": 10**400}, "overall_confidence"),
        ({"overall_confidence": Decimal("sNaN")}, "overall_confidence"),
        (
            {
                "extracted_data": {
                    "client_name": MARK + "Erika",
                    "extraction_metadata": {"client_name": {"confidence": 10**400}},
                }
            },
            "extraction_metadata.client_name.confidence",
        ),
    ],
    ids=["overall-huge-int", "overall-snan", "field-huge-int"],
)
def test_bug1_unconvertible_confidence_is_a_validation_error(
    db: Session, overrides: dict[str, Any], field: str
) -> None:
    rejected_cleanly(db, base_kwargs(**overrides), field)


def test_bug3_int_too_long_to_encode_is_a_validation_error(db: Session) -> None:
    rejected_cleanly(db, base_kwargs(extracted_data={"debt_amount": 10**5000}), "debt_amount")


@pytest.mark.parametrize(
    "number", [Decimal("1E+1000000"), Decimal("1E-1000000"), Decimal("1E+200000")]
)
def test_bug2_decimal_beyond_numeric_range_is_a_validation_error(
    db: Session, number: Decimal
) -> None:
    rejected_cleanly(db, base_kwargs(extracted_data={"debt_amount": number}), "debt_amount")


def test_bug4_nested_confidence_key_in_a_value_keeps_exact_digits(db: Session) -> None:
    value = {"confidence": Decimal("1000000000000000.07"), "label": MARK + "x"}
    savepoint = db.begin_nested()
    try:
        ensure_incoming_email(db, EMAIL_ID)
        create_processing_report(db, **base_kwargs(extracted_data={"debt_amount": value}))
        stored, _ = snapshot(db, EMAIL_ID)
        assert_same(value, stored["extracted_fields"]["debt_amount"]["value"])
    finally:
        savepoint.rollback()
        db.expunge_all()


@pytest.mark.parametrize("overall", [0.0, 1.0])
def test_bug5_returned_overall_confidence_is_a_float(db: Session, overall: float) -> None:
    savepoint = db.begin_nested()
    try:
        ensure_incoming_email(db, EMAIL_ID)
        report = create_processing_report(db, **base_kwargs(overall_confidence=overall))
        assert_same(overall, report.overall_confidence)
    finally:
        savepoint.rollback()
        db.expunge_all()
