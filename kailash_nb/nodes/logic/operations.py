"""Branching and joining: ``SwitchNode`` routes data, ``MergeNode`` joins branches."""

from __future__ import annotations

import operator as _operator
import re
from collections.abc import Callable
from typing import Any, ClassVar

from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeExecutionError, close_matches

__all__ = ["MergeNode", "SwitchNode"]


class _UnknownOptionError(NodeExecutionError, ValueError):
    """A run given an ``operator`` or ``merge_type`` the node does not know; also a
    ``ValueError``, which is what Kailash raises for it."""


def _contains(container: Any, item: Any) -> bool:
    return item in container


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": _operator.eq,
    "!=": _operator.ne,
    ">": _operator.gt,
    "<": _operator.lt,
    ">=": _operator.ge,
    "<=": _operator.le,
    "in": lambda checked, value: checked in value,
    "not in": lambda checked, value: checked not in value,
    "contains": _contains,
    "is_null": lambda checked, _value: checked is None,
    "is_not_null": lambda checked, _value: checked is not None,
}
_NONE_SAFE_OPERATORS = frozenset({"==", "!=", "is_null", "is_not_null"})
_UNSAFE_CASE_CHARACTERS = re.compile(r"[ \-.:/]")


@register_node()
class SwitchNode(Node):
    """Route ``input_data`` to one output depending on a condition.

    Boolean mode (no ``cases``): the checked value is ``input_data[condition_field]``
    (or ``input_data`` itself without a field) compared with ``value`` by
    ``operator`` (``== != > < >= <= in "not in" contains is_null is_not_null``).
    Outputs ``true_output`` and ``false_output``: the taken one carries
    ``input_data``, the other is ``None``, so the engine skips what hangs off it.
    ``condition_result`` carries the boolean unless ``pass_condition_result=False``.

    Multi-case mode (``cases=[...]``): one output ``case_<value>`` per case (spaces,
    ``-``, ``.``, ``:`` and ``/`` in the value become ``_``) carrying ``input_data``
    when the checked value equals the case, else ``None``; ``default`` always carries
    ``input_data``; ``condition_result`` is the matched case or ``None``. When
    ``input_data`` is a list of dicts and ``condition_field`` is set, the items are
    grouped: each ``case_<value>`` carries the matching items (possibly ``[]``).

    A comparison that raises (``"a" > 1``) is ``False``, as is any comparison of a
    missing value except ``==``, ``!=``, ``is_null`` and ``is_not_null``.

    Raises:
        NodeConfigurationError: unknown operator in the configuration.
        NodeExecutionError: unknown operator given at run time (also a ``ValueError``).
    """

    is_branching: ClassVar[bool] = True

    def get_parameters(self) -> dict[str, NodeParameter]:
        """Switch inputs; all optional."""
        return {
            "input_data": NodeParameter(
                name="input_data", required=False, description="data to route"
            ),
            "condition_field": NodeParameter(
                name="condition_field",
                type=str,
                required=False,
                description="field of input_data to check",
            ),
            "operator": NodeParameter(
                name="operator",
                type=str,
                required=False,
                default="==",
                description="comparison",
            ),
            "value": NodeParameter(name="value", required=False, description="value to compare"),
            "cases": NodeParameter(
                name="cases", type=list, required=False, description="multi-case values"
            ),
            "case_prefix": NodeParameter(
                name="case_prefix", type=str, required=False, default="case_"
            ),
            "default_field": NodeParameter(
                name="default_field", type=str, required=False, default="default"
            ),
            "pass_condition_result": NodeParameter(
                name="pass_condition_result", type=bool, required=False, default=True
            ),
            "break_after_first_match": NodeParameter(
                name="break_after_first_match", type=bool, required=False, default=True
            ),
        }

    def _prepare(self) -> None:
        cases = self.config.get("cases") or []
        keys = [_case_key(case) for case in cases] if isinstance(cases, list) else []
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise NodeConfigurationError(
                f"node {self.id!r} (SwitchNode): cases {cases!r} give the same output name "
                f"for {', '.join('case_' + key for key in duplicates)}; make the case values "
                "differ in more than spaces, '-', '.', ':' or '/'"
            )
        operator = self.config.get("operator", "==")
        if operator not in _OPERATORS:
            raise NodeConfigurationError(
                f"node {self.id!r} (SwitchNode): unknown operator {operator!r}"
                f"{close_matches(str(operator), _OPERATORS)}; use one of {list(_OPERATORS)}"
            )

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Route ``input_data``; see the class docstring for the outputs."""
        data = kwargs.get("input_data")
        field = kwargs.get("condition_field")
        compare = _OPERATORS.get(kwargs.get("operator") or "==")
        if compare is None:
            operator = kwargs.get("operator")
            raise _UnknownOptionError(
                f"node {self.id!r} (SwitchNode): unknown operator {operator!r}"
                f"{close_matches(str(operator), _OPERATORS)}; use one of {list(_OPERATORS)}"
            )
        cases = kwargs.get("cases")
        if cases:
            return self._route_cases(data, field, compare, kwargs)
        matched = self._matches(
            self._checked_value(data, field), compare, kwargs.get("value"), kwargs
        )
        outputs: dict[str, Any] = {
            "true_output": data if matched else None,
            "false_output": None if matched else data,
        }
        if kwargs.get("pass_condition_result", True):
            outputs["condition_result"] = matched
        return outputs

    def _route_cases(
        self, data: Any, field: str | None, compare: Callable, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        prefix = kwargs.get("case_prefix") or "case_"
        first_only = kwargs.get("break_after_first_match", True)
        cases = kwargs["cases"]
        outputs: dict[str, Any] = {kwargs.get("default_field") or "default": data}
        if field and isinstance(data, list) and all(isinstance(item, dict) for item in data):
            matched_values = []
            for case in cases:
                items = [
                    item for item in data if self._matches(item.get(field), compare, case, kwargs)
                ]
                outputs[prefix + _case_key(case)] = items
                if items:
                    matched_values.append(case)
            outputs["condition_result"] = matched_values
            return outputs
        checked = self._checked_value(data, field)
        matched_case = None
        found = False
        for case in cases:
            hit = (not (found and first_only)) and self._matches(checked, compare, case, kwargs)
            outputs[prefix + _case_key(case)] = data if hit else None
            if hit:
                found, matched_case = True, case
        outputs["condition_result"] = matched_case
        return outputs

    @staticmethod
    def _checked_value(data: Any, field: str | None) -> Any:
        if field and isinstance(data, dict):
            return data.get(field)
        return data

    @staticmethod
    def _matches(checked: Any, compare: Callable, value: Any, kwargs: dict[str, Any]) -> bool:
        operator = kwargs.get("operator") or "=="
        if checked is None and operator not in _NONE_SAFE_OPERATORS:
            return False
        try:
            return bool(compare(checked, value))
        except (TypeError, ValueError):
            return False


def _case_key(case: Any) -> str:
    return _UNSAFE_CASE_CHARACTERS.sub("_", str(case))


_MERGE_INPUTS = ("data1", "data2", "data3", "data4", "data5")


@register_node()
class MergeNode(Node):
    """Join up to five inputs (``data1`` .. ``data5``) into ``merged_data``.

    ``merge_type``:
      - ``concat``: lists are concatenated; if any input is not a list, the inputs
        are collected into a list instead.
      - ``zip``: ``list(zip(...))`` of the inputs (a non-list input counts as ``[x]``).
      - ``merge_dict``: dicts are merged left to right (later keys win); lists of
        dicts are joined on ``key``: matching items are merged, others appended.

    With ``skip_none`` (default) ``None`` inputs are ignored, so a merge behind a
    Switch works whichever branch ran; one remaining input passes through unchanged
    and none at all gives ``None``.

    Raises:
        NodeConfigurationError: unknown ``merge_type`` in the configuration.
        NodeExecutionError: unknown ``merge_type`` given at run time (also a
            ``ValueError``, as in Kailash).
        NodeExecutionError: ``merge_dict`` on inputs that are not dicts or keyed lists.
    """

    _MERGE_TYPES: ClassVar[frozenset[str]] = frozenset({"concat", "zip", "merge_dict"})

    def get_parameters(self) -> dict[str, NodeParameter]:
        """``data1``..``data5`` plus the merge options; all optional."""
        parameters = {
            name: NodeParameter(name=name, required=False, description="an input to merge")
            for name in _MERGE_INPUTS
        }
        parameters["merge_type"] = NodeParameter(
            name="merge_type", type=str, required=False, default="concat"
        )
        parameters["key"] = NodeParameter(
            name="key",
            type=str,
            required=False,
            description="join key for merge_dict on lists",
        )
        parameters["skip_none"] = NodeParameter(
            name="skip_none", type=bool, required=False, default=True
        )
        return parameters

    def _prepare(self) -> None:
        merge_type = self.config.get("merge_type", "concat")
        if merge_type not in self._MERGE_TYPES:
            raise NodeConfigurationError(
                f"node {self.id!r} (MergeNode): unknown merge_type {merge_type!r}"
                f"{close_matches(str(merge_type), self._MERGE_TYPES)}; use one of "
                f"{sorted(self._MERGE_TYPES)}"
            )

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Merge the inputs; see the class docstring."""
        values = [kwargs.get(name) for name in _MERGE_INPUTS]
        if kwargs.get("skip_none", True):
            values = [value for value in values if value is not None]
            if not values:
                return {"merged_data": None}
            if len(values) == 1:
                return {"merged_data": values[0]}
        else:
            while values and values[-1] is None:
                values.pop()
        merge_type = kwargs.get("merge_type") or "concat"
        if merge_type == "concat":
            return {"merged_data": _concat(values)}
        if merge_type == "zip":
            return {
                "merged_data": list(
                    zip(*(v if isinstance(v, list) else [v] for v in values), strict=False)
                )
            }
        if merge_type == "merge_dict":
            return {"merged_data": _merge_dicts(values, kwargs.get("key"))}
        raise _UnknownOptionError(
            f"node {self.id!r} (MergeNode): unknown merge_type {merge_type!r}"
            f"{close_matches(str(merge_type), self._MERGE_TYPES)}; use one of "
            f"{sorted(self._MERGE_TYPES)}"
        )


def _concat(values: list[Any]) -> list[Any]:
    if all(isinstance(value, list) for value in values):
        return [item for value in values for item in value]
    return list(values)


def _merge_dicts(values: list[Any], key: str | None) -> Any:
    if all(isinstance(value, dict) for value in values):
        merged: dict[str, Any] = {}
        for value in values:
            merged.update(value)
        return merged
    if key and all(isinstance(value, list) for value in values):
        merged_items = [dict(item) for item in values[0]]
        index = {item.get(key): position for position, item in enumerate(merged_items)}
        for value in values[1:]:
            for item in value:
                position = index.get(item.get(key))
                if position is None:
                    index[item.get(key)] = len(merged_items)
                    merged_items.append(dict(item))
                else:
                    merged_items[position] = {**merged_items[position], **item}
        return merged_items
    raise ValueError("merge_dict needs dict inputs, or lists of dicts together with 'key'")
