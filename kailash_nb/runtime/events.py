"""The event bus: every node and run state change, for whoever subscribes.

The engine emits a ``NodeEvent`` each time a node is queued, started, completed,
failed, skipped, retried or served from cache, and a ``RunEvent`` when a run
starts and ends. A subscriber that asks for them (``subscribe(..., steps=True)``) also
receives a ``NodeStepEvent`` for each step a running node reports
(``kailash_nb.nodes.steps.report_step``: an agent's prompt, tool call, tool result,
answer). The notebook widget, the gateway's event streams, metrics and the run store
subscribe here instead of being called from inside the engine::

    bus = EventBus()
    with bus.subscribe(print):
        LocalRuntime(event_bus=bus).execute(workflow)

Events are immutable named tuples (cheap to build on the engine's hot path).
Subscribers are called synchronously, in the thread that emits (the caller's
thread, the runtime's loop thread or a worker thread), so they must be quick and
thread-safe. An exception in a subscriber is logged and does not stop the run:
observers must not change the outcome of the work they observe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Union

__all__ = [
    "EventBus",
    "NodeEvent",
    "NodeState",
    "NodeStepEvent",
    "NodeTiming",
    "RunEvent",
    "RunState",
    "Subscription",
]

logger = logging.getLogger(__name__)

NodeState = Literal["queued", "started", "completed", "failed", "skipped", "retrying", "cached"]
#: ``started``, then the run's final status (``kailash_nb.run_status``).
RunState = Literal["started", "completed", "failed", "timeout", "cancelled"]


class NodeEvent(NamedTuple):
    """A node changed state in a run.

    Attributes:
        run_id: the run the node belongs to.
        node_id: the node.
        state: the new state.
        timestamp: wall-clock time of the change (seconds since the epoch).
        duration: seconds the node ran, on ``completed``/``failed``; else ``None``.
        error: ``"ErrorType: message"`` of what the node raised, on
            ``failed``/``retrying``; else ``None``.
        iteration: the cycle iteration (1-based) for nodes inside a cycle; else ``None``.
    """

    run_id: str
    node_id: str
    state: NodeState
    timestamp: float
    duration: float | None = None
    error: str | None = None
    iteration: int | None = None


class NodeStepEvent(NamedTuple):
    """A running node reported a step (``kailash_nb.nodes.steps.report_step``).

    Delivered only to subscribers that asked for steps (``subscribe(..., steps=True)``),
    and only while the node runs: steps reported after it finished are dropped.

    Attributes:
        run_id: the run the node belongs to.
        node_id: the node.
        step: what the node reached (an agent's are ``kailash_nb.nodes.steps.AGENT_STEPS``).
        timestamp: wall-clock time of the report (seconds since the epoch).
        detail: JSON-safe details, size-capped and scrubbed of the secrets of the node's
            config and the run's parameters; ``"_truncated": True`` when anything was cut.
            In a run under access control, ``{"_access_denied": True}`` when the caller
            may not read the node's whole output (see ``NodeGuard.step_detail``).
        iteration: the cycle iteration (1-based) for nodes inside a cycle; else ``None``.
    """

    run_id: str
    node_id: str
    step: str
    timestamp: float
    detail: dict[str, Any]
    iteration: int | None = None


class NodeTiming(NamedTuple):
    """How one node ended in a run, as carried by a finished ``RunEvent``'s timeline.

    Attributes:
        node_id: the node.
        state: ``completed``, ``failed`` or ``skipped``.
        started_at: wall-clock start (seconds since the epoch).
        finished_at: wall-clock end.
        duration: seconds the node ran (0 for skipped nodes).
        error: ``"ErrorType: message"`` for failed nodes.
        iteration: the cycle iteration for nodes inside a cycle.
    """

    node_id: str
    state: NodeState
    started_at: float
    finished_at: float
    duration: float
    error: str | None = None
    iteration: int | None = None


class RunEvent(NamedTuple):
    """A run started or ended.

    Attributes:
        run_id: the run.
        workflow_name: name of the workflow being run.
        state: ``started``, then how the run ended: ``completed``, ``failed`` (a
            node failed, even one without dependents), ``timeout`` or ``cancelled``.
        timestamp: wall-clock time of the change (seconds since the epoch).
        duration: seconds the run took, once it ended.
        error: ``"ErrorType: message"`` when the run did not complete.
        workflow_id: id of the workflow being run.
        parameters: the run's parameters, on ``started`` (do not mutate).
        timeline: how each node ended, once the run ended, when a
            subscriber asked for timelines (``subscribe(..., timeline=True)``).
    """

    run_id: str
    workflow_name: str
    state: RunState
    timestamp: float
    duration: float | None = None
    error: str | None = None
    workflow_id: str | None = None
    parameters: dict | None = None
    timeline: tuple[NodeTiming, ...] | None = None


Event = Union[NodeEvent, RunEvent, NodeStepEvent]  # noqa: UP007 - a runtime alias on Python 3.10
Subscriber = Callable[[Event], object]


class Subscription:
    """Handle returned by ``EventBus.subscribe``; call ``close()`` or use ``with``."""

    def __init__(self, bus: EventBus, entry: _Entry) -> None:
        self._bus = bus
        self._entry = entry

    def close(self) -> None:
        """Stop delivering events to this subscriber (idempotent)."""
        self._bus._remove(self._entry)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Entry:
    subscriber: Subscriber
    nodes: bool
    runs: bool
    timeline: bool
    steps: bool


class EventBus:
    """Fan-out of runtime events to subscribers.

    A subscriber chooses what it receives: node events, run events, or both; a run
    subscriber may also ask for the per-node ``timeline`` on finished runs, which
    is much cheaper than receiving every node event (the run store records runs
    this way). Step events (``NodeStepEvent``) are opt-in, so subscribers written for
    node and run events never see them. The engine builds only the events someone
    asked for, and listens for steps only while someone wants them.
    """

    def __init__(self) -> None:
        self._entries: tuple[_Entry, ...] = ()
        self._node_subscribers: tuple[Subscriber, ...] = ()
        self._run_subscribers: tuple[Subscriber, ...] = ()
        self._step_subscribers: tuple[Subscriber, ...] = ()
        self.wants_timeline = False
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """True when at least one subscriber is registered."""
        return bool(self._entries)

    @property
    def wants_node_events(self) -> bool:
        """True when someone subscribed to node events."""
        return bool(self._node_subscribers)

    @property
    def wants_run_events(self) -> bool:
        """True when someone subscribed to run events."""
        return bool(self._run_subscribers)

    @property
    def wants_step_events(self) -> bool:
        """True when someone subscribed to step events (``subscribe(..., steps=True)``)."""
        return bool(self._step_subscribers)

    def subscribe(
        self,
        subscriber: Subscriber,
        *,
        nodes: bool = True,
        runs: bool = True,
        timeline: bool = False,
        steps: bool = False,
    ) -> Subscription:
        """Call ``subscriber(event)`` for every event of the chosen kinds from now on.

        Args:
            nodes: deliver ``NodeEvent`` objects.
            runs: deliver ``RunEvent`` objects.
            timeline: fill ``RunEvent.timeline`` on finished runs (needs ``runs``).
            steps: deliver ``NodeStepEvent`` objects (the steps running nodes report).
        """
        if not callable(subscriber):
            raise TypeError(f"subscriber must be callable, got {type(subscriber).__name__}")
        if timeline and not runs:
            raise ValueError("timeline=True needs runs=True: timelines travel on run events")
        entry = _Entry(subscriber, nodes, runs, timeline, steps)
        with self._lock:
            self._set((*self._entries, entry))
        return Subscription(self, entry)

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to the subscribers of its kind; a failing one is logged."""
        if isinstance(event, NodeEvent):
            subscribers = self._node_subscribers
        elif isinstance(event, RunEvent):
            subscribers = self._run_subscribers
        else:
            subscribers = self._step_subscribers
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception("event subscriber %r failed on %r", subscriber, event)

    def _remove(self, entry: _Entry) -> None:
        with self._lock:
            self._set(tuple(e for e in self._entries if e is not entry))

    def _set(self, entries: tuple[_Entry, ...]) -> None:
        self._entries = entries
        self._node_subscribers = tuple(e.subscriber for e in entries if e.nodes)
        self._run_subscribers = tuple(e.subscriber for e in entries if e.runs)
        self._step_subscribers = tuple(e.subscriber for e in entries if e.steps)
        self.wants_timeline = any(e.timeline for e in entries)
