"""``ProcessRunPool``: pre-started worker processes for one process-isolated workflow.

Workers come from the ``forkserver`` context: the gateway is multi-threaded, and a
plain ``fork`` would copy locks held by other threads into the child. Each run takes
an idle worker, is announced ``started`` on the gateway's bus, and is supervised from
one of the pool's threads (never the event loop): the child's node events are
re-emitted on the bus as they arrive, and at the deadline the worker is killed with
``SIGKILL``. A killed, dead or memory-exhausted worker is replaced in the background,
so the answer to the run does not wait for the new process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import signal
import sys
import threading
import time
from typing import Any

from kailash_nb.logging import context_fields
from kailash_nb.middleware.execution._errors import RunQueueFullError
from kailash_nb.middleware.execution._process import _worker
from kailash_nb.runtime.events import EventBus, NodeStepEvent, RunEvent
from kailash_nb.runtime.guard import NodeGuard
from kailash_nb.runtime.node_errors import describe
from kailash_nb.runtime.outcome import NodeFailure, RunOutcome
from kailash_nb.sdk_exceptions import WorkflowExecutionError, WorkflowTimeoutError
from kailash_nb.workflow.graph import Workflow

__all__ = ["ProcessRunPool"]

logger = logging.getLogger(__name__)

#: Seconds a new worker may take to import kailash_nb and rebuild the workflow.
READY_TIMEOUT = 30.0
#: Seconds a worker gets to exit on ``close()`` before it is killed.
_CLOSE_GRACE = 1.0

_context_lock = threading.Lock()
_context: Any = None


def _process_context() -> Any:
    """The forkserver context, with the worker module preloaded in its server."""
    global _context
    with _context_lock:
        if _context is None:
            methods = multiprocessing.get_all_start_methods()
            method = "forkserver" if "forkserver" in methods else "spawn"
            context = multiprocessing.get_context(method)
            if method == "forkserver":
                # Each worker is then a fork of a single-threaded server that already
                # imported kailash_nb: tens of milliseconds instead of a fresh import.
                context.set_forkserver_preload([_worker.__name__])
            _context = context
        return _context


def _restore_main_spec() -> None:
    """Give ``__main__`` back the ``__spec__`` that starting a process reads.

    multiprocessing reads ``sys.modules["__main__"].__spec__`` for every process it
    starts (spawn and forkserver). An IPython kernel's ``%reset`` clears ``__main__``'s
    namespace, ``__spec__`` included, after which no worker could start. ``None`` is
    what a module without a spec has: the worker then imports no ``__main__``.
    """
    main = sys.modules.get("__main__")
    if main is not None and not hasattr(main, "__spec__"):
        main.__spec__ = None


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn

    def kill(self) -> None:
        """``SIGKILL`` the process, reap it and close the pipe."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def exit_description(self) -> str:
        """How the process ended, in words."""
        self.process.join(1)
        code = self.process.exitcode
        if code is None:
            return "it stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            if name == "SIGXCPU":
                return "it exceeded its CPU-time limit (SIGXCPU)"
            return f"it was ended by {name}"
        return f"it exited with status {code}"


