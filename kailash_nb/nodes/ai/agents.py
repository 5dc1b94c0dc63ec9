"""Agents: something that takes a task and returns a result, with an id and capabilities.

An :class:`Agent` wraps one of

- a Python callable, sync or async, called with the task dict (a sync one runs in a
  worker thread, so it may block);
- a node instance (``LLMAgentNode`` or any other), run with the task's ``inputs``
  through ``execute_async`` (``execute`` in a worker thread for a sync node);
- a :class:`WorkflowAgent`: a workflow and the runtime to run it on, with the task's
  ``inputs`` as the run's parameters (nodes never import a runtime, so it is passed in).

::

    async def summarize(task):
        return {"summary": task["text"][:80]}

    writer = Agent("writer", summarize, capabilities=["summarize", "english"], weight=2)
    etl = Agent("etl", WorkflowAgent(workflow, runtime=AsyncLocalRuntime()), ["etl"])

A result that is a dict with ``success`` set to ``False`` counts as a failure (Kailash
nodes report failures that way), with its ``error`` as the reason.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio.to_thread

from kailash_nb.nodes.node import Node
from kailash_nb.sdk_exceptions import NodeConfigurationError

__all__ = ["Agent", "AgentFailure", "WorkflowAgent", "as_agent", "normalize_capabilities"]

#: Called with the task; returns the agent's price for it (lower wins an auction).
BidFunction = Callable[[dict[str, Any]], float]


class AgentFailure(Exception):
    """An agent returned a result reporting failure (``{"success": False, ...}``)."""


class WorkflowAgent:
    """A workflow run as an agent on ``runtime``: each task's ``inputs`` become the
    run's ``parameters`` and the result is ``{"results": ..., "run_id": ...}``.

    ``runtime`` is duck-typed: anything with ``execute_async(workflow, parameters=...)``
    (awaited) or ``execute(workflow, parameters=...)`` (run in a worker thread), each
    returning ``(results, run_id)`` as kailash_nb's and Kailash's runtimes do. A run in
    which a node failed (an output marked ``"failed": True``, the runtimes' way for a
    node without dependents; a failed node with dependents raises) is a failure.

    Raises:
        NodeConfigurationError: ``runtime`` has neither method.
    """

    def __init__(self, workflow: Any, runtime: Any) -> None:
        if not (hasattr(runtime, "execute_async") or hasattr(runtime, "execute")):
            raise NodeConfigurationError(
                f"WorkflowAgent needs a runtime with execute_async() or execute(), got "
                f"{type(runtime).__name__}; pass e.g. runtime=AsyncLocalRuntime()"
            )
        self.workflow = workflow
        self.runtime = runtime

    async def __call__(self, task: dict[str, Any]) -> Any:
        """Run the workflow with the task's ``inputs`` as parameters."""
        parameters = _inputs_of(task)
        execute_async = getattr(self.runtime, "execute_async", None)
        if execute_async is not None:
            outcome = await execute_async(self.workflow, parameters=parameters)
        else:
            run = functools.partial(self.runtime.execute, self.workflow, parameters=parameters)
            outcome = await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
        if not (isinstance(outcome, tuple) and len(outcome) == 2):
            return outcome
        results, run_id = outcome
        if isinstance(results, Mapping):
            failed = {
                node_id: output.get("error")
                for node_id, output in results.items()
                if isinstance(output, Mapping) and output.get("failed") is True
            }
            if failed:
                details = "; ".join(f"{node_id}: {error}" for node_id, error in failed.items())
                raise AgentFailure(f"workflow run {run_id} had failed nodes: {details}")
        return {"results": results, "run_id": run_id}


