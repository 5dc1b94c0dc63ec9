"""``A2ACoordinator``: runs tasks on a pool's agents by strategy, with backpressure.

A task is a dict: ``task_id`` (made up when missing), the capabilities it needs
(``required_capabilities``, or Kailash's ``required_skills`` / ``requirements``),
``inputs`` for node and workflow agents, and anything else its agents read.

- At most ``max_concurrent_tasks`` tasks run at once (a running task may still wait
  for its agent when the agent's ``concurrency`` is reached); at most
  ``task_queue_limit`` more wait for a slot, in arrival order. One more is refused
  with ``TaskQueueFullError`` before anything is started for it; a batch is admitted
  whole or refused whole.
- A task runs on the agent its strategy picks (healthy agents only); a failure or a
  timeout (the agent's ``timeout``, else ``agent_timeout``) is recorded against that
  agent and the task is retried on another one, at most ``max_retries`` times.
- Every task ends with an outcome: ``completed`` (the only one with ``success: True``),
  ``failed``, ``timeout`` (the last attempt timed out) or ``no_agent``.

::

    coordinator = A2ACoordinator(pool, strategy="weighted_round_robin",
                                 max_concurrent_tasks=200, task_queue_limit=10_000)
    outcome = await coordinator.submit({"required_capabilities": ["summarize"], "text": t})
    outcomes = await coordinator.submit_many(tasks)
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import anyio

from kailash_nb.nodes.ai._slots import TaskSlots
from kailash_nb.nodes.ai.agents import Agent
from kailash_nb.nodes.ai.errors import TaskQueueFullError
from kailash_nb.nodes.ai.pool import AgentPool, Outcome
from kailash_nb.nodes.ai.scheduling import (
    Auction,
    Candidate,
    Strategy,
    WeightedRoundRobin,
    make_strategy,
    match_score,
    performance_weight,
    requirements_of,
)
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError

__all__ = ["A2ACoordinator"]

#: Attempt statuses, and the task statuses built from them.
_ATTEMPT_STATUS: dict[Outcome, str] = {
    "success": "completed",
    "failure": "failed",
    "timeout": "timeout",
}


class A2ACoordinator:
    """Schedules tasks over ``pool`` (a new, empty one by default).

    Args:
        pool: the agents; share one pool between coordinators and pool nodes.
        strategy: the default strategy (``best_match``, ``round_robin``,
            ``weighted_round_robin``, ``broadcast``, ``auction``).
        max_concurrent_tasks: tasks running at once.
        task_queue_limit: tasks admitted and waiting for a slot.
        performance_monitoring: weigh ``weighted_round_robin`` by observed success
            rate and latency (``performance_weight``) instead of static weights alone.
        agent_timeout: seconds an attempt may take on an agent without its own
            ``timeout`` (``None``: no limit).
        max_retries: further agents tried after a failure or a timeout.

    Raises:
        NodeConfigurationError: a value out of range or an unknown strategy.
    """

    def __init__(
        self,
        pool: AgentPool | None = None,
        *,
        strategy: str = "best_match",
        max_concurrent_tasks: int = 10,
        task_queue_limit: int = 1000,
        performance_monitoring: bool = False,
        agent_timeout: float | None = None,
        max_retries: int = 2,
    ) -> None:
        _check_int("max_concurrent_tasks", max_concurrent_tasks, minimum=1)
        _check_int("task_queue_limit", task_queue_limit, minimum=0)
        _check_int("max_retries", max_retries, minimum=0)
        if agent_timeout is not None and not (
            isinstance(agent_timeout, int | float) and agent_timeout > 0
        ):
            raise NodeConfigurationError(
                f"agent_timeout must be seconds > 0 or None, got {agent_timeout!r}"
            )
        if pool is not None and not isinstance(pool, AgentPool):
            raise NodeConfigurationError(f"pool must be an AgentPool, got {type(pool).__name__}")
        make_strategy(strategy)  # fail on an unknown name now, not at the first task
        self.pool = pool if pool is not None else AgentPool()
        self.default_strategy = strategy
        self.max_concurrent_tasks = max_concurrent_tasks
        self.task_queue_limit = task_queue_limit
        self.performance_monitoring = bool(performance_monitoring)
        self.agent_timeout = float(agent_timeout) if agent_timeout is not None else None
        self.max_retries = max_retries
        self.slots = TaskSlots(max_concurrent_tasks, task_queue_limit)
        self._strategies: dict[str, Strategy] = {}
        # The median latency costs a sort per decision; only weights from performance
        # and auctions read it.
        self._wants_reference = self.performance_monitoring
        self._lock = threading.Lock()
        self._counts = {"submitted": 0, "completed": 0, "failed": 0, "refused": 0}

    # -- registration -------------------------------------------------------------
    def register(self, agent: Agent, *, replace: bool = False) -> Agent:
        """Add ``agent`` to the pool (see ``AgentPool.register``)."""
        return self.pool.register(agent, replace=replace)

    def unregister(self, agent_id: str) -> Agent:
        """Remove ``agent_id`` from the pool (see ``AgentPool.unregister``)."""
        agent = self.pool.unregister(agent_id)
        with self._lock:
            for strategy in self._strategies.values():
                if isinstance(strategy, WeightedRoundRobin):
                    strategy.forget(agent_id)
        return agent

    # -- running tasks ------------------------------------------------------------
    async def submit(self, task: dict[str, Any], *, strategy: str | None = None) -> dict[str, Any]:
        """Run ``task`` and return its outcome (see the module docstring).

        Raises:
            TaskQueueFullError: the coordinator is full; the task was not started.
            NodeValidationError: ``task`` is not a dict or names bad requirements.
            NodeConfigurationError: an unknown strategy.
        """
        prepared = self._prepare(task)
        chosen = self._strategy(strategy)
        self._admit(1)
        try:
            return await self._run_admitted(prepared, chosen)
        finally:
            self.slots.leave(1)

    async def submit_many(
        self, tasks: Sequence[dict[str, Any]], *, strategy: str | None = None
    ) -> list[dict[str, Any]]:
        """Run ``tasks`` concurrently (within ``max_concurrent_tasks``) and return their
        outcomes in the same order. The batch is admitted whole or not at all.

        Raises:
            TaskQueueFullError: not enough room for the whole batch; none was started.
            NodeValidationError: a task is not a dict or names bad requirements.
            NodeConfigurationError: an unknown strategy.
        """
        if isinstance(tasks, dict | str | bytes) or not isinstance(tasks, Sequence):
            raise NodeValidationError(f"tasks must be a list of dicts, got {type(tasks).__name__}")
        prepared = [self._prepare(task) for task in tasks]
        chosen = self._strategy(strategy)
        outcomes: list[dict[str, Any]] = [{} for _ in prepared]
        if not prepared:
            return outcomes
        self._admit(len(prepared))
        left = len(prepared)
        try:

            async def run(index: int) -> None:
                nonlocal left
                try:
                    outcomes[index] = await self._run_admitted(prepared[index], chosen)
                finally:
                    self.slots.leave(1)
                    left -= 1

            async with anyio.create_task_group() as group:
                for index in range(len(prepared)):
                    group.start_soon(run, index)
        finally:
            if left:
                self.slots.leave(left)  # tasks cancelled before they started
        return outcomes

    def rank(self, task: dict[str, Any], *, limit: int | None = None) -> list[dict[str, Any]]:
        """Healthy agents with a capability score > 0 for ``task``, best first (score,
        then lower load): Kailash's ``find_best_agents``. Nothing is run."""
        requirements = self._prepare(task)["__requirements"]
        ranked = []
        for candidate in self._candidates(exclude=frozenset()):
            score = match_score(requirements, candidate.capabilities)
            if score > 0:
                ranked.append(
                    {
                        "agent_id": candidate.agent_id,
                        "score": score,
                        "load": candidate.load,
                        "capabilities": sorted(candidate.capabilities),
                        "success_rate": candidate.success_rate,
                    }
                )
        ranked.sort(key=lambda entry: (-entry["score"], entry["load"]))
        return ranked if limit is None else ranked[:limit]

    def metrics(self) -> dict[str, Any]:
        """Per-agent metrics (``AgentPool.snapshot``, plus ``effective_weight`` under
        performance monitoring) and the coordinator's task counts: ``submitted``,
        ``completed``, ``failed``, ``refused``, ``running``, ``queued``."""
        agents = self.pool.snapshot()
        if self.performance_monitoring:
            weights = {c.agent_id: c.weight for c in self._candidates(frozenset(), healthy=False)}
            for agent_id, entry in agents.items():
                entry["effective_weight"] = weights.get(agent_id, entry["weight"])
        with self._lock:
            counts = dict(self._counts)
        return {
            "agents": agents,
            "tasks": {**counts, "running": self.slots.running, "queued": self.slots.queued},
            "strategy": self.default_strategy,
            "max_concurrent_tasks": self.max_concurrent_tasks,
            "task_queue_limit": self.task_queue_limit,
            "performance_monitoring": self.performance_monitoring,
        }

    # -- internals ----------------------------------------------------------------
    def _admit(self, count: int) -> None:
        try:
            self.slots.admit(count)
        except TaskQueueFullError:
            with self._lock:
                self._counts["refused"] += count
            raise
        with self._lock:
            self._counts["submitted"] += count

    def _prepare(self, task: Any) -> dict[str, Any]:
        if not isinstance(task, dict):
            raise NodeValidationError(f"a task must be a dict, got {type(task).__name__}")
        try:
            requirements = requirements_of(task)
        except TypeError as exc:
            raise NodeValidationError(f"task {task.get('task_id')!r}: {exc}") from None
        task_id = task.get("task_id", task.get("id")) or uuid.uuid4().hex
        return {**task, "task_id": str(task_id), "__requirements": requirements}

    def _strategy(self, name: str | None) -> Strategy:
        name = name or self.default_strategy
        with self._lock:
            strategy = self._strategies.get(name)
            if strategy is None:
                strategy = self._strategies[name] = make_strategy(name)
                if isinstance(strategy, Auction):
                    self._wants_reference = True
            return strategy

    def _candidates(self, exclude: frozenset[str], *, healthy: bool = True) -> list[Candidate]:
        entries = self.pool.available(exclude, healthy_only=healthy)
        reference = None
        if self._wants_reference:
            latencies = [latency for *_, latency in entries if latency]
            reference = statistics.median(latencies) if latencies else None
        monitored = self.performance_monitoring
        return [
            Candidate(
                agent.agent_id,
                agent.capabilities,
                load,
                performance_weight(agent.weight, success_rate, latency, reference)
                if monitored
                else agent.weight,
                success_rate,
                latency,
                reference,
                agent.bid,
            )
            for agent, load, success_rate, latency in entries
        ]

    def _choose(
        self, task: dict[str, Any], strategy: Strategy, exclude: frozenset[str]
    ) -> list[Agent]:
        """The strategy's pick among healthy agents not in ``exclude``, counted as started."""
        with self._lock:
            chosen = strategy.select(task, task["__requirements"], self._candidates(exclude))
            agents = [self.pool.assign(candidate.agent_id) for candidate in chosen]
        return [agent for agent in agents if agent is not None]

    async def _run_admitted(self, task: dict[str, Any], strategy: Strategy) -> dict[str, Any]:
        await self.slots.acquire()
        try:
            if strategy.fan_out:
                outcome = await self._broadcast(task, strategy)
            else:
                outcome = await self._delegate(task, strategy)
        finally:
            self.slots.release()
        with self._lock:
            self._counts["completed" if outcome["success"] else "failed"] += 1
        return outcome

    async def _delegate(self, task: dict[str, Any], strategy: Strategy) -> dict[str, Any]:
        started = time.perf_counter()
        attempts: list[dict[str, Any]] = []
        tried: set[str] = set()
        result: Any = None
        for _ in range(self.max_retries + 1):
            chosen = self._choose(task, strategy, frozenset(tried))
            if not chosen:
                break
            agent = chosen[0]
            tried.add(agent.agent_id)
            attempt, result = await self._attempt(agent, task)
            attempts.append(attempt)
            if attempt["status"] == "completed":
                break
        last = attempts[-1] if attempts else None
        if last is None:
            status = "no_agent"
            error = "no healthy agent can take the task" + (
                f" (requires {sorted(task['__requirements'])})" if task["__requirements"] else ""
            )
        else:
            status = last["status"]
            error = last["error"]
        success = status == "completed"
        agent_id = last["agent_id"] if last else None
        return {
            "task_id": task["task_id"],
            "success": success,
            "status": status,
            "agent_id": agent_id,
            "delegated_to": agent_id,
            "strategy": strategy.name,
            "result": result if success else None,
            "error": None if success else error,
            "attempts": attempts,
            "latency": time.perf_counter() - started,
        }

    async def _broadcast(self, task: dict[str, Any], strategy: Strategy) -> dict[str, Any]:
        started = time.perf_counter()
        recipients = self._choose(task, strategy, frozenset())
        results: dict[str, dict[str, Any]] = {}

        async def run(agent: Agent) -> None:
            attempt, result = await self._attempt(agent, task)
            attempt["result"] = result
            results[agent.agent_id] = attempt

        async with anyio.create_task_group() as group:
            for agent in recipients:
                group.start_soon(run, agent)
        succeeded = [a.agent_id for a in recipients if results[a.agent_id]["status"] == "completed"]
        failed = [a.agent_id for a in recipients if a.agent_id not in succeeded]
        if not recipients:
            status, error = "no_agent", "no healthy agent matches the task's requirements"
        elif not failed:
            status, error = "completed", None
        else:
            status = "partial" if succeeded else "failed"
            error = f"{len(failed)} of {len(recipients)} agents failed: {', '.join(failed)}"
        return {
            "task_id": task["task_id"],
            "success": status == "completed",
            "status": status,
            "strategy": strategy.name,
            "recipients": [agent.agent_id for agent in recipients],
            "succeeded": succeeded,
            "failed": failed,
            "results": {agent.agent_id: results[agent.agent_id] for agent in recipients},
            "error": error,
            "latency": time.perf_counter() - started,
        }

    async def _attempt(self, agent: Agent, task: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Run ``task`` on ``agent`` (already counted as started) within its timeout."""
        timeout = agent.timeout if agent.timeout is not None else self.agent_timeout
        outcome: Outcome | Literal["cancelled"] = "failure"
        error: str | None = None
        result: Any = None
        seconds: float | None = None
        visible = {key: value for key, value in task.items() if key != "__requirements"}
        try:
            slots = self.pool.slots(agent.agent_id)
        except NodeValidationError:
            slots = TaskSlots(None)  # unregistered meanwhile: let the attempt finish
        try:
            try:
                await slots.acquire()
            except anyio.get_cancelled_exc_class():
                outcome = "cancelled"
                raise
            began = time.perf_counter()
            try:
                if timeout is None:
                    result = await agent.run(visible)
                    outcome = "success"
                else:
                    with anyio.move_on_after(timeout) as scope:
                        result = await agent.run(visible)
                        outcome = "success"
                    if scope.cancelled_caught:
                        outcome = "timeout"
                        error = f"agent {agent.agent_id!r} timed out after {timeout} s"
            except anyio.get_cancelled_exc_class():
                outcome = "cancelled"
                raise
            except Exception as exc:  # an agent's failure is the task's outcome
                error = f"agent {agent.agent_id!r} failed: {type(exc).__name__}: {exc}"
            finally:
                seconds = time.perf_counter() - began
                slots.release()
        finally:
            self.pool.finished(agent.agent_id, outcome, seconds)
        attempt = {
            "agent_id": agent.agent_id,
            "status": _ATTEMPT_STATUS[outcome],  # type: ignore[index]
            "latency": seconds,
            "error": error,
        }
        return attempt, result


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise NodeConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")
