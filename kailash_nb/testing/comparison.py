"""Workflow outputs against expected ones, described node by node and output by output.

``expected`` is ``{node_id: {output: value}}``; only the outputs it lists are compared
(a node's other outputs may be anything). A short value is shown as
``expected 10, got 9``; a long or nested one as a unified diff of the two
pretty-printed values::

    expected_output_failures({"sum": {"result": 10}}, {"sum": {"result": 9}})
    # [Failure('expected', "node 'sum' output 'result': expected 10, got 9", ...)]
"""

from __future__ import annotations

import difflib
import pprint
from collections.abc import Mapping
from typing import Any

from kailash_nb.testing.results import Failure

__all__ = ["describe_difference", "expected_output_failures", "outputs_difference"]

_SHORT = 60


def _equal(left: Any, right: Any) -> bool:
    try:
        return bool(left == right)
    except Exception:  # an array's == is elementwise and has no truth value
        return False


def describe_difference(expected: Any, actual: Any) -> str:
    """``expected X, got Y`` for short values, else a unified diff (expected -> actual)."""
    expected_text, actual_text = repr(expected), repr(actual)
    if (
        len(expected_text) + len(actual_text) <= 2 * _SHORT
        and "\n" not in expected_text + actual_text
    ):
        return f"expected {expected_text}, got {actual_text}"
    diff = difflib.unified_diff(
        pprint.pformat(expected, width=80).splitlines(),
        pprint.pformat(actual, width=80).splitlines(),
        "expected",
        "actual",
        lineterm="",
        n=2,
    )
    return "differs:\n" + "\n".join(f"    {line}" for line in diff)


def expected_output_failures(
    expected: Mapping[str, Mapping[str, Any]], outputs: Mapping[str, Any]
) -> list[Failure]:
    """A failure for each expected output that is missing or differs."""
    failures = []
    for node_id, wanted in expected.items():
        actual = outputs.get(node_id)
        if not isinstance(actual, Mapping):
            failures.append(
                Failure(
                    "expected",
                    f"node {node_id!r}: expected outputs {_short(wanted)}, but the node "
                    "produced none (it did not run, was skipped or does not exist)",
                    node_id=node_id,
                )
            )
            continue
        for name, value in wanted.items():
            if name not in actual:
                failures.append(
                    Failure(
                        "expected",
                        f"node {node_id!r} has no output {name!r}; its outputs are "
                        f"{sorted(map(str, actual))}",
                        node_id=node_id,
                    )
                )
            elif not _equal(actual[name], value):
                failures.append(
                    Failure(
                        "expected",
                        f"node {node_id!r} output {name!r}: "
                        f"{describe_difference(value, actual[name])}",
                        node_id=node_id,
                    )
                )
    return failures


def outputs_difference(left: Mapping[str, Any], right: Mapping[str, Any]) -> list[str]:
    """Lines saying how two ``{node_id: outputs}`` dicts differ (left is "got", right
    "expected", as in ``assert result.outputs == expected``)."""
    lines = []
    for node_id in [*left, *(n for n in right if n not in left)]:
        if node_id not in right:
            lines.append(f"node {node_id!r}: not expected, got {_short(left[node_id])}")
        elif node_id not in left:
            lines.append(f"node {node_id!r}: no outputs, expected {_short(right[node_id])}")
        elif not _equal(left[node_id], right[node_id]):
            got, wanted = left[node_id], right[node_id]
            if not (isinstance(got, Mapping) and isinstance(wanted, Mapping)):
                lines.append(f"node {node_id!r}: {describe_difference(wanted, got)}")
                continue
            for name in [*got, *(n for n in wanted if n not in got)]:
                if name not in wanted:
                    lines.append(f"node {node_id!r}: output {name!r} not expected")
                elif name not in got:
                    lines.append(f"node {node_id!r}: no output {name!r}")
                elif not _equal(got[name], wanted[name]):
                    lines.append(
                        f"node {node_id!r} output {name!r}: "
                        f"{describe_difference(wanted[name], got[name])}"
                    )
    return lines


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 2 * _SHORT else text[: 2 * _SHORT - 3] + "..."
