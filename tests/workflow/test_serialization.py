"""Workflow definitions: to_dict layout, dict/JSON/YAML round trips, defensive loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kailash_nb import LocalRuntime, Workflow, WorkflowBuilder
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.workflow.serialization import (
    MAX_CONNECTIONS,
    MAX_DEFINITION_BYTES,
    MAX_NODES,
)


def _cyclic_workflow() -> Workflow:
    """load -> grow (cycle on itself, stops at 40 or 4 iterations) -> report; plus a switch."""
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "load", {"code": "result = {'start': 3, 'step': 2}"})
    builder.add_node(
        "PythonCodeNode", "grow", {"code": "result = value * factor", "factor": 2, "value": 0}
    )
    builder.add_node("PythonCodeNode", "report", {"code": "summary = f'final={final}'"})
    builder.add_node("SwitchNode", "check", {"operator": ">", "value": 20})
    builder.add_node("PythonCodeNode", "big", {"code": "result = n * 100"})
    builder.add_connection("load", "result.start", "grow", "value")
    builder.add_connection("grow", "result", "report", "final")
    builder.add_connection("grow", "result", "check", "input_data")
    builder.add_connection("check", "true_output", "big", "n")
    builder.create_cycle("growth").connect("grow", "grow", {"result": "value"}).max_iterations(
        4
    ).converge_when("result >= 40").timeout(30).build()
    builder.set_node_options("report", retries=2, retry_delay=0)
    return builder.build(
        "wf-cyclic",
        name="cyclic",
        description="grows a number",
        version="1.2.3",
        author="tester",
        team="core",
    )


def _run(workflow: Workflow) -> dict[str, Any]:
    results, _ = LocalRuntime().execute(workflow)
    return results


# -- to_dict layout ------------------------------------------------------------------------


def test_to_dict_layout() -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("SwitchNode", "s", {"condition_field": "k", "value": 1})
    builder.add_connection("a", "result", "s", "input_data")
    data = builder.build(
        "wf-1", name="demo", description="a demo", version="2.0.0", author="me", owner="x"
    ).to_dict()
    assert data == {
        "workflow_id": "wf-1",
        "name": "demo",
        "description": "a demo",
        "version": "2.0.0",
        "author": "me",
        "metadata": {"owner": "x"},
        "nodes": {
            "a": {"node_id": "a", "node_type": "PythonCodeNode", "config": {"code": "result = 1"}},
            "s": {
                "node_id": "s",
                "node_type": "SwitchNode",
                "config": {"condition_field": "k", "value": 1},
            },
        },
        "connections": [
            {
                "source_node": "a",
                "source_output": "result",
                "target_node": "s",
                "target_input": "input_data",
            }
        ],
    }
    assert list(data) == [
        "workflow_id",
        "name",
        "description",
        "version",
        "author",
        "metadata",
        "nodes",
        "connections",
    ]
    json.dumps(data, allow_nan=False)  # JSON-ready


def test_to_dict_cycle_edges_carry_cycle_fields() -> None:
    data = _cyclic_workflow().to_dict()
    ordinary = [c for c in data["connections"] if not c.get("cycle")]
    cycle_edges = [c for c in data["connections"] if c.get("cycle")]
    assert len(ordinary) == 4
    assert all(
        set(c) == {"source_node", "source_output", "target_node", "target_input"} for c in ordinary
    )
    assert cycle_edges == [
        {
            "source_node": "grow",
            "source_output": "result",
            "target_node": "grow",
            "target_input": "value",
            "cycle": True,
            "cycle_id": "growth",
            "max_iterations": 4,
            "convergence_check": "result >= 40",
            "timeout": 30.0,
        }
    ]
    assert data["nodes"]["report"]["options"] == {"retries": 2, "retry_delay": 0}


def test_to_dict_from_function_node_names_the_node() -> None:
    def double(x: int) -> int:
        return x * 2

    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_function(double), "doubler")
    workflow = builder.build()
    for dump in (workflow.to_dict, workflow.to_json, workflow.to_yaml):
        with pytest.raises(WorkflowValidationError, match="'doubler'"):
            dump()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object(), {1: "int key"}])
def test_to_dict_rejects_values_json_cannot_carry(value: Any) -> None:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "n", {"code": "result = x", "x": value})
    with pytest.raises(WorkflowValidationError, match="'n'"):
        builder.build().to_dict()


# -- round trips ---------------------------------------------------------------------------


def test_from_dict_round_trip_runs_identically() -> None:
    original = _cyclic_workflow()
    rebuilt = Workflow.from_dict(original.to_dict())
    assert rebuilt.to_dict() == original.to_dict()
    assert rebuilt.node_options == original.node_options
    assert [c.cycle_id for c in rebuilt.cycles] == ["growth"]
    first, second = _run(original), _run(rebuilt)
    assert first == second
    # 3 -> 6 -> 12 -> 24 -> 48 stops at max_iterations=4 with 48 (converges too)
    assert first["grow"] == {"result": 48}
    assert first["report"] == {"summary": "final=48"}
    assert first["big"] == {"result": 4800}


def test_json_round_trip_with_cycle() -> None:
    original = _cyclic_workflow()
    text = original.to_json()
    assert json.loads(text) == original.to_dict()
    rebuilt = Workflow.from_json(text)
    assert rebuilt.to_dict() == original.to_dict()
    assert _run(rebuilt) == _run(original)
    compact = original.to_json(indent=None)
    assert "\n" not in compact
    assert Workflow.from_json(compact.encode()).to_dict() == original.to_dict()


def test_yaml_round_trip_with_cycle() -> None:
    original = _cyclic_workflow()
    text = original.to_yaml()
    assert yaml.safe_load(text) == original.to_dict()
    rebuilt = Workflow.from_yaml(text)
    assert rebuilt.to_dict() == original.to_dict()
    assert _run(rebuilt) == _run(original)


def test_from_dict_accepts_list_nodes_and_from_to_connection_names() -> None:
    workflow = Workflow.from_dict(
        {
            "name": "handwritten",
            "nodes": [
                {"id": "a", "type": "PythonCodeNode", "config": {"code": "result = 20"}},
                {"node_id": "b", "node_type": "PythonCodeNode", "config": {"code": "result = x+1"}},
            ],
            "connections": [
                {"from_node": "a", "from_output": "result", "to_node": "b", "to_input": "x"}
            ],
        }
    )
    assert workflow.name == "handwritten"
    assert _run(workflow)["b"] == {"result": 21}


def test_handwritten_yaml_with_cycle() -> None:
    text = """
