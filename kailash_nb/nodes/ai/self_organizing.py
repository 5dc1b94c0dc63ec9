"""``AgentPoolManagerNode``: register, unregister, find and inspect agents in a pool.

The pool (``kailash_nb.nodes.ai.pool.AgentPool``) lives in the node, or is passed in
as ``pool`` to share it with an ``A2ACoordinatorNode``::

    pool = AgentPool()
    workflow.add_node("AgentPoolManagerNode", "agent_pool", {"pool": pool})
    workflow.add_node("A2ACoordinatorNode", "coordinator", {"pool": pool})

    manager = AgentPoolManagerNode()
    manager.execute(action="register", agent_id="analyst", capabilities=["analysis"],
                    handler=analyze)
    manager.execute(action="find_by_capability", required_capabilities=["analysis"])

Actions (Kailash's names): ``register``, ``unregister``, ``find_by_capability``,
``update_status`` (``available`` or ``inactive``), ``get_metrics`` (one agent or the
pool), ``list`` (the default). An agent needs something to run tasks with: an
``Agent``, or ``handler`` (a callable or a node instance); Kailash's registration of an
id and capabilities alone is refused with a message saying so.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kailash_nb.nodes.ai.agents import Agent, as_agent, normalize_capabilities
from kailash_nb.nodes.ai.pool import AgentPool
from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError

__all__ = ["AgentPoolManagerNode"]

ACTIONS = ("register", "unregister", "find_by_capability", "update_status", "get_metrics", "list")
#: Statuses ``update_status`` sets; load ("busy") is measured, not set.
STATUSES = ("available", "inactive")


def _optional(name: str, kind: Any, description: str, default: Any = None) -> NodeParameter:
    return NodeParameter(
        name=name, type=kind, required=False, default=default, description=description
    )


@register_node()
class AgentPoolManagerNode(Node):
    """A pool of agents with capabilities, load and health; see the module docstring.

    Args:
        pool: an ``AgentPool`` to manage (default: a new one of this node's own).
        unhealthy_after: for a new pool, failures in a row that make an agent unhealthy.
        cooldown: for a new pool, seconds an unhealthy agent is left out.

    Raises:
        NodeConfigurationError: ``pool`` is not an ``AgentPool``, or a bad health setting.
    """

    config_only_keys: ClassVar[frozenset[str]] = frozenset({"pool", "unhealthy_after", "cooldown"})
    #: A gateway's callers find and list agents; they never change the pool.
    trusted_input_keys: ClassVar[frozenset[str]] = frozenset(
        {"agent", "agent_id", "handler", "status"}
    )

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        pool = self.config.get("pool")
        if pool is None:
            pool = AgentPool(
                unhealthy_after=self.config.get("unhealthy_after", 3),
                cooldown=self.config.get("cooldown", 30.0),
            )
        elif not isinstance(pool, AgentPool):
            raise NodeConfigurationError(
                f"node {self.id!r}: pool must be an AgentPool, got {type(pool).__name__}"
            )
        self.pool: AgentPool = pool

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The action and what it needs."""
        return {
            "action": _optional("action", str, f"one of {', '.join(ACTIONS)}", "list"),
            "agent_id": _optional("agent_id", str, "the agent acted on"),
            "agent": _optional("agent", None, "an Agent, or a dict spec (see as_agent)"),
            "handler": _optional(
                "handler", None, "what runs the agent's tasks: a callable or a node instance"
            ),
            "capabilities": _optional("capabilities", list, "the agent's capabilities"),
            "weight": _optional("weight", float, "the agent's weighted round robin weight", 1.0),
            "metadata": _optional("metadata", dict, "details kept with the agent"),
            "required_capabilities": _optional(
                "required_capabilities", list, "find_by_capability: capabilities needed"
            ),
            "min_performance": _optional(
                "min_performance",
                float,
                "find_by_capability: lowest success rate (agents without results pass)",
                0.0,
            ),
            "status": _optional("status", str, f"update_status: one of {', '.join(STATUSES)}"),
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Do ``action``; each returns ``success: True`` and what it found or changed.

        Raises:
            NodeValidationError: an unknown action, an unknown agent, or a missing input.
        """
        action = kwargs.get("action") or "list"
        handlers = {
            "register": self._register,
            "unregister": self._unregister,
            "find_by_capability": self._find,
            "update_status": self._update_status,
            "get_metrics": self._metrics,
            "list": self._list,
        }
        handler = handlers.get(action)
        if handler is None:
            raise NodeValidationError(
                f"node {self.id!r}: unknown action {action!r}; choose one of {', '.join(ACTIONS)}"
            )
        return handler(kwargs)

    def _register(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        given = kwargs.get("agent")
        try:
            if given is not None:
                agent = as_agent(given)
            else:
                agent = Agent(
                    self._agent_id(kwargs, "register"),
                    kwargs.get("handler"),  # type: ignore[arg-type] - Agent checks it
                    kwargs.get("capabilities") or (),
                    weight=kwargs.get("weight") or 1.0,
                    metadata=kwargs.get("metadata"),
                )
        except NodeConfigurationError as exc:
            raise NodeValidationError(f"node {self.id!r}: register: {exc}") from None
        self.pool.register(agent)
        return {
            "success": True,
            "agent_id": agent.agent_id,
            "status": "registered",
            "capabilities": sorted(agent.capabilities),
            "pool_size": len(self.pool),
        }

    def _unregister(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        agent_id = self._agent_id(kwargs, "unregister")
        self.pool.unregister(agent_id)
        return {
            "success": True,
            "agent_id": agent_id,
            "status": "unregistered",
            "pool_size": len(self.pool),
        }

    def _find(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        required = normalize_capabilities(
            kwargs.get("required_capabilities"), where=f"node {self.id!r}"
        )
        floor = kwargs.get("min_performance") or 0.0
        snapshot = self.pool.snapshot()
        found = []
        for agent in self.pool.agents():
            entry = snapshot.get(agent.agent_id)
            if entry is None or not entry["healthy"] or not required <= agent.capabilities:
                continue
            rate = entry["success_rate"]
            if rate is not None and rate < floor:
                continue
            found.append({**agent.describe(), **entry, "performance": rate})
        found.sort(key=lambda item: (-(item["performance"] or 1.0), item["load"]))
        return {
            "success": True,
            "agents": found,
            "count": len(found),
            "total_pool_size": len(self.pool),
        }

    def _update_status(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        agent_id = self._agent_id(kwargs, "update_status")
        status = kwargs.get("status")
        if status not in STATUSES:
            raise NodeValidationError(
                f"node {self.id!r}: update_status: status must be one of {', '.join(STATUSES)}, "
                f"got {status!r} (an agent's load is measured, not set)"
            )
        old_status = "available" if self.pool.is_healthy(agent_id) else "inactive"
        self.pool.mark(agent_id, healthy=status == "available")
        return {
            "success": True,
            "agent_id": agent_id,
            "old_status": old_status,
            "new_status": status,
        }

    def _metrics(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        snapshot = self.pool.snapshot()
        agent_id = kwargs.get("agent_id")
        if agent_id:
            agent = self.pool.get(agent_id)
            return {
                "success": True,
                "agent_id": agent_id,
                "metrics": snapshot[agent_id],
                "registration_info": agent.describe(),
            }
        rates = [entry["success_rate"] for entry in snapshot.values()]
        known = [rate for rate in rates if rate is not None]
        distribution: dict[str, int] = {}
        for agent in self.pool.agents():
            for capability in agent.capabilities:
                distribution[capability] = distribution.get(capability, 0) + 1
        return {
            "success": True,
            "pool_metrics": {
                "total_agents": len(snapshot),
                "available_agents": sum(1 for entry in snapshot.values() if entry["healthy"]),
                "avg_success_rate": sum(known) / len(known) if known else None,
                "capability_distribution": distribution,
                "load": sum(entry["load"] for entry in snapshot.values()),
                "agents": snapshot,
            },
        }

    def _list(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        snapshot = self.pool.snapshot()
        agents = []
        for agent in self.pool.agents():
            entry = snapshot.get(agent.agent_id)
            if entry is not None:
                status = "available" if entry["healthy"] else "inactive"
                agents.append(
                    {
                        **agent.describe(),
                        **entry,
                        "status": status,
                        "performance": entry["success_rate"],
                    }
                )
        return {"success": True, "agents": agents, "count": len(agents)}

    def _agent_id(self, kwargs: dict[str, Any], action: str) -> str:
        agent_id = kwargs.get("agent_id")
        if not agent_id:
            raise NodeValidationError(f"node {self.id!r}: {action} needs agent_id")
        return agent_id
