"""Test data: the runs a workflow test makes, from a file, a dict or a list.

``test_data`` is one of:

- runtime parameters keyed by node id, ``{"load": {"path": "orders.csv"}}`` (keys that
  are not node ids are workflow-level parameters, as ``LocalRuntime.execute`` takes);
- a case, ``{"name": "small", "parameters": {...}, "expected": {...}}`` (``name`` and
  ``expected`` optional; a case holds no other keys);
- a list of either, each one run on its own;
- the path of a JSON (or ``.yaml``/``.yml``) file holding any of these.

A case's ``expected`` (``{node_id: {output: value}}``) replaces ``test_workflow``'s own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kailash_nb._located import (
    DocumentError,
    LocatedDict,
    LocatedList,
    line_of,
    load_json_located,
    load_yaml_located,
)
from kailash_nb.testing.errors import WorkflowTestSetupError

__all__ = ["MAX_TEST_DATA_BYTES", "Case", "load_cases"]

#: A test data file larger than this is refused.
MAX_TEST_DATA_BYTES = 64 * 1024 * 1024

_CASE_KEYS = frozenset({"name", "parameters", "expected"})


@dataclass(frozen=True)
class Case:
    """One run of a test: its name, parameters and expected outputs (or ``None``)."""

    name: str
    parameters: dict[str, Any]
    expected: dict[str, dict[str, Any]] | None = None


def load_cases(test_data: Any, expected: Mapping[str, Any] | None = None) -> list[Case]:
    """The cases ``test_data`` describes (see the module docstring); ``None`` is one
    case without parameters.

    Raises:
        WorkflowTestSetupError: unreadable or malformed test data (naming the file and
            line), or ``expected`` that is not ``{node_id: {output: value}}``.
    """
    source = None
    if isinstance(test_data, (str, os.PathLike)):
        source = os.fspath(test_data)
        test_data = _read(source)
    default_expected = _expected(expected, "expected", source=None, line=None)
    if test_data is None:
        return [Case("case 1", {}, default_expected)]
    items = test_data if isinstance(test_data, list) else [test_data]
    if not items:
        raise WorkflowTestSetupError(_where(source, line_of(test_data)) + "no test cases")
    return [
        _case(item, position, source, default_expected, line_of(item) or line_of(test_data))
        for position, item in enumerate(items)
    ]


def _read(source: str) -> Any:
    try:
        with open(source, "rb") as handle:
            data = handle.read(MAX_TEST_DATA_BYTES + 1)
    except OSError as error:
        raise WorkflowTestSetupError(
            f"cannot read the test data file {source!r}: {error.strerror}"
        ) from None
    if len(data) > MAX_TEST_DATA_BYTES:
        raise WorkflowTestSetupError(f"{source}: larger than {MAX_TEST_DATA_BYTES} bytes")
    is_yaml = source.lower().endswith((".yaml", ".yml"))
    try:
        return load_yaml_located(data) if is_yaml else load_json_located(data)
    except DocumentError as error:
        raise WorkflowTestSetupError(_where(source, error.line) + error.problem) from None


def _case(
    item: Any, position: int, source: str | None, default_expected: Any, line: int | None
) -> Case:
    where = _where(source, line)
    default_name = f"case {position + 1}"
    if not isinstance(item, Mapping):
        raise WorkflowTestSetupError(
            f"{where}{default_name}: test data is runtime parameters keyed by node id, or a "
            f"case {{'name', 'parameters', 'expected'}}, not {type(item).__name__}"
        )
    if "parameters" not in item or not set(item) <= _CASE_KEYS:
        return Case(default_name, _plain(item), default_expected)
    name = item.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise WorkflowTestSetupError(f"{where}{default_name}: 'name' must be a non-empty string")
    parameters = item["parameters"]
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise WorkflowTestSetupError(
            f"{_where(source, line_of(item, 'parameters'))}case {name!r}: 'parameters' must "
            f"be a mapping of node id to parameters, not {type(parameters).__name__}"
        )
    expected = default_expected
    if item.get("expected") is not None:
        line = line_of(item, "expected")
        expected = _expected(item["expected"], f"case {name!r}: 'expected'", source, line)
    return Case(name, _plain(parameters), expected)


def _expected(value: Any, what: str, source: str | None, line: int | None) -> Any:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(outputs, Mapping) for outputs in value.values()
    ):
        raise WorkflowTestSetupError(
            f"{_where(source, line)}{what} must be {{node_id: {{output: value}}}}, "
            f"got {value!r:.80}"
        )
    return _plain(value)


def _plain(value: Any) -> Any:
    """``value`` with located mappings and lists turned into plain ones."""
    if isinstance(value, (LocatedDict, dict)):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (LocatedList, list)):
        return [_plain(item) for item in value]
    return value


def _where(source: str | None, line: int | None) -> str:
    if source is None:
        return ""
    return f"{source}: " if line is None else f"{source}, line {line}: "
