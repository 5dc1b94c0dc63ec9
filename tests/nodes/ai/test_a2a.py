"""The A2A coordinator: backpressure, concurrency, timeouts and retries, health,
strategies end to end, metrics on /metrics, and A2ACoordinatorNode in a workflow."""

from __future__ import annotations

import math

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from kailash_nb import LocalRuntime
from kailash_nb.nodes.ai.a2a import A2ACoordinatorNode, TaskQueueFullError
from kailash_nb.nodes.ai.agents import Agent
from kailash_nb.nodes.ai.coordinator import A2ACoordinator
from kailash_nb.nodes.ai.pool import AgentPool
from kailash_nb.nodes.ai.self_organizing import AgentPoolManagerNode
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    ServiceUnavailableError,
)
from kailash_nb.workflow.builder import WorkflowBuilder
from tests._clock import Clock


def returns(value):
    async def handler(task):
        return value

    return handler


def fails(message="boom"):
    async def handler(task):
        raise RuntimeError(message)

    return handler


async def until(condition, what: str) -> None:
    """Let other tasks run until ``condition()`` holds (bounded, no timing involved)."""
    for _ in range(100_000):
        if condition():
            return
        await anyio.sleep(0)
    raise AssertionError(f"never reached: {what}")


def gated(gate: anyio.Event, calls: list):
    async def handler(task):
        calls.append(task["task_id"])
        await gate.wait()
        return task["task_id"]

    return handler


# -- backpressure ---------------------------------------------------------------------
@pytest.mark.slow
def test_the_10001st_waiting_task_is_refused_and_nothing_is_dropped():
    async def main():
        gate, calls = anyio.Event(), []
        coordinator = A2ACoordinator(max_concurrent_tasks=1, task_queue_limit=10_000)
        coordinator.register(Agent("worker", gated(gate, calls)))
        outcomes = []

        async def submit(index):
            outcomes.append(await coordinator.submit({"task_id": f"t{index}"}))

        async with anyio.create_task_group() as group:
            for index in range(10_001):
                group.start_soon(submit, index)
            await until(lambda: coordinator.slots.queued == 10_000, "10000 tasks queued")
            assert coordinator.slots.running == 1
            with pytest.raises(TaskQueueFullError, match="task_queue_limit=10000") as refused:
                await coordinator.submit({"task_id": "one-too-many"})
            assert (refused.value.queued, refused.value.running) == (10_000, 1)
            gate.set()
        assert len(outcomes) == 10_001 and all(outcome["success"] for outcome in outcomes)
        assert sorted(calls) == sorted(f"t{index}" for index in range(10_001))
        counts = coordinator.metrics()["tasks"]
        assert (counts["completed"], counts["refused"], counts["queued"]) == (10_001, 1, 0)

    anyio.run(main)


def test_a_full_coordinator_refuses_a_batch_whole():
    async def main():
        gate, calls = anyio.Event(), []
        coordinator = A2ACoordinator(max_concurrent_tasks=1, task_queue_limit=1)
        coordinator.register(Agent("worker", gated(gate, calls)))
        async with anyio.create_task_group() as group:
            group.start_soon(coordinator.submit, {"task_id": "first"})
            await until(lambda: calls == ["first"], "the first task running")
            with pytest.raises(TaskQueueFullError, match="batch of 2 tasks") as refused:
                await coordinator.submit_many([{}, {}])
            assert refused.value.refused == 2
            gate.set()
        assert calls == ["first"]

    anyio.run(main)


def test_a_refusal_is_an_execution_error_the_gateway_answers_with_503():
    assert issubclass(TaskQueueFullError, NodeExecutionError)
    assert issubclass(TaskQueueFullError, ServiceUnavailableError)


