"""Security checklist, area 3.4 (workflow definitions): one ID-named test per item.

WF-02/03 (registry names only), WF-05 (size caps) and WF-12 (safe YAML) are also covered
in test_serialization.py; WF-09 (SSRF) in test_ssrf.py; WF-10/11 (deadlines, memory) in
test_gateway_isolation.py; WF-13 (secrets) in test_secret_redaction.py.
"""

from __future__ import annotations

import json

import pytest

from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.middleware.schemas import check_caller_parameters
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
from kailash_nb.workflow.serialization import MAX_DEFINITION_BYTES, MAX_NODES


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


def test_wf05_oversized_definitions_hit_explicit_caps():
    """WF-05: 10 000 nodes, a definition over the byte cap and config nested past 64
    levels are refused before anything is built. (kailash_nb has no sub-workflow node,
    so nested or self-calling sub-workflows cannot be expressed.)"""
    assert MAX_NODES < 10_000
    many = {
        "nodes": {f"n{i}": {"node_type": "MergeNode", "config": {}} for i in range(10_000)},
        "connections": [],
    }
    with pytest.raises(WorkflowValidationError, match="10000 nodes; the limit is"):
        Workflow.from_dict(many)
    padding = "x" * (MAX_DEFINITION_BYTES + 1)
    big = json.dumps({"nodes": {}, "description": padding})
    with pytest.raises(WorkflowValidationError, match="bytes; the limit is"):
        Workflow.from_json(big)
    nested: object = 1
    for _ in range(70):
        nested = [nested]
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "deep", {"code": "result = data", "data": nested})
    with pytest.raises(WorkflowValidationError, match="nested more than 64 levels"):
        builder.build().to_dict()
    deep_json = "[" * 100_000 + "]" * 100_000
    with pytest.raises(WorkflowValidationError, match="nested too deeply"):
        Workflow.from_json(deep_json)


@pytest.fixture
def open_gateway(sqlite_url, serve_gateway):
    """An unauthenticated gateway on loopback: its callers are anonymous, not admins."""
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "double", {"code": "result = x * 2", "x": 1})
    builder.add_node("HTTPRequestNode", "fetch", {"url": "https://example.com/"})
    gateway = create_gateway(title="WF", database_url=sqlite_url)
    gateway.register_workflow("dbl", builder.build())
    return serve_gateway(gateway)


def test_wf06_callers_cannot_submit_or_override_code(open_gateway):
    """WF-06: there is no route taking a caller's workflow definition, so code nodes run
    only in server-registered workflows; overriding a code input is 403 for non-admins."""
    definition = {
        "nodes": {"evil": {"node_type": "PythonCodeNode", "config": {"code": "import os"}}}
    }
    for path in ("/workflows", "/workflows/evil", "/workflows/dbl"):
        response = open_gateway.client.post(path, json=definition)
        assert response.status_code in (404, 405), (path, response.status_code)
    override = {"parameters": {"double": {"code": "import os; result = os.getcwd()"}}}
    response = open_gateway.client.post("/workflows/dbl/execute", json=override)
    assert response.status_code == 403
    assert response.json()["code"] == "override_forbidden"


@pytest.mark.parametrize(
    ("node_id", "key"),
    [
        ("double", "code"),
        ("fetch", "url"),
        ("fetch", "allow_private_network"),
        (None, "url"),
        (None, "query"),
        (None, "connection_string"),
    ],
)
def test_wf07_code_query_and_address_keys_are_not_caller_settable(node_id, key):
    """WF-07: a runtime parameter naming a config key that carries code, a query or an
    address (at node or workflow level) is refused; the gateway answers 400."""
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "double", {"code": "result = x * 2", "x": 1})
    builder.add_node("HTTPRequestNode", "fetch", {"url": "https://example.com/"})
    workflow = builder.build()
    parameters = {key: "x"} if node_id is None else {node_id: {key: "x"}}
    with pytest.raises(WorkflowValidationError, match="does not let callers set"):
        check_caller_parameters(workflow, parameters)
    check_caller_parameters(workflow, {"double": {"x": 3}, "fetch": {"timeout": 5.0}})


def test_wf07_gateway_answers_400_for_a_config_only_key(open_gateway):
    """WF-07 through the gateway: a key callers may not set that is not a code key
    (``allow_private_network``, WF-09's author-only switch) is a 400 problem."""
    response = open_gateway.client.post(
        "/workflows/dbl/execute",
        json={"parameters": {"fetch": {"allow_private_network": True}}},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "parameter_not_settable"


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
