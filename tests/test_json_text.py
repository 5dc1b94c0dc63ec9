"""The one rule for values JSON cannot hold (``kailash_nb._json_text``)."""

from __future__ import annotations

import json
import math
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from kailash_nb._json_text import MAX_INT_DIGITS, MAX_PLAIN_DEPTH, json_text, plain


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**4300, max_value=10**4400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.datetimes(),
    st.just(Unprintable()),
    st.binary(max_size=8),
)
keys = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.tuples(st.integers()))
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.frozensets(st.integers(), max_size=3),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_any_value_encodes_to_json_that_reads_back(value):
    text = json_text(value)
    assert json.loads(text) == json.loads(json_text(plain(value)))  # one rule, both ways
    assert json.loads(json_text(value, compact=True)) == json.loads(text)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.text()),
        lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(), c, max_size=4)),
        max_leaves=20,
    )
)
def test_plain_json_is_written_unchanged(value):
    assert json.loads(json_text(value)) == value


def test_the_documented_conversions():
    big = 10**5000
    assert json.loads(json_text({"n": big})) == {"n": "1" + "0" * 5000}  # exact digits, a string
    assert (
        json.loads(json_text(2 ** (4 * MAX_INT_DIGITS)))
        == f"<int of {4 * MAX_INT_DIGITS + 1} bits>"
    )
    assert json.loads(json_text([math.nan, math.inf, -math.inf, 1.5])) == [None, None, None, 1.5]
    assert json.loads(json_text({2: (1, 2), None: {3}, False: "f", (4, 5): 0})) == {
        "2": [1, 2],
        "null": [3],
        "false": "f",
        "(4, 5)": 0,
    }
    assert json.loads(json_text(datetime(2026, 1, 1))) == "2026-01-01 00:00:00"
    assert json.loads(json_text([Unprintable()])) == ["<unprintable Unprintable>"]
    nested: list = []
    inner = nested
    for _ in range(MAX_PLAIN_DEPTH + 5):
        inner.append([])
        inner = inner[0]
    inner.append({1})  # JSON cannot hold a set: the value is walked, depth capped
    assert "<nested too deep>" in json_text(nested)
    looped: dict = {}
    looped["self"] = looped
    assert "<nested too deep>" in json_text(looped)