class ProcessRunPool:
    """Worker processes running one workflow's definition, ``size`` at a time.

    Args:
        definition: the server-registered workflow's ``to_dict()``.
        events: the gateway's bus; runs announce and finish there.
        size: worker processes (runs executing at once; more wait for a worker).
        timeout: seconds from the moment a worker takes a run to its kill.
        memory_limit_mb: each worker's address-space limit (``RLIMIT_AS``).
        max_output_bytes: largest JSON encoding of a run's results.
    """

    def __init__(
        self,
        definition: dict[str, Any],
        events: EventBus,
        *,
        size: int,
        timeout: float,
        memory_limit_mb: int,
        max_output_bytes: int,
    ) -> None:
        self.definition = definition
        self.events = events
        self.size = size
        self.timeout = timeout
        self.limits = {
            "memory_limit_mb": memory_limit_mb,
            "max_output_bytes": max_output_bytes,
            "timeout": timeout,
        }
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._available = threading.Condition()
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        self._started = False
        self._closed = False
        #: Bumped by ``close()``: a replacement started before it is not kept.
        self._generation = 0

    def start(self) -> None:
        """Start the workers in the background (idempotent, also after ``close()``);
        runs wait for the first."""
        with self._available:
            if self._started:
                return
            self._started = True
            self._closed = False
            self._threads = concurrent.futures.ThreadPoolExecutor(
                self.size, thread_name_prefix="kailash-nb-isolated-run"
            )
        for _ in range(self.size):
            self._replace_later()

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for an idle worker; ``True`` once there is one
        (for readiness checks; ``start()`` must have been called)."""
        deadline = time.monotonic() + timeout
        with self._available:
            while not self._idle:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._available.wait(remaining)
            return True

    async def run(
        self,
        workflow: Workflow,
        parameters: dict[str, Any],
        run_id: str,
        guard: NodeGuard | None = None,
    ) -> RunOutcome:
        """Run the workflow in a worker and return how it ended (``completed``, or
        ``failed`` with the failed nodes and partial results). The worker asks
        ``guard`` (here, in this process) before each node executes.

        Raises:
            WorkflowValidationError: bad parameters (checked here; nothing started).
            RunQueueFullError: the pool was closed meanwhile (the gateway is stopping).
            WorkflowTimeoutError: the deadline passed and the worker was killed.
            WorkflowExecutionError: the memory limit or the output cap was hit, or the
                worker died.
        """
        plan = workflow.plan
        plan.check_required(*plan.split_parameters(parameters))
        self.start()
        threads = self._threads
        if threads is None:  # closed between start() and here: the gateway is stopping
            raise RunQueueFullError("the workflow's worker processes are shutting down")
        loop = asyncio.get_running_loop()
        # run_in_executor does not carry the context: the log ids travel with the job.
        return await loop.run_in_executor(
            threads, self._supervise, workflow, parameters, run_id, guard, context_fields()
        )

    def close(self) -> None:
        """Stop every worker (a run still executing is killed) and the pool's threads."""
        with self._available:
            self._closed = True
            self._started = False
            self._generation += 1
            workers, self._workers, self._idle = set(self._workers), set(), []
            threads, self._threads = self._threads, None
            self._available.notify_all()
        for worker in workers:
            with contextlib.suppress(OSError):  # already gone
                worker.conn.send(None)
        deadline = time.monotonic() + _CLOSE_GRACE
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.kill()
        if threads is not None:
            threads.shutdown(wait=False)

    # -- one run (on a pool thread) ----------------------------------------------

    def _supervise(
        self,
        workflow: Workflow,
        parameters: dict[str, Any],
        run_id: str,
        guard: NodeGuard | None,
        log_ids: dict[str, Any],
    ) -> RunOutcome:
        worker = self._take()
        started = time.perf_counter()
        self._announce(workflow, run_id, "started", parameters=parameters)
        if worker is None:
            raise self._failure(
                workflow,
                run_id,
                started,
                "no worker process became available (the gateway is stopping, every worker "
                "is busy, or workers fail to start: see the gateway log); retry shortly",
            )
        events = self.events
        wants = (events.wants_node_events, events.wants_timeline, events.wants_step_events)
        try:
            worker.conn.send((run_id, parameters, *wants, guard is not None, log_ids))
            message = self._await_outcome(worker, workflow, run_id, started, guard)
        except WorkflowTimeoutError:  # a TimeoutError, so an OSError: not a dead worker
            raise
        except (EOFError, OSError):
            ended = worker.exit_description()
            self._retire(worker)
            raise self._failure(
                workflow,
                run_id,
                started,
                f"the worker process running the run died: {ended}; its memory limit is "
                f"memory_limit_mb={self.limits['memory_limit_mb']}",
            ) from None
        if message[0] == "finished":
            self._release(worker)
            _, status, text, error, stopped_at, failures, finished = message
            self._finish(workflow, run_id, started, finished, status, error)
            return RunOutcome(
                run_id,
                status,
                json.loads(text),
                error,
                tuple(
                    NodeFailure(node_id, error_type, message, unavailable=unavailable)
                    for node_id, error_type, message, unavailable in failures
                ),
                stopped_at,
            )
        _, detail, node_id, finished, retire = message
        if retire:
            self._retire(worker)
        else:
            self._release(worker)
        raise self._failure(workflow, run_id, started, detail, node_id=node_id, finished=finished)

    def _await_outcome(
        self,
        worker: _Worker,
        workflow: Workflow,
        run_id: str,
        started: float,
        guard: NodeGuard | None,
    ) -> tuple[Any, ...]:
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not worker.conn.poll(remaining):
                self._retire(worker)
                error = WorkflowTimeoutError(
                    f"workflow {workflow.name!r} exceeded its timeout of {self.timeout}s; "
                    "its worker process was killed",
                    run_id=run_id,
                )
                self._finish(workflow, run_id, started, None, "timeout", describe(error))
                raise error
            message = worker.conn.recv()
            if message[0] == "event":
                self.events.emit(_shown(message[1], guard))
                continue
            if message[0] == "check" and guard is not None:
                worker.conn.send(_worker.guard_answer(guard.check_node(message[1])))
                continue
            return message

    def _failure(
        self,
        workflow: Workflow,
        run_id: str,
        started: float,
        detail: str,
        *,
        node_id: str | None = None,
        finished: RunEvent | None = None,
    ) -> WorkflowExecutionError:
        """Announce the run failed with ``detail``; return the error to raise."""
        error = WorkflowExecutionError(detail, run_id=run_id, node_id=node_id)
        self._finish(workflow, run_id, started, finished, "failed", describe(error))
        return error

    # -- events --------------------------------------------------------------------

    def _announce(self, workflow: Workflow, run_id: str, state: str, **fields: Any) -> None:
        if self.events.wants_run_events:
            self.events.emit(
                RunEvent(
                    run_id,
                    workflow.name,
                    state,  # type: ignore[arg-type]
                    time.time(),
                    workflow_id=workflow.workflow_id,
                    **fields,
                )
            )

    def _finish(
        self,
        workflow: Workflow,
        run_id: str,
        started: float,
        finished: RunEvent | None,
        state: str,
        error: str | None,
    ) -> None:
        """Emit the run's end: the child's own event (with its timeline) when it sent
        one, else one made here (the child was killed or died)."""
        if not self.events.wants_run_events:
            return
        if finished is None:
            finished = RunEvent(
                run_id,
                workflow.name,
                state,  # type: ignore[arg-type]
                time.time(),
                duration=time.perf_counter() - started,
                error=error,
                workflow_id=workflow.workflow_id,
            )
        self.events.emit(finished)

    # -- workers -------------------------------------------------------------------

    def _take(self) -> _Worker | None:
        """An idle worker; ``None`` once closed or after ``max(timeout, READY_TIMEOUT)``
        seconds without one (every worker busy or failing to start)."""
        wait_until = time.monotonic() + max(self.timeout, READY_TIMEOUT)
        with self._available:
            while not self._idle and not self._closed:
                remaining = wait_until - time.monotonic()
                if remaining <= 0:
                    return None
                self._available.wait(remaining)
            return None if self._closed else self._idle.pop()

    def _release(self, worker: _Worker) -> None:
        with self._available:
            if self._closed:
                closed = True
            else:
                closed = False
                self._idle.append(worker)
                self._available.notify()
        if closed:
            worker.kill()

    def _retire(self, worker: _Worker) -> None:
        """Kill ``worker`` and start its replacement in the background."""
        worker.kill()
        with self._available:
            self._workers.discard(worker)
        self._replace_later()

    def _replace_later(self) -> None:
        threading.Thread(
            target=self._add_worker,
            args=(self._generation,),
            name="kailash-nb-isolated-start",
            daemon=True,
        ).start()

    def _add_worker(self, generation: int) -> None:
        backoff = 1.0
        while generation == self._generation and not self._closed:
            try:
                worker = self._spawn()
            except Exception:
                logger.exception(
                    "a worker process for an isolated workflow failed to start; retrying in %.0fs",
                    backoff,
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            with self._available:
                if generation == self._generation and not self._closed:
                    self._workers.add(worker)
                    self._idle.append(worker)
                    self._available.notify()
                    return
            worker.kill()
            return

    def _spawn(self) -> _Worker:
        context = _process_context()
        _restore_main_spec()
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(
            target=_worker.serve,
            args=(child_end, self.definition, self.limits),
            name="kailash-nb-isolated-worker",
            daemon=True,
        )
        process.start()
        child_end.close()
        worker = _Worker(process, parent_end)
        if not parent_end.poll(READY_TIMEOUT):
            worker.kill()
            raise RuntimeError(f"the worker process was not ready within {READY_TIMEOUT}s")
        try:
            ready = parent_end.recv()
        except EOFError:
            description = worker.exit_description()
            worker.kill()
            raise RuntimeError(f"the worker process ended while starting: {description}") from None
        if ready != ("ready",):
            worker.kill()
            raise RuntimeError(f"the worker process sent {ready!r:.80} instead of ready")
        return worker


def _shown(event: Any, guard: NodeGuard | None) -> Any:
    """A worker's event as the run's watchers may see it: a step's detail goes through
    the run's guard here, in the parent, where the run's access checks live."""
    if guard is None or not isinstance(event, NodeStepEvent):
        return event
    return event._replace(detail=guard.step_detail(event.node_id, event.detail))