@settings(max_examples=30, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=4),
    limit=st.integers(min_value=0, max_value=6),
    submitted=st.integers(min_value=0, max_value=15),
)
def test_the_queue_never_exceeds_its_limit_and_every_task_is_run_or_refused(
    capacity, limit, submitted
):
    async def main():
        gate, calls = anyio.Event(), []
        coordinator = A2ACoordinator(max_concurrent_tasks=capacity, task_queue_limit=limit)
        coordinator.register(Agent("worker", gated(gate, calls)))
        outcomes, refusals, most_queued = [], [], 0

        async def submit(index):
            try:
                outcomes.append(await coordinator.submit({"task_id": str(index)}))
            except TaskQueueFullError as exc:
                refusals.append(exc)

        async with anyio.create_task_group() as group:
            for index in range(submitted):
                group.start_soon(submit, index)
                await anyio.sleep(0)
                most_queued = max(most_queued, coordinator.slots.queued)
            await until(
                lambda: len(calls) + coordinator.slots.queued + len(refusals) == submitted,
                "every task running, queued or refused",
            )
            most_queued = max(most_queued, coordinator.slots.queued)
            gate.set()
        assert most_queued <= limit
        assert len(outcomes) == min(submitted, capacity + limit)
        assert len(refusals) == submitted - len(outcomes)
        assert all(outcome["success"] for outcome in outcomes)

    anyio.run(main)


def test_max_concurrent_tasks_is_enforced():
    async def main():
        running, most = 0, 0

        async def handler(task):
            nonlocal running, most
            running += 1
            most = max(most, running)
            for _ in range(5):
                await anyio.sleep(0)
            running -= 1

        coordinator = A2ACoordinator(max_concurrent_tasks=3, strategy="round_robin")
        for index in range(4):
            coordinator.register(Agent(f"a{index}", handler))
        outcomes = await coordinator.submit_many([{} for _ in range(20)])
        assert all(outcome["success"] for outcome in outcomes)
        assert most == 3

    anyio.run(main)


# -- timeouts, retries and health -----------------------------------------------------
def test_a_timed_out_task_is_retried_on_another_agent():
    async def main():
        async def stuck(task):
            await anyio.Event().wait()

        coordinator = A2ACoordinator(strategy="round_robin", agent_timeout=0.02)
        coordinator.register(Agent("stuck", stuck))
        coordinator.register(Agent("quick", returns("done")))
        outcome = await coordinator.submit({"task_id": "t1"})
        assert outcome["success"] and outcome["result"] == "done"
        assert outcome["agent_id"] == outcome["delegated_to"] == "quick"
        assert [(a["agent_id"], a["status"]) for a in outcome["attempts"]] == [
            ("stuck", "timeout"),
            ("quick", "completed"),
        ]
        agents = coordinator.metrics()["agents"]
        assert (agents["stuck"]["timeouts"], agents["stuck"]["load"]) == (1, 0)
        assert agents["quick"]["successes"] == 1

    anyio.run(main)


def test_a_task_failing_everywhere_is_reported_failed_after_bounded_attempts():
    async def main():
        coordinator = A2ACoordinator(strategy="round_robin", max_retries=2)
        for index in range(5):
            coordinator.register(Agent(f"a{index}", fails(f"broken {index}")))
        outcome = await coordinator.submit({})
        assert (outcome["success"], outcome["status"]) == (False, "failed")
        assert outcome["result"] is None and "broken 2" in outcome["error"]
        assert [a["agent_id"] for a in outcome["attempts"]] == ["a0", "a1", "a2"]
        assert coordinator.metrics()["tasks"]["failed"] == 1

    anyio.run(main)


def test_a_task_nobody_can_take_ends_with_no_agent():
    async def main():
        coordinator = A2ACoordinator()
        coordinator.register(Agent("writer", returns(1), ["writing"]))
        outcome = await coordinator.submit({"required_capabilities": ["surgery"]})
        assert (outcome["success"], outcome["status"]) == (False, "no_agent")
        assert "surgery" in outcome["error"]

    anyio.run(main)


