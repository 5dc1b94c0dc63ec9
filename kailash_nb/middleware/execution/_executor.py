"""Runs workflows for the gateway: one fresh engine run per request.

Every request gets its own engine run (``WorkflowRun``: no mutable state shared between
requests) through one ``LocalRuntime`` front end, which holds only settings and
publishes each run's events on the gateway's bus, where the run recorder, the metrics
and the live event streams subscribe. A run's entry enters the run index when the
engine announces the run ``started`` (after its parameters were validated), so a
refused run leaves nothing behind. In-flight runs are tracked so ``stop()`` can drain
them.

Each run executes on its workflow's execution backend (``_backend``): by default the
gateway's run threads (``"thread"``), not its event loop; a workflow placed with a
``RunPolicy`` (``place``) gets the backend the policy names (``"inline"``, a deadline,
``"process"``...). A request that waits for its run awaits the backend's answer
directly (``run``); a run that outlives its request (``?wait=false``, sessions) gets a
task (``start``).

A run executes inside ``log_context(tenant_id=, user_id=)`` of its owner, within the
request's own ``log_context(request_id=...)`` that a run started as a task inherits;
each backend carries these ids to the nodes (the engine adds ``run_id``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from kailash_nb.logging import log_context
from kailash_nb.middleware._run_errors import failure_error, run_error
from kailash_nb.middleware.execution._backend import (
    BackendSetup,
    ExecutionBackend,
    RunRequest,
    create_backend,
)
from kailash_nb.middleware.execution._cancel import RunCancel
from kailash_nb.middleware.execution._errors import RunQueueFullError
from kailash_nb.middleware.execution._gate import OPEN, RunGate
from kailash_nb.middleware.execution._policy import RunPolicy
from kailash_nb.middleware.execution._run_index import RunEntry, RunIndex
from kailash_nb.middleware.execution._thread_pool import RunThreads
from kailash_nb.middleware.execution._threads import ThreadBackend
from kailash_nb.middleware.identity import Identity
from kailash_nb.runtime.events import EventBus, RunEvent
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.store.audit_trail import AuditUnavailableError
from kailash_nb.workflow.graph import Workflow

__all__ = ["RunExecutor", "StartedRun"]

logger = logging.getLogger(__name__)

#: Run ids drawn from one ``os.urandom`` call, and the random bytes of each.
_IDS_PER_DRAW = 256
_RANDOM_BYTES_PER_ID = 10
#: Seconds between checks of ``drain`` for runs awaited by their requests.
_DRAIN_POLL_SECONDS = 0.02


class StartedRun:
    """A run handed to the engine: its id, its index entry once started, and its task."""

    def __init__(
        self,
        task: asyncio.Task[RunEntry],
        started: asyncio.Future[RunEntry],
        run_id: str | None = None,
    ) -> None:
        self.task = task
        self.started = started
        self.run_id = run_id

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
    """Runs workflows, records their owner and outcome in ``index``, drains on stop.

    Args:
        events: the gateway's bus; every run publishes its events there.
        index: where run owners, status and results are kept.
        max_workers: runs executing at once; further runs wait for a thread.
        max_queued: runs that may wait for a thread; beyond that a new run is refused
            with ``RunQueueFullError`` (bounded queue, bounded latency).
        gate: admits each run for its caller and shows the caller its outcome
            (``_gate``; default ``OPEN``: no access control).
    """

    def __init__(
        self,
        events: EventBus,
        index: RunIndex,
        max_workers: int = 32,
        max_queued: int = 256,
        gate: RunGate = OPEN,
    ) -> None:
        self.events = events
        self.gate = gate
        self.index = index
        self.max_workers = max_workers
        self.max_queued = max_queued
        self.runtime = LocalRuntime(event_bus=events, history=False)
        #: The backend of each workflow placed with a policy (``place``); the others
        #: run on ``default_backend``.
        self.backends: dict[str, ExecutionBackend] = {}
        self._threads: RunThreads | None = None
        self.default_backend = ThreadBackend(self._setup(RunPolicy("thread")))
        self._tasks: set[asyncio.Task[RunEntry]] = set()
        self._awaited = 0
        #: Runs handed to the engine and not yet announced: ``run_id -> (entry, future
        #: resolved with the entry once started, or None)``.
        self._starting: dict[str, tuple[RunEntry, asyncio.Future[RunEntry] | None]] = {}
        events.subscribe(self._on_run_event, nodes=False, runs=True)
        self._random = memoryview(b"")

    @property
    def in_flight(self) -> int:
        """Runs started and not finished."""
        return len(self._tasks) + self._awaited

    def place(self, name: str, policy: RunPolicy) -> ExecutionBackend:
        """Run the workflow registered as ``name`` on the backend ``policy`` names,
        built now; return it (``start()`` it before runs if the gateway serves).

        Raises:
            KeyError: no backend is registered under ``policy.backend``.
        """
        backend = create_backend(self._setup(policy))
        self.backends[name] = backend
        return backend

    def start_backends(self) -> None:
        """Start every placed backend (worker processes start in the background)."""
        for backend in self.backends.values():
            backend.start()

    async def close_backends(self) -> None:
        """Close every placed backend, off the event loop (closing may block)."""
        loop = asyncio.get_running_loop()
        for backend in self.backends.values():
            await loop.run_in_executor(None, backend.close)

    async def run(
        self,
        name: str,
        workflow: Workflow,
        parameters: dict[str, Any],
        *,
        tenant_id: str,
        subject: str,
        caller: Identity | None = None,
        cancel: RunCancel | None = None,
    ) -> RunEntry:
        """Run ``workflow`` to its end while the caller waits; return its entry.

        ``caller`` is who runs it, for the gate (default: ``subject`` of ``tenant_id``
        without roles). ``cancel``: a handle that stops the run before its next node
        (the run then ends ``cancelled``).

        Raises:
            WorkflowValidationError: the run was refused before it started (bad
                parameters); nothing was recorded.
            AccessDeniedError: the gate refused the caller; nothing was recorded.
            AuditUnavailableError: the gate could not audit its decision; nothing ran.
            RunQueueFullError: ``max_workers + max_queued`` runs are in flight.
        """
        entry = self._admit(name, tenant_id, subject)
        self._starting[entry.run_id] = (entry, None)
        self._awaited += 1
        try:
            # Nobody knows the run id before the answer, so nobody can watch its nodes
            # live: the run publishes only its run events (the timeline replays nodes).
            return await self._execute(entry, workflow, parameters, caller, cancel, live=False)
        finally:
            self._awaited -= 1
            self._starting.pop(entry.run_id, None)  # a cancelled wait leaves nothing behind

    def start(
        self,
        name: str,
        workflow: Workflow,
        parameters: dict[str, Any],
        *,
        tenant_id: str,
        subject: str,
        caller: Identity | None = None,
        cancel: RunCancel | None = None,
    ) -> StartedRun:
        """Start ``workflow`` as a background task on the running loop (a run that may
        outlive its request); see ``run`` for ``caller``, ``cancel`` and what refuses
        the run (``wait_started`` raises it)."""
        entry = self._admit(name, tenant_id, subject)
        loop = asyncio.get_running_loop()
        started: asyncio.Future[RunEntry] = loop.create_future()
        self._starting[entry.run_id] = (entry, started)
        task = loop.create_task(
            self._execute(entry, workflow, parameters, caller, cancel, live=True)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return StartedRun(task, started, entry.run_id)

    def _new_run_id(self) -> str:
        """A time-ordered UUID (version 7: 48 bits of milliseconds, then 74 random
        bits), so the store's run tables take each new run at their end instead of at
        a random page. The random bytes come from one ``os.urandom`` call per 256 ids:
        a system call per run would hand the interpreter lock to other threads in the
        middle of every request."""
        if not self._random:
            self._random = memoryview(os.urandom(_RANDOM_BYTES_PER_ID * _IDS_PER_DRAW))
        milliseconds = time.time_ns() // 1_000_000 % (1 << 48)
        raw = bytearray(milliseconds.to_bytes(6, "big")) + self._random[:_RANDOM_BYTES_PER_ID]
        self._random = self._random[_RANDOM_BYTES_PER_ID:]
        raw[6] = (raw[6] & 0x0F) | 0x70
        raw[8] = (raw[8] & 0x3F) | 0x80
        digits = raw.hex()
        return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"

    def _admit(self, name: str, tenant_id: str, subject: str) -> RunEntry:
        """A new run's entry, or ``RunQueueFullError`` when the queue is full."""
        limit = self.max_workers + self.max_queued
        if self.in_flight >= limit:
            raise RunQueueFullError(
                f"{self.in_flight} runs are in flight (at most {self.max_workers} execute "
                f"and {self.max_queued} wait); retry shortly"
            )
        return RunEntry(self._new_run_id(), name, tenant_id, subject)

    def _on_run_event(self, event: RunEvent) -> None:
        # Called in the thread that runs the workflow, when the engine starts it.
        if event.state != "started":
            return
        pending = self._starting.pop(event.run_id, None)
        if pending is None:
            return
        entry, started = pending
        self.index.add(entry)
        if started is not None:
            started.get_loop().call_soon_threadsafe(_resolve, started, entry)

    async def _execute(
        self,
        entry: RunEntry,
        workflow: Workflow,
        parameters: dict[str, Any],
        caller: Identity | None,
        cancel: RunCancel | None,
        *,
        live: bool,
    ) -> RunEntry:
        with log_context(tenant_id=entry.tenant_id, user_id=entry.subject):
            backend = self.backends.get(entry.workflow, self.default_backend)
            gate = self.gate
            guard = None
            try:
                if caller is None:
                    caller = Identity(entry.subject, entry.tenant_id, ())
                guard = await gate.admit(caller, entry.workflow, entry.run_id)
                checks = guard if cancel is None else cancel.guard(guard)
                request = RunRequest(workflow, parameters, entry.run_id, live, checks)
                outcome = await gate.release(guard, await backend.execute(request))
            except Exception as exc:
                if self._starting.pop(entry.run_id, None) is not None:
                    raise  # refused before it started: the caller answers, nothing recorded
                entry.status, entry.error = failure_error(exc, entry.run_id)
                if not isinstance(exc, AuditUnavailableError):  # else the gate could not audit
                    await gate.abandon(guard, entry.status)
            else:
                entry.status, entry.results = outcome.status, outcome.results
                if not outcome.succeeded:
                    entry.error = run_error(outcome)
                    entry.denied_node = gate.refused_node(guard)
                    if cancel is not None and cancel.cancelled:
                        entry.status = "cancelled"
            entry.finished_at = time.time()
            self.index.run_finished(entry)
            return entry

    def _setup(self, policy: RunPolicy) -> BackendSetup:
        return BackendSetup(policy, self.events, self.runtime, self._run_threads)

    def _run_threads(self) -> RunThreads:
        """The run threads, created on first use and again after ``drain`` shut them."""
        if self._threads is None:
            self._threads = RunThreads(self.max_workers)
        return self._threads

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for in-flight runs; ``True`` if all finished."""
        deadline = time.monotonic() + timeout
        pending: set[asyncio.Task[RunEntry]] = set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        while self._awaited and time.monotonic() < deadline:
            await asyncio.sleep(_DRAIN_POLL_SECONDS)
        unfinished = len(pending) + self._awaited
        if unfinished:
            logger.warning("gateway stopped with %d runs still executing", unfinished)
        if self._threads is not None:
            self._threads.shutdown()
            self._threads = None
        return not unfinished


def _resolve(future: asyncio.Future[RunEntry], entry: RunEntry) -> None:
    if not future.done():
        future.set_result(entry)
