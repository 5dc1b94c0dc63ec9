"""``AgentPool``: the registered agents, their load, health and per-agent metrics.

Load is the number of tasks in flight on an agent (assigned and not finished). Health
comes from recent outcomes: ``unhealthy_after`` failures or timeouts in a row mark an
agent unhealthy, which excludes it from scheduling until ``cooldown`` seconds have
passed; it is then tried again, and one success makes it healthy. The pool is
thread-safe, so an ``AgentPoolManagerNode`` and an ``A2ACoordinatorNode`` (or several
coordinators) can share one::

    pool = AgentPool(unhealthy_after=3, cooldown=30)
    pool.register(Agent("a1", handler, ["analysis"]))
    pool.snapshot()["a1"]["load"]  # 0
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from kailash_nb.nodes.ai._slots import TaskSlots
from kailash_nb.nodes.ai.agents import Agent
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError

__all__ = ["AgentPool", "AgentStats", "Outcome"]

#: How one attempt of a task on an agent ended.
Outcome = Literal["success", "failure", "timeout"]


@dataclass
class AgentStats:
    """What one agent has done: counts, recent latencies and its health."""

    tasks: int = 0
    successes: int = 0
    failures: int = 0
    timeouts: int = 0
    load: int = 0
    consecutive_failures: int = 0
    unhealthy_until: float | None = None
    latency_sum: float = 0.0
    latency_count: int = 0
    recent_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=1000))

    @property
    def finished(self) -> int:
        """Attempts that ended (successes, failures and timeouts)."""
        return self.successes + self.failures + self.timeouts

    @property
    def success_rate(self) -> float | None:
        """Successes over finished attempts (``None`` before the first one ends)."""
        return self.successes / self.finished if self.finished else None

    @property
    def mean_latency(self) -> float | None:
        """Mean seconds of finished attempts (``None`` before the first one ends)."""
        return self.latency_sum / self.latency_count if self.latency_count else None

    def p95_latency(self) -> float | None:
        """The 95th percentile (nearest rank) of the last 1000 attempts' seconds."""
        if not self.recent_latencies:
            return None
        ordered = sorted(self.recent_latencies)
        return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


