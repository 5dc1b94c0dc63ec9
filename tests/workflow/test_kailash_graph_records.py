"""Kailash's graph-side records and helpers: edge attributes, ``str()``,
``CyclicConnection``, ``NodeInstance``, the state wrapper and validation issues.

Expected values were observed under Kailash 2.65.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from kailash_nb import Node, NodeParameter, WorkflowBuilder
from kailash_nb.workflow.graph import Connection, CyclicConnection, NodeInstance, Workflow
from kailash_nb.workflow.state import StateManager, WorkflowStateWrapper
from kailash_nb.workflow.validation import IssueSeverity, ValidationIssue


class Pair(Node):
    """Adds ``a`` and ``b``."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "a": NodeParameter(name="a", type=int, required=False, default=0),
            "b": NodeParameter(name="b", type=int, required=False, default=0),
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return {"sum": kwargs["a"] + kwargs["b"], "diff": kwargs["a"] - kwargs["b"]}


def test_graph_edges_carry_kailash_mapping_attributes():
    workflow = Workflow("w", "merge")
    workflow.add_node("p", Pair)
    workflow.add_node("q", Pair)
    workflow.connect("p", "q", {"sum": "a"})
    edge = workflow.graph.get_edge_data("p", "q")
    assert (edge["mapping"], edge["from_output"], edge["to_input"]) == ({"sum": "a"}, "sum", "a")
    workflow.connect("p", "q", {"diff": "b"})
    edge = workflow.graph.get_edge_data("p", "q")
    assert edge["mapping"] == {"sum": "a", "diff": "b"}
    assert (edge["from_output"], edge["to_input"]) == (["sum", "diff"], ["a", "b"])
    assert len(edge["connections"]) == 2


def test_built_graph_edges_carry_the_same_attributes():
    builder = WorkflowBuilder()
    builder.add_node(Pair, "p", {})
    builder.add_node(Pair, "q", {})
    builder.add_connection("p", "sum", "q", "a")
    assert builder.build().graph["p"]["q"]["mapping"] == {"sum": "a"}


def test_str_names_the_workflow_and_its_id():
    workflow = Workflow("wf-7", "Test Workflow")
    assert str(workflow) == "Workflow 'Test Workflow' (ID: wf-7) with 0 nodes and 0 connections"
    assert repr(workflow) == "<Workflow Test Workflow: 0 nodes, 0 edges>"


def test_cyclic_connection_and_node_instance_records():
    edge = CyclicConnection("a", "out", "b", "in", cycle_id="c1", cycle=True, max_iterations=5)
    assert isinstance(edge, Connection)
    assert (edge.cycle, edge.max_iterations, edge.timeout, edge["from_node"]) == (
        True,
        5,
        None,
        "a",
    )
    node = NodeInstance(node_id="n", node_type="Pair", config={"a": 1}, position=(1, 2))
    assert (node.node_id, node.node_type, node.config, node.position) == (
        "n",
        "Pair",
        {"a": 1},
        (1, 2),
    )
    assert NodeInstance("m", "Pair").position == (0, 0)


class Inner(BaseModel):
    level: int = 0


class State(BaseModel):
    count: int = 0
    inner: Inner = Inner()
    tags: dict[str, int] = {}


def test_state_wrapper_updates_without_changing_the_model():
    state = State()
    wrapper = Workflow("w", "s").create_state_wrapper(state)
    assert isinstance(wrapper, WorkflowStateWrapper)
    updated = wrapper.update_in(["inner", "level"], 3).update_in(["tags", "x"], 1).merge(count=2)
    assert updated.get_state() == State(count=2, inner=Inner(level=3), tags={"x": 1})
    assert state == State() and wrapper.get_state() is state
    assert updated.get_in(["inner", "level"]) == 3
    batched = wrapper.batch_update([(["count"], 9), (["inner", "level"], 1)]).get_state()
    assert (batched.count, batched.inner.level) == (9, 1)


def test_state_manager_refuses_bad_paths_and_non_models():
    with pytest.raises(KeyError, match=r"inner\.nope"):
        StateManager.update_in(State(), ["inner", "nope"], 1)
    with pytest.raises(KeyError, match="missing"):
        StateManager.get_in(State(), ["missing"])
    with pytest.raises(TypeError, match="pydantic"):
        WorkflowStateWrapper({"count": 1})  # type: ignore[type-var]


def test_validation_issue_record():
    issue = ValidationIssue(IssueSeverity.WARNING, "parameter", "PAR001", "no parameters")
    assert issue.severity.value == "warning"
    assert (issue.node_id, issue.suggestion) == (None, None)
    assert [s.value for s in IssueSeverity] == ["error", "warning", "info"]


def _looped() -> Workflow:
    workflow = Workflow("w", "loop")
    workflow.add_node("p", Pair)
    workflow.add_node("q", Pair)
    workflow.connect("p", "q", {"sum": "a"})
    workflow.create_cycle("again").connect("q", "p", {"sum": "a"}).max_iterations(3).build()
    return workflow


def test_get_cycle_groups_lists_each_cycles_edges():
    assert Workflow("w", "flat").get_cycle_groups() == {}
    groups = _looped().get_cycle_groups()
    assert list(groups) == ["again"]
    ((source, target, data),) = groups["again"]
    assert (source, target, data["mapping"], data["max_iterations"]) == ("q", "p", {"sum": "a"}, 3)


def test_save_writes_json_or_yaml(tmp_path):
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "load", {"code": "result = [1, 2]"})
    builder.add_node("PythonCodeNode", "total", {"code": "result = sum(rows)"})
    builder.add_connection("load", "result", "total", "rows")
    workflow = builder.build(name="etl")
    workflow.save(tmp_path / "w.json")
    assert Workflow.from_json((tmp_path / "w.json").read_text()).to_dict() == workflow.to_dict()
    workflow.save(str(tmp_path / "w.yaml"), format="yaml")
    assert Workflow.from_yaml((tmp_path / "w.yaml").read_text()).to_dict() == workflow.to_dict()
    with pytest.raises(ValueError, match="Unsupported format"):
        workflow.save(tmp_path / "w.xml", format="xml")
    assert not (tmp_path / "w.xml").exists()
