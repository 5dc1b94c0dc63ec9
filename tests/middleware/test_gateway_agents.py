"""A served workflow with an ``A2ACoordinatorNode``: its tasks run through the
gateway, and its per-agent metrics are on the gateway's ``/metrics``."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kailash_nb import WorkflowBuilder
from kailash_nb.nodes.ai.agents import Agent


def shout(task: dict) -> str:
    return str(task["inputs"]["text"]).upper()


def coordinated_workflow():
    builder = WorkflowBuilder()
    builder.add_node(
        "A2ACoordinatorNode",
        "coordinator",
        {
            "coordination_strategy": "round_robin",
            "agents": [Agent("left", shout, ["text"]), Agent("right", shout, ["text"])],
        },
    )
    return builder.build()


@pytest.fixture
def served(sqlite_url, secured_gateway, serve_gateway):
    gateway = secured_gateway(sqlite_url)
    gateway.register_workflow("shouting", coordinated_workflow())
    return serve_gateway(gateway)


def samples(served, name: str) -> dict[tuple, float]:
    text = served.client.get("/metrics", headers=served.bearer_headers(roles=("admin",))).text
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_tasks_run_through_the_gateway_show_per_agent_metrics(served):
    tasks = [{"required_capabilities": ["text"], "inputs": {"text": word}} for word in "abc"]
    response = served.client.post(
        "/workflows/shouting/execute",
        json={"parameters": {"coordinator": {"tasks": tasks}}},
        headers=served.bearer_headers(),
    )
    assert response.status_code == 200, response.text
    outputs = response.json()["results"]["coordinator"]
    assert [result["result"] for result in outputs["results"]] == ["A", "B", "C"]
    counted = samples(served, "kailash_nb_agent_tasks_total")
    where = (("node", "coordinator"), ("workflow", "shouting"))
    assert counted[(("agent", "left"), *where)] == 2
    assert counted[(("agent", "right"), *where)] == 1
    completed = samples(served, "kailash_nb_agent_coordinator_tasks_total")
    assert completed[(*where[:1], ("state", "completed"), *where[1:])] == 3


@pytest.mark.parametrize(
    "parameters",
    [
        {"action": "unregister", "agent_id": "left"},
        {"action": "register", "agent_info": {"id": "mine", "skills": ["text"]}},
        {"action": "register", "agent": {"id": "mine"}},
    ],
)
def test_a_caller_cannot_change_the_served_agents(served, parameters):
    """The agents are shared by every caller: a caller may run tasks, never register or
    unregister agents (the inputs that would are not part of the served workflow)."""
    response = served.client.post(
        "/workflows/shouting/execute",
        json={"parameters": {"coordinator": parameters}},
        headers=served.bearer_headers(),
    )
    assert response.status_code == 400, response.text
    assert "agent" in response.text
    listed = served.client.post(
        "/workflows/shouting/execute",
        json={"parameters": {"coordinator": {"action": "list_agents"}}},
        headers=served.bearer_headers(),
    )
    assert listed.status_code == 200, listed.text
    assert {agent["agent_id"] for agent in listed.json()["results"]["coordinator"]["agents"]} == {
        "left",
        "right",
    }
