"""``WorkflowSession``: one named notebook workflow, its node states and its cache.

The session keeps the node definitions made by cells, keeps their wiring up to date
after every change (see ``composition`` for the wiring rules; defining a node
recomputes only what touches it and its downstream, see ``incremental``), runs the
workflow through ``LocalRuntime`` reusing the cached outputs of unchanged nodes, and
tracks each node's state from the runtime's event bus (see ``states``). It
implements ``WorkflowView`` for the graph widget::

    session = select("etl")
    session.add(NodeDefinition.for_function(load))
    session.run(path="orders.csv")

The module also holds the notebook's workflows by name: ``select``, ``current``
and ``reset``; ``add_workflows_listener`` tells followers (the lab sidebar) when a
workflow is created or selected and when the notebook is reset.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kailash_nb.notebook.cache import OutputCache
from kailash_nb.notebook.composition import Composition, compose
from kailash_nb.notebook.definitions import NodeDefinition
from kailash_nb.notebook.display import MASK, RunResult, WorkflowStatus, preview
from kailash_nb.notebook.errors import NotebookError
from kailash_nb.notebook.failures import run_failure, user_traceback
from kailash_nb.notebook.fingerprint import content_digest
from kailash_nb.notebook.incremental import WiringState
from kailash_nb.notebook.refs import ConnectionSpec, parse_connection
from kailash_nb.notebook.run_plan import RunPlan, plan_run
from kailash_nb.notebook.states import NodeRecord, NodeStates
from kailash_nb.notebook.view import NodeInfo
from kailash_nb.redaction import looks_secret
from kailash_nb.runtime.events import EventBus
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import (
    KailashException,
    WorkflowExecutionError,
    WorkflowTimeoutError,
    close_matches,
)
from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.workflow.graph import Workflow

if TYPE_CHECKING:
    from kailash_nb.access_control import UserContext
    from kailash_nb.runtime.access_controlled import AccessControlledRuntime

__all__ = [
    "DEFAULT_WORKFLOW",
    "WorkflowSession",
    "add_workflows_listener",
    "current",
    "find",
    "reset",
    "select",
    "selected",
    "workflows",
]

logger = logging.getLogger(__name__)


class WorkflowSession:
    """One named workflow being built in a notebook (implements ``WorkflowView``).

    The module functions (``kn.node``, ``kn.run``, ...) act on the current session;
    these methods are the same operations.

    Attributes:
        name: the workflow's name (shown in runs and in the widget).
        cache: the outputs of the last successful run of each node.
        last_result: the ``RunResult`` of the latest run, failed runs included.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.cache = OutputCache()
        self.last_result: RunResult | None = None
        self._definitions: dict[str, NodeDefinition] = {}
        self._manual: list[ConnectionSpec] = []
        self._states = NodeStates()
        self._listeners: list[Callable[[], Any]] = []
        self._lock = threading.RLock()
        self._bus = EventBus()
        self._bus.subscribe(self._states.on_event, runs=False)
        self._runtime: LocalRuntime = LocalRuntime(event_bus=self._bus)
        #: Options every run passes to the runtime (the policy's name for the workflow).
        self._run_options: dict[str, Any] = {}
        #: What a run the engine stopped with partial results raises: a node failed or
        #: the deadline passed, or (under ``run_as``) the policy refused a node.
        self._run_failures: tuple[type[Exception], ...] = (WorkflowExecutionError,)
        self._wiring = WiringState()

    # -- WorkflowView -------------------------------------------------------------------------
    @property
    def events(self) -> EventBus:
        """The bus this workflow's runs publish node events on."""
        return self._bus

    def node_ids(self) -> list[str]:
        """Node ids in the order they were first defined."""
        return list(self._definitions)

    def edges(self) -> list[tuple[str, str, str]]:
        """``(source, target, "output -> input")`` for every connection."""
        return [(s, t, f"{o} -> {i}") for s, o, t, i in self._wiring.wiring.connections]

    def run_status(self) -> str:
        """The latest run's final status (``completed``, ``failed``, ``timeout``), or
        ``""`` before the first run."""
        return self.last_result.status if self.last_result is not None else ""

    def node_info(self, node_id: str) -> NodeInfo:
        """The current view of one node; secret-looking parameter values are masked.

        Raises:
            NotebookError: unknown node (with close matches).
        """
        definition = self._definition(node_id)
        record = self._states[node_id]
        return NodeInfo(
            id=node_id,
            type=definition.node_type,
            state=record.state,  # type: ignore[typeddict-item]
            parameters=self._parameter_previews(definition, record),
            duration=record.duration,
            error=record.error,
            output_preview=record.output_preview,
            cell=definition.cell,
            traceback=record.traceback,
        )

    def add_listener(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback()`` after each change made outside a run, and once after
        each run; returns a function that removes it."""
        with self._lock:
            self._listeners.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return remove

    # -- defining ----------------------------------------------------------------------
    def add(self, definition: NodeDefinition) -> str:
        """Add ``definition``, replacing a node with the same id; returns the id.

        A replaced node keeps its place; it and everything downstream turn stale if
        the definition changed (an identical definition changes nothing).

        Raises:
            NotebookError: an explicit input from an unknown node or output.
            KailashException: the workflow would not build (bad id, unknown type,
                bad config, unknown input, cycle); nothing is changed then.
        """
        for name, reference in definition.inputs.items():
            if reference.node_id not in self._definitions:
                raise NotebookError(
                    f"node {definition.node_id!r}: input {name!r} comes from node "
                    f"{reference.node_id!r}, which is not defined"
                    f"{close_matches(reference.node_id, self._definitions)}; define it first"
                )
            self._check_output(
                reference.node_id, reference.output, f"node {definition.node_id!r} input {name!r}"
            )
        with self._lock:
            previous = self._definitions.get(definition.node_id)
            self._definitions[definition.node_id] = definition
            try:
                self._wiring.rewire(definition.node_id, self._definitions, self._manual)
                if not self._wiring.check_around(definition.node_id, self._definitions, self.name):
                    self._check_builds()
            except KailashException:
                if previous is None:
                    del self._definitions[definition.node_id]
                else:
                    self._definitions[definition.node_id] = previous
                self._wiring.rebuild(self._definitions, self._manual)
                raise
            self._states.add(definition.node_id)
        self._changed(definition.node_id)
        return definition.node_id

    def remove(self, node_id: str) -> None:
        """Remove a node, its cached outputs and the connections made to or from it
        with ``connect``. Explicit inputs of other nodes that named it stay declared
        and fail the next run until the node is defined again.

        Raises:
            NotebookError: unknown node (with close matches).
        """
        self._definition(node_id)
        with self._lock:
            del self._definitions[node_id]
            self._states.remove(node_id)
            self._manual = [
                spec
                for spec in self._manual
                if node_id not in (spec.source.node_id, spec.target_node)
            ]
            self.cache.invalidate([node_id])
        self._changed()

    def connect(self, spec: str) -> None:
        """Connect ``"source[.output] -> target.input"``; connecting twice is a no-op.

        Raises:
            NotebookError: malformed spec, unknown node, or an output name the
                source does not publish.
            KailashException: the connection would not build (unknown input, cycle).
        """
        connection = parse_connection(spec)
        self._definition(connection.target_node)
        self._check_output(
            connection.source.node_id, connection.source.output, f"connection {connection}"
        )
        with self._lock:
            if self._find_manual(connection) is not None:
                return
            self._manual.append(connection)
            try:
                self._check_builds()
            except KailashException:
                self._manual.remove(connection)
                raise
        self._changed()

    def disconnect(self, spec: str) -> None:
        """Remove a connection made with ``connect``.

        Raises:
            NotebookError: there is no such connection made with ``connect``.
        """
        connection = parse_connection(spec)
        with self._lock:
            existing = self._find_manual(connection)
            if existing is None:
                made = [str(c) for c in self._manual]
                raise NotebookError(
                    f"there is no connection {connection} made with connect()"
                    f"{close_matches(str(connection), made)}; connections made with connect(): "
                    f"{made or 'none'}. Inputs declared in a node's definition change when the "
                    "node is redefined"
                )
            self._manual.remove(existing)
        self._changed()

    def invalidate(self, node_id: str | None = None) -> None:
        """Forget cached outputs so the next run executes again: of ``node_id`` and
        everything downstream of it, or of every node with ``None``.

        Raises:
            NotebookError: unknown node (with close matches).
        """
        if node_id is None:
            targets = set(self._definitions)
        else:
            self._definition(node_id)
            targets = {node_id} | self._wiring.downstream(node_id)
        with self._lock:
            self.cache.invalidate(targets)
            self._states.force_stale(targets)
        self._changed()

    # -- reading -----------------------------------------------------------------------
    @property
    def definitions(self) -> dict[str, NodeDefinition]:
        """The node definitions, by id, in definition order (a copy)."""
        return dict(self._definitions)

    @property
    def composition(self) -> Composition:
        """The definitions composed (``builder``, ``connections``, ``dangling``)."""
        return compose(self._definitions, self._manual)

    @property
    def builder(self) -> WorkflowBuilder:
        """A fresh ``WorkflowBuilder`` holding the composed workflow; change the
        workflow through the session, which rebuilds it after every change."""
        return self.composition.builder

    def build(self) -> Workflow:
        """The composed workflow, validated and ready for any runtime.

        Raises:
            NotebookError: an explicit input names a node that is not defined.
        """
        composition = self.composition
        composition.check_dangling(self._definitions, self._definitions)
        return composition.builder.build(name=self.name)

    def status(self) -> WorkflowStatus:
        """A table of every node: state, last duration, inputs, defining cell."""
        return WorkflowStatus(self.name, [self.node_info(n) for n in self._definitions])

    def __repr__(self) -> str:
        count = len(self._definitions)
        names = f": {', '.join(self._definitions)}" if count else ""
        return f"Workflow {self.name!r} ({count} node{'s' * (count != 1)}{names})"

    # -- running -----------------------------------------------------------------------
    def run(
        self,
        node: str | None = None,
        /,
        *,
        no_cache: bool = False,
        parameters: dict[str, Any] | None = None,
        **params: Any,
    ) -> RunResult:
        """Run the workflow, or only ``node`` and what it needs, and return the result.

        Nodes whose definition, upstream and received parameters are unchanged since
        their last successful run are not executed: their cached outputs are reused.

        Args:
            node: run only this node and the nodes it needs.
            no_cache: execute every node in the run, refreshing the cache.
            parameters: run parameters as a dict (for names that clash with the
                keywords here); merged with ``params``.
            params: workflow parameters (``threshold=3``, delivered to every node
                with that input) or node-keyed ones (``clean={"threshold": 3}``).

        Raises:
            NodeRunError: a node failed (``err.result`` holds the partial result).
            NotebookError: unknown node, or an input from an undefined node.
            WorkflowValidationError: unknown or missing parameters.
        """
        plan = self._plan(node, {**(parameters or {}), **params}, no_cache)
        watch = _RunWatch()
        try:
            results, run_id = self._runtime.execute(
                plan.workflow, plan.parameters, **watch.engine_options(plan), **self._run_options
            )
        except self._run_failures as exc:
            return self._finish(plan, exc.results, exc.run_id or "", exc, watch)
        except BaseException:  # interrupted, or refused before it started
            self._abandon(plan)
            raise
        return self._finish(plan, results, run_id, None, watch)

    async def run_async(
        self,
        node: str | None = None,
        /,
        *,
        no_cache: bool = False,
        parameters: dict[str, Any] | None = None,
        **params: Any,
    ) -> RunResult:
        """``run`` on the current event loop: ``await session.run_async()``."""
        plan = self._plan(node, {**(parameters or {}), **params}, no_cache)
        watch = _RunWatch()
        try:
            results, run_id = await self._runtime.execute_async(
                plan.workflow, plan.parameters, **watch.engine_options(plan), **self._run_options
            )
        except self._run_failures as exc:
            return self._finish(plan, exc.results, exc.run_id or "", exc, watch)
        except BaseException:  # cancelled, interrupted, refused before it started
            self._abandon(plan)
            raise
        return self._finish(plan, results, run_id, None, watch)

    def run_as(
        self, user_context: UserContext | None, **options: Any
    ) -> AccessControlledRuntime | None:
        """Run this workflow for ``user_context`` under an ``AccessControlledRuntime``
        made from ``options`` (its arguments: ``policies_file=...``,
        ``audit_enabled=True``...) and publishing on this workflow's bus; ``None`` runs
        without access control again. Return the runtime (``None`` without).

        The policy knows the workflow by its name. Runs then show only what the caller
        may read, in their results, the status table and the widget; a node the caller
        may not execute fails the run (``NodeRunError`` whose cause is
        ``NodeAccessDeniedError``), and cached outputs are reused only for nodes the
        caller may execute.

        Raises:
            PolicyError, AccessControlConfigurationError: as ``AccessControlledRuntime``
                (the workflow keeps its runtime).
            TypeError: ``options`` without a ``user_context``.
        """
        if user_context is None:
            if options:
                raise TypeError("run_as(None) turns access control off; it takes no options")
            with self._lock:
                self._runtime = LocalRuntime(event_bus=self._bus)
                self._run_options = {}
                self._run_failures = (WorkflowExecutionError,)
            return None
        # Imported here: the access control stack (the store, SQLAlchemy) costs a plain
        # notebook nothing until it asks for it.
        from kailash_nb.runtime.access_controlled import (
            AccessControlledRuntime,
            NodeAccessDeniedError,
        )

        runtime = AccessControlledRuntime(user_context, event_bus=self._bus, **options)
        with self._lock:
            self._runtime = runtime
            self._run_options = {"resource_id": self.name}
            self._run_failures = (WorkflowExecutionError, NodeAccessDeniedError)
        return runtime

    def _plan(self, target: str | None, params: dict[str, Any], no_cache: bool) -> RunPlan:
        if not self._definitions:
            raise NotebookError(
                f"workflow {self.name!r} has no nodes yet; define one with @kn.node or "
                "%%kailash node"
            )
        if target is not None:
            self._definition(target)
        plan = plan_run(
            self.name,
            self._definitions,
            self._manual,
            self.cache,
            target=target,
            params=params,
            no_cache=no_cache,
            wired=self._wiring.wiring,
            build=lambda include: self._wiring.build(self._definitions, self.name, include),
        )
        with self._lock:
            for node_id, values in plan.received.items():
                self._states[node_id].run_values = {
                    name: MASK if looks_secret(name) else preview(value, 40)
                    for name, value in values.items()
                }
            plan.before = {node_id: self._states[node_id].state for node_id in plan.scope}
            self._wiring.refresh(plan.shapes)
        return plan

    def _finish(
        self,
        plan: RunPlan,
        results: dict[str, dict[str, Any]],
        run_id: str,
        error: Exception | None,
        watch: _RunWatch,
    ) -> RunResult:
        stopped_at = None
        if error is not None and error.node_id:
            cause = error.__cause__
            text = f"{type(cause).__name__}: {cause}" if cause is not None else str(error)
            stopped_at = (error.node_id, text)
        definitions = dict(self._definitions)
        secret_sources = [plan.parameters]
        tracebacks = {}
        for node_id, exc in watch.failures.items():
            node = plan.workflow.nodes.get(node_id)
            sources = [node.config, *secret_sources] if node is not None else secret_sources
            tracebacks[node_id] = user_traceback(exc, *sources)
        outcomes = self._states.finish_run(
            run_id,
            [node_id for node_id in plan.scope if node_id in definitions],
            before=plan.before,
            shapes=plan.shapes,
            results=results,
            primary_outputs={n: d.output for n, d in definitions.items()},
            cells={n: d.cell for n, d in definitions.items()},
            stopped_at=stopped_at,
            exceptions=watch.failures,
            tracebacks=tracebacks,
        )
        ended = {outcome.node_id: outcome.state for outcome in outcomes}
        for node_id, state in ended.items():
            if state == "completed" and node_id in results:
                self.cache.store(
                    node_id, plan.keys[node_id], results[node_id], watch.digests.get(node_id)
                )
        status = "completed"
        if isinstance(error, WorkflowTimeoutError):
            status = "timeout"
        elif error is not None or "failed" in ended.values():
            status = "failed"
        result = RunResult(
            self.name,
            run_id,
            {n: o for n, o in results.items() if ended.get(n) in ("completed", "cached")},
            outcomes,
            {n: d.output for n, d in definitions.items()},
            status=status,
        )
        self.last_result = result
        self._notify()
        failure = run_failure(result, outcomes, error)
        if failure is not None:
            raise failure
        return result

    def _abandon(self, plan: RunPlan) -> None:
        """A run ended without results: take back the states it left half-way."""
        self._states.restore(plan.before)
        self._notify()

    # -- internals ---------------------------------------------------------------------
    def _check_builds(self) -> None:
        compose(self._definitions, self._manual).builder.build(name=self.name)

    def _changed(self, defined: str | None = None) -> None:
        """Rewire, re-mark stale nodes and tell the listeners. After ``add``, only the
        node ``defined`` and its downstream get new shape keys; otherwise all do."""
        with self._lock:
            if defined is None:
                self._wiring.rebuild(self._definitions, self._manual)
                self._states.reshape(self._wiring.shapes)
            else:
                affected = self._wiring.define(defined, self._definitions)
                self._states.reshape(self._wiring.shapes, affected)
        self._notify()

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                logger.exception("workflow listener %r failed", callback)

    def _find_manual(self, connection: ConnectionSpec) -> ConnectionSpec | None:
        """The connection made with ``connect`` that means the same as ``connection``
        (``"a"`` and ``"a.result"`` are one source when ``result`` is a's primary)."""

        def resolved(spec: ConnectionSpec) -> tuple[str, str | None, str, str]:
            source = self._definitions.get(spec.source.node_id)
            output = spec.source.output or (source.output if source else None)
            return spec.source.node_id, output, spec.target_node, spec.target_input

        wanted = resolved(connection)
        return next((spec for spec in self._manual if resolved(spec) == wanted), None)

    def _check_output(self, node_id: str, output: str | None, context: str) -> None:
        """Refuse ``node.result`` for a function node that renamed its output."""
        source = self._definition(node_id)
        head = output.split(".")[0] if output is not None else None
        if (
            head is not None
            and source.function is not None
            and source.output
            not in (
                "result",
                head,
            )
        ):
            raise NotebookError(
                f"{context}: node {node_id!r} publishes its value as {source.output!r}, not "
                f"{head!r} (did you mean '{node_id}.{source.output}'?)"
            )

    def _definition(self, node_id: str) -> NodeDefinition:
        definition = self._definitions.get(node_id)
        if definition is None:
            raise NotebookError(
                f"no node {node_id!r} in workflow {self.name!r}"
                f"{close_matches(str(node_id), self._definitions)}; its nodes: "
                f"{list(self._definitions) or 'none yet'}"
            )
        return definition

    def _parameter_previews(self, definition: NodeDefinition, record: NodeRecord) -> dict[str, str]:
        values: dict[str, str] = {}
        if definition.function is None:
            values.update((name, preview(value, 40)) for name, value in definition.config.items())
        for name, default in definition.defaults(all_parameters=True).items():
            empty = default is inspect.Parameter.empty
            values[name] = "(required)" if empty else preview(default, 40)
        values.update(record.run_values)
        previews = {name: MASK if looks_secret(name) else text for name, text in values.items()}
        feeds: dict[str, list[str]] = {}
        for source, output, target, name in self._wiring.wiring.connections:
            if target == definition.node_id:
                feeds.setdefault(name, []).append(f"<- {source}.{output}")
        previews.update((name, ", ".join(sources)) for name, sources in feeds.items())
        return previews


class _RunWatch:
    """What one run reports as it goes: each completed node's output digest, taken
    before anything downstream could change the outputs, and what failing nodes
    raised. Called on the engine's threads; each node is written once."""

    def __init__(self) -> None:
        self.digests: dict[str, str | None] = {}
        self.failures: dict[str, BaseException] = {}

    def output(self, node_id: str, outputs: dict[str, Any]) -> None:
        self.digests[node_id] = content_digest(outputs)

    def failure(self, node_id: str, error: BaseException) -> None:
        self.failures[node_id] = error

    def engine_options(self, plan: RunPlan) -> dict[str, Any]:
        """The runtime's keyword arguments for ``plan``'s run: its cached outputs, shared
        rather than copied (the cache checks their digests instead), and this watch."""
        return {
            "cached_outputs": plan.cached,
            "copy_cached": False,
            "on_output": self.output,
            "on_failure": self.failure,
        }


# -- the notebook's workflows ----------------------------------------------------------
#: The workflow nodes go to until ``select`` is called.
DEFAULT_WORKFLOW = "default"
_sessions: dict[str, WorkflowSession] = {}
_current: list[WorkflowSession] = []
#: Called with no arguments after ``select`` creates a workflow or changes the current one,
#: and after ``reset``: followers learn of new workflows without polling ``_sessions``.
_workflows_listeners: list[Callable[[], Any]] = []


def add_workflows_listener(callback: Callable[[], Any]) -> Callable[[], None]:
    """Call ``callback()`` after a workflow is created or made current, and after
    ``reset``, in the thread that did it; returns a function that removes it.

    Changes inside one workflow (nodes, runs) go to ``WorkflowSession.add_listener``.
    A failing callback is logged and does not stop the others.
    """
    _workflows_listeners.append(callback)

    def remove() -> None:
        if callback in _workflows_listeners:
            _workflows_listeners.remove(callback)

    return remove


def select(name: str) -> WorkflowSession:
    """Make the workflow ``name`` current, creating it if needed, and return it.

    Raises:
        NotebookError: ``name`` is not a non-empty string.
    """
    if not isinstance(name, str) or not name.strip():
        raise NotebookError(f"a workflow name must be a non-empty string, got {name!r}")
    session = _sessions.get(name)
    if session is None:
        session = _sessions[name] = WorkflowSession(name)
    elif _current and _current[0] is session:
        return session
    _current[:] = [session]
    _notify_workflows()
    return session


def current() -> WorkflowSession:
    """The current workflow (``default`` until one is selected)."""
    if not _current:
        return select(DEFAULT_WORKFLOW)
    return _current[0]


def selected() -> WorkflowSession | None:
    """The current workflow, or ``None`` before one is selected (creates nothing)."""
    return _current[0] if _current else None


def workflows() -> dict[str, WorkflowSession]:
    """The notebook's workflows by name, in creation order (a copy)."""
    return dict(_sessions)


def find(name: str) -> WorkflowSession:
    """The workflow ``name``, which must exist.

    Raises:
        NotebookError: no workflow of that name (with close matches).
    """
    session = _sessions.get(name)
    if session is None:
        raise NotebookError(
            f"no notebook workflow named {name!r}{close_matches(str(name), _sessions)}; "
            f"workflows: {list(_sessions) or 'none yet'}"
        )
    return session


def reset() -> None:
    """Forget every workflow, its nodes and its cache."""
    _sessions.clear()
    _current.clear()
    _notify_workflows()


def _notify_workflows() -> None:
    for callback in list(_workflows_listeners):
        try:
            callback()
        except Exception:
            logger.exception("workflows listener %r failed", callback)
