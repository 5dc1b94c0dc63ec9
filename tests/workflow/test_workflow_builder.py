"""WorkflowBuilder and Workflow: node forms, connections, build-time checks, graph."""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest

from kailash_nb import LocalRuntime, Node, NodeParameter, Workflow, WorkflowBuilder
from kailash_nb import sdk_exceptions as errors
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.nodes.logic import SwitchNode
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    WorkflowException,
    WorkflowValidationError,
)
from kailash_nb.workflow import Connection, NodeOptions


class Scale(Node):
    """An unregistered node class: multiplies ``x`` by ``factor``."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "x": NodeParameter(name="x", type=int, required=True),
            "factor": NodeParameter(name="factor", type=int, required=False, default=2),
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return {"result": kwargs["x"] * kwargs["factor"]}


def _two_step() -> WorkflowBuilder:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "load", {"code": "result = [1, 2, 3]"})
    builder.add_node("PythonCodeNode", "total", {"code": "result = sum(rows)"})
    builder.add_connection("load", "result", "total", "rows")
    return builder


# -- add_node forms ------------------------------------------------------------------------


def test_add_node_type_name_id_and_config_dict() -> None:
    builder = WorkflowBuilder()
    node_id = builder.add_node("PythonCodeNode", "double", {"code": "result = x * 2"})
    assert node_id == "double"
    workflow = builder.build()
    node = workflow.nodes["double"]
    assert isinstance(node, PythonCodeNode)
    assert node.id == "double"
    assert node.config == {"code": "result = x * 2"}
    results, _ = LocalRuntime().execute(workflow, {"double": {"x": 21}})
    assert results == {"double": {"result": 42}}


def test_add_node_config_kwargs_merge_into_config() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "kw", code="result = x + y", x=1, y=2)
    builder.add_node("PythonCodeNode", "mixed", {"code": "result = x + y", "x": 10}, y=20)
    workflow = builder.build()
    assert workflow.nodes["kw"].config == {"code": "result = x + y", "x": 1, "y": 2}
    assert workflow.nodes["mixed"].config == {"code": "result = x + y", "x": 10, "y": 20}
    results, _ = LocalRuntime().execute(workflow)
    assert results["kw"] == {"result": 3}
    assert results["mixed"] == {"result": 30}


def test_add_node_type_and_config_only_generates_ids() -> None:
    builder = WorkflowBuilder()
    first = builder.add_node("PythonCodeNode", {"code": "result = 1"})
    second = builder.add_node("PythonCodeNode", {"code": "result = 2"})
    switch = builder.add_node("SwitchNode", {"value": 1})
    assert (first, second, switch) == ("pythoncodenode_1", "pythoncodenode_2", "switchnode_1")
    workflow = builder.build()
    assert workflow.nodes["pythoncodenode_2"].config == {"code": "result = 2"}
    assert workflow.nodes["switchnode_1"].config == {"value": 1}


def test_add_node_auto_id_skips_taken_ids() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "pythoncodenode_1", {"code": "result = 1"})
    assert builder.add_node("PythonCodeNode", {"code": "result = 2"}) == "pythoncodenode_2"


def test_add_node_with_node_subclass() -> None:
    builder = WorkflowBuilder()
    assert builder.add_node(Scale, "scale", {"factor": 3}) == "scale"
    assert builder.add_node(Scale) == "scale_1"
    workflow = builder.build()
    assert type(workflow.nodes["scale"]) is Scale
    assert workflow.nodes["scale"].config == {"factor": 3}
    results, _ = LocalRuntime().execute(workflow, {"scale": {"x": 5}, "scale_1": {"x": 5}})
    assert results == {"scale": {"result": 15}, "scale_1": {"result": 10}}


def test_add_node_with_instance_builds_fresh_instance_with_same_config() -> None:
    original = Scale(factor=7)
    builder = WorkflowBuilder()
    builder.add_node(original, "scale")
    workflow = builder.build()
    built = workflow.nodes["scale"]
    assert built is not original
    assert type(built) is Scale
    assert built.id == "scale"
    assert built.config == {"factor": 7}
    assert original.config == {"factor": 7}
    results, _ = LocalRuntime().execute(workflow, {"scale": {"x": 2}})
    assert results["scale"] == {"result": 14}


def test_add_node_instance_config_can_be_overridden() -> None:
    builder = WorkflowBuilder()
    builder.add_node(Scale(factor=7), "scale", {"factor": 9})
    assert builder.build().nodes["scale"].config == {"factor": 9}


def test_add_node_rejects_bad_node_type_objects() -> None:
    builder = WorkflowBuilder()
    with pytest.raises(WorkflowValidationError):
        builder.add_node(42)  # type: ignore[arg-type]
    with pytest.raises(WorkflowValidationError):
        builder.add_node(dict)  # type: ignore[arg-type]


def test_add_node_rejects_non_dict_config() -> None:
    with pytest.raises(WorkflowValidationError, match="must be a dict"):
        WorkflowBuilder().add_node("PythonCodeNode", "a", ["code"])  # type: ignore[arg-type]


def test_duplicate_node_id_raises() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    with pytest.raises(WorkflowValidationError, match="'a' already exists"):
        builder.add_node("PythonCodeNode", "a", {"code": "result = 2"})
    assert builder.node_ids == ["a"]


@pytest.mark.parametrize("bad_id", ["", "a.b", "__x", "x" * 129, "tab\there"])
def test_invalid_node_ids_raise(bad_id: str) -> None:
    with pytest.raises(WorkflowValidationError):
        WorkflowBuilder().add_node("PythonCodeNode", bad_id, {"code": "result = 1"})


# -- connections ---------------------------------------------------------------------------


def test_add_connection_is_chainable() -> None:
    builder = WorkflowBuilder()
    for node_id in ("a", "b", "c"):
        builder.add_node("PythonCodeNode", node_id, {"code": "result = 1"})
    returned = builder.add_connection("a", "result", "b", "x").add_connection(
        "b", "result", "c", "y"
    )
    assert returned is builder
    assert builder.connections == [
        Connection("a", "result", "b", "x"),
        Connection("b", "result", "c", "y"),
    ]


def test_add_connection_unknown_node_raises_immediately() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "load", {"code": "result = 1"})
    with pytest.raises(errors.ConnectionError, match="'lod'") as info:
        builder.add_connection("load", "result", "lod", "x")
    assert "load" in str(info.value)
    with pytest.raises(errors.ConnectionError, match="'ghost'"):
        builder.add_connection("ghost", "result", "load", "x")
    assert builder.connections == []


def test_add_connection_self_connection_raises_immediately() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = x"})
    with pytest.raises(errors.ConnectionError, match="create_cycle"):
        builder.add_connection("a", "result", "a", "x")


def test_add_connection_exact_duplicate_raises_immediately() -> None:
    builder = _two_step()
    with pytest.raises(errors.ConnectionError, match="already added"):
        builder.add_connection("load", "result", "total", "rows")
    # A different target input is not a duplicate.
    builder.add_connection("load", "result", "total", "other")
    assert len(builder.connections) == 2


def test_connection_error_is_a_workflow_exception() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    with pytest.raises(WorkflowException):
        builder.add_connection("a", "result", "missing", "x")


def test_connect_with_mapping() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "src", {"code": "a = 1\nb = 2"})
    builder.add_node("PythonCodeNode", "dst", {"code": "result = x + y"})
    assert builder.connect("src", "dst", mapping={"a": "x", "b": "y"}) is builder
    assert builder.connections == [
        Connection("src", "a", "dst", "x"),
        Connection("src", "b", "dst", "y"),
    ]
    results, _ = LocalRuntime().execute(builder.build())
    assert results["dst"] == {"result": 3}


def test_connect_defaults_and_single_output_form() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "src", {"code": "data = 5"})
    builder.add_node("PythonCodeNode", "dst", {"code": "result = data * 2"})
    builder.add_node("PythonCodeNode", "dst2", {"code": "result = value"})
    builder.connect("src", "dst")
    builder.connect("src", "dst2", from_output="data", to_input="value")
    assert builder.connections == [
        Connection("src", "data", "dst", "data"),
        Connection("src", "data", "dst2", "value"),
    ]
    results, _ = LocalRuntime().execute(builder.build())
    assert results["dst"] == {"result": 10}
    assert results["dst2"] == {"result": 5}


def test_connect_rejects_empty_mapping() -> None:
    builder = _two_step()
    with pytest.raises(errors.ConnectionError):
        builder.connect("load", "total", mapping={})


def test_remove_connection() -> None:
    builder = _two_step()
    builder.remove_connection("load", "result", "total", "rows")
    assert builder.connections == []
    with pytest.raises(errors.ConnectionError):
        builder.remove_connection("load", "result", "total", "rows")


# -- build-time checks ------------------------------------------------------------------------


def test_unknown_node_type_fails_only_at_build_with_close_matches() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNod", "a", {"code": "result = 1"})  # accepted for now
    with pytest.raises(WorkflowValidationError) as info:
        builder.build()
    message = str(info.value)
    assert "'a'" in message
    assert "PythonCodeNod" in message
    assert "did you mean" in message
    assert "'PythonCodeNode'" in message


def test_bad_config_type_fails_at_build_with_node_configuration_error() -> None:
    builder = WorkflowBuilder()
    builder.add_node("SwitchNode", "switch", {"pass_condition_result": "perhaps"})
    with pytest.raises(NodeConfigurationError, match="pass_condition_result"):
        builder.build()


def test_unknown_config_key_of_non_code_node_fails_at_build() -> None:
    builder = WorkflowBuilder()
    builder.add_node("SwitchNode", "switch", {"condtion_field": "x"})
    with pytest.raises(NodeConfigurationError, match="condition_field"):
        builder.build()


def test_bad_code_fails_at_build() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "bad", {"code": "result = ("})
    with pytest.raises(NodeConfigurationError, match="line 1"):
        builder.build()


def test_connection_to_undeclared_input_of_non_code_node_fails_at_build() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "src", {"code": "result = {'x': 1}"})
    builder.add_node("SwitchNode", "switch", {"condition_field": "x", "value": 1})
    builder.add_connection("src", "result", "switch", "input_dta")  # not checked yet
    with pytest.raises(errors.ConnectionError) as info:
        builder.build()
    message = str(info.value)
    assert "'switch'" in message
    assert "input_dta" in message
    assert "input_data" in message


def test_connection_to_any_input_of_code_node_is_accepted() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "src", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "dst", {"code": "result = 2"})
    builder.add_connection("src", "result", "dst", "anything")
    results, _ = LocalRuntime().execute(builder.build())
    assert results["dst"] == {"result": 2}


def test_build_makes_fresh_node_instances_each_time() -> None:
    builder = _two_step()
    first, second = builder.build(), builder.build()
    assert first is not second
    assert first.workflow_id != second.workflow_id
    for node_id in ("load", "total"):
        assert first.nodes[node_id] is not second.nodes[node_id]
        assert first.nodes[node_id].config == second.nodes[node_id].config


def test_builder_changes_after_build_do_not_affect_built_workflow() -> None:
    builder = _two_step()
    workflow = builder.build()
    builder.add_node("PythonCodeNode", "extra", {"code": "result = 0"})
    builder.add_connection("total", "result", "extra", "x")
    assert set(workflow.nodes) == {"load", "total"}
    assert len(workflow.connections) == 1


def test_build_metadata() -> None:
    workflow = _two_step().build(
        "wf-1", name="sums", description="adds", version="2.1.0", author="me", team="data"
    )
    assert workflow.workflow_id == "wf-1"
    assert workflow.name == "sums"
    assert workflow.description == "adds"
    assert workflow.version == "2.1.0"
    assert workflow.author == "me"
    assert workflow.metadata == {"team": "data"}


def test_default_workflow_id_and_name() -> None:
    workflow = _two_step().build()
    import uuid

    assert uuid.UUID(workflow.workflow_id).version == 4
    assert workflow.name == f"Workflow-{workflow.workflow_id[:8]}"


# -- Workflow ------------------------------------------------------------------------------


def test_workflow_graph_is_a_digraph_of_nodes_and_edges() -> None:
    builder = WorkflowBuilder()
    for node_id in ("a", "b", "c"):
        builder.add_node("PythonCodeNode", node_id, {"code": "x = 1\ny = 2"})
    builder.add_connection("a", "x", "b", "p").add_connection("a", "y", "b", "q")
    builder.add_connection("b", "x", "c", "p")
    workflow = builder.build()
    graph = workflow.graph
    assert isinstance(graph, nx.DiGraph)
    assert set(graph.nodes) == {"a", "b", "c"}
    assert set(graph.edges) == {("a", "b"), ("b", "c")}
    assert graph.edges["a", "b"]["connections"] == [
        Connection("a", "x", "b", "p"),
        Connection("a", "y", "b", "q"),
    ]
    assert graph.nodes["a"]["node"] is workflow.nodes["a"]
    assert graph.nodes["a"]["type"] == "PythonCodeNode"
    assert workflow.execution_order() == ["a", "b", "c"]


def test_workflow_repr() -> None:
    builder = WorkflowBuilder()
    for node_id in ("a", "b", "c"):
        builder.add_node("PythonCodeNode", node_id, {"code": "result = 1"})
    builder.add_connection("a", "result", "b", "x").add_connection("b", "result", "c", "x")
    assert repr(builder.build(name="pipeline")) == "<Workflow pipeline: 3 nodes, 2 edges>"


def test_workflow_nodes_are_read_only_and_get_node() -> None:
    workflow = _two_step().build()
    with pytest.raises(TypeError):
        workflow.nodes["new"] = workflow.nodes["load"]  # type: ignore[index]
    assert workflow.get_node("load") is workflow.nodes["load"]
    with pytest.raises(WorkflowValidationError, match="'lod'"):
        workflow.get_node("lod")


def test_workflow_is_a_workflow() -> None:
    assert isinstance(_two_step().build(), Workflow)


# -- editing: replace_node, remove_node, set_node_options ----------------------------------


def test_replace_node_keeps_connections_and_options() -> None:
    builder = _two_step()
    builder.set_node_options("total", retries=3, retry_delay=0)
    assert builder.replace_node("total", "PythonCodeNode", {"code": "result = max(rows)"}) == (
        "total"
    )
    assert builder.connections == [Connection("load", "result", "total", "rows")]
    workflow = builder.build()
    assert workflow.node_options["total"] == NodeOptions(retries=3, retry_delay=0)
    results, _ = LocalRuntime().execute(workflow)
    assert results["total"] == {"result": 3}


def test_replace_node_with_other_type_and_unknown_id() -> None:
    builder = _two_step()
    builder.replace_node("total", Scale, {"factor": 10})
    assert builder.node_ids == ["load", "total"]
    with pytest.raises(WorkflowValidationError, match="'nope'"):
        builder.replace_node("nope", "PythonCodeNode", {"code": "result = 1"})


def test_remove_node_drops_its_connections_and_cycles() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "b", {"code": "result = x + 1", "x": 0})
    builder.add_node("PythonCodeNode", "c", {"code": "result = y", "y": 0})
    builder.add_connection("a", "result", "c", "y")
    builder.add_connection("b", "result", "c", "z")
    builder.create_cycle("loop").connect("b", "b", {"result": "x"}).max_iterations(3).build()
    builder.remove_node("b")
    assert builder.node_ids == ["a", "c"]
    assert builder.connections == [Connection("a", "result", "c", "y")]
    workflow = builder.build()
    assert workflow.cycles == ()
    results, _ = LocalRuntime().execute(workflow)
    assert results == {"a": {"result": 1}, "c": {"result": 1}}
    with pytest.raises(WorkflowValidationError):
        builder.remove_node("b")


def test_set_node_options_valid() -> None:
    builder = _two_step()
    assert builder.set_node_options("total", timeout=2.5, retries=1, retry_delay=0) is builder
    workflow = builder.build()
    assert workflow.node_options["total"] == NodeOptions(timeout=2.5, retries=1, retry_delay=0)
    assert "load" not in workflow.node_options


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"timeout": -1.0},
        {"retries": -1},
        {"retries": 1.5},
        {"retry_delay": -0.1},
    ],
)
def test_set_node_options_rejects_invalid_values(options: dict[str, Any]) -> None:
    builder = _two_step()
    with pytest.raises(WorkflowValidationError, match="'total'"):
        builder.set_node_options("total", **options)


def test_set_node_options_unknown_node() -> None:
    with pytest.raises(WorkflowValidationError, match="'totl'"):
        _two_step().set_node_options("totl", timeout=1)


def test_node_instance_from_switch_keeps_config() -> None:
    builder = WorkflowBuilder()
    builder.add_node(SwitchNode(condition_field="kind", value="a"), "route")
    node = builder.build().nodes["route"]
    assert isinstance(node, SwitchNode)
    assert node.config == {"condition_field": "kind", "value": "a"}
