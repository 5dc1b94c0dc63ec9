"""Events of :class:`~kailash_nb.middleware.agent_ui.AgentUIMiddleware`: what happened to
a session or an execution, for in-process subscribers and the realtime transports.

``EventType`` has Kailash's values (``"workflow.completed"``, ``"node.failed"``...) plus
``"session.created"`` and ``"session.closed"``. An :class:`AgentEvent` names its owner
(``tenant_id``, ``subject``), session, execution and workflow, and carries no run
parameters or results (they may hold caller data); read results with
``get_execution_status``::

    async def on_event(event: AgentEvent) -> None:
        print(event.type.value, event.execution_id, event.data)

    await agent_ui.subscribe_to_events("dashboard", on_event, session_id=session)
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

__all__ = ["AgentEvent", "EventType"]

logger = logging.getLogger(__name__)


class EventType(str, Enum):
    """What an :class:`AgentEvent` reports (Kailash's values, plus session events)."""

    SESSION_CREATED = "session.created"
    SESSION_CLOSED = "session.closed"
    WORKFLOW_CREATED = "workflow.created"
    WORKFLOW_STARTED = "workflow.started"
    WORKFLOW_PROGRESS = "workflow.progress"
    WORKFLOW_COMPLETED = "workflow.completed"
    WORKFLOW_FAILED = "workflow.failed"
    WORKFLOW_CANCELLED = "workflow.cancelled"
    NODE_STARTED = "node.started"
    NODE_PROGRESS = "node.progress"
    NODE_COMPLETED = "node.completed"
    NODE_FAILED = "node.failed"
    NODE_SKIPPED = "node.skipped"
    UI_INPUT_REQUIRED = "ui.input_required"
    UI_APPROVAL_REQUIRED = "ui.approval_required"
    UI_CHOICE_REQUIRED = "ui.choice_required"
    UI_CONFIRMATION_REQUIRED = "ui.confirmation_required"
    SYSTEM_STATUS = "system.status"
    SYSTEM_ERROR = "system.error"
    SYSTEM_WARNING = "system.warning"
    DATA_UPDATED = "data.updated"
    DATA_VALIDATED = "data.validated"
    DATA_ERROR = "data.error"


@dataclass(frozen=True)
class AgentEvent:
    """One session or execution event.

    Attributes:
        type: what happened.
        tenant_id, subject: the session's owner.
        session_id: the session.
        execution_id, workflow_id: the execution and its workflow, for workflow and
            node events.
        node_id: the node, for node events.
        data: small JSON-ready details (``status``, ``progress``, ``error``, ``run_id``).
        id: a uuid4 string.
        timestamp: when it happened (UTC).
    """

    type: EventType
    tenant_id: str
    subject: str
    session_id: str
    execution_id: str | None = None
    workflow_id: str | None = None
    node_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def user_id(self) -> str:
        """The owner in the ``tenant:user`` form (Kailash's ``event.user_id``)."""
        return f"{self.tenant_id}:{self.subject}"

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict."""
        return {
            "id": self.id,
            "type": self.type.value,
            "timestamp": self.timestamp.isoformat(),
            "tenant_id": self.tenant_id,
            "subject": self.subject,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "execution_id": self.execution_id,
            "workflow_id": self.workflow_id,
            "node_id": self.node_id,
            "data": dict(self.data),
        }

    def to_json(self) -> str:
        """The event as JSON text."""
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str)


def event_types(values: Iterable[EventType | str] | None) -> frozenset[EventType] | None:
    """``values`` as ``EventType`` members (``None`` or empty: every type).

    Raises:
        ValueError: a value that is not an event type, naming it.
    """
    if not values:
        return None
    if isinstance(values, str | EventType):
        values = [values]
    checked = set()
    for value in values:
        try:
            checked.add(EventType(value))
        except ValueError:
            known = ", ".join(member.value for member in EventType)
            raise ValueError(f"unknown event type {value!r}; known: {known}") from None
    return frozenset(checked)


@dataclass(frozen=True)
class EventFilter:
    """Which events a subscriber receives; ``None`` fields match anything."""

    types: frozenset[EventType] | None = None
    session_id: str | None = None
    tenant_id: str | None = None
    subject: str | None = None

    def matches(self, event: AgentEvent) -> bool:
        """Whether ``event`` passes every set criterion."""
        return (
            (self.types is None or event.type in self.types)
            and (self.session_id is None or event.session_id == self.session_id)
            and (self.tenant_id is None or event.tenant_id == self.tenant_id)
            and (self.subject is None or event.subject == self.subject)
        )


Callback = Callable[[AgentEvent], Any]


class EventHub:
    """Subscribers of one middleware, each with a filter; thread-safe.

    ``emit`` runs on an event loop: a plain callback is called there, a coroutine
    function gets a task. A failing callback is logged and never stops delivery.
    """

    def __init__(self) -> None:
        self._subscribers: dict[str, tuple[Callback, EventFilter]] = {}
        self._lock = threading.Lock()
        self._pending: set[asyncio.Task[Any]] = set()
        self.emitted = 0

    def subscribe(self, subscriber_id: str, callback: Callback, event_filter: EventFilter) -> str:
        """Register (or replace) ``subscriber_id``; return it.

        Raises:
            TypeError: ``callback`` is not callable or ``subscriber_id`` not a string.
        """
        if not isinstance(subscriber_id, str) or not subscriber_id:
            raise TypeError("subscriber_id must be a non-empty string")
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        with self._lock:
            self._subscribers[subscriber_id] = (callback, event_filter)
        return subscriber_id

    def unsubscribe(self, subscriber_id: str) -> bool:
        """Remove ``subscriber_id``; ``True`` if it was subscribed."""
        with self._lock:
            return self._subscribers.pop(subscriber_id, None) is not None

    def emit(self, event: AgentEvent) -> None:
        """Deliver ``event`` to every matching subscriber (call on the event loop)."""
        self.emitted += 1
        with self._lock:
            targets = [cb for cb, wanted in self._subscribers.values() if wanted.matches(event)]
        for callback in targets:
            try:
                outcome = callback(event)
            except Exception:
                logger.exception("event subscriber %r failed on %s", callback, event.type.value)
                continue
            if asyncio.iscoroutine(outcome):
                task = asyncio.get_running_loop().create_task(outcome)
                self._pending.add(task)
                task.add_done_callback(self._delivered)

    async def settled(self) -> None:
        """Wait until every coroutine callback started so far has finished."""
        while self._pending:
            await asyncio.wait(set(self._pending))

    def _delivered(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("event subscriber failed: %s", task.exception(), exc_info=task.exception())

    def __len__(self) -> int:
        with self._lock:
            return len(self._subscribers)
