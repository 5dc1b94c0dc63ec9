"""Kailash's builder forms kailash_nb takes: ``add_input_connection``, writes into
``builder.nodes``, the entries of nodes given by instance, and Kailash's wording for
the mistakes ``add_node``, ``add_connection`` and ``from_dict`` refuse.

Expected values were observed under Kailash 2.65 unless a test says it shows a
documented difference (docs/porting.md).
"""

from __future__ import annotations

import pytest
from _double import Double

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.sdk_exceptions import ConnectionError as KailashConnectionError
from kailash_nb.sdk_exceptions import UnknownNodeError, WorkflowValidationError
from kailash_nb.workflow.connection import WORKFLOW_INPUT


def test_add_input_connection_is_listed_as_kailash_lists_it():
    builder = WorkflowBuilder()
    builder.add_node(Double, "a", {})
    assert builder.add_input_connection("a", "x", "inp") is builder
    (connection,) = builder.connections
    assert connection["from_node"] == WORKFLOW_INPUT == "__workflow_input__"
    assert (connection["from_output"], connection["to_node"], connection["to_input"]) == (
        "inp",
        "a",
        "x",
    )
    assert connection["is_workflow_input"] is True


def test_add_input_connection_delivers_the_run_parameter():
    # Documented difference: Kailash 2.65's build() fails on these connections.
    builder = WorkflowBuilder()
    builder.add_node(Double, "a", {})
    builder.add_input_connection("a", "x", "inp")
    workflow = builder.build()
    assert LocalRuntime().execute(workflow, parameters={"inp": 6})[0] == {"a": {"result": 12}}


def test_add_input_connection_checks_the_node_and_input():
    builder = WorkflowBuilder()
    builder.add_node(Double, "a", {})
    with pytest.raises(WorkflowValidationError, match="Node 'zz' not found"):
        builder.add_input_connection("zz", "x", "inp")
    builder.add_input_connection("a", "y", "inp")
    with pytest.raises(WorkflowValidationError, match="no input 'y'"):
        builder.build()


def test_removing_a_node_drops_its_input_connections():
    builder = WorkflowBuilder()
    builder.add_node(Double, "a", {})
    builder.add_node(Double, "b", {})
    builder.add_input_connection("a", "x", "inp").add_input_connection("b", "x", "inp")
    builder.remove_node("a")
    assert [c["to_node"] for c in builder.connections] == ["b"]
    assert builder.clear().connections == []


def test_nodes_is_a_dict_whose_writes_reach_the_builder():
    builder = WorkflowBuilder()
    assert isinstance(builder.nodes, dict)
    builder.nodes["a"] = {"type": "PythonCodeNode"}
    assert builder.nodes["a"] == {"type": "PythonCodeNode", "config": {}}
    builder.update_node("a", {"code": "result = 5"})
    builder.nodes["b"] = {"type": Double, "config": {"x": 4}}
    assert LocalRuntime().execute(builder.build())[0] == {
        "a": {"result": 5},
        "b": {"result": 8},
    }
    builder.nodes["b"] = {"type": "PythonCodeNode", "config": {"code": "result = 0"}}
    assert builder.nodes["b"]["type"] == "PythonCodeNode"
    del builder.nodes["b"]
    assert builder.node_ids == ["a"]
    with pytest.raises(WorkflowValidationError, match="'type'"):
        builder.nodes["c"] = {"config": {}}


def test_a_node_given_by_instance_lists_the_instance():
    instance = Double(x=3)
    builder = WorkflowBuilder()
    builder.add_node(instance, "a")
    entry = builder.nodes["a"]
    assert entry["instance"] is instance
    assert entry["class"] is Double and entry["config"] == {"x": 3}
    assert LocalRuntime().execute(builder.build())[0] == {"a": {"result": 6}}


def test_unknown_connection_node_is_both_kailash_errors():
    builder = WorkflowBuilder()
    builder.add_node(Double, "a", {})
    with pytest.raises(UnknownNodeError, match="Source node 'ghost' not found") as info:
        builder.add_connection("ghost", "result", "a", "x")
    assert isinstance(info.value, KailashConnectionError)
    assert isinstance(info.value, WorkflowValidationError)
    with pytest.raises(WorkflowValidationError, match="Target node 'ghost' not found"):
        builder.add_connection("a", "result", "ghost", "x")
    workflow = builder.build()
    with pytest.raises(KailashConnectionError, match="Target node 'ghost' not found"):
        workflow.connect("a", "ghost", {"result": "x"})


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda b: b.add_node("a", Double), WorkflowValidationError, "removed in v1.0.0"),
        (
            lambda b: b.add_node(123, 456, 789),
            WorkflowValidationError,
            "Invalid add_node signature",
        ),
        (lambda b: b.add_node(dict, "a"), WorkflowValidationError, "Invalid node type"),
        (lambda b: b.add_node(node_id="a"), WorkflowValidationError, "node_type is required"),
        (lambda b: b.add_node(Double, "d"), WorkflowValidationError, "Node ID 'd' already exists"),
        (
            lambda b: b.add_connection("d", "result", "d", "x"),
            KailashConnectionError,
            "Cannot connect node 'd' to itself",
        ),
        (lambda b: b.update_node("zz", {}), WorkflowValidationError, "Node 'zz' not found"),
        (
            lambda b: b.add_workflow_inputs("zz", {"p": "x"}),
            WorkflowValidationError,
            "Node 'zz' not found",
        ),
    ],
)
def test_builder_mistakes_use_kailash_wording(call, error, message):
    builder = WorkflowBuilder()
    builder.add_node(Double, "d")
    with pytest.raises(error, match=message):
        call(builder)


def test_keyword_only_add_node():
    builder = WorkflowBuilder()
    assert builder.add_node(node_type="Double", node_id="a", config={"x": 2}) == "a"
    assert builder.nodes["a"]["config"] == {"x": 2}


def test_unknown_type_at_build_names_the_node():
    builder = WorkflowBuilder()
    builder.add_node("NoSuchNode", "n", {})
    with pytest.raises(WorkflowValidationError, match="Failed to add node 'n' to workflow"):
        builder.build()


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"nodes": [{"id": "a"}]}, "Node type is required for node 'a'"),
        ({"nodes": [{"type": "Double"}]}, "Node ID is required"),
        (
            {"nodes": [{"id": "a", "type": "Double"}], "connections": [{"from_output": "r"}]},
            "Invalid connection: missing from_node and to_node",
        ),
    ],
)
def test_from_dict_mistakes_use_kailash_wording(definition, message):
    with pytest.raises(WorkflowValidationError, match=message):
        WorkflowBuilder.from_dict(definition)
