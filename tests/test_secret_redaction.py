"""WF-13: secrets in node config never come back out.

One workflow holds ``hunter2-secret`` as a password, an API key, a token, an
``Authorization`` header, the password of a connection string and of a URL; every
surface that shows a workflow or a run is searched for the string: the JSON/YAML
definition, the gateway's workflow description, OpenAPI document, run responses and run
records, the events a bus subscriber receives and the log records.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from _gateway_server import ServedGateway

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.nodes.base import Node, NodeParameter
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.nodes.registry import NodeRegistry
from kailash_nb.redaction import REDACTED, redact_config
from kailash_nb.runtime.events import EventBus, RunEvent
from kailash_nb.sdk_exceptions import WorkflowExecutionError, WorkflowValidationError
from kailash_nb.workflow.graph import Workflow
from kailash_nb.workflow.serialization import load_yaml

SECRET = "hunter2-secret"


class VaultLogin(Node):
    """Logs in with credentials; its client library quotes them when it fails."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "password": NodeParameter(name="password", type=str, required=True),
            "api_key": NodeParameter(name="api_key", type=str, required=False),
            "token": NodeParameter(name="token", type=str, required=False),
            "headers": NodeParameter(name="headers", type=dict, required=False),
            "connection_string": NodeParameter(name="connection_string", type=str, required=False),
            "user": NodeParameter(name="user", type=str, required=False, default="app"),
            "max_tokens": NodeParameter(name="max_tokens", type=int, required=False, default=5),
        }

    def run(self, password: str, user: str, **rest: Any) -> dict[str, Any]:
        raise RuntimeError(f"vault refused {user}:{password} (key {rest['api_key']})")


def call_api(payload: int, headers: dict = {"Authorization": f"Bearer {SECRET}"}) -> int:  # noqa: B006
    """A function node whose default carries a credential."""
    return payload


@pytest.fixture
def vault_node() -> Iterator[type[VaultLogin]]:
    NodeRegistry.register(VaultLogin)
    yield VaultLogin
    NodeRegistry.unregister("VaultLogin")


def secret_config() -> dict[str, Any]:
    return {
        "password": SECRET,
        "api_key": f"{SECRET}-key",
        "token": f"{SECRET}-token",
        "headers": {"Authorization": f"Bearer {SECRET}", "Accept": "application/json"},
        "connection_string": f"postgresql://app:{SECRET}@db.internal:5432/orders",
        "max_tokens": 7,
    }


def secret_workflow(with_function: bool = False) -> Workflow:
    builder = WorkflowBuilder()
    builder.add_node("VaultLogin", "login", secret_config())
    builder.add_node(
        "SQLDatabaseNode",
        "orders",
        {
            "connection_string": f"postgresql://app:{SECRET}@db.internal/orders",
            "query": "SELECT 1",
        },
    )
    builder.add_node(
        "HTTPRequestNode",
        "fetch",
        {
            "url": f"https://alice:{SECRET}@api.example.com/v1?api_key={SECRET}&page=2",
            "headers": {"X-Api-Key": SECRET, "Cookie": f"session={SECRET}"},
            "retries": 0,
        },
    )
    if with_function:
        builder.add_node(PythonCodeNode.from_function(call_api), "call")
    return builder.build()


