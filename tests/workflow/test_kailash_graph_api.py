"""Kailash's graph API on ``Workflow`` and ``WorkflowBuilder.from_dict``.

The expected values were observed by running the same workflows under Kailash 2.65
(``kailash`` in place of ``kailash_nb``).
"""

from __future__ import annotations

from typing import Any

import pytest

from kailash_nb import LocalRuntime, Node, NodeParameter, Workflow, WorkflowBuilder
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.sdk_exceptions import (
    ConnectionError,  # noqa: A004 - the Kailash name
    ExportException,
    WorkflowValidationError,
)


def _fan_in() -> Workflow:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "c", {"code": "result = 3"})
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x + y"})
    builder.add_connection("a", "result", "b", "x")
    builder.add_connection("c", "result", "b", "y")
    return builder.build()


def _loop() -> Workflow:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "s", {"code": "result = 0"})
    builder.add_node("PythonCodeNode", "p", {"code": "result = v + 1"})
    builder.add_node("PythonCodeNode", "q", {"code": "result = w"})
    builder.add_connection("s", "result", "p", "v")
    builder.add_connection("p", "result", "q", "w")
    workflow = builder.build()
    workflow.create_cycle("cy").connect("q", "p", {"result": "v"}).max_iterations(4).converge_when(
        "result >= 3"
    ).build()
    return workflow


# -- get_execution_order --------------------------------------------------------------
def test_execution_order_is_kahns_with_sorted_ties_as_a_tuple():
    assert _fan_in().get_execution_order() == ("a", "c", "b")


def test_execution_order_places_a_successor_after_the_other_roots():
    # Kahn's FIFO order: roots a and d first, then b (a lexicographic sort gives a, b, d).
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = {'p': 1, 'q': 2}"})
    builder.add_node("PythonCodeNode", "d", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x + y"})
    builder.add_connection("a", "result.p", "b", "x")
    builder.add_connection("a", "result.q", "b", "y")
    assert builder.build().get_execution_order() == ("a", "d", "b")


def test_execution_order_leaves_cycle_edges_out_and_is_cached():
    workflow = _loop()
    assert workflow.get_execution_order() == ("s", "p", "q")
    assert workflow.get_execution_order() is workflow.get_execution_order()


def test_execution_order_of_an_empty_workflow():
    workflow = WorkflowBuilder().build()
    assert workflow.get_execution_order() == ()
    assert workflow.has_cycles() is False
    assert workflow.validate() is None


# -- has_cycles / separate_dag_and_cycle_edges ------------------------------------------
def test_has_cycles():
    assert _fan_in().has_cycles() is False
    assert _loop().has_cycles() is True


def test_separate_dag_and_cycle_edges_in_kailash_layout():
    dag, cycle = _loop().separate_dag_and_cycle_edges()
    assert dag == (
        ("s", "p", {"mapping": {"result": "v"}, "from_output": "result", "to_input": "v"}),
        ("p", "q", {"mapping": {"result": "w"}, "from_output": "result", "to_input": "w"}),
    )
    assert cycle == (
        (
            "q",
            "p",
            {
                "mapping": {"result": "v"},
                "from_output": "result",
                "to_input": "v",
                "cycle": True,
                "cycle_id": "cy",
                "max_iterations": 4,
                "convergence_check": "result >= 3",
                "timeout": None,
                "memory_limit": None,
                "condition": None,
                "parent_cycle": None,
            },
        ),
    )


def test_separate_edges_lists_several_connections_of_one_pair_and_keeps_edge_order():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = {'p': 1, 'q': 2}"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x + y"})
    builder.add_connection("a", "result.p", "b", "x")
    builder.add_connection("a", "result.q", "b", "y")
    dag, cycle = builder.build().separate_dag_and_cycle_edges()
    assert dag == (
        (
            "a",
            "b",
            {
                "mapping": {"result.p": "x", "result.q": "y"},
                "from_output": ["result.p", "result.q"],
                "to_input": ["x", "y"],
            },
        ),
    )
    assert cycle == ()
    assert [(s, t) for s, t, _ in _fan_in().separate_dag_and_cycle_edges()[0]] == [
        ("a", "b"),
        ("c", "b"),
    ]