class Agent:
    """One agent: ``agent_id``, what it can do, and how to run a task on it.

    Args:
        agent_id: unique within a pool.
        handler: a callable taking the task dict, a node instance, or a
            :class:`WorkflowAgent`.
        capabilities: what the agent can do (matched case-insensitively against a
            task's ``required_capabilities``).
        weight: its static share under ``weighted_round_robin`` (relative; > 0).
        concurrency: tasks it runs at once (``None``: no limit); further tasks assigned
            to it wait for it.
        timeout: seconds one task may take on it (``None``: the coordinator's
            ``agent_timeout``).
        bid: ``bid(task) -> float``, its price in an auction (lower wins); default:
            from its load, latency and capability match.
        metadata: free-form details kept with the agent (role, model, ...).

    Raises:
        NodeConfigurationError: an empty id, a handler that cannot run tasks, or a
            weight, concurrency or timeout out of range.
    """

    def __init__(
        self,
        agent_id: str,
        handler: Callable[..., Any] | Node | WorkflowAgent,
        capabilities: Iterable[str] = (),
        *,
        weight: float = 1.0,
        concurrency: int | None = None,
        timeout: float | None = None,
        bid: BidFunction | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(agent_id, str) or not agent_id.strip():
            raise NodeConfigurationError(f"an agent needs a non-empty string id, got {agent_id!r}")
        if not (isinstance(handler, Node) or callable(handler)):
            raise NodeConfigurationError(
                f"agent {agent_id!r}: the handler must be a callable, a node instance or a "
                f"WorkflowAgent, got {type(handler).__name__}"
            )
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise NodeConfigurationError(f"agent {agent_id!r}: weight must be a number")
        if not (math.isfinite(weight) and weight > 0):
            raise NodeConfigurationError(f"agent {agent_id!r}: weight must be > 0, got {weight}")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise NodeConfigurationError(
                f"agent {agent_id!r}: concurrency must be a positive int or None, got "
                f"{concurrency!r}"
            )
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise NodeConfigurationError(
                f"agent {agent_id!r}: timeout must be seconds > 0 or None, got {timeout!r}"
            )
        if bid is not None and not callable(bid):
            raise NodeConfigurationError(f"agent {agent_id!r}: bid must be callable")
        self.agent_id = agent_id
        self.handler = handler
        self.capabilities = normalize_capabilities(capabilities, where=f"agent {agent_id!r}")
        self.weight = float(weight)
        self.concurrency = concurrency
        self.timeout = float(timeout) if timeout is not None else None
        self.bid = bid
        self.metadata = dict(metadata or {})
        self._run = _runner(handler)

    @property
    def kind(self) -> str:
        """``"node"``, ``"workflow"`` or ``"callable"``: what the handler is."""
        if isinstance(self.handler, Node):
            return "node"
        if isinstance(self.handler, WorkflowAgent):
            return "workflow"
        return "callable"

    async def run(self, task: dict[str, Any]) -> Any:
        """Run ``task`` on this agent and return its result.

        Raises:
            AgentFailure: the result is a dict with ``success`` set to ``False``.
            Exception: whatever the handler raised.
        """
        result = await self._run(task)
        if isinstance(result, dict) and result.get("success") is False:
            raise AgentFailure(str(result.get("error") or "the agent reported success=False"))
        return result

    def describe(self) -> dict[str, Any]:
        """The agent as JSON-ready data (no handler)."""
        return {
            "agent_id": self.agent_id,
            "kind": self.kind,
            "capabilities": sorted(self.capabilities),
            "weight": self.weight,
            "concurrency": self.concurrency,
            "timeout": self.timeout,
            "metadata": self.metadata,
        }

    def __repr__(self) -> str:
        return f"<Agent {self.agent_id!r} {self.kind} {sorted(self.capabilities)}>"


def normalize_capabilities(capabilities: Any, *, where: str = "capabilities") -> frozenset[str]:
    """``capabilities`` (a string or an iterable of strings) as a set of lower-case names.

    Raises:
        NodeConfigurationError: something other than strings.
    """
    if capabilities is None:
        return frozenset()
    if isinstance(capabilities, str):
        capabilities = [capabilities]
    names = set()
    for name in capabilities:
        if not isinstance(name, str):
            raise NodeConfigurationError(
                f"{where}: capabilities must be strings, got {type(name).__name__} {name!r}"
            )
        if name.strip():
            names.add(name.strip().lower())
    return frozenset(names)


_SPEC_KEYS = frozenset(
    {
        "agent_id",
        "id",
        "handler",
        "callable",
        "node",
        "workflow",
        "runtime",
        "capabilities",
        "skills",
        "weight",
        "concurrency",
        "timeout",
        "bid",
        "metadata",
        "role",
    }
)


def as_agent(spec: Agent | Mapping[str, Any]) -> Agent:
    """An :class:`Agent` from an agent or a dict spec.

    A spec names the agent (``agent_id`` or Kailash's ``id``), its capabilities
    (``capabilities`` or Kailash's ``skills``), and what runs tasks: ``handler`` (or
    ``callable`` / ``node``), or ``workflow`` with ``runtime``; ``weight``,
    ``concurrency``, ``timeout``, ``bid`` and ``metadata`` as for :class:`Agent`
    (``role`` goes into the metadata).

    Raises:
        NodeConfigurationError: not an agent or a dict, unknown keys, or no handler.
    """
    if isinstance(spec, Agent):
        return spec
    if not isinstance(spec, Mapping):
        raise NodeConfigurationError(
            f"an agent must be an Agent or a dict spec, got {type(spec).__name__}"
        )
    unknown = set(spec) - _SPEC_KEYS
    agent_id = spec.get("agent_id", spec.get("id"))
    if unknown:
        raise NodeConfigurationError(
            f"agent {agent_id!r}: unknown keys {sorted(unknown)}; an agent spec takes "
            f"{sorted(_SPEC_KEYS)}"
        )
    handler = spec.get("handler", spec.get("callable", spec.get("node")))
    if handler is None and spec.get("workflow") is not None:
        handler = WorkflowAgent(spec["workflow"], spec.get("runtime"))
    if handler is None:
        raise NodeConfigurationError(
            f"agent {agent_id!r} has nothing to run tasks with: give 'handler' (a callable or "
            "a node instance) or 'workflow' with 'runtime'"
        )
    metadata = dict(spec.get("metadata") or {})
    if spec.get("role") is not None:
        metadata.setdefault("role", spec["role"])
    return Agent(
        agent_id,
        handler,
        spec.get("capabilities", spec.get("skills", ())),
        weight=spec.get("weight", 1.0),
        concurrency=spec.get("concurrency"),
        timeout=spec.get("timeout"),
        bid=spec.get("bid"),
        metadata=metadata,
    )


def _inputs_of(task: dict[str, Any]) -> dict[str, Any]:
    inputs = task.get("inputs") or {}
    if not isinstance(inputs, Mapping):
        raise TypeError(f"the task's 'inputs' must be a dict, got {type(inputs).__name__}")
    return dict(inputs)


def _runner(handler: Any) -> Callable[[dict[str, Any]], Any]:
    """An async function running a task on ``handler``."""
    if isinstance(handler, Node):
        if getattr(handler, "is_async", False):

            async def run_async_node(task: dict[str, Any]) -> Any:
                return await handler.execute_async(**_inputs_of(task))

            return run_async_node

        async def run_node(task: dict[str, Any]) -> Any:
            run = functools.partial(handler.execute, **_inputs_of(task))
            return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)

        return run_node
    if _is_async_callable(handler):

        async def run_coroutine(task: dict[str, Any]) -> Any:
            return await handler(task)

        return run_coroutine

    async def run_callable(task: dict[str, Any]) -> Any:
        result = await anyio.to_thread.run_sync(handler, task, abandon_on_cancel=True)
        if inspect.isawaitable(result):
            result = await result
        return result

    return run_callable


def _is_async_callable(handler: Any) -> bool:
    while isinstance(handler, functools.partial):
        handler = handler.func
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - an object with an async __call__
    )