def test_an_unhealthy_agent_is_left_out_until_its_cooldown_ends():
    async def main():
        clock = Clock()
        pool = AgentPool(unhealthy_after=1, cooldown=60, clock=clock)
        coordinator = A2ACoordinator(pool, strategy="round_robin")
        coordinator.register(Agent("bad", fails()))
        coordinator.register(Agent("good", returns("ok")))
        first = await coordinator.submit({})
        assert [a["agent_id"] for a in first["attempts"]] == ["bad", "good"]
        later = await coordinator.submit_many([{} for _ in range(4)])
        assert all([a["agent_id"] for a in o["attempts"]] == ["good"] for o in later)
        clock.advance(60)
        tried = await coordinator.submit_many([{} for _ in range(2)])
        assert "bad" in {a["agent_id"] for o in tried for a in o["attempts"]}
        assert pool.stats("bad").failures == 2

    anyio.run(main)


# -- strategies end to end ------------------------------------------------------------
def test_best_match_runs_on_the_most_capable_agent():
    async def main():
        coordinator = A2ACoordinator()
        coordinator.register(Agent("generalist", returns("g"), ["analysis"]))
        coordinator.register(Agent("specialist", returns("s"), ["analysis", "statistics"]))
        outcome = await coordinator.submit({"required_skills": ["analysis", "statistics"]})
        assert outcome["result"] == "s"
        ranked = coordinator.rank({"required_skills": ["analysis", "statistics"]})
        assert [(r["agent_id"], r["score"]) for r in ranked] == [
            ("specialist", 1.0),
            ("generalist", 0.5),
        ]

    anyio.run(main)


def test_broadcast_reports_every_agents_result_and_is_not_a_success_if_one_failed():
    async def main():
        coordinator = A2ACoordinator()
        coordinator.register(Agent("a", returns(1), ["news"]))
        coordinator.register(Agent("b", fails("offline"), ["news"]))
        coordinator.register(Agent("c", returns(3), ["sports"]))
        outcome = await coordinator.submit(
            {"required_capabilities": ["news"]}, strategy="broadcast"
        )
        assert outcome["recipients"] == ["a", "b"]
        assert (outcome["success"], outcome["status"]) == (False, "partial")
        assert outcome["results"]["a"]["result"] == 1
        assert "offline" in outcome["results"]["b"]["error"]

    anyio.run(main)


def test_the_auction_goes_to_the_lowest_bidder():
    async def main():
        coordinator = A2ACoordinator(strategy="auction")
        coordinator.register(Agent("dear", returns("dear"), bid=lambda task: 9.0))
        coordinator.register(Agent("cheap", returns("cheap"), bid=lambda task: task["budget"]))
        assert (await coordinator.submit({"budget": 2.0}))["result"] == "cheap"

    anyio.run(main)


def test_performance_monitoring_weighs_down_an_agent_that_fails():
    async def main():
        calls = {"flaky": 0}

        async def flaky(task):
            calls["flaky"] += 1
            if calls["flaky"] % 2:
                raise RuntimeError("flaked")
            return "flaky"

        pool = AgentPool(unhealthy_after=100)
        coordinator = A2ACoordinator(
            pool, strategy="weighted_round_robin", performance_monitoring=True, max_retries=0
        )
        coordinator.register(Agent("steady", returns("steady")))
        coordinator.register(Agent("flaky", flaky))
        await coordinator.submit_many([{} for _ in range(40)])
        agents = coordinator.metrics()["agents"]
        assert agents["flaky"]["effective_weight"] < agents["steady"]["effective_weight"]
        assert agents["flaky"]["tasks"] < agents["steady"]["tasks"]

    anyio.run(main)


# -- metrics --------------------------------------------------------------------------
def test_per_agent_metrics_are_rendered_on_a_prometheus_registry():
    node = A2ACoordinatorNode(agents=[Agent("a", returns(1)), Agent("b", fails())])
    registry = CollectorRegistry()
    node.register_metrics(registry, workflow="triage")
    node.execute(action="delegate", task={})
    where = {"workflow": "triage", "node": node.id}

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {**where, **labels})

    assert sample("kailash_nb_agent_tasks_total", agent="a") == 1
    assert sample("kailash_nb_agent_outcomes_total", agent="a", outcome="success") == 1
    assert sample("kailash_nb_agent_load", agent="a") == 0
    assert sample("kailash_nb_agent_healthy", agent="b") == 1
    assert math.isnan(sample("kailash_nb_agent_latency_mean_seconds", agent="b"))
    assert sample("kailash_nb_agent_coordinator_tasks_total", state="completed") == 1
    assert "kailash_nb_agent_share" in generate_latest(registry).decode()
    with pytest.raises(ValueError, match="already in this registry"):
        node.register_metrics(registry, workflow="triage")


