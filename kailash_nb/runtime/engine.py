"""The one workflow engine every runtime front end drives.

Data flow contract (identical for every runtime):

- A node's output is a dict; a connection carries one output key (a dotted path
  walks nested dicts) to one input.
- Several connections into one input: a later ``None`` never overwrites an earlier
  non-``None`` value; otherwise the later connection wins.
- Precedence, lowest first: node config < workflow-level parameters (keys that are
  not node ids, delivered to every node declaring that input) < connected inputs <
  node-keyed parameters ``{node_id: {...}}`` (which reach only that node). Inside a
  cycle, values fed back by the cycle's edges win from the second iteration on.
- A cycle iterates until a stop rule ends it: its own exit (no cycle edge carries a
  value back because the ``SwitchNode`` it loops through took the branch that leaves
  the loop), ``converge_when``, ``max_iterations`` or ``timeout``. Its members'
  results are those of the last iteration each one ran in (see ``_cycles``).
- Required inputs that nothing provides fail before any node runs.
- A node whose connected inputs are all ``None`` and all come from a branching node
  (``SwitchNode``) or from skipped nodes is skipped, and so on downstream. Skipped
  nodes are absent from the results.
- A node that fails with dependents stops the run with ``WorkflowExecutionError``
  (``results``/``run_id`` hold the partial run; ``__cause__`` is the node's error,
  chained to what the node raised). A failing node without dependents is recorded as
  ``{"error": message, "error_type": exception class name, "failed": True}`` and the
  run goes on; the run still ends ``failed`` (``kailash_nb.run_status``): its final
  event says so, and ``outcome()`` lists the failed nodes.
- A node the run's guard refuses (``kailash_nb.runtime.guard``, access control) fails
  and stops the run whether or not anything depends on it; nothing downstream runs.
- A run past one of the runtime's limits (``kailash_nb.runtime.limits``, e.g. the
  memory limit) stops with the limit's error: the nodes concerned fail with it, the
  outputs of those running are discarded, and nothing else starts.

Scheduling: a workflow that is a single file of synchronous nodes runs inline in the
caller's thread with no event loop. Anything else runs on an anyio event loop:
independent branches run concurrently, async nodes on the loop, synchronous nodes
inline when nothing else is in flight and in a bounded worker-thread pool when
something is (or when a timeout must be able to interrupt them).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    import asyncio

from kailash_nb import sdk_exceptions as errors
from kailash_nb.logging import reset_log_context, set_log_context
from kailash_nb.runtime._cycles import CycleExecution
from kailash_nb.runtime._node_executor import IN_PROCESS, NodeExecutor
from kailash_nb.runtime._run_events import RunEvents, make_timing
from kailash_nb.runtime.events import EventBus, NodeTiming
from kailash_nb.runtime.guard import NodeGuard
from kailash_nb.runtime.limits import RunLimit
from kailash_nb.runtime.node_errors import describe_node_error, raised_by_node
from kailash_nb.runtime.outcome import NodeFailure, RunOutcome
from kailash_nb.sdk_exceptions import ServiceUnavailableError
from kailash_nb.workflow.connection import MISSING
from kailash_nb.workflow.graph import Workflow
from kailash_nb.workflow.plan import CycleUnit, ExecutionPlan

__all__ = ["EngineSettings", "WorkflowRun"]

_SKIP = object()


@dataclass(frozen=True)
class EngineSettings:
    """Execution limits shared by every run of one runtime.

    Attributes:
        max_concurrent_nodes: nodes of one run executing at once (``None``: no limit
            beyond the graph's own parallelism).
        workflow_timeout: seconds a run may take before it is cancelled.
        node_timeout: default per-attempt timeout for nodes without their own.
        node_retries: default retries for nodes without their own.
        max_worker_threads: threads one run uses for synchronous nodes running
            concurrently with other nodes.
        limits: limits every run is checked against (``kailash_nb.runtime.limits``).
    """

    max_concurrent_nodes: int | None = None
    workflow_timeout: float | None = None
    node_timeout: float | None = None
    node_retries: int = 0
    max_worker_threads: int = 16
    limits: tuple[RunLimit, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.limits, tuple) or not all(
            callable(getattr(limit, "exceeded", None)) and callable(getattr(limit, "watch", None))
            for limit in self.limits
        ):
            raise ValueError(f"limits must be a tuple of RunLimit objects, got {self.limits!r}")
        for name in ("max_concurrent_nodes",):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        for name in ("workflow_timeout", "node_timeout"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(self.node_retries, int) or self.node_retries < 0:
            raise ValueError(f"node_retries must be a non-negative int, got {self.node_retries!r}")
        if not isinstance(self.max_worker_threads, int) or self.max_worker_threads < 1:
            raise ValueError(
                f"max_worker_threads must be a positive int, got {self.max_worker_threads!r}"
            )

    def attempts(self, options: Any) -> tuple[float | None, int]:
        """A node's per-attempt timeout and its retries: from its own ``NodeOptions``
        (``set_node_options``) where given, else these defaults."""
        timeout = options.timeout if options and options.timeout else self.node_timeout
        retries = options.retries if options and options.retries is not None else None
        return timeout, self.node_retries if retries is None else retries

    @property
    def needs_loop_always(self) -> bool:
        """True when these settings alone require the event-loop scheduler."""
        return bool(self.workflow_timeout or self.node_timeout or self.node_retries)


class WorkflowRun(CycleExecution, RunEvents):
    """One execution of a workflow: inputs resolved, nodes run, events emitted.

    Create it, then call ``run_inline()`` (only when ``inline`` is true) or
    ``await run_async()``; both return the results dict. Afterwards ``status`` is the
    run's final status and ``outcome()`` describes how it ended.

    ``cached_outputs`` maps node ids to outputs of an earlier run that the caller
    knows are still valid (the notebook's cache): those nodes do not execute, their
    outputs are reused and a ``cached`` event is emitted for them. The run works on a
    deep copy of them, so a node that mutates its inputs in place cannot change the
    caller's objects; ``copy_cached=False`` hands them over as they are, for a caller
    that checks them itself before reusing them (the notebook digests them).

    ``guard`` (a :class:`~kailash_nb.runtime.guard.NodeGuard`) is asked before each node
    executes; a node it refuses fails and stops the run, dependents or not.

    ``executor`` (a :class:`~kailash_nb.runtime._node_executor.NodeExecutor`) executes
    each node attempt: in this process by default; ``kailash_nb.runtime.dask`` passes
    one that runs them on a dask.distributed cluster. The data flow is the same.

    ``on_output(node_id, outputs)`` is called when a node outside a cycle completes,
    before any node that depends on it starts (the notebook digests outputs there);
    ``on_failure(node_id, exception)`` when a node fails, with what the node raised.
    Both run on the engine's threads and must not raise.

    Raises (at construction):
        WorkflowValidationError: bad parameters or missing required inputs.
    """

    def __init__(
        self,
        workflow: Workflow,
        parameters: dict[str, Any] | None,
        *,
        run_id: str,
        bus: EventBus,
        settings: EngineSettings,
        cached_outputs: Mapping[str, dict[str, Any]] | None = None,
        node_events: bool = True,
        copy_cached: bool = True,
        on_output: Callable[[str, dict[str, Any]], object] | None = None,
        on_failure: Callable[[str, BaseException], object] | None = None,
        guard: NodeGuard | None = None,
        executor: NodeExecutor | None = None,
    ) -> None:
        if not isinstance(workflow, Workflow):
            raise TypeError(
                f"expected a built Workflow, got {type(workflow).__name__}; call "
                "WorkflowBuilder.build() first"
            )
        plan: ExecutionPlan = workflow.plan
        self.workflow = workflow
        self.plan = plan
        self.run_id = run_id
        self.settings = settings
        self.by_node, self.flat_by_node = plan.split_parameters(parameters)
        plan.check_required(self.by_node, self.flat_by_node)
        self.results: dict[str, dict[str, Any]] = {}
        self.skipped: set[str] = set()
        self.fed_back: dict[str, dict[str, Any]] = {}
        #: Outputs of cycle members skipped in a later iteration, from the last one
        #: they ran in (the cycle restores them if the loop ends there).
        self.earlier_cycle_outputs: dict[str, dict[str, Any]] = {}
        self.failure: tuple[str, BaseException] | None = None
        #: The error of the limit that stopped the run (``kailash_nb.runtime.limits``).
        self.limit_error: errors.WorkflowExecutionError | None = None
        #: Set (from any thread) by a limit's watcher through ``interrupt``.
        self.interrupted: errors.WorkflowExecutionError | None = None
        self.limits = settings.limits
        #: Nodes executing now, with their start time and cycle iteration (async path).
        self._running: dict[str, tuple[float, int | None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Every node that failed, in order (those that stopped the run included).
        self.failed_nodes: list[NodeFailure] = []
        #: ``running`` until the run ends, then its final status.
        self.status = "running"
        #: ``"ErrorType: message"`` of a run that did not complete.
        self.error: str | None = None
        self.bus = bus
        self.parameters = parameters
        self.emitting = node_events and bus.wants_node_events
        #: Listen for the steps nodes report (``kailash_nb.nodes.steps``) only when wanted.
        self.stepping = node_events and bus.wants_step_events
        self.run_events = bus.wants_run_events
        self.timeline: list[NodeTiming] | None = [] if bus.wants_timeline else None
        # Converts perf_counter readings to wall-clock time without a clock call per node.
        self._wall_offset = time.time() - time.perf_counter()
        self.executor = IN_PROCESS if executor is None else executor
        self.inline = (
            plan.sequential and not settings.needs_loop_always and self.executor.allows_inline
        )
        self._thread_limiter: anyio.CapacityLimiter | None = None
        self.on_output = on_output
        self.on_failure = on_failure
        self.guard = guard
        self.cached = self._check_cached(cached_outputs, copy_cached)
        self._node_limiter: anyio.CapacityLimiter | None = None
        self._task_group: Any = None
        self._in_flight = 0

    # -- drivers ----------------------------------------------------------------------
    def run_inline(self) -> dict[str, dict[str, Any]]:
        """Run a sequential workflow in the calling thread; no event loop needed.

        Like ``run_async``, it runs inside ``log_context(run_id=...)``: every record an
        ``EnterpriseLogger`` writes during the run carries the run id."""
        if not self.inline:
            raise errors.RuntimeExecutionError(
                "internal: run_inline() called for a workflow that needs the event loop"
            )
        logged = set_log_context(run_id=self.run_id)
        try:
            return self._execute_inline()
        finally:
            reset_log_context(logged)

    async def run_async(self) -> dict[str, dict[str, Any]]:
        """Run the workflow on the current event loop, concurrently where possible."""
        logged = set_log_context(run_id=self.run_id)
        try:
            # The run's tasks and worker threads (anyio.to_thread) copy the context.
            return await self._execute_async()
        finally:
            reset_log_context(logged)

    def _execute_inline(self) -> dict[str, dict[str, Any]]:
        started = self._run_started()
        unwatch = self._watch_limits()
        try:
            self._run_sequentially()
        except BaseException as exc:
            self._run_abandoned(started, exc)
            raise
        finally:
            for stop_watching in unwatch:
                stop_watching()
        return self._run_finished(started)

    async def _execute_async(self) -> dict[str, dict[str, Any]]:
        started = self._run_started()
        unwatch = self._watch_limits()
        try:
            if self.inline:
                self._run_sequentially()
            else:
                await self._run_concurrently(started)
                await self.executor.collect(self)
        except BaseException as exc:
            self._run_abandoned(started, exc)
            raise
        finally:
            for stop_watching in unwatch:
                stop_watching()
        return self._run_finished(started)

    async def _run_concurrently(self, started: float) -> None:
        if self.settings.max_concurrent_nodes:
            self._node_limiter = anyio.CapacityLimiter(self.settings.max_concurrent_nodes)
        timeout = self.settings.workflow_timeout
        try:
            with anyio.fail_after(timeout):
                async with anyio.create_task_group() as task_group:
                    self._task_group = task_group
                    if self.limits:
                        self._loop = _asyncio_loop()
                    for index in self.plan.roots:
                        self._start_unit(index)
        except TimeoutError:
            with anyio.CancelScope(shield=True):
                await self.executor.collect(self)
            error = errors.WorkflowTimeoutError(
                f"workflow {self.workflow.name!r} exceeded workflow_timeout={timeout}s and was "
                "cancelled",
                results=dict(self.results),
                run_id=self.run_id,
            )
            self._end("timeout", started, error)
            raise error from None

    # -- limits (kailash_nb.runtime.limits) ------------------------------------------------
    def _watch_limits(self) -> list[Callable[[], object]]:
        return [limit.watch(self) for limit in self.limits] if self.limits else []

    def interrupt(self, error: errors.WorkflowExecutionError) -> None:
        """Stop the run with a limit's ``error``; callable from any thread (a limit's
        watcher). The run stops at its next check, when the node running returns, or at
        once when it runs on an asyncio loop and its nodes are awaiting or in worker
        threads (they are cancelled, their outputs discarded)."""
        if self.interrupted is not None:
            return
        self.interrupted = error
        loop = self._loop
        if loop is not None:
            # A closed loop (RuntimeError) means the run is over.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stop_interrupted)

    def _stop_interrupted(self) -> None:
        """On the run's loop: stop the run for ``interrupted`` if nodes still run."""
        if self.status == "running" and self._running and self.interrupted is not None:
            self._limit_stop(self.interrupted)

    def _over_limit(self) -> errors.WorkflowExecutionError | None:
        if self.interrupted is not None:
            return self.interrupted
        for limit in self.limits:
            error = limit.exceeded()
            if error is not None:
                return error
        return None

    def _limit_stop(
        self,
        error: errors.WorkflowExecutionError,
        node: tuple[str, tuple[float | None, int | None]] | None = None,
    ) -> None:
        """Stop the run with a limit's ``error``: ``node`` (id, (start, iteration); the
        one about to start or just finished) and every node still running fail with it;
        the running ones are cancelled and their outputs discarded."""
        if self.failure is None:
            self.limit_error = error
        now = time.perf_counter()
        nodes = [] if node is None else [node]
        nodes += self._running.items()
        self._running = {}
        for node_id, (started, iteration) in nodes:
            duration = None if started is None else now - started
            if self.emitting:
                self._emit_node(node_id, "failed", duration, error=error, iteration=iteration)
            if self.timeline is not None:
                self._record(node_id, "failed", duration or 0.0, error, iteration)
            self._stop(node_id, error)
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    def outcome(self) -> RunOutcome:
        """How the run ended (call it once the run is over)."""
        return RunOutcome(
            run_id=self.run_id,
            status=self.status,
            results=self.results,
            error=self.error,
            failed_nodes=tuple(self.failed_nodes),
            stopped_at=None if self.failure is None else self.failure[0],
        )

    def _run_sequentially(self) -> None:
        for unit in self.plan.units:
            if isinstance(unit, CycleUnit):
                self._run_cycle_inline(unit)
            else:
                self._run_node_inline(unit)
            if self.failure is not None:
                return

    # -- concurrent scheduling ----------------------------------------------------------
    def _start_unit(self, index: int) -> None:
        self._in_flight += 1
        self._queued(index)
        self._task_group.start_soon(self._unit_worker, index)

    async def _unit_worker(self, index: int | None) -> None:
        try:
            while index is not None:
                if self._node_limiter is not None:
                    async with self._node_limiter:
                        await self._run_unit(index)
                else:
                    await self._run_unit(index)
                if self.failure is not None:
                    self._task_group.cancel_scope.cancel()
                    return
                ready = self._unit_done(index)
                index = None
                if ready:
                    for other in ready[1:]:
                        self._start_unit(other)
                    index = ready[0]
                    self._queued(index)
        finally:
            self._in_flight -= 1

    def _unit_done(self, index: int) -> list[int]:
        ready = []
        counts = self._remaining
        for successor in self.plan.successors[index]:
            counts[successor] -= 1
            if counts[successor] == 0:
                ready.append(successor)
        return ready

    @functools.cached_property
    def _remaining(self) -> list[int]:
        return list(self.plan.predecessor_counts)

    async def _run_unit(self, index: int) -> None:
        unit = self.plan.units[index]
        if isinstance(unit, CycleUnit):
            await self._run_cycle(unit)
        else:
            await self._run_node(unit)

    # -- one node ---------------------------------------------------------------------
    def _inputs_to_run(self, node_id: str, iteration: int | None) -> dict[str, Any] | None:
        """The node's inputs, or ``None`` when it ends without running: its cached
        outputs are reused, its branch was not taken (skipped) or an input is missing
        (the run stops)."""
        if self.cached and node_id in self.cached:
            self._use_cached(node_id)
            return None
        kwargs = self._inputs_or_stop(node_id, iteration)
        if kwargs is _SKIP:
            self._skip(node_id, iteration)
            return None
        if self.guard is not None:
            refusal = self.guard.check_node(node_id)
            if refusal is not None:
                self._refused(node_id, refusal, iteration)
                return None
        if self.interrupted is not None:
            self._limit_stop(self.interrupted, (node_id, (None, iteration)))
            return None
        return kwargs

    def _refused(self, node_id: str, exc: BaseException, iteration: int | None) -> None:
        """The guard refused ``node_id``: it fails and the run stops there."""
        if self.emitting:
            self._emit_node(node_id, "failed", 0.0, error=exc, iteration=iteration)
        if self.timeline is not None:
            self._record(node_id, "failed", 0.0, exc, iteration)
        self._stop(node_id, exc)

    def _run_node_inline(self, node_id: str, iteration: int | None = None) -> None:
        emitting = self.emitting
        if emitting:
            self._emit_node(node_id, "queued", iteration=iteration)
        kwargs = self._inputs_to_run(node_id, iteration)
        if kwargs is None:
            return
        node = self.plan.nodes[node_id]
        if emitting:
            self._emit_node(node_id, "started", iteration=iteration)
        timing = emitting or self.timeline is not None
        started = time.perf_counter() if timing else 0.0
        try:
            if self.stepping:
                with self._reporting_steps(node_id, iteration):
                    outputs = node.run_with(node.merge_inputs(kwargs))
            else:
                outputs = node.run_with(node.merge_inputs(kwargs))
        except Exception as exc:
            self._node_failed(node_id, exc, started, iteration)
            return
        if self.limits:
            exceeded = self._over_limit()
            if exceeded is not None:
                self._limit_stop(exceeded, (node_id, (started or None, iteration)))
                return
        self.results[node_id] = outputs
        if self.on_output is not None and iteration is None:
            self.on_output(node_id, outputs)
        if timing:
            duration = time.perf_counter() - started
            if emitting:
                self._emit_node(node_id, "completed", duration, iteration=iteration)
            timeline = self.timeline
            if timeline is not None:
                # _node_completed/_record spelled out: this runs once per node per run,
                # and run history's overhead budget is a few microseconds per run.
                now = started + duration + self._wall_offset
                timeline.append(
                    make_timing(
                        (node_id, "completed", now - duration, now, duration, None, iteration)
                    )
                )

    async def _run_node(self, node_id: str, iteration: int | None = None) -> None:
        if self.emitting and iteration is not None:
            # Cycle members are queued per iteration; other nodes when their unit is.
            self._emit_node(node_id, "queued", iteration=iteration)
        kwargs = self._inputs_to_run(node_id, iteration)
        if kwargs is None:
            return
        options = self.plan.options.get(node_id)
        timeout, retries = self.settings.attempts(options)
        delay = options.retry_delay if options else 0.1
        attempt = 0
        while True:
            if self.emitting:
                self._emit_node(node_id, "started", iteration=iteration)
            started = time.perf_counter()
            self._running[node_id] = (started, iteration)
            try:
                if self.stepping:
                    with self._reporting_steps(node_id, iteration):
                        outputs = await self.executor.attempt(self, node_id, kwargs, timeout)
                else:
                    outputs = await self.executor.attempt(self, node_id, kwargs, timeout)
            except Exception as exc:
                if self._running.pop(node_id, None) is None:
                    return  # a limit stopped the run meanwhile and failed the node
                if attempt < retries:
                    attempt += 1
                    if self.emitting:
                        self._emit_node(node_id, "retrying", error=exc, iteration=iteration)
                    await anyio.sleep(delay * 2 ** (attempt - 1))
                    continue
                self._node_failed(node_id, exc, started, iteration)
                return
            except BaseException:
                self._running.pop(node_id, None)
                raise
            if self._running.pop(node_id, None) is None:
                return  # a limit stopped the run meanwhile: the outputs are discarded
            if self.limits:
                exceeded = self._over_limit()
                if exceeded is not None:
                    self._limit_stop(exceeded, (node_id, (started, iteration)))
                    return
            self.results[node_id] = outputs
            if self.on_output is not None and iteration is None:
                self.on_output(node_id, await self.executor.outputs_of(self, node_id))
            self._node_completed(node_id, time.perf_counter() - started, iteration)
            return

    @property
    def in_flight(self) -> int:
        """Units of this run started and not yet finished (async path)."""
        return self._in_flight

    def threads(self) -> anyio.CapacityLimiter:
        """The run's limiter of worker threads for synchronous nodes."""
        if self._thread_limiter is None:
            self._thread_limiter = anyio.CapacityLimiter(self.settings.max_worker_threads)
        return self._thread_limiter

    def _inputs_or_stop(self, node_id: str, iteration: int | None) -> Any:
        """The node's inputs, ``_SKIP``, or ``None`` after stopping the run on a wiring
        error (an output the source did not produce)."""
        try:
            return self._inputs_for(node_id, iteration)
        except errors.ConnectionError as exc:
            self._stop(node_id, exc)
            return None

    def _stop(self, node_id: str, exc: BaseException, *, recorded: bool = False) -> None:
        """Stop the run at ``node_id`` (the first stop wins); ``recorded``: the node is
        already in ``failed_nodes``."""
        if not recorded:
            self.failed_nodes.append(
                NodeFailure(
                    node_id,
                    type(exc).__name__,
                    self._scrubbed(exc, node_id),
                    exc,
                    isinstance(exc, ServiceUnavailableError),
                )
            )
        if self.failure is None:
            self.failure = (node_id, exc)

    def _inputs_for(self, node_id: str, iteration: int | None) -> Any:
        flat = self.flat_by_node.get(node_id)
        kwargs = dict(flat) if flat else {}
        sources = self.plan.inputs[node_id]
        if sources:
            results = self.results
            skipped = self.skipped
            branching = self.plan.is_branching
            read_output = self.executor.read_output
            only_branch_nones = True
            for name, connections in sources:
                value = MISSING
                for connection in connections:
                    source = connection.source_node
                    outputs = results.get(source)
                    if outputs is None:
                        item = None
                    else:
                        item = read_output(outputs, connection)
                        if item is MISSING:
                            raise errors.ConnectionError(
                                f"connection {connection}: node {source!r} produced no output "
                                f"{connection.source_output!r}; its outputs are {sorted(outputs)}"
                            )
                    if item is not None:
                        only_branch_nones = False
                        value = item
                    else:
                        if not (branching[source] or source in skipped):
                            only_branch_nones = False
                        if value is MISSING:
                            value = None
                kwargs[name] = value
            if only_branch_nones:
                return _SKIP
        own = self.by_node.get(node_id)
        if own:
            kwargs.update(own)
        if iteration is not None and iteration > 1:
            fed = self.fed_back.get(node_id)
            if fed:
                kwargs.update(fed)
        return kwargs

    def _check_cached(
        self, cached_outputs: Mapping[str, dict[str, Any]] | None, copy_cached: bool
    ) -> dict[str, dict[str, Any]]:
        if not cached_outputs:
            return {}
        in_cycles = {
            member
            for unit in self.plan.units
            if isinstance(unit, CycleUnit)
            for member in unit.members
        }
        for node_id, outputs in cached_outputs.items():
            if node_id not in self.plan.nodes:
                raise errors.WorkflowValidationError(
                    f"cached output given for unknown node {node_id!r}"
                )
            if node_id in in_cycles:
                raise errors.WorkflowValidationError(
                    f"node {node_id!r} is inside a cycle, whose nodes always execute; do not "
                    "pass a cached output for it"
                )
            if not isinstance(outputs, dict):
                raise errors.WorkflowValidationError(
                    f"cached output of node {node_id!r} must be a dict, got "
                    f"{type(outputs).__name__}"
                )
        if not copy_cached:
            return dict(cached_outputs)
        copies = {}
        for node_id, outputs in cached_outputs.items():
            try:
                copies[node_id] = copy.deepcopy(outputs)
            except Exception as exc:
                raise errors.WorkflowValidationError(
                    f"cached output of node {node_id!r} cannot be copied "
                    f"({type(exc).__name__}: {exc}); leave the node out of cached_outputs, or "
                    "pass copy_cached=False and make sure no node changes it"
                ) from exc
        return copies

    def _use_cached(self, node_id: str) -> None:
        self.results[node_id] = self.cached[node_id]
        if self.emitting:
            self._emit_node(node_id, "cached", 0.0)
        if self.timeline is not None:
            self._record(node_id, "cached", 0.0, None, None)

    def _skip(self, node_id: str, iteration: int | None) -> None:
        self.skipped.add(node_id)
        earlier = self.results.pop(node_id, None)
        if earlier is not None and iteration is not None:
            self.earlier_cycle_outputs[node_id] = earlier
        if self.emitting:
            self._emit_node(node_id, "skipped", iteration=iteration)
        if self.timeline is not None:
            self._record(node_id, "skipped", 0.0, None, iteration)

    def _node_completed(self, node_id: str, duration: float, iteration: int | None) -> None:
        if self.emitting:
            self._emit_node(node_id, "completed", duration, iteration=iteration)
        if self.timeline is not None:
            self._record(node_id, "completed", duration, None, iteration)

    def _record(
        self,
        node_id: str,
        state: str,
        duration: float,
        error: BaseException | None,
        iteration: int | None,
    ) -> None:
        now = time.perf_counter() + self._wall_offset
        self.timeline.append(  # type: ignore[union-attr]
            make_timing(
                (
                    node_id,
                    state,
                    now - duration,
                    now,
                    duration,
                    # Scrubbed here, once per failure, not per emitted timeline (WF-13).
                    None if error is None else self._scrubbed(describe_node_error(error), node_id),
                    iteration,
                )
            )
        )

    def _node_failed(
        self, node_id: str, exc: Exception, started: float, iteration: int | None
    ) -> None:
        duration = time.perf_counter() - started if started else None
        if self.emitting:
            self._emit_node(node_id, "failed", duration, error=exc, iteration=iteration)
        if self.timeline is not None:
            self._record(node_id, "failed", duration or 0.0, exc, iteration)
        raised = raised_by_node(exc)
        if self.on_failure is not None:
            self.on_failure(node_id, raised)
        error_type = type(raised).__name__
        self.failed_nodes.append(
            NodeFailure(
                node_id,
                error_type,
                self._scrubbed(raised, node_id),
                raised,
                isinstance(raised, ServiceUnavailableError),
            )
        )
        if self.plan.has_dependents[node_id]:
            self._stop(node_id, exc, recorded=True)
            return
        self.results[node_id] = {"error": str(exc), "error_type": error_type, "failed": True}


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop (``None`` under another anyio backend)."""
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