# -- validate ---------------------------------------------------------------------------
def test_validate_passes_for_complete_workflows():
    assert _fan_in().validate() is None
    assert _loop().validate() is None


def test_validate_reports_a_missing_required_input_unless_runtime_parameters_give_it():
    builder = WorkflowBuilder()
    builder.add_node("CSVReaderNode", "r", {})
    workflow = builder.build()
    with pytest.raises(WorkflowValidationError, match="'r' input 'file_path'"):
        workflow.validate()
    assert workflow.validate(runtime_parameters={"r": {"file_path": "x.csv"}}) is None


def test_an_unmarked_cycle_is_refused_at_build_not_at_get_execution_order():
    # Deliberate difference: Kailash builds it and raises from get_execution_order().
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "x", {"code": "result = a"})
    builder.add_node("PythonCodeNode", "y", {"code": "result = b"})
    builder.add_connection("x", "result", "y", "b")
    builder.add_connection("y", "result", "x", "a")
    with pytest.raises(WorkflowValidationError, match="unmarked cycle"):
        builder.build()


# -- WorkflowBuilder.from_dict ------------------------------------------------------------
def test_from_dict_reads_kailash_list_layout():
    definition = {
        "name": "fd",
        "description": "desc",
        "nodes": [
            {"id": "a", "type": "PythonCodeNode", "parameters": {"code": "result = 1"}},
            {"id": "b", "type": "PythonCodeNode", "config": {"code": "result = x"}},
        ],
        "connections": [
            {"from_node": "a", "from_output": "result", "to_node": "b", "to_input": "x"}
        ],
    }
    builder = WorkflowBuilder.from_dict(definition)
    assert isinstance(builder, WorkflowBuilder)
    workflow = builder.build()
    assert (workflow.name, workflow.description) == ("fd", "desc")
    assert workflow.get_execution_order() == ("a", "b")
    results, _ = LocalRuntime().execute(workflow)
    assert results == {"a": {"result": 1}, "b": {"result": 1}}


def test_from_dict_reads_kailash_dict_layout_and_short_connections():
    definition = {
        "nodes": {
            "a": {"type": "PythonCodeNode", "parameters": {"code": "result = 5"}},
            "b": {"type": "PythonCodeNode", "parameters": {"code": "result = input * 2"}},
        },
        "connections": [{"from": "a", "to": "b"}],
    }
    results, _ = LocalRuntime().execute(WorkflowBuilder.from_dict(definition).build())
    assert results == {"a": {"result": 5}, "b": {"result": 10}}


def test_from_dict_prefers_parameters_over_config():
    definition = {
        "nodes": [
            {
                "id": "a",
                "type": "PythonCodeNode",
                "parameters": {"code": "result = 'parameters'"},
                "config": {"code": "result = 'config'"},
            }
        ]
    }
    results, _ = LocalRuntime().execute(WorkflowBuilder.from_dict(definition).build())
    assert results == {"a": {"result": "parameters"}}


def test_from_dict_keeps_other_keys_as_metadata():
    definition = {"name": "n1", "version": "2.0", "author": "me", "extra": 1, "nodes": []}
    workflow = WorkflowBuilder.from_dict(definition).build()
    assert (workflow.name, workflow.version, workflow.author) == ("n1", "2.0", "me")
    assert workflow.metadata["extra"] == 1


def test_from_dict_reads_kailash_nb_to_dict_output_with_cycles():
    original = _loop()
    rebuilt = WorkflowBuilder.from_dict(original.to_dict()).build()
    assert rebuilt.workflow_id == original.workflow_id
    assert rebuilt.get_execution_order() == ("s", "p", "q")
    assert rebuilt.separate_dag_and_cycle_edges() == original.separate_dag_and_cycle_edges()


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"nodes": [{"id": "a"}]}, "node 'a'.*node_type"),
        ({"nodes": [{"type": "PythonCodeNode"}]}, "node id None"),
        (
            {
                "nodes": [{"id": "a", "type": "PythonCodeNode", "parameters": {"code": "r=1"}}],
                "connections": [{"to": "a"}],
            },
            r"connections\[0\] needs source_node",
        ),
        ({"nodes": [{"id": "a", "type": "PythonCodeNode", "parameters": "x"}]}, "mapping"),
    ],
)
def test_from_dict_refuses_malformed_definitions(definition, message):
    with pytest.raises(WorkflowValidationError, match=message):
        WorkflowBuilder.from_dict(definition)


