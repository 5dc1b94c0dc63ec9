"""``is_bounded``: which code snippets provably run in time linear in their inputs."""

from __future__ import annotations

import pytest

from kailash_nb.nodes._code_analysis import is_bounded
from kailash_nb.nodes.code import PythonCodeNode


@pytest.mark.parametrize(
    "source",
    [
        "result = {'pong': True}",
        "result = {'total': price + tax, 'ok': price > 0 and not blocked}",
        "result = order['lines'][0] if order else None",
        "label = f'{first} {last}'",
        "if a == b:\n    result = 1\nelse:\n    result = -a",
        "result = key in table",
    ],
)
def test_straight_line_glue_code_is_bounded(source):
    assert is_bounded(source)


@pytest.mark.parametrize(
    "source",
    [
        "result = len(items)",  # any call can block
        "result = items.copy()",  # attribute access reaches arbitrary code
        "for item in items:\n    pass",
        "while True:\n    pass",
        "result = [item for item in items]",
        "result = text * count",  # cost chosen by the operands
        "result = base ** exponent",
        "result = template % values",
        "result = value << bits",
        "result = f'{value:>{width}}'",  # a format spec can pad to any width
        "import os",
        "def f():\n    return 1",
        "result = lambda: 1",
        "result = (unbalanced",  # does not compile
    ],
)
def test_code_that_can_take_any_time_is_not_bounded(source):
    assert not is_bounded(source)


def test_node_reports_boundedness_and_functions_never_are():
    assert PythonCodeNode(code="result = {'a': a}").bounded
    assert not PythonCodeNode(code="result = {'n': len(a)}").bounded

    def add(a: int, b: int) -> int:
        return a + b

    assert not PythonCodeNode.from_function(add).bounded
