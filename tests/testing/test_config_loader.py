"""Workflow config files: YAML and JSON definitions load; errors name file, line, node."""

from __future__ import annotations

import json

import pytest

from kailash_nb import Workflow, WorkflowBuilder
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.testing import WorkflowConfigError, WorkflowTester

GOOD_YAML = """\
name: orders
nodes:
  load:
    node_type: PythonCodeNode
    config:
      code: "result = [1, 2, 3]"
  total:
    node_type: PythonCodeNode
    config:
      code: "result = sum(rows)"
connections:
  - source_node: load
    source_output: result
    target_node: total
    target_input: rows
"""


def _load(tmp_path, text, name="flow.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return WorkflowTester().load_workflow_from_config(path)


def test_a_yaml_definition_loads_and_runs(tmp_path):
    workflow = _load(tmp_path, GOOD_YAML)
    assert isinstance(workflow, Workflow)
    assert workflow.name == "orders"
    result = WorkflowTester().test_workflow(workflow, expected={"total": {"result": 6}})
    assert result.success, result.errors


def test_to_dict_json_round_trips(tmp_path):
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "double", {"code": "result = x * 2"})
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(builder.build().to_dict(), indent=2))
    workflow = WorkflowTester().load_workflow_from_config(path)
    assert list(workflow.nodes) == ["double"]


def test_an_unknown_node_type_names_file_line_and_node(tmp_path):
    text = GOOD_YAML.replace(
        "  total:\n    node_type: PythonCodeNode", "  total:\n    node_type: PythonCodeNod"
    )
    with pytest.raises(WorkflowConfigError) as caught:
        _load(tmp_path, text)
    error = caught.value
    assert (error.line, error.node_id) == (7, "total")
    assert str(error).startswith(f"{tmp_path / 'flow.yaml'}, line 7, node 'total': ")
    assert "PythonCodeNode" in str(error)  # the close match is suggested
    assert isinstance(error, WorkflowValidationError)


def test_an_entry_without_a_type_names_its_node(tmp_path):
    text = GOOD_YAML.replace(
        '    node_type: PythonCodeNode\n    config:\n      code: "result = sum',
        '    config:\n      code: "result = sum',
    )
    with pytest.raises(
        WorkflowConfigError, match=r"flow\.yaml, line 7, node 'total': Node type is required"
    ):
        _load(tmp_path, text)


def test_a_malformed_connection_names_the_connection_line_and_its_target(tmp_path):
    text = GOOD_YAML.replace("    target_input: rows", "    target_input: ''")
    with pytest.raises(WorkflowConfigError) as caught:
        _load(tmp_path, text)
    assert (caught.value.line, caught.value.node_id) == (12, "total")
    assert "connections[0]" in str(caught.value)


def test_a_connection_to_a_missing_node_names_the_connection_line(tmp_path):
    text = GOOD_YAML.replace("    target_node: total", "    target_node: totl")
    with pytest.raises(WorkflowConfigError, match=r"flow\.yaml, line 12, node 'totl'"):
        _load(tmp_path, text)


def test_a_json_config_error_names_the_node_line(tmp_path):
    definition = {
        "nodes": {
            "load": {"node_type": "PythonCodeNode", "config": {"code": "result = 1"}},
            "bad": {"node_type": "NoSuchNode", "config": {}},
        },
        "connections": [],
    }
    with pytest.raises(WorkflowConfigError) as caught:
        _load(tmp_path, json.dumps(definition, indent=2), "flow.json")
    assert (caught.value.line, caught.value.node_id) == (9, "bad")


def test_a_list_of_nodes_names_the_entry_line(tmp_path):
    text = (
        "nodes:\n"
        "  - id: a\n"
        "    type: PythonCodeNode\n"
        "    config: {code: 'result = 1'}\n"
        "  - id: b\n"
        "    type: Nope\n"
    )
    with pytest.raises(WorkflowConfigError, match=r"line 5, node 'b'"):
        _load(tmp_path, text)


@pytest.mark.parametrize(
    ("name", "text", "line", "problem"),
    [
        ("flow.yaml", "nodes:\n  a: [1\n", 3, "not valid YAML"),
        ("flow.yaml", "nodes: {}\nnodes: {}\n", 2, "duplicate key 'nodes'"),
        ("flow.json", '{\n  "nodes": {,\n}', 2, "not valid JSON"),
        ("flow.json", '{\n  "nodes": {"a": 1, "a": 2}\n}', 2, "duplicate key 'a'"),
        ("flow.yaml", "- 1\n- 2\n", 1, "a workflow config is a mapping"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, name, text, line, problem):
    with pytest.raises(WorkflowConfigError) as caught:
        _load(tmp_path, text, name)
    assert caught.value.line == line
    assert problem in caught.value.problem


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(WorkflowConfigError, match=r"absent\.yaml: cannot read the workflow config"):
        WorkflowTester().load_workflow_from_config(tmp_path / "absent.yaml")


def test_a_config_its_node_refuses_names_that_node(tmp_path):
    text = GOOD_YAML + "  # a switch with an operator it does not know\n"
    text = text.replace(
        "connections:",
        "  check:\n    node_type: SwitchNode\n    config:\n      operator: '~~'\nconnections:",
    )
    with pytest.raises(WorkflowConfigError) as caught:
        _load(tmp_path, text)
    assert (caught.value.line, caught.value.node_id) == (11, "check")
    assert "unknown operator '~~'" in caught.value.problem
