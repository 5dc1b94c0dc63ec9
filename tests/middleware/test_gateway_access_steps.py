"""Node steps on the event stream of a gateway under ``AccessControlledRuntime``: a
caller who may not read a node's output gets its step names without their details, on
the thread and process backends alike (a worker's steps are shown by the parent's
access checks)."""

from __future__ import annotations

import json
import time

import pytest

from kailash_nb.runtime.access_controlled import AccessControlledRuntime
from kailash_nb.workflow.builder import WorkflowBuilder

AGENT_CODE = """
from kailash_nb.nodes.steps import report_step
report_step("prompt_sent", prompt="salary of " + question)
report_step("answer", content=question + " earns 100")
result = {"answer": "100"}
"""
POLICY = """\
rules:
  - id: analysts-run-agents
    effect: allow
    actions: [execute, read_output]
    resource: {workflow: "*"}
    subject: {role: analyst}
  - id: auditors-run-agents
    effect: allow
    action: execute
    resource: {workflow: "*"}
    subject: {role: auditor}
"""
WITHHELD = {"_access_denied": True}


def agent_workflow():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "agent", {"code": AGENT_CODE, "question": ""})
    return builder.build()


@pytest.fixture(scope="module")
def served(module_sqlite_url, tmp_path_factory, secured_gateway, serve_module_gateway):
    policy = tmp_path_factory.mktemp("policy") / "policies.yaml"
    policy.write_text(POLICY)
    runtime = AccessControlledRuntime(
        policies_file=policy, audit_enabled=True, database_url=module_sqlite_url
    )
    gateway = secured_gateway(module_sqlite_url, runtime=runtime)
    gateway.register_workflow("agent", agent_workflow())
    gateway.register_workflow(
        "agent_isolated", agent_workflow(), isolation="process", process_pool_size=1
    )
    server = serve_module_gateway(gateway)
    assert gateway.runs.backends["agent_isolated"].pool.wait_ready(30)
    return server


def steps_seen(served, workflow: str, roles: list[str]) -> tuple[list[dict], dict]:
    """The ``node.step`` frames of a run of ``workflow`` by a caller with ``roles``, as
    its owner reads them from the run's SSE stream, and the run as its owner reads it."""
    owner = served.bearer_headers("dora", roles=roles)
    body = {"parameters": {"agent": {"question": "bob"}}}
    started = served.client.post(
        f"/workflows/{workflow}/execute?wait=false", json=body, headers=owner
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    events = served.client.get(f"/runs/{run_id}/events", headers=owner)  # to the run's end
    assert events.status_code == 200
    deadline = time.monotonic() + 30  # the run store records the end shortly after
    while True:
        answer = served.client.get(f"/runs/{run_id}", headers=owner).json()
        if answer["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    steps = []
    for block in events.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields.get("event") == "node.step":
            steps.append(json.loads(fields["data"]))
    return steps, answer


@pytest.mark.parametrize("workflow", ["agent", "agent_isolated"])
def test_a_caller_who_may_read_the_node_sees_its_step_details(served, workflow):
    steps, answer = steps_seen(served, workflow, ["analyst"])
    assert [(s["step"], s["detail"]) for s in steps] == [
        ("prompt_sent", {"prompt": "salary of bob"}),
        ("answer", {"content": "bob earns 100"}),
    ]
    assert answer["results"]["agent"] == {"result": {"answer": "100"}}


@pytest.mark.parametrize("workflow", ["agent", "agent_isolated"])
def test_a_caller_who_may_not_read_the_node_gets_no_step_details(served, workflow):
    steps, answer = steps_seen(served, workflow, ["auditor"])
    assert [(s["step"], s["detail"]) for s in steps] == [
        ("prompt_sent", WITHHELD),
        ("answer", WITHHELD),
    ]
    assert answer["results"]["agent"] == WITHHELD
    assert "bob" not in json.dumps(steps)
