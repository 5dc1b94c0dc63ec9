"""Executions of ``AgentUIMiddleware``: started on the run executor, followed through
the engine's events, reported to the middleware's subscribers.

Each execution is one engine run started with ``RunExecutor.start`` (the gateway's
executor when the middleware belongs to a gateway, else one of its own), under the
name ``agent_ui:<workflow_id>`` so it can never take the backend of a gateway workflow.
The executor's bus delivers node and run events from the run's thread; they hop to
the execution's event loop, where its status dict is updated and events are emitted.
The steps a running node reports (an agent's prompt, tool call, tool result, answer:
``NodeStepEvent``) become Kailash's ``node.progress`` events, whose data is
``{"step", "detail"}`` (plus ``"iteration"`` inside a cycle).

Cancelling reports the execution ``cancelled`` at once and discards what its run
returns. The engine cannot interrupt a run handed to a worker thread, so the run
itself goes on to its end in the background (the executor's run record keeps its
true outcome), as Kailash's ``cancel_execution`` also leaves its run going.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from kailash_nb.middleware.agent_events import AgentEvent, EventHub, EventType
from kailash_nb.middleware.execution import RunExecutor, RunIndex
from kailash_nb.run_status import FINAL_STATUSES
from kailash_nb.runtime.events import EventBus, NodeEvent, NodeStepEvent, RunEvent
from kailash_nb.store.run_history import GatewayRunNote
from kailash_nb.workflow.graph import Workflow

__all__ = ["Execution", "SessionRuns"]

#: Finished executions remembered for ``get_execution_status`` (oldest dropped first).
MAX_FINISHED = 10_000
#: The run name prefix; gateway workflow names cannot contain ``:``.
RUN_NAME_PREFIX = "agent_ui:"

_NODE_EVENT_TYPES = {
    "started": EventType.NODE_STARTED,
    "completed": EventType.NODE_COMPLETED,
    "cached": EventType.NODE_COMPLETED,
    "failed": EventType.NODE_FAILED,
    "skipped": EventType.NODE_SKIPPED,
}
_FINAL_EVENT_TYPES = {
    "completed": EventType.WORKFLOW_COMPLETED,
    "cancelled": EventType.WORKFLOW_CANCELLED,
}


@dataclass
class Execution:
    """One execution: who owns it, and its status dict (updated in place)."""

    execution_id: str
    session_id: str
    tenant_id: str
    subject: str
    workflow_id: str
    node_count: int
    loop: asyncio.AbstractEventLoop
    run_id: str | None = None
    task: asyncio.Task[Any] | None = None
    finished_nodes: set[str] = field(default_factory=set)
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        """Whether the execution has ended (its status no longer changes)."""
        return self.status.get("status") in FINAL_STATUSES

    def event(self, event_type: EventType, **data: Any) -> AgentEvent:
        """An event of this execution."""
        return AgentEvent(
            event_type,
            self.tenant_id,
            self.subject,
            self.session_id,
            execution_id=self.execution_id,
            workflow_id=self.workflow_id,
            node_id=data.pop("node_id", None),
            data=data,
        )

    def update(self, **changes: Any) -> None:
        """Change the status dict and stamp ``updated_at``."""
        self.status.update(changes, updated_at=time.time())


class SessionRuns:
    """The executions of one middleware.

    Args:
        hub: where execution events go.
        executor: the run executor (the gateway's); ``None`` makes one on first use.
    """

    def __init__(self, hub: EventHub, executor: RunExecutor | None = None) -> None:
        self.hub = hub
        self._executor = executor
        self._executions: OrderedDict[str, Execution] = OrderedDict()
        self._by_run: dict[str, Execution] = {}
        self._lock = threading.Lock()
        self._subscribed = False

    @property
    def executor(self) -> RunExecutor:
        """The run executor (made on first use for a standalone middleware)."""
        with self._lock:
            if self._executor is None:
                self._executor = RunExecutor(EventBus(), RunIndex(_keep_nothing))
            if not self._subscribed:
                self._executor.events.subscribe(
                    self._on_engine_event, nodes=True, runs=True, steps=True
                )
                self._subscribed = True
            return self._executor

    def start(
        self,
        *,
        session_id: str,
        tenant_id: str,
        subject: str,
        workflow_id: str,
        workflow: Workflow,
        inputs: dict[str, Any],
    ) -> Execution:
        """Start ``workflow`` for the session's owner; return the queued execution.

        Raises:
            RunQueueFullError: the executor has no room for another run.
        """
        executor = self.executor
        now = time.time()
        execution = Execution(
            execution_id=str(uuid.uuid4()),
            session_id=session_id,
            tenant_id=tenant_id,
            subject=subject,
            workflow_id=workflow_id,
            node_count=len(workflow.nodes),
            loop=asyncio.get_running_loop(),
        )
        execution.status = {
            "execution_id": execution.execution_id,
            "session_id": session_id,
            "workflow_id": workflow_id,
            "status": "queued",
            "run_id": None,
            "progress": 0.0,
            "current_node": None,
            "outputs": {},
            "error": None,
            "created_at": now,
            "updated_at": now,
        }
        started = executor.start(
            RUN_NAME_PREFIX + workflow_id,
            workflow,
            inputs,
            tenant_id=tenant_id,
            subject=subject,
        )
        execution.run_id = started.run_id
        execution.status["run_id"] = started.run_id
        execution.task = started.task
        with self._lock:
            self._executions[execution.execution_id] = execution
            self._by_run[started.run_id] = execution
            self._forget_old()
        self.hub.emit(execution.event(EventType.WORKFLOW_STARTED, status="queued"))
        started.task.add_done_callback(lambda task: self._finish(execution, task))
        return execution

    def get(self, execution_id: object, *, tenant_id: str, subject: str) -> Execution | None:
        """The execution if ``tenant_id``/``subject`` own it; else ``None``."""
        if not isinstance(execution_id, str):
            return None
        with self._lock:
            execution = self._executions.get(execution_id)
        if execution is None or (execution.tenant_id, execution.subject) != (tenant_id, subject):
            return None
        return execution

    def of_session(self, session_id: str) -> dict[str, dict[str, Any]]:
        """``execution_id -> status dict`` of the session's remembered executions."""
        with self._lock:
            return {
                execution.execution_id: execution.status
                for execution in self._executions.values()
                if execution.session_id == session_id
            }

    def cancel(self, execution: Execution) -> bool:
        """Report ``execution`` cancelled and discard its run's outcome; ``False`` if
        it had already ended."""
        if execution.final:
            return False
        execution.update(status="cancelled", current_node=None)
        self.hub.emit(execution.event(EventType.WORKFLOW_CANCELLED, status="cancelled"))
        return True

    def active(self) -> int:
        """Executions not yet ended."""
        with self._lock:
            return sum(1 for execution in self._executions.values() if not execution.final)

    # -- engine events -------------------------------------------------------------

    def _on_engine_event(self, event: NodeEvent | RunEvent | NodeStepEvent) -> None:
        # Called on the run's thread, for every run of the executor.
        with self._lock:
            execution = self._by_run.get(event.run_id)
        if execution is None:
            return
        try:
            execution.loop.call_soon_threadsafe(self._apply, execution, event)
        except RuntimeError:  # the loop that started it is closed: nobody is listening
            return

    def _apply(self, execution: Execution, event: NodeEvent | RunEvent | NodeStepEvent) -> None:
        if execution.final:
            return
        if isinstance(event, RunEvent):
            if event.state == "started":
                execution.update(status="running")
            return
        if isinstance(event, NodeStepEvent):
            step: dict[str, Any] = {
                "node_id": event.node_id,
                "step": event.step,
                "detail": event.detail,
            }
            if event.iteration is not None:
                step["iteration"] = event.iteration
            self.hub.emit(execution.event(EventType.NODE_PROGRESS, **step))
            return
        event_type = _NODE_EVENT_TYPES.get(event.state)
        if event_type is None:
            return
        if event.state == "started":
            execution.update(current_node=event.node_id)
        data: dict[str, Any] = {"node_id": event.node_id, "state": event.state}
        if event.error is not None:
            data["error"] = event.error
        self.hub.emit(execution.event(event_type, **data))
        if event_type is not EventType.NODE_STARTED:
            execution.finished_nodes.add(event.node_id)
            progress = 100.0 * len(execution.finished_nodes) / max(execution.node_count, 1)
            execution.update(progress=round(min(progress, 100.0), 2))
            self.hub.emit(
                execution.event(
                    EventType.WORKFLOW_PROGRESS,
                    progress=execution.status["progress"],
                    current_node=event.node_id,
                )
            )

    def _finish(self, execution: Execution, task: asyncio.Task[Any]) -> None:
        with self._lock:
            if execution.run_id is not None:
                self._by_run.pop(execution.run_id, None)
        if execution.final:
            return
        if task.cancelled():
            status, outputs, error = "cancelled", {}, None
        elif task.exception() is not None:
            exc = task.exception()
            status, outputs, error = "failed", {}, f"{type(exc).__name__}: {exc}"
        else:
            entry = task.result()
            status = entry.status
            outputs = entry.results if isinstance(entry.results, dict) else {}
            error = (entry.error or {}).get("message")
        changes: dict[str, Any] = {"status": status, "outputs": outputs, "error": error}
        if status == "completed":
            changes["progress"] = 100.0
        execution.update(current_node=None, **changes)
        event_type = _FINAL_EVENT_TYPES.get(status, EventType.WORKFLOW_FAILED)
        data: dict[str, Any] = {"status": status, "run_id": execution.run_id}
        if error is not None:
            data["error"] = error
        self.hub.emit(execution.event(event_type, **data))

    def _forget_old(self) -> None:
        finished = [key for key, execution in self._executions.items() if execution.final]
        for key in finished[: max(0, len(finished) - MAX_FINISHED)]:
            del self._executions[key]


def _keep_nothing(note: GatewayRunNote) -> None:
    """The run-note sink of a standalone middleware: its executions keep their own
    status, nothing is recorded in the store."""
