"""``DaskExecutor``: the engine's node attempts as tasks on a dask.distributed cluster.

Each attempt is one ``client.submit`` of :func:`~kailash_nb.runtime._dask_task.run_node`
with a key of its own. The inputs the engine resolved to plain values (config,
parameters, cached outputs) travel with the task; a connected input travels as the
*future* of its source's task, so dask moves the value from the worker that made it to
the worker that consumes it, never through the client. Dependents the engine cannot
decide differently about are submitted ahead, as soon as their sources are submitted,
and adopted when the engine reaches them (``_dask_ahead``).

What the engine sees of a node's outputs, and when:

- always, the node's *manifest*: for each connection leaving the node, whether it
  reads ``None``, a value, nothing (a missing key) or a wiring error. It arrives with
  the task's ``done`` event, so it costs no extra round trip. ``None`` precedence,
  branch skips after a ``SwitchNode`` and a cycle's own exit need nothing more;
- a cycle's members' outputs, after each iteration, when the cycle has a
  ``converge_when`` condition (it is evaluated on their values);
- a node's outputs when the caller passed ``on_output``;
- every result, gathered once when the run ends (the caller gets values, as from
  ``LocalRuntime``), including the partial results of a failed or timed-out run.

Events come back through the scheduler's event topics: the worker logs ``done`` on
the runtime's topic (``Worker.log_event``) and the client's ``subscribe_topic``
handler wakes the attempt waiting for it. That channel rides the batched
worker-scheduler and scheduler-client streams dask already keeps open, needs no extra
connection or polling, and is ordered before the task's own completion on the same
stream. Steps a node reports (``report_step``) travel the same way, while someone
watches steps, and are published through the engine's step reporter of that node
(which scrubs them). The engine itself publishes ``queued``/``started``/``completed``/``failed`` as
the attempts go (``started`` when the task is submitted). A task dask hands to another
worker after its worker was lost is reported by a scheduler plugin
(``RestartReporter``, registered once per cluster) and published as a ``retrying``
node event followed by ``started``. A failed task wakes its attempt through the
future's done callback, with the exception the node raised on the worker.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from kailash_nb import sdk_exceptions as errors
from kailash_nb.logging import context_fields
from kailash_nb.nodes.steps import StepReceiver, current_step_receiver
from kailash_nb.runtime._dask_ahead import AheadPlan, RunAhead, Submitted, clean_source
from kailash_nb.runtime._dask_task import ABSENT, NONE, RESTART_TOPIC, RestartReporter, run_node
from kailash_nb.runtime._node_executor import NodeExecutor, timed_out
from kailash_nb.workflow.connection import MISSING, Connection, read_output

if TYPE_CHECKING:
    from distributed import Client, Future

    from kailash_nb.runtime.engine import WorkflowRun
    from kailash_nb.workflow.plan import ExecutionPlan

__all__ = ["DaskExecutor", "RemoteItem", "RemoteOutputs"]


class RemoteOutputs:
    """A node's outputs held on the worker that made them: its task's future, the
    manifest of its outgoing connections and the outputs' keys (iterating it yields
    them, as iterating the outputs would)."""

    __slots__ = ("future", "keys", "manifest", "value")

    def __init__(
        self, future: Future, manifest: dict[Connection, int | str], keys: list[str]
    ) -> None:
        self.future = future
        self.manifest = manifest
        self.keys = keys
        #: The outputs once fetched to the client (for ``on_output``), else ``None``.
        self.value: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def read(self, connection: Connection) -> Any:
        """``connection``'s value as the engine sees it: ``None``, ``MISSING`` or a
        :class:`RemoteItem` standing for the value on the worker.

        Raises:
            ConnectionError: reading the path walks into something not a dict.
        """
        entry = self.manifest[connection]
        if entry == NONE:
            return None
        if entry == ABSENT:
            return MISSING
        if isinstance(entry, str):
            raise errors.ConnectionError(entry)
        return RemoteItem(self.future, connection)


class RemoteItem:
    """One connection's value, still inside its source's outputs on a worker."""

    __slots__ = ("connection", "future")

    def __init__(self, future: Future, connection: Connection) -> None:
        self.future = future
        self.connection = connection


class _Attempt:
    """The client's side of one submitted task: what wakes the engine waiting for it."""

    __slots__ = ("adopted", "done", "loop", "node_id", "receiver", "run", "steps")

    def __init__(self, loop: asyncio.AbstractEventLoop, run: WorkflowRun, node_id: str) -> None:
        self.loop = loop
        self.run = run
        self.node_id = node_id
        self.done: asyncio.Future[tuple[list[int | str], list[str]]] = loop.create_future()
        #: The engine waits for this task (not only submitted ahead).
        self.adopted = True
        #: Where the steps the node reports go: the step reporter of the engine's
        #: execution of the node, which scrubs and publishes them (set on adoption).
        self.receiver: StepReceiver | None = None
        #: Steps reported before the engine adopted the task.
        self.steps: list[tuple[str, dict[str, Any]]] = []

    def adopt(self) -> None:
        """On the engine's loop, inside the node's execution: the engine waits for this
        task now; pass on the steps it reported so far."""
        self.adopted = True
        self.receiver = current_step_receiver()
        if self.receiver is not None:
            for step, detail in self.steps:
                self.receiver(step, detail)
        self.steps.clear()

    def step(self, step: str, detail: dict[str, Any]) -> None:
        """On the engine's loop: the node reported ``step`` on its worker."""
        if self.receiver is not None:
            self.receiver(step, detail)
        elif not self.adopted:
            self.steps.append((step, detail))

    def settle(self, message: dict[str, Any] | None, error: BaseException | None) -> None:
        """On the engine's loop: the task ended, with its ``done`` message or its
        ``error`` (the first word wins)."""
        if self.done.done():
            return
        if message is None:
            self.done.set_exception(error or RuntimeError("internal: no outcome"))
        else:
            self.done.set_result((message["manifest"], message["keys"]))

    def restarted(self, worker: str | None) -> None:
        """On the engine's loop: dask re-runs the task, its worker having been lost."""
        run = self.run
        if run.emitting and self.adopted and not self.done.done():
            lost = errors.NodeExecutionError(
                f"the dask worker running node {self.node_id!r} was lost; dask runs it again "
                f"on {worker}"
            )
            run._emit_node(self.node_id, "retrying", error=lost)
            run._emit_node(self.node_id, "started")


