"""The seed's blocks that import the agent nodes, run as written with ``kailash.``
renamed ``kailash_nb.``, in one namespace and in the document's order (a later block
uses the ``workflow`` an earlier one built, as a notebook would).

Only the multi-tenant block's setup lines run here: its gateway asks for
``tenant_isolation=True`` without a ``security_config``, which kailash_nb refuses
(tenants come from verified tokens); tests/middleware/test_gateway_tenant_databases.py
runs that gateway with one.
"""

from __future__ import annotations

import textwrap

import pytest

MULTI_TENANT_SETUP = """
# SDK Setup for example
from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.nodes.data import CSVReaderNode
from kailash_nb.nodes.ai import LLMAgentNode
from kailash_nb.nodes.api import HTTPRequestNode
from kailash_nb.nodes.logic import SwitchNode, MergeNode
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.nodes.base import Node, NodeParameter

# Example setup
workflow = WorkflowBuilder()
# Runtime should be created separately
runtime = LocalRuntime()
"""

AGENT_COORDINATION = """
from kailash_nb.nodes.ai.a2a import A2ACoordinatorNode
from kailash_nb.nodes.ai.self_organizing import AgentPoolManagerNode

# Enterprise agent pool
workflow.add_node("AgentPoolManagerNode", "agent_pool", {})

# High-throughput coordinator
workflow.add_node("A2ACoordinatorNode", "coordinator", {
    "max_concurrent_tasks": 200,     # Enterprise throughput
    "task_queue_limit": 10000,
    "coordination_strategy": "weighted_round_robin",
    "performance_monitoring": True
})
"""

HIGH_THROUGHPUT = """
# SDK Setup for example
from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.nodes.data import CSVReaderNode
from kailash_nb.nodes.ai import LLMAgentNode
from kailash_nb.nodes.api import HTTPRequestNode
from kailash_nb.nodes.logic import SwitchNode, MergeNode
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.nodes.base import Node, NodeParameter

# Example setup
workflow = WorkflowBuilder()
# Runtime should be created separately
runtime = LocalRuntime()

# High-performance gateway
gateway = create_gateway(
    title="High-Throughput API",
    worker_processes=8,            # Multiple worker processes
    max_connections=1000,
    connection_pool_size=100,
    enable_compression=True,
    cache_enabled=True,
    cache_ttl=300
)

# Async runtime for performance
runtime = AsyncLocalRuntime(
    max_concurrent_workflows=50,
    workflow_timeout=300,
    memory_limit_mb=2048,
    enable_metrics=True
)
"""


@pytest.fixture
def seed_namespace() -> dict:
    """Names the seed's earlier blocks import and these blocks use without importing:
    ``create_gateway`` (its "Basic Enterprise Setup") and ``AsyncLocalRuntime``, which
    the document never imports."""
    from kailash_nb.middleware import create_gateway
    from kailash_nb.runtime.async_local import AsyncLocalRuntime

    return {"create_gateway": create_gateway, "AsyncLocalRuntime": AsyncLocalRuntime}


def run_block(source: str, namespace: dict) -> None:
    exec(compile(textwrap.dedent(source), "<seed block>", "exec"), namespace)


def test_multi_tenant_setup_then_agent_coordination_build_a_workflow(seed_namespace):
    from kailash_nb.nodes.ai.a2a import A2ACoordinatorNode
    from kailash_nb.nodes.ai.llm_agent import LLMAgentNode
    from kailash_nb.nodes.ai.self_organizing import AgentPoolManagerNode

    run_block(MULTI_TENANT_SETUP, seed_namespace)
    assert seed_namespace["LLMAgentNode"] is LLMAgentNode
    run_block(AGENT_COORDINATION, seed_namespace)
    workflow = seed_namespace["workflow"].build()
    assert isinstance(workflow.nodes["agent_pool"], AgentPoolManagerNode)
    coordinator = workflow.nodes["coordinator"]
    assert isinstance(coordinator, A2ACoordinatorNode)
    assert coordinator.config["coordination_strategy"] == "weighted_round_robin"
    assert coordinator.config["max_concurrent_tasks"] == 200
    assert coordinator.config["task_queue_limit"] == 10000


def test_high_throughput_block_runs_whole(seed_namespace):
    from kailash_nb.nodes.ai.llm_agent import LLMAgentNode

    run_block(HIGH_THROUGHPUT, seed_namespace)
    assert seed_namespace["LLMAgentNode"] is LLMAgentNode
    gateway = seed_namespace["gateway"]
    assert gateway.result_cache is not None and gateway.result_cache.ttl == 300
    runtime = seed_namespace["runtime"]
    assert runtime.memory_limit_bytes == 2048 * 1024 * 1024
    assert runtime.get_metrics()["workflows"]["completed"] == 0
