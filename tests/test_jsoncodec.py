"""The JSON codec: the plain writer used for batches writes exactly what ``dumps`` writes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reportlib import jsoncodec
from reportlib.service import _fields_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text()
)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
# What dumps_plain leaves to dumps: tuples, non-text keys, values JSON cannot hold.
others = st.recursive(
    scalars
    | st.floats()
    | st.decimals()
    | st.sampled_from([object(), {1, 2}, b"bytes"]),
    lambda children: st.tuples(children, children)
    | st.lists(children, max_size=3)
    | st.dictionaries(st.integers() | st.text(max_size=3), children, max_size=3),
    max_leaves=8,
)


def _written(dump: Any, value: Any) -> Any:
    try:
        return dump(value)
    except (TypeError, ValueError) as error:
        return type(error)


@settings(max_examples=300)
@given(documents)
def test_plain_writer_writes_what_dumps_writes(document: Any) -> None:
    assert jsoncodec.dumps_plain(document) == jsoncodec.dumps(document)


@settings(max_examples=300)
@given(others)
def test_plain_writer_hands_anything_else_to_dumps(value: Any) -> None:
    assert _written(jsoncodec.dumps_plain, value) == _written(jsoncodec.dumps, value)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=10),
        # Entries as the service's validation builds them, keys in its order.
        st.builds(
            lambda value, confidence, source: {
                "value": value,
                "confidence": confidence,
                "source": source,
            },
            documents,
            st.floats(min_value=0.0, max_value=1.0),
            st.text(max_size=10),
        ),
        max_size=5,
    )
)
def test_batch_fields_text_is_what_dumps_writes(fields: dict[str, Any]) -> None:
    entries = [(name, e["value"], e["confidence"], e["source"]) for name, e in fields.items()]
    assert _fields_json(entries) == jsoncodec.dumps(fields)


@pytest.mark.parametrize(
    "value",
    ["tab\t \\ \"quoted\" \x01 \u2028 ü😀", Decimal("1E+5"), Decimal("-0.00"), 1e300, -0.0],
)
def test_plain_writer_edge_values(value: Any) -> None:
    assert jsoncodec.dumps_plain([value, {"k": value}]) == jsoncodec.dumps([value, {"k": value}])
