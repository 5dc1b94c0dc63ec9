"""Runs workflows for the gateway: one fresh engine run per request.

Every request gets its own ``LocalRuntime`` and private ``EventBus`` (no mutable state
shared between requests); the private bus forwards events to the gateway's bus, where
the run recorder and the metrics subscribe. In-flight runs are tracked so ``stop()``
can drain them.

Runs execute through ``LocalRuntime.execute`` in a bounded worker pool, not with
``execute_async`` on the gateway's loop: the engine runs a sequential workflow's
synchronous nodes in the calling thread, which on the server's loop would stall every
other request for the node's whole duration.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from typing import Any

from kailash_nb.middleware._runs import RunEntry, RunIndex
from kailash_nb.runtime.events import Event, EventBus, RunEvent
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import WorkflowExecutionError, WorkflowTimeoutError
from kailash_nb.workflow.graph import Workflow

__all__ = ["RunExecutor", "StartedRun"]

logger = logging.getLogger(__name__)


class StartedRun:
    """A run handed to the engine: its index entry once started, and its task."""

    def __init__(self, task: asyncio.Task[RunEntry], started: asyncio.Future[RunEntry]) -> None:
        self.task = task
        self.started = started

    async def wait_started(self) -> RunEntry:
        """The run's entry as soon as the engine started it.

        Raises:
            Exception: whatever refused the run before it started (bad parameters).
        """
        await asyncio.wait({self.task, self.started}, return_when=asyncio.FIRST_COMPLETED)
        if self.started.done():
            return self.started.result()
        return self.task.result()


class RunExecutor:
    """Starts runs, records their owner and outcome in ``index``, drains on stop.

    Args:
        events: the gateway's bus; each run's events are forwarded to it.
        index: where run owners, status and results are kept.
        max_workers: runs executing at once; further runs wait for a worker.
    """

    def __init__(self, events: EventBus, index: RunIndex, max_workers: int = 32) -> None:
        self.events = events
        self.index = index
        self.max_workers = max_workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[RunEntry]] = set()

    @property
    def in_flight(self) -> int:
        """Runs started and not finished."""
        return len(self._tasks)

    def start(
        self,
        name: str,
        workflow: Workflow,
        parameters: dict[str, Any],
        *,
        tenant_id: str,
        subject: str,
        inline: bool = False,
    ) -> StartedRun:
        """Start ``workflow`` as a background task on the running loop.

        With ``inline`` (workflows registered with ``run_inline=True``: sequential,
        ``PythonCodeNode`` only) the task runs the workflow on the loop itself instead
        of in the thread pool.
        """
        loop = asyncio.get_running_loop()
        started: asyncio.Future[RunEntry] = loop.create_future()
        holder: list[RunEntry] = []
        bus = EventBus()

        def forward(event: Event) -> None:
            if isinstance(event, RunEvent) and event.state == "started" and not holder:
                entry = RunEntry(event.run_id, name, tenant_id, subject)
                holder.append(entry)
                self.index.add(entry)
                loop.call_soon_threadsafe(_resolve, started, entry)
            self.events.emit(event)

        bus.subscribe(
            forward,
            nodes=self.events.wants_node_events,
            runs=True,
            timeline=self.events.wants_timeline,
        )
        task = loop.create_task(self._run(workflow, parameters, bus, holder, inline))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._report_finished)
        return StartedRun(task, started)

    async def _run(
        self,
        workflow: Workflow,
        parameters: dict[str, Any],
        bus: EventBus,
        holder: list[RunEntry],
        inline: bool = False,
    ) -> RunEntry:
        runtime = LocalRuntime(event_bus=bus, history=False)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self.max_workers, thread_name_prefix="kailash-nb-gateway-run"
            )
        loop = asyncio.get_running_loop()
        try:
            if inline:
                # Sequential and synchronous (checked at registration), no timeouts:
                # LocalRuntime runs it in this thread without an event loop.
                results, _ = runtime.execute(workflow, parameters)
            else:
                results, _ = await loop.run_in_executor(
                    self._pool, runtime.execute, workflow, parameters
                )
        except WorkflowExecutionError as exc:
            if not holder:
                raise
            entry = holder[0]
            entry.status = "timeout" if isinstance(exc, WorkflowTimeoutError) else "failed"
            entry.error = {"message": str(exc), "node_id": exc.node_id}
            entry.finished_at = time.time()
            return entry
        except Exception:
            if not holder:
                raise
            # Started runs are reported through the index; the trace stays in the log.
            logger.exception("run %s failed inside the gateway", holder[0].run_id)
            entry = holder[0]
            entry.status = "failed"
            entry.error = {"message": "internal error while running the workflow"}
            entry.finished_at = time.time()
            return entry
        finally:
            runtime.close()
        entry = holder[0]
        entry.status = "completed"
        entry.results = results
        entry.finished_at = time.time()
        return entry

    def _report_finished(self, task: asyncio.Task[RunEntry]) -> None:
        # A task that failed before its run started has no entry (nothing to record).
        if not task.cancelled() and task.exception() is None:
            self.index.run_finished(task.result())

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for in-flight runs; ``True`` if all finished."""
        pending: set[asyncio.Task[RunEntry]] = set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        if pending:
            logger.warning("gateway stopped with %d runs still executing", len(pending))
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        return not pending


def _resolve(future: asyncio.Future[RunEntry], entry: RunEntry) -> None:
    if not future.done():
        future.set_result(entry)