def test_two_coordinators_share_one_registry_under_their_own_labels():
    first = A2ACoordinatorNode(agents=[Agent("a", returns(1))])
    second = A2ACoordinatorNode(agents=[Agent("a", returns(2))])
    registry = CollectorRegistry()
    first.register_metrics(registry, workflow="one")
    second.register_metrics(registry, workflow="two")
    first.execute(action="delegate", task={})
    tasks = "kailash_nb_agent_tasks_total"
    labels = {"agent": "a", "node": first.id}
    assert registry.get_sample_value(tasks, {**labels, "workflow": "one"}) == 1
    assert registry.get_sample_value(tasks, {**labels, "workflow": "two"}) == 0


# -- the node ---------------------------------------------------------------------------
def test_the_seed_block_builds_and_runs():
    from kailash_nb.nodes.ai.a2a import A2ACoordinatorNode as SeedCoordinator
    from kailash_nb.nodes.ai.self_organizing import AgentPoolManagerNode as SeedPool

    workflow = WorkflowBuilder()
    workflow.add_node("AgentPoolManagerNode", "agent_pool", {})
    workflow.add_node(
        "A2ACoordinatorNode",
        "coordinator",
        {
            "max_concurrent_tasks": 200,
            "task_queue_limit": 10000,
            "coordination_strategy": "weighted_round_robin",
            "performance_monitoring": True,
        },
    )
    built = workflow.build()
    results, _ = LocalRuntime().execute(built)
    assert isinstance(built.get_node("agent_pool"), SeedPool)
    coordinator = built.get_node("coordinator")
    assert isinstance(coordinator, SeedCoordinator)
    assert coordinator.coordinator.max_concurrent_tasks == 200
    assert coordinator.coordinator.task_queue_limit == 10000
    assert results["agent_pool"] == {"success": True, "agents": [], "count": 0}
    assert results["coordinator"]["success"] is True
    assert results["coordinator"]["results"] == []
    assert results["coordinator"]["metrics"]["strategy"] == "weighted_round_robin"


def test_a_shared_pool_serves_both_nodes_in_a_workflow_run():
    pool = AgentPool()
    workflow = WorkflowBuilder()
    workflow.add_node("AgentPoolManagerNode", "agent_pool", {"pool": pool})
    workflow.add_node(
        "A2ACoordinatorNode",
        "coordinator",
        {"pool": pool, "coordination_strategy": "round_robin", "max_concurrent_tasks": 4},
    )
    built = workflow.build()
    manager = built.get_node("agent_pool")
    for agent_id in ("x", "y"):
        manager.execute(
            action="register",
            agent_id=agent_id,
            capabilities=["echo"],
            handler=lambda task, agent_id=agent_id: (agent_id, task["n"]),
        )
    tasks = [{"n": n, "required_capabilities": ["echo"]} for n in range(4)]
    results, _ = LocalRuntime().execute(built, parameters={"coordinator": {"tasks": tasks}})
    out = results["coordinator"]
    assert out["success"] and out["completed"] == 4
    assert [o["result"] for o in out["results"]] == [("x", 0), ("y", 1), ("x", 2), ("y", 3)]
    assert results["agent_pool"]["count"] == 2
    assert {a["agent_id"]: a["tasks"] for a in results["agent_pool"]["agents"]} == {"x": 2, "y": 2}


def test_the_node_registers_agents_with_kailash_agent_info():
    node = A2ACoordinatorNode()
    registered = node.execute(
        action="register",
        agent_info={"id": "analyst_001", "skills": ["data_analysis"], "handler": returns("r")},
    )
    assert registered["registered_agents"] == ["analyst_001"]
    delegated = node.execute(action="delegate", task={"required_skills": ["data_analysis"]})
    assert delegated["delegated_to"] == "analyst_001" and delegated["success"]
    assert delegated["metrics"]["agents"]["analyst_001"]["successes"] == 1
    best = node.execute(action="find_best_agents", task={"required_skills": ["data_analysis"]})
    assert best["agents"][0]["agent_id"] == "analyst_001"
    assert node.execute(action="get_pool_status")["pool_size"] == 1


