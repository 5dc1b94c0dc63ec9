"""The event bus: every node and run state change, for whoever subscribes.

The engine emits a ``NodeEvent`` each time a node is queued, started, completed,
failed, skipped, retried or served from cache, and a ``RunEvent`` when a run
starts and ends. The notebook widget, the gateway's event streams, metrics and the
run store subscribe here instead of being called from inside the engine::

    bus = EventBus()
    with bus.subscribe(print):
        LocalRuntime(event_bus=bus).execute(workflow)

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
from typing import Literal, Union

__all__ = ["EventBus", "NodeEvent", "NodeState", "RunEvent", "RunState", "Subscription"]

logger = logging.getLogger(__name__)

NodeState = Literal["queued", "started", "completed", "failed", "skipped", "retrying", "cached"]
RunState = Literal["started", "completed", "failed"]


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """A node changed state in a run.

    Attributes:
        run_id: the run the node belongs to.
        node_id: the node.
        state: the new state.
        timestamp: wall-clock time of the change (seconds since the epoch).
        duration: seconds the node ran, on ``completed``/``failed``; else ``None``.
        error: ``"ErrorType: message"`` on ``failed``/``retrying``; else ``None``.
        iteration: the cycle iteration (1-based) for nodes inside a cycle; else ``None``.
    """

    run_id: str
    node_id: str
    state: NodeState
    timestamp: float
    duration: float | None = None
    error: str | None = None
    iteration: int | None = None


@dataclass(frozen=True, slots=True)
class RunEvent:
    """A run started or ended.

    Attributes:
        run_id: the run.
        workflow_name: name of the workflow being run.
        state: ``started``, ``completed`` or ``failed``.
        timestamp: wall-clock time of the change (seconds since the epoch).
        duration: seconds the run took, once it ended.
        error: ``"ErrorType: message"`` when the run failed.
    """

    run_id: str
    workflow_name: str
    state: RunState
    timestamp: float
    duration: float | None = None
    error: str | None = None


Event = Union[NodeEvent, RunEvent]  # noqa: UP007 - a runtime alias on Python 3.10
Subscriber = Callable[[Event], object]


class Subscription:
    """Handle returned by ``EventBus.subscribe``; call ``close()`` or use ``with``."""

    def __init__(self, bus: EventBus, subscriber: Subscriber) -> None:
        self._bus = bus
        self._subscriber = subscriber

    def close(self) -> None:
        """Stop delivering events to this subscriber (idempotent)."""
        self._bus._remove(self._subscriber)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EventBus:
    """Fan-out of runtime events to subscribers.

    ``active`` is cheap to test, so the engine builds events only when someone listens.
    """

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """True when at least one subscriber is registered."""
        return bool(self._subscribers)

    def subscribe(self, subscriber: Subscriber) -> Subscription:
        """Call ``subscriber(event)`` for every event from now on."""
        if not callable(subscriber):
            raise TypeError(f"subscriber must be callable, got {type(subscriber).__name__}")
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)
        return Subscription(self, subscriber)

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every subscriber; a failing subscriber is logged."""
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception("event subscriber %r failed on %r", subscriber, event)

    def _remove(self, subscriber: Subscriber) -> None:
        with self._lock:
            remaining = list(self._subscribers)
            if subscriber in remaining:
                remaining.remove(subscriber)
            self._subscribers = tuple(remaining)
