"""``LocalRuntime``: run workflows from ordinary (synchronous) code.

A thin front end over the engine: it validates options, assigns run ids, caps
concurrent runs and hands events to its bus. ``execute`` works in plain scripts and
inside a running event loop (a Jupyter kernel): workflows that need a loop run on a
shared background loop, sequential ones run right in the calling thread.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kailash_nb._loop_thread import run_blocking
from kailash_nb.runtime._admission import RunSlots
from kailash_nb.runtime._node_executor import NodeExecutor
from kailash_nb.runtime.engine import EngineSettings, WorkflowRun
from kailash_nb.runtime.events import EventBus
from kailash_nb.runtime.guard import NodeGuard
from kailash_nb.runtime.memory_limit import DEFAULT_CHECK_INTERVAL, MemoryLimit
from kailash_nb.runtime.outcome import RunOutcome
from kailash_nb.sdk_exceptions import RuntimeExecutionError, WorkflowExecutionError
from kailash_nb.workflow.graph import Workflow

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from kailash_nb.runtime._metrics_sink import MetricsSink

__all__ = ["CONDITIONAL_EXECUTION_MODES", "HISTORY_ENV", "LocalRuntime"]

#: The values ``conditional_execution`` accepts (Kailash's two modes).
CONDITIONAL_EXECUTION_MODES = ("skip_branches", "route_data")

#: Environment variable that turns run history on by default.
HISTORY_ENV = "KAILASH_NB_HISTORY"


# Kailash runtime options kailash_nb refuses, with what to do instead.
_REFUSED_OPTIONS = {
    "enable_monitoring": (
        "kailash_nb always publishes node and run events (with timings) on "
        "runtime.events; pass history=True to record runs in the run store, and "
        "enable_metrics=True to count them (runtime.get_metrics())"
    ),
}


def _refuse_options(runtime_name: str, options: dict[str, Any]) -> None:
    """Raise ``TypeError`` for the first of ``options``: a Kailash option kailash_nb
    refuses gets the reason and what to use instead."""
    for name in options:
        reason = _REFUSED_OPTIONS.get(name)
        if reason is not None:
            raise TypeError(f"{runtime_name} does not take Kailash's {name!r}: {reason}")
        raise TypeError(f"{runtime_name}() got an unexpected keyword argument {name!r}")


class LocalRuntime:
    """Execute workflows and return ``(results, run_id)``.

    Args:
        max_concurrent_workflows: runs executing at once through this runtime;
            further calls wait for a slot (``None``: no cap).
        max_concurrent_nodes: nodes of one run executing at once (``None``: no cap).
        workflow_timeout: seconds a run may take; then it is cancelled with
            ``WorkflowTimeoutError`` carrying the partial results.
        node_timeout: default seconds per node attempt (a node's own
            ``set_node_options(timeout=...)`` wins). A synchronous node that times
            out keeps its worker thread until it returns; its result is discarded.
        node_retries: default retries after a node failure, with exponential backoff
            starting at the node's ``retry_delay``.
        max_worker_threads: threads one run may use for synchronous nodes that run
            concurrently with other nodes.
        event_bus: bus to publish node and run events on (a new one by default);
            share one bus between runtimes to observe them together.
        history: record every run and its node timeline in the run store (default:
            the ``KAILASH_NB_HISTORY`` environment variable, ``1``/``true`` to enable).
        database_url: the store's URL for ``history`` (default:
            ``KAILASH_NB_DATABASE_URL`` or an SQLite file in the user's data directory).
        debug: set the ``kailash_nb`` logger to DEBUG (as Kailash's ``debug`` does).
        conditional_execution: what the results say about nodes on a branch a
            ``SwitchNode`` did not take (those nodes never run in either mode):
            ``"skip_branches"`` (the default) leaves them out of ``results``;
            ``"route_data"`` lists them with the value ``None``, as Kailash's
            ``route_data`` mode (Kailash's default) does.
        connection_validation: only ``"strict"``, what kailash_nb always does: every
            connection is checked when the workflow is built. Kailash's ``"warn"`` and
            ``"off"`` (run despite bad connections) are refused.
        enable_cycles: only ``True``, what kailash_nb always does: declared cycles
            iterate until a stop rule ends them. Kailash's ``False`` (run each cycle's
            nodes once, ignoring its edges) raises ``TypeError``; give the cycle
            ``max_iterations(1)`` instead.
        enable_async: only ``True``, what kailash_nb always does: async nodes run on
            the engine's event loop. Kailash's ``False`` raises ``TypeError``.
        memory_limit_mb: a ceiling (MiB) on this process's memory, measured as its
            resident set size (``/proc/self/statm``; elsewhere the peak from
            ``resource.getrusage``). It is read when each node finishes and, by a
            watcher thread, every ``memory_check_interval`` seconds while nodes run.
            Past it the run is stopped with ``MemoryLimitExceededError``: the nodes
            running fail with it and their outputs are discarded, nothing else starts,
            the run ends ``failed``. Nodes awaiting or in worker threads are cancelled
            at once; a synchronous node running in the caller's thread is stopped when
            it returns, and a thread cannot be killed, so a cancelled node's thread
            runs on until its node returns. A new run waits while the process is above
            the limit, at most ``workflow_timeout`` seconds (not at all without one),
            then fails at its first node if the process is still above it. ``None``:
            no limit. See ``kailash_nb.runtime.memory_limit``.
        memory_check_interval: seconds between memory readings while nodes run.
        enable_metrics: count runs, nodes and durations for :meth:`get_metrics` and
            as Prometheus collectors in ``metrics_registry`` (off: no cost).
        metrics_registry: the ``prometheus_client.CollectorRegistry`` to register the
            collectors in (default: one of this runtime's own, ``metrics_registry``).

    Kailash options with no counterpart raise ``TypeError`` saying what to use instead
    (``enable_monitoring``: node events are always published on ``events``, and
    ``history=True`` records runs); other unknown keyword arguments raise
    ``TypeError`` rather than being ignored.

    Usage::

        with LocalRuntime() as runtime:
            results, run_id = runtime.execute(workflow, parameters={"load": {"path": p}})
    """

    #: Executes the nodes of this runtime's runs (``None``: in this process).
    _node_executor: NodeExecutor | None = None

    def __init__(
        self,
        *,
        max_concurrent_workflows: int | None = None,
        max_concurrent_nodes: int | None = None,
        workflow_timeout: float | None = None,
        node_timeout: float | None = None,
        node_retries: int = 0,
        max_worker_threads: int = 16,
        event_bus: EventBus | None = None,
        history: bool | None = None,
        database_url: str | None = None,
        debug: bool = False,
        conditional_execution: str = "skip_branches",
        connection_validation: str = "strict",
        enable_cycles: bool = True,
        enable_async: bool = True,
        memory_limit_mb: float | None = None,
        memory_check_interval: float = DEFAULT_CHECK_INTERVAL,
        enable_metrics: bool = False,
        metrics_registry: CollectorRegistry | None = None,
        **unsupported: Any,
    ) -> None:
        _refuse_options(type(self).__name__, unsupported)
        if enable_async is not True:
            raise TypeError(
                f"{type(self).__name__}(enable_async={enable_async!r:.40}) is not supported: "
                "kailash_nb always runs async nodes on its event loop (synchronous nodes in "
                "worker threads); pass True or leave the option out"
            )
        if enable_cycles is not True:
            raise TypeError(
                f"{type(self).__name__}(enable_cycles={enable_cycles!r:.40}) is not supported: "
                "kailash_nb always runs declared cycles until a stop rule ends them; to run a "
                "cycle's nodes once, give the cycle max_iterations(1)"
            )
        if connection_validation != "strict":
            raise TypeError(
                f"{type(self).__name__}(connection_validation={connection_validation!r:.40}) is "
                "not supported: kailash_nb always validates connections strictly, when the "
                "workflow is built; pass 'strict' or leave the option out"
            )
        if conditional_execution not in CONDITIONAL_EXECUTION_MODES:
            raise RuntimeExecutionError(
                f"invalid runtime option: conditional_execution must be one of "
                f"{', '.join(map(repr, CONDITIONAL_EXECUTION_MODES))}, got "
                f"{conditional_execution!r:.80}"
            )
        self.conditional_execution = conditional_execution
        if not isinstance(enable_metrics, bool):
            raise RuntimeExecutionError(
                f"invalid runtime option: enable_metrics must be True or False, got "
                f"{enable_metrics!r:.80}"
            )
        if metrics_registry is not None and not enable_metrics:
            raise RuntimeExecutionError(
                "invalid runtime option: metrics_registry is given but enable_metrics is "
                "False; pass enable_metrics=True to register the runtime's metrics"
            )
        try:
            self._memory_limit = (
                None
                if memory_limit_mb is None
                else MemoryLimit(memory_limit_mb, check_interval=memory_check_interval)
            )
            self.settings = EngineSettings(
                max_concurrent_nodes=max_concurrent_nodes,
                workflow_timeout=workflow_timeout,
                node_timeout=node_timeout,
                node_retries=node_retries,
                max_worker_threads=max_worker_threads,
                limits=() if self._memory_limit is None else (self._memory_limit,),
            )
            self._slots = (
                None if max_concurrent_workflows is None else RunSlots(max_concurrent_workflows)
            )
        except ValueError as exc:
            raise RuntimeExecutionError(f"invalid runtime option: {exc}") from None
        self.events = event_bus if event_bus is not None else EventBus()
        self.debug = debug
        if debug:
            logging.getLogger("kailash_nb").setLevel(logging.DEBUG)
        self._closed = False
        if history is None:
            history = os.environ.get(HISTORY_ENV, "").strip().lower() in ("1", "true", "yes", "on")
        self._recorder = None
        if history:
            from kailash_nb.runtime.recorder import RunRecorder
            from kailash_nb.store.run_history import RunStore

            self._recorder = RunRecorder(RunStore(database_url), self.events)
        self._metrics: MetricsSink | None = None
        if enable_metrics:
            from kailash_nb.runtime._metrics_sink import MetricsSink

            try:
                self._metrics = MetricsSink(
                    self.events,
                    metrics_registry,
                    memory_limit_bytes=self.memory_limit_bytes,
                )
            except ValueError as exc:  # prometheus_client: the names are taken
                raise RuntimeExecutionError(
                    f"invalid runtime option: metrics_registry already holds this runtime's "
                    f"metric names ({exc}); give each runtime its own registry (the default)"
                ) from None

    @property
    def memory_limit_bytes(self) -> int | None:
        """The ``memory_limit_mb`` ceiling in bytes, or ``None``."""
        return None if self._memory_limit is None else self._memory_limit.limit_bytes

    @property
    def metrics_enabled(self) -> bool:
        """True when this runtime counts its runs (``enable_metrics=True``)."""
        return self._metrics is not None

    @property
    def metrics_registry(self) -> CollectorRegistry | None:
        """The Prometheus registry holding this runtime's collectors (``None`` when
        metrics are off); serve it with ``prometheus_client.generate_latest``."""
        return None if self._metrics is None else self._metrics.metrics.registry

    def get_metrics(self) -> dict[str, Any]:
        """Runs, nodes, durations and memory counted since this runtime was created::

            {"workflows": {"started", "completed", "failed", "timeout", "cancelled",
                           "in_flight", "memory_limit_stops"},
             "nodes": {"completed", "failed", "skipped", "cached"},
             "duration_seconds": {"count", "sum", "max", "mean"},
             "memory": {"rss_bytes", "peak_rss_bytes", "limit_bytes", "method"}}

        A run that ends with any failed node, or is stopped by the memory limit, counts
        as ``failed``, never ``completed``; ``started`` equals the four final counts
        plus ``in_flight``. ``nodes`` counts node executions by how they ended (each
        cycle iteration counts). Runs of every runtime sharing this one's event bus are
        counted.

        Raises:
            RuntimeExecutionError: metrics are off (create the runtime with
                ``enable_metrics=True``).
        """
        if self._metrics is None:
            raise RuntimeExecutionError(
                "metrics are off for this runtime; create it with enable_metrics=True"
            )
        return self._metrics.metrics.snapshot()

    @property
    def history_enabled(self) -> bool:
        """True when this runtime records its runs in the store."""
        return self._recorder is not None

    def history(self, limit: int = 20, status: str | None = None) -> list:
        """This store's most recent runs (``RunRecord`` objects), newest first.

        Waits for pending writes first, so a run that just returned is listed.

        Raises:
            RuntimeExecutionError: history is off for this runtime.
        """
        if self._recorder is None:
            raise RuntimeExecutionError(
                "run history is off for this runtime; create it with LocalRuntime(history=True) "
                f"or set {HISTORY_ENV}=1"
            )
        self._recorder.flush()
        return self._recorder.store.list_runs(limit=limit, status=status)

    def flush_history(self) -> None:
        """Wait until every finished run is written to the store (no-op without history)."""
        if self._recorder is not None:
            self._recorder.flush()

    @property
    def max_concurrent_workflows(self) -> int | None:
        """The cap on concurrent runs, or ``None``."""
        return self._slots.limit if self._slots else None

    def execute(
        self,
        workflow: Workflow,
        parameters: dict[str, Any] | None = None,
        *,
        cached_outputs: dict[str, dict[str, Any]] | None = None,
        run_id: str | None = None,
        node_events: bool = True,
        copy_cached: bool = True,
        on_output: Callable[[str, dict[str, Any]], object] | None = None,
        on_failure: Callable[[str, BaseException], object] | None = None,
        task_manager: None = None,
    ) -> tuple[dict[str, dict[str, Any]], str]:
        """Run ``workflow`` to completion and return ``(results, run_id)``.

        ``results`` maps every node that ran to its outputs; ``run_id`` is a uuid4
        unless the caller passes its own (a server that must know the id before the
        run starts). ``cached_outputs`` (``{node_id: outputs}``) are reused instead of
        executing those nodes (``cached`` events); the notebook layer decides what is
        fresh. The run uses deep copies of them, so no node can change the caller's
        objects (``copy_cached=False`` shares them, for a caller that verifies them
        before reuse). ``on_output(node_id, outputs)`` is called as each node outside a
        cycle completes, before its dependents start, and ``on_failure(node_id,
        exception)`` with what a failing node raised; both must not raise.
        ``node_events=False`` publishes only the run's own events (with their
        timeline): for a run that nobody can be watching node by node.
        ``task_manager`` is Kailash's, accepted only as ``None``: kailash_nb does not
        mirror ``kailash.tracking`` (``events`` and ``history=True`` do that job).

        Raises:
            TypeError: a ``task_manager`` other than ``None``.
            WorkflowValidationError: bad parameters or missing required inputs
                (before any node runs).
            WorkflowExecutionError: a node with dependents failed (partial results
                in ``err.results``); ``WorkflowTimeoutError`` past ``workflow_timeout``.
        """
        self._refuse_task_manager(task_manager)
        run = self._new_run(
            workflow,
            parameters,
            cached_outputs,
            run_id,
            node_events,
            copy_cached=copy_cached,
            on_output=on_output,
            on_failure=on_failure,
        )
        return self._routed(self._drive(run), run), run.run_id

    def _refuse_task_manager(self, task_manager: object) -> None:
        """Kailash's ``task_manager`` is accepted only as ``None`` (no kailash.tracking)."""
        if task_manager is not None:
            raise TypeError(
                f"{type(self).__name__}.execute(task_manager=...) is not supported: kailash_nb "
                "does not mirror kailash.tracking; node and run events are published on "
                "runtime.events, and history=True records runs in the run store"
            )

    def _drive(self, run: WorkflowRun) -> dict[str, dict[str, Any]]:
        """Run ``run`` to its end in a run slot; its results (raises as ``execute``)."""
        if self._slots is not None:
            self._slots.acquire()
        try:
            memory = self._memory_limit
            if memory is not None and not memory.wait_until_below(self.settings.workflow_timeout):
                self._interrupt_above_limit(run, memory)
            return run.run_inline() if run.inline else run_blocking(run.run_async())
        finally:
            if self._slots is not None:
                self._slots.release()

    @staticmethod
    def _interrupt_above_limit(run: WorkflowRun, memory: MemoryLimit) -> None:
        """The process stayed above the memory limit: ``run`` fails at its first node."""
        error = memory.exceeded()
        if error is not None:  # else the memory just went down: let the run go
            run.interrupt(error)

    def execute_outcome(
        self,
        workflow: Workflow,
        parameters: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
        node_events: bool = True,
        guard: NodeGuard | None = None,
    ) -> RunOutcome:
        """Run ``workflow`` like ``execute``, but return how it ended instead of raising
        for a failed node or a timeout: a ``RunOutcome`` whose ``status`` is
        ``completed`` only when no node failed (servers answer from it).

        ``guard`` is asked before each node executes (``kailash_nb.runtime.guard``; a
        gateway passes the run's access checks from ``AccessControlledRuntime.open_run``).

        Raises:
            WorkflowValidationError: bad parameters or missing required inputs
                (before any node runs; nothing was started).
        """
        run = self._new_run(workflow, parameters, None, run_id, node_events, guard=guard)
        return self._drive_outcome(run)

    def _drive_outcome(self, run: WorkflowRun) -> RunOutcome:
        """Run ``run`` to its end in a run slot; how it ended (raises only for an end
        the engine did not record)."""
        try:
            self._drive(run)
        except WorkflowExecutionError:
            if run.status == "running":
                raise  # not an end the engine recorded: let the caller see it
            # The run ended failed or timed out; its outcome says so.
        return run.outcome()

    async def execute_async(
        self,
        workflow: Workflow,
        parameters: dict[str, Any] | None = None,
        *,
        cached_outputs: dict[str, dict[str, Any]] | None = None,
        copy_cached: bool = True,
        on_output: Callable[[str, dict[str, Any]], object] | None = None,
        on_failure: Callable[[str, BaseException], object] | None = None,
    ) -> tuple[dict[str, dict[str, Any]], str]:
        """Run ``workflow`` on the current event loop; same contract as ``execute``."""
        run = self._new_run(
            workflow,
            parameters,
            cached_outputs,
            copy_cached=copy_cached,
            on_output=on_output,
            on_failure=on_failure,
        )
        return self._routed(await self._drive_async(run), run), run.run_id

    async def _drive_async(self, run: WorkflowRun) -> dict[str, dict[str, Any]]:
        """Run ``run`` on the current event loop in a run slot; its results."""
        if self._slots is not None:
            await self._slots.acquire_async()
        try:
            memory = self._memory_limit
            if memory is not None and not await memory.wait_until_below_async(
                self.settings.workflow_timeout
            ):
                self._interrupt_above_limit(run, memory)
            return await run.run_async()
        finally:
            if self._slots is not None:
                self._slots.release()

    def close(self) -> None:
        """Refuse further runs and write pending history. Started runs finish normally."""
        self._closed = True
        if self._recorder is not None:
            self._recorder.close()

    def __enter__(self) -> LocalRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> LocalRuntime:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def _routed(self, results: dict[str, Any], run: WorkflowRun) -> dict[str, Any]:
        """``results`` with the skipped nodes listed as ``None`` in ``route_data`` mode."""
        if self.conditional_execution == "route_data":
            for node_id in sorted(run.skipped):
                results.setdefault(node_id, None)
        return results

    def _new_run(
        self,
        workflow: Workflow,
        parameters: dict[str, Any] | None,
        cached_outputs: dict[str, dict[str, Any]] | None = None,
        run_id: str | None = None,
        node_events: bool = True,
        *,
        copy_cached: bool = True,
        on_output: Callable[[str, dict[str, Any]], object] | None = None,
        on_failure: Callable[[str, BaseException], object] | None = None,
        guard: NodeGuard | None = None,
    ) -> WorkflowRun:
        if self._closed:
            raise RuntimeExecutionError("this runtime is closed; create a new one")
        if run_id is not None and (not isinstance(run_id, str) or not 0 < len(run_id) <= 64):
            raise RuntimeExecutionError(
                f"run_id must be a string of 1-64 characters, got {run_id!r:.80}"
            )
        return WorkflowRun(
            workflow,
            parameters,
            run_id=run_id or str(uuid.uuid4()),
            bus=self.events,
            settings=self.settings,
            cached_outputs=cached_outputs,
            node_events=node_events,
            copy_cached=copy_cached,
            on_output=on_output,
            on_failure=on_failure,
            guard=guard,
            executor=self._node_executor,
        )
