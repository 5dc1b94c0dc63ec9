"""Steps (``report_step``) of a run under ``AccessControlledRuntime``: a step's detail is
the node's data, so it is shown only to a caller who may read the node's whole output,
by the same single read_output decision that shows the node's results."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kailash_nb.access_control import UserContext
from kailash_nb.nodes.base import NodeParameter
from kailash_nb.nodes.node import Node
from kailash_nb.nodes.steps import report_step
from kailash_nb.runtime.access_controlled import AccessControlledRuntime
from kailash_nb.runtime.events import NodeStepEvent
from kailash_nb.store.audit_trail import AuditTrail
from kailash_nb.workflow.builder import WorkflowBuilder

POLICY = """\
rules:
  - id: analysts-run-agent
    effect: allow
    actions: [execute, read_output]
    resource: {workflow: agent}
    subject: {role: analyst}
  - id: auditors-run-agent
    effect: allow
    action: execute
    resource: {workflow: agent}
    subject: {role: auditor}
  - id: juniors-never-see-prompts
    effect: deny
    action: read_output
    resource: {workflow: agent, node: "*", field: prompt}
    subject: {role: junior}
"""
ANALYST = UserContext(user_id="ana", tenant_id="acme", roles=["analyst"])
AUDITOR = UserContext(user_id="aud", tenant_id="acme", roles=["auditor"])
JUNIOR = UserContext(user_id="jun", tenant_id="acme", roles=["analyst", "junior"])
WITHHELD = {"_access_denied": True}


class Agent(Node):
    """Reports two steps whose details carry the question, and answers it."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {"question": NodeParameter(name="question", type=str, required=False, default="?")}

    def run(self, question: str = "?") -> dict[str, Any]:
        report_step("prompt_sent", prompt=f"salary of {question}")
        report_step("answer", content=f"{question} earns 100")
        return {"prompt": f"salary of {question}", "answer": "100"}


def agent():
    builder = WorkflowBuilder()
    builder.add_node(Agent(), "agent", {"question": "bob"})
    return builder.build(workflow_id="agent")


@pytest.fixture
def runtime(tmp_path):
    policy = tmp_path / "policies.yaml"
    policy.write_text(POLICY)
    made = AccessControlledRuntime(
        policies_file=policy,
        audit_enabled=True,
        database_url=f"sqlite:///{tmp_path / 'audit.db'}",
    )
    yield made
    made.close()


def steps_of(runtime, caller, use_async=False) -> tuple[list[NodeStepEvent], dict, str]:
    seen: list[NodeStepEvent] = []
    runtime.events.subscribe(seen.append, nodes=False, runs=False, steps=True)
    if use_async:
        results, run_id = asyncio.run(runtime.execute_async(agent(), user_context=caller))
    else:
        results, run_id = runtime.execute(agent(), user_context=caller)
    return [event for event in seen if event.run_id == run_id], results, run_id


def test_a_caller_who_may_read_the_node_sees_its_steps_whole(runtime):
    steps, results, _ = steps_of(runtime, ANALYST)
    assert [(e.step, e.detail) for e in steps] == [
        ("prompt_sent", {"prompt": "salary of bob"}),
        ("answer", {"content": "bob earns 100"}),
    ]
    assert results["agent"] == {"prompt": "salary of bob", "answer": "100"}


@pytest.mark.parametrize("use_async", [False, True], ids=["execute", "execute_async"])
def test_a_caller_who_may_not_read_the_node_gets_its_step_names_without_details(runtime, use_async):
    steps, results, _ = steps_of(runtime, AUDITOR, use_async)
    assert [(e.step, e.detail) for e in steps] == [
        ("prompt_sent", WITHHELD),
        ("answer", WITHHELD),
    ]
    assert results["agent"] == WITHHELD
    assert "bob" not in repr(steps)


def test_a_node_with_masked_fields_shows_its_steps_without_details(runtime):
    # The masked field's value is in the detail's text ("salary of bob"), where masking
    # cannot find it: the whole detail is withheld, the result is masked field by field.
    steps, results, _ = steps_of(runtime, JUNIOR)
    assert [e.detail for e in steps] == [WITHHELD, WITHHELD]
    assert results["agent"]["answer"] == "100"
    assert results["agent"]["prompt"] != "salary of bob"


def test_authz_17_steps_and_results_share_one_audited_read_decision(runtime, tmp_path):
    # AUTHZ-17: the steps asked for the node's read decision before the results did;
    # it is one decision, so one record.
    for caller in (ANALYST, AUDITOR):
        _, _, run_id = steps_of(runtime, caller)
        runtime.flush_audit()
        trail = AuditTrail(f"sqlite:///{tmp_path / 'audit.db'}")
        mine = [e.record for e in trail.records(tenant_id="acme") if e.record.run_id == run_id]
        assert sorted((r.action, r.resource) for r in mine) == [
            ("execute", "node:agent/agent"),
            ("execute", "workflow:agent"),
            ("read_output", "node:agent/agent"),
            ("run", "workflow:agent"),
        ]
    assert trail.verify().ok