name: counter
nodes:
  inc:
    node_type: PythonCodeNode
    config:
      code: "result = {'count': count + 1, 'done': count + 1 >= 3}"
      count: 0
connections:
  - source_node: inc
    source_output: result.count
    target_node: inc
    target_input: count
    cycle: true
    cycle_id: loop
    max_iterations: 10
    convergence_check: done == True
"""
    results = _run(Workflow.from_yaml(text))
    assert results["inc"] == {"result": {"count": 3, "done": True}}


# -- defensive loading ---------------------------------------------------------------------


def test_malformed_yaml_reports_line() -> None:
    text = "name: x\nnodes:\n  a: [1, 2\n  b: {\n"
    with pytest.raises(WorkflowValidationError, match=r"not valid YAML at line \d+, column \d+"):
        Workflow.from_yaml(text)


def test_yaml_python_tags_are_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"name: !!python/object/apply:os.system ['touch {marker}']\nnodes: {{}}\n"
    with pytest.raises(WorkflowValidationError, match="YAML"):
        Workflow.from_yaml(text)
    assert not marker.exists()
    with pytest.raises(WorkflowValidationError):
        Workflow.from_yaml("nodes: !!python/object/new:builtins.dict {}\n")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"nodes": {}, "x": NaN}', "NaN"),
        ('{"nodes": {}, "x": Infinity}', "Infinity"),
        ('{"nodes": {}, "nodes": {}}', "repeats the key 'nodes'"),
        ('{"nodes": {"a": {"node_type": "X", "node_type": "Y"}}}', "node_type"),
        ('{\n  "nodes": {\n    "a": \n}', "line 4"),
        ("", "not valid JSON"),
    ],
)
def test_bad_json_is_rejected(text: str, fragment: str) -> None:
    with pytest.raises(WorkflowValidationError) as info:
        Workflow.from_json(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize("node_type", ["os.system", "builtins.eval", "subprocess.Popen"])
def test_dotted_node_types_are_rejected(node_type: str) -> None:
    data = {"nodes": {"a": {"node_type": node_type, "config": {"command": "echo hi"}}}}
    with pytest.raises(WorkflowValidationError, match=node_type.replace(".", r"\.")):
        Workflow.from_dict(data)
    with pytest.raises(WorkflowValidationError):
        Workflow.from_json(json.dumps(data))
    with pytest.raises(WorkflowValidationError):
        Workflow.from_yaml(yaml.safe_dump(data))


def test_non_string_node_type_is_rejected() -> None:
    with pytest.raises(WorkflowValidationError, match="node_type"):
        Workflow.from_dict({"nodes": {"a": {"node_type": ["PythonCodeNode"]}}})


def test_too_many_nodes_rejected() -> None:
    nodes = {
        f"n{i}": {"node_type": "PythonCodeNode", "config": {"code": "result = 1"}}
        for i in range(MAX_NODES + 1)
    }
    with pytest.raises(WorkflowValidationError, match=str(MAX_NODES)):
        Workflow.from_dict({"nodes": nodes})
    as_list = [{"node_id": key, **value} for key, value in nodes.items()]
    with pytest.raises(WorkflowValidationError, match=str(MAX_NODES)):
        Workflow.from_dict({"nodes": as_list})


def test_too_many_connections_rejected() -> None:
    connection = {"source_node": "a", "source_output": "r", "target_node": "b", "target_input": "x"}
    data = {"nodes": {}, "connections": [connection] * (MAX_CONNECTIONS + 1)}
    with pytest.raises(WorkflowValidationError, match=str(MAX_CONNECTIONS)):
        Workflow.from_dict(data)


def test_oversize_text_rejected() -> None:
    padding = " " * (MAX_DEFINITION_BYTES + 1)
    with pytest.raises(WorkflowValidationError, match="limit"):
        Workflow.from_json('{"nodes": {}}' + padding)
    with pytest.raises(WorkflowValidationError, match="limit"):
        Workflow.from_yaml("nodes: {}\n" + padding)
    with pytest.raises(WorkflowValidationError, match="limit"):
        Workflow.from_json(('{"nodes": {}}' + padding).encode())


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"nodes": "a"},
        {"nodes": {"a": "PythonCodeNode"}},
        {"nodes": {"": {"node_type": "PythonCodeNode"}}},
        {"nodes": [{"node_type": "PythonCodeNode"}]},
        {"nodes": {"a": {"node_type": "PythonCodeNode", "config": "result = 1"}}},
        {"nodes": {}, "connections": {"a": "b"}},
        {"nodes": {}, "connections": ["a.result -> b.x"]},
        {
            "nodes": {"a": {"node_type": "PythonCodeNode", "config": {"code": "result = 1"}}},
            "connections": [{"source_node": "a", "target_node": "a"}],
        },
        {"nodes": {}, "metadata": ["x"]},
    ],
)
def test_malformed_definitions_rejected(data: Any) -> None:
    with pytest.raises(WorkflowValidationError):
        Workflow.from_dict(data)