def test_build_settings_override_builder_metadata():
    builder = WorkflowBuilder().set_metadata(name="first", description="d", team="x")
    workflow = builder.build(name="second", metadata={"owner": "me"})
    assert (workflow.name, workflow.description) == ("second", "d")
    assert workflow.metadata == {"owner": "me", "team": "x"}


# -- Workflow(workflow_id, name) + add_node/connect, as Kailash builds workflows ------------
def test_workflow_built_directly_runs_as_in_kailash():
    workflow = Workflow("wf-1", "direct")
    workflow.add_node("a", "PythonCodeNode", code="result = {'output': 2}")
    workflow.add_node("b", PythonCodeNode, code="result = input * 10")
    workflow.connect("a", "b", {"result.output": "input"})
    assert (workflow.workflow_id, workflow.name, sorted(workflow.nodes)) == (
        "wf-1",
        "direct",
        ["a", "b"],
    )
    assert workflow.get_execution_order() == ("a", "b")
    results, _ = LocalRuntime().execute(workflow)
    assert results == {"a": {"result": {"output": 2}}, "b": {"result": 20}}
    workflow.add_node("c", PythonCodeNode(code="result = 7"))
    assert LocalRuntime().execute(workflow)[0]["c"] == {"result": 7}
    workflow.connect("c", "b")  # Kailash's default mapping
    assert workflow.separate_dag_and_cycle_edges()[0][-1] == (
        "c",
        "b",
        {"mapping": {"output": "input"}, "from_output": "output", "to_input": "input"},
    )


def test_workflow_built_directly_refuses_what_kailash_refuses():
    workflow = Workflow("wf-1", "direct")
    workflow.add_node("a", "PythonCodeNode", code="result = 1")
    with pytest.raises(WorkflowValidationError, match="'a' already exists"):
        workflow.add_node("a", "PythonCodeNode", code="result = 1")
    with pytest.raises(WorkflowValidationError, match="create_cycle"):
        workflow.connect("a", "a", {"result": "x"}, cycle=True, max_iterations=3)
    with pytest.raises(ConnectionError, match="cannot feed itself"):
        workflow.connect("a", "a", {"result": "x"})
    with pytest.raises(WorkflowValidationError, match="target node 'zz'"):
        workflow.connect("a", "zz", {"result": "x"})


def test_workflow_defaults_its_id_and_name():
    workflow = Workflow()
    assert workflow.name == f"Workflow-{workflow.workflow_id[:8]}"
    assert workflow.nodes == {}


def test_a_node_whose_init_skips_node_init_has_an_id_and_runs():
    class NoInit(Node):
        def __init__(self, **config: Any) -> None:
            self.factor = 3

        def get_parameters(self) -> dict[str, NodeParameter]:
            return {"x": NodeParameter(name="x", type=int, required=True)}

        def run(self, **kwargs: Any) -> dict[str, Any]:
            return {"result": kwargs["x"] * self.factor}

    assert NoInit().id == "NoInit"
    builder = WorkflowBuilder()
    builder.add_node(NoInit, "n")
    workflow = builder.build()
    assert workflow.nodes["n"].id == "n"
    results, _ = LocalRuntime().execute(workflow, parameters={"n": {"x": 2}})
    assert results == {"n": {"result": 6}}


def test_an_unexportable_config_raises_export_exception():
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(lambda: {"result": 1}), "f")
    workflow = builder.build()
    with pytest.raises(ExportException, match="cannot carry") as caught:
        workflow.to_dict()
    assert isinstance(caught.value, WorkflowValidationError)