def test_wf13_definition_exports_redact_secrets(vault_node):
    """WF-13: to_dict/to_json/to_yaml write every secret as the marker, keep the rest."""
    workflow = secret_workflow()
    for text in (json.dumps(workflow.to_dict()), workflow.to_json(), workflow.to_yaml()):
        assert SECRET not in text
        assert REDACTED in text
    config = workflow.to_dict()["nodes"]["login"]["config"]
    assert config["password"] == config["api_key"] == config["token"] == REDACTED
    assert config["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert config["connection_string"] == f"postgresql://app:{REDACTED}@db.internal:5432/orders"
    assert config["max_tokens"] == 7
    fetch = workflow.to_dict()["nodes"]["fetch"]["config"]
    assert fetch["url"] == (
        f"https://alice:{REDACTED}@api.example.com/v1?api_key={REDACTED}&page=2"
    )
    assert fetch["headers"] == {"X-Api-Key": REDACTED, "Cookie": REDACTED}
    # The live workflow keeps its secrets: only what leaves it is redacted.
    assert workflow.nodes["login"].config["password"] == SECRET


def test_wf13_redacted_definition_does_not_load(vault_node):
    """WF-13: loading an exported definition fails naming the node and key, instead of
    logging in with the marker as a password."""
    workflow = secret_workflow()
    with pytest.raises(WorkflowValidationError, match=r"node 'login': config\['password'\]"):
        Workflow.from_json(workflow.to_json())
    with pytest.raises(WorkflowValidationError, match="a secret left out"):
        Workflow.from_yaml(workflow.to_yaml())
    definition = workflow.to_dict()
    definition["nodes"].pop("login")
    with pytest.raises(WorkflowValidationError, match=r"node 'orders': config\['connection_str"):
        Workflow.from_dict(definition)


def test_wf13_definitions_without_secrets_round_trip():
    """WF-13 redacts only secrets: a workflow without any loads back unchanged."""
    builder = WorkflowBuilder()
    builder.add_node(
        "SQLDatabaseNode", "q", {"connection_string": "sqlite://", "query": "SELECT 1"}
    )
    builder.add_node("HTTPRequestNode", "f", {"url": "https://api.example.com/?page=2"})
    workflow = builder.build()
    assert Workflow.from_json(workflow.to_json()).to_dict()["nodes"] == workflow.to_dict()["nodes"]


def test_wf13_hand_written_yaml_is_redacted_on_dump():
    """WF-13: dump_yaml/dump_json (used by notebook export) redact any definition dict."""
    from kailash_nb.workflow.serialization import dump_json, dump_yaml

    definition = {
        "nodes": [{"node_id": "n", "node_type": "VaultLogin", "config": {"password": SECRET}}]
    }
    for text in (dump_yaml(definition), dump_json(definition)):
        assert SECRET not in text
    assert load_yaml(dump_yaml(definition))["nodes"][0]["config"]["password"] == REDACTED


def test_wf13_redaction_rules():
    """WF-13: what counts as a secret (strings under secret keys, credentials inside
    connection strings and URLs) and what does not (counts, plain URLs)."""
    redacted = redact_config(
        {
            "dsn": f"host=db user=app password={SECRET} dbname=x",
            "db": {"Proxy-Authorization": f"Basic {SECRET}", "client_secret": SECRET},
            "secrets": [{"token": SECRET}],
            "max_tokens": 100,
            "url": "https://example.com/a?b=c",
            "code": f"result = 'https://u:{SECRET}@h' if x else 1",
        }
    )
    assert redacted["dsn"] == f"host=db user=app password={REDACTED} dbname=x"
    assert redacted["db"] == {"Proxy-Authorization": REDACTED, "client_secret": REDACTED}
    assert redacted["secrets"] == [{"token": REDACTED}]
    assert redacted["max_tokens"] == 100 and redacted["url"] == "https://example.com/a?b=c"
    assert redacted["code"].startswith("result =")  # code is not a URL, left as written


def test_wf13_events_and_logs_never_carry_secrets(vault_node, caplog):
    """WF-13: a failing run with secrets in config and in runtime parameters: no event a
    subscriber receives and no log record contains them; nor does the error raised."""
    events: list[Any] = []
    bus = EventBus()
    bus.subscribe(events.append, timeline=True)
    builder = WorkflowBuilder()
    builder.add_node("VaultLogin", "login", secret_config())
    builder.add_node("PythonCodeNode", "after", {"code": "result = x"})
    builder.add_connection("login", "user", "after", "x")
    workflow = builder.build()
    with caplog.at_level(logging.DEBUG), pytest.raises(WorkflowExecutionError) as failed:
        LocalRuntime(event_bus=bus, debug=True).execute(
            workflow, parameters={"login": {"token": f"{SECRET}-runtime"}}
        )
    assert SECRET not in str(failed.value)
    assert "vault refused app:" in str(failed.value)
    assert events and all(SECRET not in repr(event) for event in events)
    finished = [event for event in events if getattr(event, "timeline", None)]
    assert finished and "vault refused app:" in repr(finished[-1].timeline)
    started = next(
        event for event in events if isinstance(event, RunEvent) and event.state == "started"
    )
    assert started.parameters == {"login": {"token": REDACTED}}
    assert SECRET not in caplog.text
    assert all(SECRET not in repr(record.args) for record in caplog.records)


def test_wf13_failed_leaf_result_hides_secrets(vault_node):
    """WF-13: a failed node nothing depends on is a result; its error has no secret."""
    builder = WorkflowBuilder()
    builder.add_node("VaultLogin", "login", secret_config())
    results, _ = LocalRuntime().execute(builder.build())
    assert results["login"]["failed"] is True
    assert SECRET not in json.dumps(results)


def _vault_gateway(url: str):
    gateway = create_gateway(title="Vault", database_url=url)
    gateway.register_workflow("vault", secret_workflow(with_function=True))
    return gateway


def test_wf13_gateway_descriptions_never_show_secrets(vault_node, sqlite_url, caplog):
    """WF-13: the gateway's workflow list and description and its OpenAPI document carry
    no secret, schema defaults included (a credential-holding default is left out)."""
    with caplog.at_level(logging.DEBUG), ServedGateway(_vault_gateway(sqlite_url)) as served:
        texts = []
        for path in ("/workflows", "/workflows/vault", "/openapi.json"):
            response = served.client.get(path)
            assert response.status_code == 200, response.text
            texts.append(response.text)
    assert [text for text in texts if SECRET in text] == []
    assert SECRET not in caplog.text
    described = json.loads(texts[1])
    call_inputs = described["input_schema"]["properties"]["call"]["properties"]
    assert "default" not in call_inputs["headers"]
    assert "writeOnly" in described["input_schema"]["properties"]["login"]["properties"]["token"]


def test_wf13_gateway_run_responses_never_show_secrets(vault_node, sqlite_url, caplog):
    """WF-13: the execute response and the run record of a run whose node failed
    quoting its credentials carry none of them."""
    with caplog.at_level(logging.DEBUG), ServedGateway(_vault_gateway(sqlite_url)) as served:
        run = served.client.post(
            "/workflows/vault/execute",
            json={"parameters": {"call": {"payload": 1}, "login": {"token": "t"}}},
        )
        run_id = run.json().get("run_id")
        assert run_id, run.text
        record = served.client.get(f"/runs/{run_id}")
    assert SECRET not in run.text and SECRET not in record.text
    assert SECRET not in caplog.text


def test_wf13_reused_parameters_object_is_redacted_again_after_a_change():
    """WF-13: the started event's redacted parameters are reused only while the same
    object is unchanged; a secret put into it later is still redacted."""
    from kailash_nb.redaction import redacted_parameters

    parameters = {"login": {"token": SECRET}, "n": 1}
    first = redacted_parameters(parameters)
    again = redacted_parameters(parameters)
    assert redacted_parameters(parameters) is again
    assert SECRET not in repr(first) and SECRET not in repr(again)
    parameters["login"]["token"] = SECRET + "-rotated"
    parameters["n"] = 2
    changed = redacted_parameters(parameters)
    assert changed == {"login": {"token": REDACTED}, "n": 2}
