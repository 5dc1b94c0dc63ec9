"""The agent pool: membership, load, health from outcomes, and AgentPoolManagerNode."""

from __future__ import annotations

import pytest

from kailash_nb.nodes.ai.agents import Agent
from kailash_nb.nodes.ai.pool import AgentPool
from kailash_nb.nodes.ai.self_organizing import AgentPoolManagerNode
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError
from tests._clock import Clock


def agent(agent_id: str, *capabilities: str) -> Agent:
    return Agent(agent_id, lambda task: agent_id, capabilities)


def test_register_list_and_unregister():
    pool = AgentPool()
    pool.register(agent("a", "x"))
    pool.register(agent("b", "y"))
    assert [a.agent_id for a in pool.agents()] == ["a", "b"]
    with pytest.raises(NodeValidationError, match="already registered"):
        pool.register(agent("a"))
    pool.register(agent("a", "z"), replace=True)
    assert pool.get("a").capabilities == {"z"}
    pool.unregister("a")
    assert "a" not in pool and len(pool) == 1
    with pytest.raises(NodeValidationError, match=r"no agent 'a'.*'b'"):
        pool.unregister("a")


def test_load_counts_tasks_in_flight_and_stats_count_outcomes():
    pool = AgentPool()
    pool.register(agent("a"))
    pool.started("a")
    pool.started("a")
    assert pool.snapshot()["a"]["load"] == 2
    pool.finished("a", "success", 0.1)
    pool.finished("a", "timeout", 0.3)
    entry = pool.snapshot()["a"]
    assert (entry["load"], entry["tasks"], entry["successes"], entry["timeouts"]) == (0, 2, 1, 1)
    assert entry["success_rate"] == 0.5
    assert entry["mean_latency"] == pytest.approx(0.2)
    assert entry["p95_latency"] == 0.3
    assert entry["share"] == 1.0


def test_failures_in_a_row_make_an_agent_unhealthy_until_the_cooldown_ends():
    clock = Clock()
    pool = AgentPool(unhealthy_after=2, cooldown=30, clock=clock)
    pool.register(agent("a"))
    for outcome in ("failure", "success", "failure"):
        pool.started("a")
        pool.finished("a", outcome, 0.01)
    assert pool.is_healthy("a")  # the success broke the run of failures
    pool.started("a")
    pool.finished("a", "timeout", 0.01)
    assert not pool.is_healthy("a")
    clock.advance(29)
    assert not pool.snapshot()["a"]["healthy"]
    clock.advance(1)
    assert pool.is_healthy("a")  # tried again after the cooldown
    pool.started("a")
    pool.finished("a", "failure", 0.01)
    assert not pool.is_healthy("a")  # failed again: out for another cooldown
    clock.advance(30)
    pool.started("a")
    pool.finished("a", "success", 0.01)
    assert pool.is_healthy("a") and pool.stats("a").consecutive_failures == 0


def test_bad_health_settings_are_refused():
    with pytest.raises(NodeConfigurationError, match="unhealthy_after"):
        AgentPool(unhealthy_after=0)
    with pytest.raises(NodeConfigurationError, match="cooldown"):
        AgentPool(cooldown=-1)


def test_the_node_registers_finds_and_lists_agents():
    manager = AgentPoolManagerNode()
    registered = manager.execute(
        action="register", agent_id="analyst", capabilities=["Analysis", "sql"], handler=len
    )
    assert registered == {
        "success": True,
        "agent_id": "analyst",
        "status": "registered",
        "capabilities": ["analysis", "sql"],
        "pool_size": 1,
    }
    manager.execute(
        action="register", agent={"id": "writer", "skills": ["writing"], "handler": len}
    )
    found = manager.execute(action="find_by_capability", required_capabilities=["analysis"])
    assert [a["agent_id"] for a in found["agents"]] == ["analyst"]
    assert found["total_pool_size"] == 2
    listed = manager.execute()
    assert listed["count"] == 2
    assert {a["status"] for a in listed["agents"]} == {"available"}
    assert manager.execute(action="unregister", agent_id="writer")["pool_size"] == 1


def test_the_node_refuses_an_agent_without_a_handler():
    with pytest.raises(NodeValidationError, match="handler"):
        AgentPoolManagerNode().execute(action="register", agent_id="a", capabilities=["x"])


def test_an_inactive_agent_is_not_found_until_it_is_available_again():
    manager = AgentPoolManagerNode()
    manager.execute(action="register", agent_id="a", capabilities=["x"], handler=len)
    changed = manager.execute(action="update_status", agent_id="a", status="inactive")
    assert (changed["old_status"], changed["new_status"]) == ("available", "inactive")
    assert manager.execute(action="find_by_capability", required_capabilities=["x"])["count"] == 0
    manager.execute(action="update_status", agent_id="a", status="available")
    assert manager.execute(action="find_by_capability", required_capabilities=["x"])["count"] == 1
    with pytest.raises(NodeValidationError, match="measured"):
        manager.execute(action="update_status", agent_id="a", status="busy")


def test_min_performance_leaves_out_agents_that_fail_too_often():
    pool = AgentPool(unhealthy_after=10)
    manager = AgentPoolManagerNode(pool=pool)
    for agent_id in ("good", "poor"):
        manager.execute(action="register", agent_id=agent_id, capabilities=["x"], handler=len)
    for outcome in ("success", "failure", "failure"):
        pool.started("poor")
        pool.finished("poor", outcome, 0.01)
    found = manager.execute(
        action="find_by_capability", required_capabilities=["x"], min_performance=0.5
    )
    assert [a["agent_id"] for a in found["agents"]] == ["good"]


def test_get_metrics_for_one_agent_and_for_the_pool():
    pool = AgentPool()
    manager = AgentPoolManagerNode(pool=pool)
    manager.execute(action="register", agent_id="a", capabilities=["x", "y"], handler=len)
    manager.execute(action="register", agent_id="b", capabilities=["x"], handler=len)
    pool.started("a")
    pool.finished("a", "success", 0.02)
    one = manager.execute(action="get_metrics", agent_id="a")
    assert one["metrics"]["successes"] == 1 and one["registration_info"]["agent_id"] == "a"
    whole = manager.execute(action="get_metrics")["pool_metrics"]
    assert whole["total_agents"] == 2 and whole["available_agents"] == 2
    assert whole["capability_distribution"] == {"x": 2, "y": 1}
    assert whole["avg_success_rate"] == 1.0


def test_unknown_actions_and_pools_are_refused():
    with pytest.raises(NodeValidationError, match="unknown action 'explode'"):
        AgentPoolManagerNode().execute(action="explode")
    with pytest.raises(NodeConfigurationError, match="AgentPool"):
        AgentPoolManagerNode(pool={"agents": []})