class DaskExecutor(NodeExecutor):
    """Runs node attempts as tasks of ``client``'s cluster (see the module docstring).

    ``close()`` stops listening on the event topic; the client stays the caller's.
    """

    allows_inline = False

    def __init__(self, client: Client) -> None:
        self.client = client
        self.topic = f"kailash_nb-{uuid.uuid4().hex}"
        # Task keys: the node id, this executor's random prefix and a counter (one
        # uuid4 per task costs a getrandom call, noticeable per node).
        self._keys = itertools.count()
        self._key_prefix = uuid.uuid4().hex[:16]
        self._attempts: dict[str, _Attempt] = {}
        self._outgoing: weakref.WeakKeyDictionary[ExecutionPlan, dict[str, tuple[Connection, ...]]]
        self._outgoing = weakref.WeakKeyDictionary()
        self._ahead_plans: weakref.WeakKeyDictionary[ExecutionPlan, AheadPlan]
        self._ahead_plans = weakref.WeakKeyDictionary()
        #: Each run's tasks in flight (dropped when the run ends or is collected).
        self._runs: weakref.WeakKeyDictionary[WorkflowRun, RunAhead] = weakref.WeakKeyDictionary()
        client.subscribe_topic(self.topic, self._on_event)
        client.subscribe_topic(RESTART_TOPIC, self._on_event)
        client.register_plugin(RestartReporter(), name=RestartReporter.name)

    def close(self) -> None:
        """Stop receiving the workers' events (idempotent)."""
        import contextlib

        with contextlib.suppress(Exception):  # the client may be closed already
            self.client.unsubscribe_topic(self.topic)
        # The restart topic is shared by every runtime of the client; its handler
        # ignores keys of attempts it does not know, so it can stay.

    # -- events (on the client's loop) --------------------------------------------------
    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        message = event[1]
        attempt = self._attempts.get(message.get("key"))  # type: ignore[arg-type]
        if attempt is None:
            return  # an attempt the engine stopped waiting for
        if message["kind"] == "done":
            attempt.loop.call_soon_threadsafe(attempt.settle, message, None)
        elif message["kind"] == "step":
            attempt.loop.call_soon_threadsafe(attempt.step, message["step"], message["detail"])
        elif message["kind"] == "restarted":
            attempt.loop.call_soon_threadsafe(attempt.restarted, message.get("worker"))

    def _on_finished(self, future: Future) -> None:
        """A task ended (on dask's callback thread): wake its attempt if it failed."""
        attempt = self._attempts.get(future.key)
        if attempt is None or future.status == "finished":
            return  # success is reported by the task's "done" event, with its manifest
        try:
            error = future.exception()
        except BaseException as exc:  # cancelled, or its data lost with no way to redo it
            error = exc
        if error is None:
            error = errors.NodeExecutionError(
                f"node {attempt.node_id!r}: its dask task ended {future.status!r}"
            )
        attempt.loop.call_soon_threadsafe(attempt.settle, None, error)

    # -- the engine's hooks ---------------------------------------------------------------
    def read_output(self, outputs: Any, connection: Connection) -> Any:
        """See :meth:`NodeExecutor.read_output`; remote outputs answer from their
        manifest."""
        if type(outputs) is RemoteOutputs:
            return outputs.read(connection)
        return read_output(outputs, connection)

    async def attempt(
        self, run: WorkflowRun, node_id: str, kwargs: dict[str, Any], timeout: float | None
    ) -> Any:
        """Submit ``node_id`` as a task (or adopt the one submitted ahead with the same
        inputs, see ``_dask_ahead``), submit what may go ahead of it, and wait for its
        ``done`` event (or its failure); return a :class:`RemoteOutputs`. See
        :meth:`NodeExecutor.attempt`."""
        state = self._run_state(run)
        submitted = state.ahead.pop(node_id, None)
        if submitted is not None and self._same_inputs(run, kwargs, submitted.kwargs):
            key, future = submitted.key, submitted.future
            attempt = self._attempts[key]
        else:
            if submitted is not None:
                self._attempts.pop(submitted.key, None)
            key, future, attempt = self._submit(run, node_id, kwargs, adopted=True)
            state.pending[node_id] = future
        attempt.adopt()
        if state.enabled:
            self._submit_ahead(run, state, node_id)
        node = run.plan.nodes[node_id]
        try:
            try:
                with anyio.fail_after(timeout):
                    entries, keys = await attempt.done
            except TimeoutError:
                if timeout is None:
                    raise
                raise timed_out(node, timeout) from None
        finally:
            self._attempts.pop(key, None)
            state.pending.pop(node_id, None)
        outgoing = self._outgoing_of(run.plan)[node_id]
        return RemoteOutputs(future, dict(zip(outgoing, entries, strict=True)), keys)

    def _submit(
        self, run: WorkflowRun, node_id: str, kwargs: dict[str, Any], *, adopted: bool
    ) -> tuple[str, Future, _Attempt]:
        """Submit one task running ``node_id`` with ``kwargs`` (remote items become
        dependencies on their sources' tasks)."""
        plain: dict[str, Any] = {}
        takes: dict[str, tuple[str, Connection]] = {}
        sources: dict[str, Future] = {}
        for name, value in kwargs.items():
            if type(value) is RemoteItem:
                source_key = value.future.key
                takes[name] = (source_key, value.connection)
                sources[source_key] = value.future
            else:
                plain[name] = value
        key = f"{node_id}-{self._key_prefix}{next(self._keys):x}"
        attempt = _Attempt(asyncio.get_running_loop(), run, node_id)
        attempt.adopted = adopted
        self._attempts[key] = attempt
        future = self.client.submit(
            run_node,
            self.topic,
            key,
            run.plan.nodes[node_id],
            plain,
            takes,
            sources,
            self._outgoing_of(run.plan)[node_id],
            run.stepping,
            # The context does not reach the worker: the ids go with the task.
            context_fields(),
            key=key,
            pure=False,
        )
        future.add_done_callback(self._on_finished)
        return key, future, attempt

    def _submit_ahead(self, run: WorkflowRun, state: RunAhead, node_id: str) -> None:
        """Submit the nodes downstream of ``node_id`` that may go ahead (see
        ``_dask_ahead``), and theirs in turn."""
        plan = self._ahead_plan(run.plan)
        results = run.results
        frontier = [node_id]
        while frontier:
            for target in plan.successors[frontier.pop()]:
                sources = plan.targets.get(target)
                if (
                    sources is None
                    or target in state.ahead
                    or target in state.pending
                    or target in results
                    or (run.cached and target in run.cached)
                ):
                    continue
                kwargs = self._inputs_ahead(run, state, plan, target, sources)
                if kwargs is None:
                    continue
                key, future, _ = self._submit(run, target, kwargs, adopted=False)
                state.pending[target] = future
                state.ahead[target] = Submitted(future, kwargs, key)
                frontier.append(target)

    def _inputs_ahead(
        self,
        run: WorkflowRun,
        state: RunAhead,
        plan: AheadPlan,
        node_id: str,
        sources: tuple[tuple[str, Connection], ...],
    ) -> dict[str, Any] | None:
        """``node_id``'s inputs as the engine will resolve them, or ``None`` when that is
        not known yet (a source not submitted, or one that may be retried)."""
        flat = run.flat_by_node.get(node_id)
        kwargs = dict(flat) if flat else {}
        for name, connection in sources:
            source = connection.source_node
            outputs = run.results.get(source)
            if outputs is not None:
                try:
                    item = self.read_output(outputs, connection)
                except errors.ConnectionError:
                    return None
                if item is MISSING:
                    return None
            elif source in state.pending and clean_source(run, source, plan):
                item = RemoteItem(state.pending[source], connection)
            else:
                return None
            kwargs[name] = item
        own = run.by_node.get(node_id)
        if own:
            kwargs.update(own)
        return kwargs

    @staticmethod
    def _same_inputs(run: WorkflowRun, engine: dict[str, Any], ahead: dict[str, Any]) -> bool:
        """True when the inputs the engine resolved are those the task submitted ahead
        was given: the same objects, the same source task and connection, or ``None``
        where the source's manifest says the connection reads ``None``."""
        if engine.keys() != ahead.keys():
            return False
        for name, value in engine.items():
            given = ahead[name]
            if value is given:
                continue
            if type(given) is not RemoteItem:
                return False
            if type(value) is RemoteItem:
                if value.future.key != given.future.key or value.connection != given.connection:
                    return False
                continue
            outputs = run.results.get(given.connection.source_node)
            if not (
                value is None
                and type(outputs) is RemoteOutputs
                and outputs.manifest.get(given.connection) == NONE
            ):
                return False
        return True

    def _run_state(self, run: WorkflowRun) -> RunAhead:
        state = self._runs.get(run)
        if state is None:
            state = RunAhead()
            state.enabled = run.guard is None and not run.settings.max_concurrent_nodes
            self._runs[run] = state
        return state

    def _ahead_plan(self, plan: ExecutionPlan) -> AheadPlan:
        known = self._ahead_plans.get(plan)
        if known is None:
            known = self._ahead_plans[plan] = AheadPlan(plan, self._outgoing_of(plan))
        return known

    async def fetch(self, run: WorkflowRun, node_ids: Iterable[str]) -> None:
        """Gather the outputs of ``node_ids`` into ``run.results`` (a worker thread
        waits for them; the engine's loop keeps running)."""
        results = run.results
        remote = []
        for node_id in node_ids:
            held = results.get(node_id)
            if type(held) is RemoteOutputs:
                if held.value is None:
                    remote.append(node_id)
                else:
                    results[node_id] = held.value
        if not remote:
            return
        futures = [results[node_id].future for node_id in remote]
        values = await anyio.to_thread.run_sync(self.client.gather, futures)
        for node_id, value in zip(remote, values, strict=True):
            results[node_id] = value

    async def outputs_of(self, run: WorkflowRun, node_id: str) -> Any:
        """``node_id``'s outputs fetched from its worker (a worker thread waits), kept
        for the end of the run; its dependents still read them on the workers."""
        held = run.results[node_id]
        if type(held) is not RemoteOutputs:
            return held
        if held.value is None:
            held.value = await anyio.to_thread.run_sync(held.future.result)
        return held.value

    async def collect(self, run: WorkflowRun) -> None:
        """Release the tasks submitted ahead that the engine did not adopt, and gather
        every remote result of ``run`` (see :meth:`NodeExecutor.collect`)."""
        state = self._runs.pop(run, None)
        if state is not None:
            for key in state.release():
                self._attempts.pop(key, None)
        await self.fetch(run, list(run.results))

    def _outgoing_of(self, plan: ExecutionPlan) -> dict[str, tuple[Connection, ...]]:
        """The connections leaving each node of ``plan`` (cycle edges included: they are
        the connections of ``plan.cycle_inputs``)."""
        known = self._outgoing.get(plan)
        if known is not None:
            return known
        outgoing: dict[str, list[Connection]] = {node_id: [] for node_id in plan.nodes}
        seen: set[Connection] = set()
        groups = [*plan.inputs.values(), *plan.cycle_inputs.values()]
        for sources in groups:
            for _, connections in sources:
                for connection in connections:
                    if connection not in seen:
                        seen.add(connection)
                        outgoing[connection.source_node].append(connection)
        frozen = {node_id: tuple(connections) for node_id, connections in outgoing.items()}
        self._outgoing[plan] = frozen
        return frozen
