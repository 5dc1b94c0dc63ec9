"""Kailash's ``WorkflowBuilder`` methods: node listing and updates, metadata, workflow
inputs and parameter mappings, ``clear``, connections read as dicts.

Expected values were observed under Kailash 2.65 unless a test says it shows a
documented difference (docs/porting.md).
"""

from __future__ import annotations

import pytest
from _double import Double

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.workflow import Connection


def _run(builder: WorkflowBuilder, parameters: dict | None = None) -> dict:
    return LocalRuntime().execute(builder.build(), parameters=parameters)[0]


def test_nodes_lists_type_and_config_as_kailash_does():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node(PythonCodeNode, "cls", {"code": "result = 3"})
    assert builder.nodes == {
        "a": {"type": "PythonCodeNode", "config": {"code": "result = 1"}},
        "cls": {
            "type": "PythonCodeNode",
            "config": {"code": "result = 3"},
            "class": PythonCodeNode,
        },
    }


def test_update_node_merges_config():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    assert builder.update_node("a", {"code": "result = 5"}) is builder
    assert builder.nodes["a"] == {"type": "PythonCodeNode", "config": {"code": "result = 5"}}
    assert _run(builder) == {"a": {"result": 5}}
    with pytest.raises(WorkflowValidationError, match="'zz'"):
        builder.update_node("zz", {})


def test_add_node_type_and_add_node_instance():
    builder = WorkflowBuilder()
    assert builder.add_node_type("PythonCodeNode", "t", {"code": "result = 1"}) == "t"
    instance = PythonCodeNode(code="result = 2")
    assert builder.add_node_instance(instance, "inst") == "inst"
    assert _run(builder) == {"t": {"result": 1}, "inst": {"result": 2}}
    with pytest.raises(WorkflowValidationError, match="Node instance"):
        builder.add_node_instance("PythonCodeNode", "x")


def test_connections_read_as_kailash_dicts_and_stay_connections():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x"})
    builder.add_connection("a", "result", "b", "x")
    (connection,) = builder.connections
    assert isinstance(connection, Connection)
    assert [connection[k] for k in ("from_node", "from_output", "to_node", "to_input")] == [
        "a",
        "result",
        "b",
        "x",
    ]
    assert connection["source_node"] == "a"
    assert connection.get("is_workflow_input") is None
    with pytest.raises(KeyError):
        connection["nope"]


def test_add_workflow_inputs_delivers_a_run_parameter_to_a_node_input():
    builder = WorkflowBuilder()
    builder.add_node(Double, "a", {})
    assert builder.add_workflow_inputs("a", {"inp": "x"}) is builder
    workflow = builder.build()
    assert workflow.metadata["_workflow_inputs"] == {"a": {"inp": "x"}}
    assert LocalRuntime().execute(workflow, parameters={"inp": 6})[0] == {"a": {"result": 12}}
    # A node-specific parameter wins; without either the default is used.
    assert LocalRuntime().execute(workflow, parameters={"a": {"x": 7}})[0] == {"a": {"result": 14}}
    assert LocalRuntime().execute(workflow)[0] == {"a": {"result": 2}}
    with pytest.raises(WorkflowValidationError, match="'zz'"):
        WorkflowBuilder().add_workflow_inputs("zz", {"inp": "x"})


def test_add_workflow_inputs_to_an_unknown_input_fails_at_build():
    builder = WorkflowBuilder()
    builder.add_node(Double, "a", {})
    builder.add_workflow_inputs("a", {"inp": "y"})
    with pytest.raises(WorkflowValidationError, match="no input 'y'"):
        builder.build()


def test_set_workflow_parameters_are_defaults_of_every_run():
    # Documented difference: Kailash 2.65 stores them but its runs ignore them ({'a': 2}).
    builder = WorkflowBuilder()
    builder.add_node(Double, "a", {})
    assert builder.set_workflow_parameters(x=4) is builder
    workflow = builder.build()
    assert workflow.metadata["workflow_parameters"] == {"x": 4}
    assert LocalRuntime().execute(workflow)[0] == {"a": {"result": 8}}
    assert LocalRuntime().execute(workflow, parameters={"x": 5})[0] == {"a": {"result": 10}}
    bad = WorkflowBuilder()
    bad.add_node(Double, "a", {})
    bad.set_workflow_parameters(nobody=1)
    with pytest.raises(WorkflowValidationError, match="'nobody'"):
        bad.build()


def test_add_parameter_mapping_maps_like_workflow_inputs():
    # Documented difference: Kailash 2.65 stores the mapping but its runs ignore it.
    builder = WorkflowBuilder()
    builder.add_node(Double, "a", {})
    builder.add_parameter_mapping("a", {"inp": "x"})
    assert builder.build().metadata["parameter_mappings"] == {"a": {"inp": "x"}}
    assert _run(builder, {"inp": 5}) == {"a": {"result": 10}}


def test_set_metadata_and_clear():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    assert builder.set_metadata(name="named", team="data") is builder
    workflow = builder.build()
    assert (workflow.name, workflow.metadata) == ("named", {"team": "data"})
    assert builder.clear() is builder
    assert (builder.nodes, builder.connections) == ({}, [])
    assert builder.build().name.startswith("Workflow-")


def test_workflow_parameters_and_parameter_mappings_are_live_attributes():
    builder = WorkflowBuilder()
    builder.add_node(Double, "a", {})
    assert builder.workflow_parameters == {}
    assert builder.parameter_mappings == {}
    assert "workflow_parameters" not in builder.build().metadata
    builder.workflow_parameters["x"] = 3
    builder.add_parameter_mapping("a", {"inp": "x"})
    assert builder.parameter_mappings == {"a": {"inp": "x"}}
    assert _run(builder) == {"a": {"result": 6}}
