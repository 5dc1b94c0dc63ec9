"""Security checklist, area 3.4 (workflow definitions): the items the core engine owns.

WF-02/03 (registry names only), WF-05 (size caps) and WF-12 (safe YAML) are also covered
in test_serialization.py; this file names each item it proves.
"""

from __future__ import annotations

import pytest

from kailash_nb.nodes.base import Node, NodeParameter
from kailash_nb.runtime.events import EventBus
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import ConnectionError as KailashConnectionError
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeValidationError,
    WorkflowValidationError,
)
from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.workflow.graph import Workflow


class SecretTaker(Node):
    """A node with a credential parameter, as a database or API node has."""

    def get_parameters(self):
        return {
            "password": NodeParameter(name="password", type=int, required=True),
            "host": NodeParameter(name="host", type=str, required=False, default="db"),
        }

    def run(self, password, host):
        raise RuntimeError("refused")


def test_wf01_unmarked_cycle_is_rejected_naming_the_cycle():
    builder = WorkflowBuilder()
    for node_id in ("a", "b", "c"):
        builder.add_node("PythonCodeNode", node_id, {"code": "result = x"})
    builder.add_connection("a", "result", "b", "x")
    builder.add_connection("b", "result", "c", "x")
    builder.add_connection("c", "result", "a", "x")
    with pytest.raises(WorkflowValidationError, match="unmarked cycle: a -> b -> c -> a"):
        builder.build()


@pytest.mark.parametrize("node_type", ["os.system", "builtins.eval", "subprocess.Popen", "Nope"])
def test_wf02_wf03_only_registry_names_build(node_type):
    definition = {"nodes": {"n": {"node_type": node_type, "config": {}}}, "connections": []}
    with pytest.raises(WorkflowValidationError, match="unknown node type"):
        Workflow.from_dict(definition)


def test_wf04_connection_to_missing_port_is_rejected():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    builder.add_node("MergeNode", "m")
    builder.add_connection("a", "result", "m", "data9")
    with pytest.raises(KailashConnectionError, match="has no input 'data9'"):
        builder.build()


@pytest.mark.parametrize("name", ["__builtins__", "__import__", "__class__"])
def test_wf08_dunder_input_names_are_rejected(name):
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    workflow = builder.build()
    with pytest.raises(WorkflowValidationError, match="dunder"):
        LocalRuntime().execute(workflow, parameters={"a": {name: {}}})
    with pytest.raises(WorkflowValidationError, match="dunder"):
        LocalRuntime().execute(workflow, parameters={name: 1})
    builder.add_node("PythonCodeNode", "b", {"code": "result = 2"})
    builder.add_connection("a", "result", "b", name)
    with pytest.raises(KailashConnectionError, match="not a valid input name"):
        builder.build()
    config_builder = WorkflowBuilder()
    config_builder.add_node("PythonCodeNode", "c", {"code": "result = 1", name: 1})
    with pytest.raises(NodeConfigurationError, match="not allowed"):
        config_builder.build()


def test_wf12_yaml_object_tags_never_execute(tmp_path):
    marker = tmp_path / "pwned"
    text = f"nodes: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(WorkflowValidationError):
        Workflow.from_yaml(text)
    assert not marker.exists()


def test_wf13_secret_values_stay_out_of_errors_and_events():
    secret = "hunter2-not-a-number"
    with pytest.raises(NodeConfigurationError) as config_error:
        SecretTaker(password=secret)
    assert secret not in str(config_error.value)
    assert "value hidden" in str(config_error.value)

    with pytest.raises(NodeValidationError) as input_error:
        SecretTaker().execute(password=secret)
    assert secret not in str(input_error.value)

    builder = WorkflowBuilder()
    builder.add_node(SecretTaker, "db", {"password": 1234})
    events = []
    bus = EventBus()
    bus.subscribe(events.append)
    results, _ = LocalRuntime(event_bus=bus).execute(builder.build())
    assert results["db"]["failed"] is True
    assert all("1234" not in repr(event) for event in events)
