"""Agents: callables (sync and async), nodes and workflows run as agents, and specs."""

from __future__ import annotations

import threading

import anyio
import pytest

from kailash_nb import AsyncLocalRuntime, LocalRuntime, WorkflowBuilder
from kailash_nb.nodes.ai.agents import Agent, AgentFailure, WorkflowAgent, as_agent
from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.sdk_exceptions import NodeConfigurationError


class Doubler(Node):
    def get_parameters(self):
        return {"value": NodeParameter(name="value", type=int, required=True)}

    def run(self, value):
        return {"doubled": value * 2, "thread": threading.current_thread().name}


class AsyncDoubler(AsyncNode):
    def get_parameters(self):
        return {"value": NodeParameter(name="value", type=int, required=True)}

    async def async_run(self, value):
        await anyio.sleep(0)
        return {"doubled": value * 2}


def run(agent: Agent, task: dict):
    return anyio.run(agent.run, task)


def test_an_async_callable_gets_the_task():
    async def echo(task):
        return task["text"].upper()

    assert run(Agent("echo", echo), {"text": "hi"}) == "HI"


def test_a_sync_callable_runs_in_a_worker_thread():
    def where(task):
        return threading.current_thread() is threading.main_thread()

    assert run(Agent("sync", where), {}) is False


def test_nodes_run_with_the_task_inputs():
    task = {"inputs": {"value": 21}}
    sync_result = run(Agent("sync", Doubler()), task)
    assert sync_result["doubled"] == 42
    assert run(Agent("async", AsyncDoubler()), task) == {"doubled": 42}


def test_a_result_reporting_failure_is_a_failure():
    with pytest.raises(AgentFailure, match="quota exceeded"):
        run(Agent("kailash", lambda task: {"success": False, "error": "quota exceeded"}), {})
    assert run(Agent("fine", lambda task: {"success": True}), {}) == {"success": True}


def _doubling_workflow():
    builder = WorkflowBuilder()
    builder.add_node(
        "PythonCodeNode", "double", {"code": "result = {'doubled': value * 2}", "value": 0}
    )
    return builder.build()


@pytest.mark.parametrize("runtime_class", [AsyncLocalRuntime, LocalRuntime])
def test_a_workflow_runs_on_the_runtime_it_was_given(runtime_class):
    agent = Agent("etl", WorkflowAgent(_doubling_workflow(), runtime=runtime_class()), ["etl"])
    outcome = run(agent, {"inputs": {"double": {"value": 4}}})
    assert outcome["results"]["double"]["result"] == {"doubled": 8}
    assert isinstance(outcome["run_id"], str)
    assert agent.kind == "workflow"


def test_a_workflow_agent_needs_a_runtime():
    with pytest.raises(NodeConfigurationError, match="execute_async"):
        WorkflowAgent(_doubling_workflow(), runtime=None)


def test_specs_take_kailash_keys():
    agent = as_agent(
        {"id": "analyst", "skills": ["Data_Analysis"], "role": "analyst", "handler": len}
    )
    assert agent.agent_id == "analyst"
    assert agent.capabilities == {"data_analysis"}
    assert agent.metadata == {"role": "analyst"}
    assert as_agent(agent) is agent


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"id": "bare", "skills": ["x"]}, "nothing to run tasks with"),
        ({"id": "typo", "handler": len, "capabilites": []}, "unknown keys"),
        ({"id": "heavy", "handler": len, "weight": 0}, "weight must be > 0"),
        ({"id": "many", "handler": len, "concurrency": 0}, "concurrency"),
        ({"id": "", "handler": len}, "non-empty"),
        ({"id": "odd", "handler": "not callable"}, "handler"),
        ({"id": "caps", "handler": len, "capabilities": [1]}, "strings"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(NodeConfigurationError, match=message):
        as_agent(spec)


def test_a_workflow_run_with_a_failed_node_is_a_failure():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "load", {"code": "raise ValueError('bad row')"})
    agent = Agent("etl", WorkflowAgent(builder.build(), runtime=LocalRuntime()))
    with pytest.raises(AgentFailure, match=r"load: .*bad row"):
        run(agent, {})
