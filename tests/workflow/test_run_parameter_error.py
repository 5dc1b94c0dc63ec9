"""``RunParameterError``: run parameters that do not fit the workflow, described by
kind, node and input so front ends can phrase the problem in their own syntax."""

from __future__ import annotations

from typing import Any

import pytest

from kailash_nb import Node, NodeParameter, WorkflowBuilder
from kailash_nb.sdk_exceptions import RunParameterError, WorkflowValidationError


class Load(Node):
    """Returns its required ``rows``."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {"rows": NodeParameter(name="rows", type=list, required=True)}

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return {"result": kwargs["rows"]}


def _workflow():
    builder = WorkflowBuilder()
    builder.add_node(Load, "load", {})
    builder.add_node("PythonCodeNode", "total", {"code": "result = sum(values)"})
    builder.add_connection("load", "result", "total", "values")
    return builder.build()


@pytest.mark.parametrize(
    ("parameters", "kind", "node_id", "input_name", "message"),
    [
        ([1], "not_a_dict", None, None, "parameters must be a dict, got list"),
        ({"__x": 1}, "bad_name", None, "__x", "parameter name '__x' is not allowed"),
        ({"load": 3}, "node_value_not_a_dict", "load", None, r"parameters\['load'\] must be"),
        ({"load": {"__y": 1}}, "bad_name", "load", "__y", "input of node 'load' name '__y'"),
        ({"load": {"rowz": 1}}, "unknown_input", "load", "rowz", "has no input 'rowz'"),
        (
            {"lod": {"rows": 1}},
            "unknown_parameter",
            None,
            "lod",
            r"parameters=\{node_id: \{input: value\}\}",
        ),
    ],
)
def test_split_parameters_describes_what_was_wrong(parameters, kind, node_id, input_name, message):
    with pytest.raises(RunParameterError, match=message) as info:
        _workflow().plan.split_parameters(parameters)
    error = info.value
    assert isinstance(error, WorkflowValidationError)
    assert (error.kind, error.node_id, error.input_name) == (kind, node_id, input_name)


def test_missing_required_inputs_are_listed():
    with pytest.raises(RunParameterError, match="required inputs are missing") as info:
        _workflow().validate()
    assert info.value.kind == "missing_required"
    assert info.value.missing == (("load", "rows"),)
    assert info.value.node_id == "load"