def test_sync_execute_works_inside_a_running_event_loop():
    node = A2ACoordinatorNode(agents=[Agent("a", lambda task: task["inputs"]["v"] * 2)])

    async def inside_a_loop():
        return node.execute(action="delegate", task={"inputs": {"v": 21}})

    assert anyio.run(inside_a_loop)["result"] == 42


def test_a_full_node_raises_the_typed_error():
    node = A2ACoordinatorNode(
        max_concurrent_tasks=1, task_queue_limit=0, agents=[Agent("a", returns(1))]
    )
    with pytest.raises(TaskQueueFullError):
        node.execute(action="coordinate", tasks=[{}, {}])
    assert node.coordinator.metrics()["tasks"]["refused"] == 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"coordination_strategy": "fastest"}, "unknown coordination_strategy"),
        ({"max_concurrent_tasks": 0}, "max_concurrent_tasks"),
        ({"task_queue_limit": -1}, "task_queue_limit"),
        ({"agent_timeout": 0}, "agent_timeout"),
        ({"pool": "shared"}, "AgentPool"),
        ({"agents": [{"id": "a", "handler": len}, {"id": "a", "handler": len}]}, "already"),
    ],
)
def test_bad_configuration_is_refused_when_the_node_is_made(config, message):
    with pytest.raises(NodeConfigurationError, match=message):
        A2ACoordinatorNode(**config)


def test_unknown_actions_are_refused():
    with pytest.raises(Exception, match="unknown action 'consensus'"):
        A2ACoordinatorNode().execute(action="consensus")
    assert AgentPoolManagerNode  # the pool node is importable beside it


def test_a_failing_workflow_agent_is_retried_on_a_working_one():
    from kailash_nb import AsyncLocalRuntime
    from kailash_nb.nodes.ai.agents import WorkflowAgent

    def workflow(code):
        builder = WorkflowBuilder()
        builder.add_node("PythonCodeNode", "step", {"code": code})
        return builder.build()

    coordinator = A2ACoordinator(strategy="round_robin")
    runtime = AsyncLocalRuntime()
    coordinator.register(Agent("broken", WorkflowAgent(workflow("raise KeyError('x')"), runtime)))
    coordinator.register(Agent("working", WorkflowAgent(workflow("result = 7"), runtime)))
    outcome = anyio.run(coordinator.submit, {})
    assert [a["status"] for a in outcome["attempts"]] == ["failed", "completed"]
    assert "KeyError" in outcome["attempts"][0]["error"]
    assert outcome["result"]["results"]["step"]["result"] == 7


def test_one_coordinator_bounds_tasks_submitted_from_two_threads_and_loops():
    import threading

    release, first_running = threading.Event(), threading.Event()

    def blocking(task):
        if task["task_id"] == "first":
            first_running.set()
            release.wait(5)
        return task["task_id"]

    coordinator = A2ACoordinator(max_concurrent_tasks=1, task_queue_limit=1)
    coordinator.register(Agent("worker", blocking))
    outcomes = {}

    def other_thread():
        outcomes["first"] = anyio.run(coordinator.submit, {"task_id": "first"})

    thread = threading.Thread(target=other_thread)
    thread.start()
    assert first_running.wait(5)

    async def second():
        async with anyio.create_task_group() as group:

            async def submit():
                outcomes["second"] = await coordinator.submit({"task_id": "second"})

            group.start_soon(submit)
            await until(lambda: coordinator.slots.queued == 1, "the second task queued")
            with pytest.raises(TaskQueueFullError):
                await coordinator.submit({"task_id": "third"})
            release.set()  # the other loop's task ends and hands its slot over to this loop

    anyio.run(second)
    thread.join(5)
    assert outcomes["first"]["result"] == "first" and outcomes["second"]["result"] == "second"