class AgentPool:
    """Agents by id, in registration order, with their stats and run slots.

    Args:
        unhealthy_after: failures or timeouts in a row that make an agent unhealthy.
        cooldown: seconds an unhealthy agent is left out before it is tried again.
        clock: monotonic seconds (tests pass a settable one).

    Raises:
        NodeConfigurationError: ``unhealthy_after`` < 1 or ``cooldown`` < 0.
    """

    def __init__(
        self,
        *,
        unhealthy_after: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(unhealthy_after, bool) or not isinstance(unhealthy_after, int):
            raise NodeConfigurationError("AgentPool: unhealthy_after must be an int")
        if unhealthy_after < 1:
            raise NodeConfigurationError(
                f"AgentPool: unhealthy_after must be >= 1, got {unhealthy_after}"
            )
        if not isinstance(cooldown, int | float) or cooldown < 0:
            raise NodeConfigurationError(
                f"AgentPool: cooldown must be seconds >= 0, got {cooldown}"
            )
        self.unhealthy_after = unhealthy_after
        self.cooldown = float(cooldown)
        self.clock = clock
        self.lock = threading.RLock()
        self._agents: dict[str, Agent] = {}
        self._stats: dict[str, AgentStats] = {}
        self._slots: dict[str, TaskSlots] = {}

    # -- membership ---------------------------------------------------------------
    def register(self, agent: Agent, *, replace: bool = False) -> Agent:
        """Add ``agent``; ``replace=True`` swaps an agent of the same id (keeping its stats).

        Raises:
            NodeValidationError: an agent with that id is registered and ``replace`` is false.
        """
        with self.lock:
            if agent.agent_id in self._agents and not replace:
                raise NodeValidationError(
                    f"agent {agent.agent_id!r} is already registered; unregister it first or "
                    "register with replace=True"
                )
            self._agents[agent.agent_id] = agent
            self._stats.setdefault(agent.agent_id, AgentStats())
            self._slots[agent.agent_id] = TaskSlots(agent.concurrency)
        return agent

    def unregister(self, agent_id: str) -> Agent:
        """Remove the agent ``agent_id`` and its stats; tasks running on it finish.

        Raises:
            NodeValidationError: no such agent.
        """
        with self.lock:
            agent = self._agents.pop(self._known(agent_id), None)
            self._stats.pop(agent_id, None)
            self._slots.pop(agent_id, None)
        assert agent is not None
        return agent

    def get(self, agent_id: str) -> Agent:
        """The agent ``agent_id``.

        Raises:
            NodeValidationError: no such agent.
        """
        with self.lock:
            return self._agents[self._known(agent_id)]

    def agents(self) -> list[Agent]:
        """Every agent, in registration order."""
        with self.lock:
            return list(self._agents.values())

    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._agents

    # -- health and load ----------------------------------------------------------
    def is_healthy(self, agent_id: str) -> bool:
        """Whether ``agent_id`` may be given tasks now (healthy, or its cooldown is over)."""
        with self.lock:
            stats = self._stats[self._known(agent_id)]
            return stats.unhealthy_until is None or self.clock() >= stats.unhealthy_until

    def stats(self, agent_id: str) -> AgentStats:
        """The live stats of ``agent_id`` (read them under ``pool.lock`` for a consistent view).

        Raises:
            NodeValidationError: no such agent.
        """
        with self.lock:
            return self._stats[self._known(agent_id)]

    def slots(self, agent_id: str) -> TaskSlots:
        """The run slots of ``agent_id`` (its ``concurrency``)."""
        with self.lock:
            return self._slots[self._known(agent_id)]

    def available(
        self, exclude: frozenset[str] = frozenset(), *, healthy_only: bool = True
    ) -> list[tuple[Agent, int, float | None, float | None]]:
        """``(agent, load, success_rate, mean_latency)`` of each agent not in ``exclude``
        (healthy ones only, unless ``healthy_only`` is false), in registration order:
        one consistent read for a scheduling decision."""
        with self.lock:
            now = self.clock()
            found = []
            for agent_id, agent in self._agents.items():
                if agent_id in exclude:
                    continue
                stats = self._stats[agent_id]
                until = stats.unhealthy_until
                if healthy_only and until is not None and now < until:
                    continue
                finished = stats.successes + stats.failures + stats.timeouts
                found.append(
                    (
                        agent,
                        stats.load,
                        stats.successes / finished if finished else None,
                        stats.latency_sum / stats.latency_count if stats.latency_count else None,
                    )
                )
            return found

    def assign(self, agent_id: str) -> Agent | None:
        """Count a task assigned to ``agent_id`` and return the agent (``None``: it was
        unregistered meanwhile)."""
        with self.lock:
            agent = self._agents.get(agent_id)
            if agent is not None:
                stats = self._stats[agent_id]
                stats.tasks += 1
                stats.load += 1
            return agent

    def started(self, agent_id: str) -> None:
        """Count a task assigned to ``agent_id`` (its load goes up by one)."""
        with self.lock:
            stats = self._stats[self._known(agent_id)]
            stats.tasks += 1
            stats.load += 1

    def finished(
        self, agent_id: str, outcome: Outcome | Literal["cancelled"], seconds: float | None
    ) -> None:
        """Record how a task on ``agent_id`` ended and how long the agent worked on it
        (``None``: it never started). ``"cancelled"`` (the caller gave up, the agent did
        not fail) only lowers the load. An agent unregistered meanwhile is ignored."""
        with self.lock:
            stats = self._stats.get(agent_id)
            if stats is None:
                return
            stats.load -= 1
            if outcome == "cancelled":
                stats.tasks -= 1
                return
            if seconds is not None:
                stats.latency_sum += seconds
                stats.latency_count += 1
                stats.recent_latencies.append(seconds)
            if outcome == "success":
                stats.successes += 1
                stats.consecutive_failures = 0
                stats.unhealthy_until = None
                return
            if outcome == "timeout":
                stats.timeouts += 1
            else:
                stats.failures += 1
            stats.consecutive_failures += 1
            if stats.consecutive_failures >= self.unhealthy_after:
                # Also after a failed retry past the cooldown: out for another cooldown.
                stats.unhealthy_until = self.clock() + self.cooldown

    def mark(self, agent_id: str, healthy: bool) -> None:
        """Set ``agent_id`` healthy, or unhealthy for one cooldown (an operator's decision)."""
        with self.lock:
            stats = self._stats[self._known(agent_id)]
            stats.consecutive_failures = 0 if healthy else self.unhealthy_after
            stats.unhealthy_until = None if healthy else self.clock() + self.cooldown

    # -- reporting ----------------------------------------------------------------
    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per agent, JSON-ready: ``tasks``, ``successes``, ``failures``, ``timeouts``,
        ``success_rate``, ``mean_latency``, ``p95_latency`` (seconds), ``load``,
        ``share`` (its part of all tasks assigned), ``healthy``, ``weight`` and
        ``capabilities``."""
        with self.lock:
            now = self.clock()
            total = sum(stats.tasks for stats in self._stats.values())
            return {
                agent_id: {
                    "tasks": stats.tasks,
                    "successes": stats.successes,
                    "failures": stats.failures,
                    "timeouts": stats.timeouts,
                    "success_rate": stats.success_rate,
                    "mean_latency": stats.mean_latency,
                    "p95_latency": stats.p95_latency(),
                    "load": stats.load,
                    "share": stats.tasks / total if total else 0.0,
                    "healthy": stats.unhealthy_until is None or now >= stats.unhealthy_until,
                    "weight": agent.weight,
                    "capabilities": sorted(agent.capabilities),
                }
                for agent_id, agent in self._agents.items()
                for stats in (self._stats[agent_id],)
            }

    def _known(self, agent_id: str) -> str:
        if agent_id not in self._agents:
            raise NodeValidationError(
                f"no agent {agent_id!r} in the pool; registered agents: {sorted(self._agents)}"
            )
        return agent_id
