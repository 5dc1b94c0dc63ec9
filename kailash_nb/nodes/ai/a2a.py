"""``A2ACoordinatorNode``: hands tasks to agents by strategy, with real backpressure.

The node holds an :class:`~kailash_nb.nodes.ai.coordinator.A2ACoordinator` built from
its configuration (``max_concurrent_tasks``, ``task_queue_limit``,
``performance_monitoring``, ``agent_timeout``, ``max_retries``, ``pool``, ``agents``),
which lives as long as the node, across runs::

    workflow.add_node("A2ACoordinatorNode", "coordinator", {
        "max_concurrent_tasks": 200, "task_queue_limit": 10000,
        "coordination_strategy": "weighted_round_robin", "performance_monitoring": True,
        "agents": [Agent("a1", handler, ["analysis"])]})

Actions (Kailash's names where Kailash has one):

- ``register`` / ``register_agent`` (``agent``, or Kailash's ``agent_info`` dict with a
  ``handler``), ``unregister`` (``agent_id``);
- ``delegate`` (``task``): run one task; the outcome's keys at the top level;
- ``coordinate`` (the default; ``tasks``, or ``task``): run tasks concurrently,
  ``results`` in order; no tasks is a run that does nothing;
- ``broadcast`` (``task``, or Kailash's ``message``): every matching agent runs it;
- ``find_best_agents`` / ``match_agents_to_task`` (``task``): ranking, nothing run;
- ``get_metrics`` / ``get_pool_status`` / ``list_agents``.

``delegate``, ``coordinate`` and ``broadcast`` add ``metrics`` (per agent and the
coordinator's task counts). ``success`` is ``True`` only when every task completed.
A full coordinator raises ``TaskQueueFullError``; nothing is dropped.
``node.register_metrics(registry, workflow=name)`` puts the per-agent metrics on a
Prometheus registry; a gateway does it for the workflows it serves (``/metrics``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry

from kailash_nb.nodes.ai.agent_metrics import AgentMetricsCollector
from kailash_nb.nodes.ai.agents import as_agent
from kailash_nb.nodes.ai.coordinator import A2ACoordinator
from kailash_nb.nodes.ai.errors import TaskQueueFullError
from kailash_nb.nodes.ai.pool import AgentPool
from kailash_nb.nodes.ai.scheduling import STRATEGIES
from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.node import NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError

__all__ = ["A2ACoordinatorNode", "TaskQueueFullError"]

_ACTION_NAMES = (
    "register",
    "register_agent",
    "unregister",
    "delegate",
    "coordinate",
    "broadcast",
    "find_best_agents",
    "match_agents_to_task",
    "get_metrics",
    "get_pool_status",
    "list_agents",
)


def _optional(name: str, kind: Any, description: str, default: Any = None) -> NodeParameter:
    return NodeParameter(
        name=name, type=kind, required=False, default=default, description=description
    )


@register_node()
class A2ACoordinatorNode(AsyncNode):
    """Coordinates tasks over a pool of agents; see the module docstring.

    Args:
        max_concurrent_tasks: tasks running at once (default 10).
        task_queue_limit: tasks waiting for a slot before more are refused (default 1000).
        coordination_strategy: default strategy (``best_match``, ``round_robin``,
            ``weighted_round_robin``, ``broadcast``, ``auction``).
        performance_monitoring: weights from observed success rate and latency.
        agent_timeout: seconds one attempt may take (default: no limit).
        max_retries: other agents tried after a failure or timeout (default 2).
        pool: an ``AgentPool`` shared with an ``AgentPoolManagerNode`` (default: own).
        agents: agents (``Agent`` or dict specs) registered when the node is made.
        unhealthy_after, cooldown: health settings of the node's own pool.

    Raises:
        NodeConfigurationError: a bad setting, unknown strategy or bad agent.
    """

    config_only_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "max_concurrent_tasks",
            "task_queue_limit",
            "performance_monitoring",
            "agent_timeout",
            "max_retries",
            "pool",
            "agents",
            "unhealthy_after",
            "cooldown",
        }
    )

    #: A gateway's callers run tasks and read metrics; they never change the agents.
    trusted_input_keys: ClassVar[frozenset[str]] = frozenset({"agent", "agent_info", "agent_id"})

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        get = self.config.get
        try:
            pool = get("pool")
            if pool is None:
                pool = AgentPool(
                    unhealthy_after=get("unhealthy_after", 3), cooldown=get("cooldown", 30.0)
                )
            self.coordinator = A2ACoordinator(
                pool,
                strategy=get("coordination_strategy") or "best_match",
                max_concurrent_tasks=get("max_concurrent_tasks", 10),
                task_queue_limit=get("task_queue_limit", 1000),
                performance_monitoring=get("performance_monitoring", False),
                agent_timeout=get("agent_timeout"),
                max_retries=get("max_retries", 2),
            )
            for spec in get("agents") or ():
                self.coordinator.register(as_agent(spec))
        except NodeConfigurationError as exc:
            raise NodeConfigurationError(f"node {self.id!r} ({self.type_name()}): {exc}") from None
        except NodeValidationError as exc:  # a duplicate agent id among ``agents``
            raise NodeConfigurationError(f"node {self.id!r} ({self.type_name()}): {exc}") from None

    @property
    def pool(self) -> AgentPool:
        """The coordinator's agent pool."""
        return self.coordinator.pool

    def register_metrics(self, registry: CollectorRegistry, *, workflow: str = "") -> None:
        """Show this coordinator's per-agent metrics in ``registry`` (a gateway's), with
        the labels ``workflow`` and ``node`` (this node's id).

        Raises:
            ValueError: ``registry`` already shows this workflow's node.
        """
        AgentMetricsCollector.attach(registry, self.coordinator, workflow=workflow, node=self.id)

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The action and what it needs."""
        return {
            "action": _optional("action", str, f"one of {', '.join(_ACTION_NAMES)}", "coordinate"),
            "task": _optional("task", dict, "the task: required_capabilities, inputs, ..."),
            "tasks": _optional("tasks", list, "coordinate: the tasks to run"),
            "message": _optional("message", dict, "broadcast: Kailash's name for the task"),
            "agent": _optional("agent", None, "register: an Agent or a dict spec"),
            "agent_info": _optional("agent_info", dict, "register: Kailash's agent dict"),
            "agent_id": _optional("agent_id", str, "unregister: the agent"),
            "coordination_strategy": _optional(
                "coordination_strategy",
                str,
                f"one of {', '.join(sorted(STRATEGIES))}",
                "best_match",
            ),
            "limit": _optional("limit", int, "find_best_agents: at most this many agents"),
        }

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        """Do ``action``; see the module docstring for the outputs.

        Raises:
            TaskQueueFullError: the coordinator is full; the task(s) were refused.
            NodeValidationError: an unknown action or a missing or malformed input.
        """
        action = kwargs.get("action") or "coordinate"
        handler = self._actions().get(action)
        if handler is None:
            raise NodeValidationError(
                f"node {self.id!r}: unknown action {action!r}; choose one of "
                f"{', '.join(_ACTION_NAMES)}"
            )
        return await handler(kwargs)

    def _actions(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]]:
        return {
            "register": self._register,
            "register_agent": self._register,
            "unregister": self._unregister,
            "delegate": self._delegate,
            "coordinate": self._coordinate,
            "broadcast": self._broadcast,
            "find_best_agents": self._find_best,
            "match_agents_to_task": self._find_best,
            "get_metrics": self._metrics,
            "get_pool_status": self._pool_status,
            "list_agents": self._pool_status,
        }

    async def _register(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        spec = kwargs.get("agent") or kwargs.get("agent_info")
        if spec is None:
            raise NodeValidationError(f"node {self.id!r}: register needs agent or agent_info")
        try:
            agent = self.coordinator.register(as_agent(spec))
        except NodeConfigurationError as exc:
            raise NodeValidationError(f"node {self.id!r}: register: {exc}") from None
        return {
            "success": True,
            "agent_id": agent.agent_id,
            "registered_agents": [a.agent_id for a in self.pool.agents()],
        }

    async def _unregister(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        agent_id = kwargs.get("agent_id")
        if not agent_id:
            raise NodeValidationError(f"node {self.id!r}: unregister needs agent_id")
        self.coordinator.unregister(agent_id)
        return {
            "success": True,
            "agent_id": agent_id,
            "registered_agents": [a.agent_id for a in self.pool.agents()],
        }

    async def _delegate(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        task = self._task(kwargs, "delegate")
        outcome = await self.coordinator.submit(task, strategy=kwargs.get("coordination_strategy"))
        return {**outcome, "metrics": self.coordinator.metrics()}

    async def _coordinate(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        tasks = kwargs.get("tasks")
        if tasks is None:
            tasks = [kwargs["task"]] if kwargs.get("task") is not None else []
        outcomes = await self.coordinator.submit_many(
            tasks, strategy=kwargs.get("coordination_strategy")
        )
        completed = sum(1 for outcome in outcomes if outcome["success"])
        return {
            "success": completed == len(outcomes),
            "results": outcomes,
            "completed": completed,
            "failed": len(outcomes) - completed,
            "metrics": self.coordinator.metrics(),
        }

    async def _broadcast(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        task = kwargs.get("task") if kwargs.get("task") is not None else kwargs.get("message")
        if task is None:
            raise NodeValidationError(f"node {self.id!r}: broadcast needs task (or message)")
        outcome = await self.coordinator.submit(task, strategy="broadcast")
        return {**outcome, "metrics": self.coordinator.metrics()}

    async def _find_best(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        task = self._task(kwargs, "find_best_agents")
        ranked = self.coordinator.rank(task, limit=kwargs.get("limit"))
        return {"success": True, "agents": ranked, "count": len(ranked)}

    async def _metrics(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"success": True, "metrics": self.coordinator.metrics()}

    async def _pool_status(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        snapshot = self.pool.snapshot()
        agents = [
            {**agent.describe(), **snapshot[agent.agent_id]}
            for agent in self.pool.agents()
            if agent.agent_id in snapshot
        ]
        return {
            "success": True,
            "agents": agents,
            "pool_size": len(agents),
            "healthy_agents": sum(1 for entry in agents if entry["healthy"]),
            "load": sum(entry["load"] for entry in agents),
        }

    def _task(self, kwargs: dict[str, Any], action: str) -> dict[str, Any]:
        task = kwargs.get("task")
        if task is None:
            raise NodeValidationError(f"node {self.id!r}: {action} needs task")
        return task
