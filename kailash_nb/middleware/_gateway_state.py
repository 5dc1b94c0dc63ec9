"""``GatewayState``: what a gateway holds while it serves, and what its routes read.

The registered workflows (their input contracts, run policies and error views), the
run executor and its index, authentication, rate limiting, CORS, metrics, the result
cache, sessions, live run events and run history. The HTTP side (``gateway.Gateway``,
the handlers) builds on it; it knows nothing of Tornado.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Any

from kailash_nb.middleware._metrics import GatewayMetrics
from kailash_nb.middleware._realtime import RunEventHub, SessionLookup, SessionWatch
from kailash_nb.middleware._result_cache import ResultCache
from kailash_nb.middleware._run_errors import ErrorView
from kailash_nb.middleware.agent_ui import AgentUIMiddleware
from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.middleware.contract.document import ServedWorkflow, render_document
from kailash_nb.middleware.contract.workflow_inputs import WorkflowInputs
from kailash_nb.middleware.cors import CorsPolicy
from kailash_nb.middleware.execution import (
    INLINE,
    OPEN,
    RunExecutor,
    RunGate,
    RunIndex,
    RunPolicy,
    TenantRunRouter,
    check_backend_name,
    run_policy,
)
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.runtime.events import EventBus
from kailash_nb.runtime.recorder import SERVER_BATCH_SIZE, RunRecorder
from kailash_nb.sdk_exceptions import WorkflowValidationError
from kailash_nb.store.run_history import GatewayRunNote, RunStore
from kailash_nb.store.tenant_databases import TenantDatabases
from kailash_nb.workflow.graph import Workflow

__all__ = ["GatewaySettings", "GatewayState"]

_WORKFLOW_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HIDDEN = ErrorView(expose=False)
_EXPOSED = ErrorView(expose=True)


@dataclass(frozen=True)
class GatewaySettings:
    """The ``create_gateway`` options the running gateway reads."""

    title: str = "kailash_nb gateway"
    description: str = ""
    version: str = "1.0.0"
    cors_origins: tuple[str, ...] = ()
    enable_docs: bool = True
    tenant_isolation: bool = False
    database_per_tenant: bool = False
    max_connections: int = 1000
    enable_compression: bool = False
    database_url: str | None = None
    connection_pool_size: int = 10
    cache_enabled: bool = False
    cache_ttl: float = 300.0
    worker_processes: int = 1
    metrics_public: bool = False
    mcp: bool = False
    default_backend: str | None = None


class GatewayState:
    """Registered workflows and everything serving them needs, except the server
    itself (:class:`~kailash_nb.middleware.gateway.Gateway` adds it).

    Args:
        settings: the options from ``create_gateway``.
        store_url: the database URL with its connection pool size.
        auth: login/refresh/verification; ``None`` serves without authentication,
            which ``start`` allows on loopback addresses only.
        rate_limiter: an object with ``await acquire(key) -> RateDecision``; ``None``
            disables rate limiting.
        gate: admits each run for its caller and shows the caller its outcome
            (``execution.RunGate``; ``OPEN``: no access control).

    Attributes:
        auth: the ``KailashJWTAuth`` (``auth.add_user(...)`` creates users), or ``None``.
        metrics: the gateway's Prometheus metrics.
        events: the bus every run's events reach (the run recorder subscribes here).
    """

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        store_url: str,
        auth: KailashJWTAuth | None = None,
        rate_limiter: Any = None,
        gate: RunGate = OPEN,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.rate_limiter = rate_limiter
        self.cors = _cors_policy(settings.cors_origins)
        self.metrics = GatewayMetrics()
        self.events = EventBus()
        self.runs = RunExecutor(self.events, RunIndex(self._run_changed), gate=gate)
        self.workflows: dict[str, tuple[Workflow, str]] = {}
        #: Each served workflow's compiled input contract (``contract.workflow_inputs``),
        #: built once at registration; the execute route checks requests against it.
        self.workflow_inputs: dict[str, Any] = {}
        #: Deadlines and process isolation of workflows registered with ``timeout`` or
        #: ``isolation="process"`` (``execution.RunPolicy``); the executor applies them.
        self.run_policies: dict[str, RunPolicy] = {}
        #: Names of workflows run on the event loop: ``run_inline=True`` or provably quick.
        self.inline_workflows: set[str] = set()
        self.run_store: Any = None
        #: ``database_url`` (or the default) with the ``connection_pool_size`` to use.
        self.store_url = store_url
        #: The ``ProductionMonitor`` from ``create_gateway(monitoring=...)``, or ``None``.
        self.monitor: Any = None
        #: Results of synchronous runs (``cache_enabled``), or ``None``.
        self.result_cache: Any = _result_cache(settings)
        #: Names of workflows registered with ``cache=False``.
        self.uncached_workflows: set[str] = set()
        #: How answers show each workflow's run errors (``expose_errors``).
        self._error_views: dict[str, ErrorView] = {}
        #: The OpenAPI document of what is registered now (``openapi_document``).
        self._openapi: dict[str, Any] | None = None
        #: Each tenant's own database (``database_per_tenant``), or ``None``.
        self.tenant_databases: Any = _tenant_databases(settings, self.store_url)
        self._tenant_records: TenantRunRouter | None = None
        #: Sessions (``create_session``/``get_session``/...), stored in ``database_url``;
        #: their executions (``agent_ui.execute``) are runs of this gateway's executor.
        self.agent_ui = AgentUIMiddleware(
            self.store_url, tenant_databases=self.tenant_databases, executor=self.runs
        )
        #: Live run events for clients (``/runs/{id}/events``, ``/ws``): attached to
        #: ``events`` by ``live_events()`` when the routes are built.
        self._live_events: RunEventHub | None = None
        self._live_events_lock = threading.Lock()
        #: Ends live connections whose session is revoked (``Gateway.stop`` ends all).
        self.session_watch = SessionWatch(self._revoked_sessions)
        #: True while the server stops: no new runs are accepted.
        self.stopping = False
        #: True while the server serves: a workflow registered meanwhile starts its
        #: execution backend at once.
        self.serving = False
        self._recorder: RunRecorder | None = None
        #: The MCP side (``middleware.mcp.McpService``) when ``settings.mcp``: created
        #: with the routes, its sessions ended when the gateway stops.
        self.mcp: Any = None
        #: Signs MCP session ids; made here, before worker processes fork, so every
        #: worker accepts the sessions of the others (``mcp.sessions``).
        self.mcp_session_key = os.urandom(32)

    # -- workflows ---------------------------------------------------------------

    def register_workflow(
        self,
        name: str,
        workflow: Workflow,
        description: str = "",
        *,
        run_inline: bool = False,
        cache: bool = True,
        isolation: str = "thread",
        timeout: float | None = None,
        memory_limit_mb: int | None = None,
        max_output_bytes: int | None = None,
        process_pool_size: int | None = None,
        expose_errors: bool = False,
        backend: str | None = None,
    ) -> None:
        """Serve ``workflow`` at ``/workflows/{name}``.

        Args:
            name: the workflow's name in the URL.
            workflow: a built workflow.
            description: shown in the listing and the OpenAPI document.
            run_inline: opt-in: run the workflow on the gateway's event loop instead of
                handing it to the run threads (saves the hand-off per request).
                Only for workflows whose plan is sequential and made only of
                ``PythonCodeNode`` nodes. While such a run executes, the gateway serves
                nothing else, so use it only for code that finishes quickly and never
                blocks (no I/O, no sleeps); a run cannot be interrupted by timeouts.
                Without it, a workflow runs on the loop anyway when it is provably
                quick: sequential, no cycles, and every node a ``PythonCodeNode`` of
                straight-line glue code (no calls, loops or costly operators, see
                ``PythonCodeNode.bounded``), which runs in time linear in its inputs;
                anything else runs on the run threads.
            cache: with ``cache_enabled``, serve repeated identical requests from the
                result cache; ``False`` for workflows whose results must be fresh.
            isolation: ``"thread"`` (default: runs share the gateway's process, the
                fastest hand-off) or ``"process"``: each run executes in one of
                ``process_pool_size`` (default 2) pre-started worker processes with an
                address-space limit of ``memory_limit_mb`` (default 512 MiB, RLIMIT_AS,
                interpreter included) and a CPU-time backstop; results travel back as
                JSON of at most ``max_output_bytes`` (default 16 MiB), else the run
                fails naming the cap. The definition sent to the workers is this
                server-registered workflow (``to_dict()``), so ``PythonCodeNode``
                nodes need ``code=``, not ``from_function``. Process runs cost a
                process hand-off per run; use them for code that may loop, burn CPU or
                allocate without bound.
            timeout: the run's deadline in seconds. Thread runs: ``None`` (default)
                means none; with a value the engine's ``workflow_timeout`` answers 504
                (status ``timeout``) at the deadline, but a synchronous node that never
                returns keeps running in its thread, which is not killed. Process runs
                (default 30 s, counted from the moment a worker takes the run): the
                worker is killed (SIGKILL) at the deadline and replaced; the run's
                status is ``timeout`` and a waiting caller gets 504.
            memory_limit_mb, max_output_bytes, process_pool_size: process runs only
                (see ``isolation``); a run past the memory limit fails with a message
                naming it and its worker is replaced.
            backend: the registered execution backend to run the workflow on instead
                of the run threads: ``"dask"`` executes its nodes on a dask.distributed
                cluster (``execution.DaskBackend``: ``KAILASH_NB_DASK_ADDRESS`` or
                ``execution.register_dask_backend``), with ``timeout`` as the runs'
                deadline; not with ``isolation="process"`` or ``run_inline``. Default:
                the gateway's ``execution_backend``, if any, for workflows registered
                without ``isolation="process"`` or ``run_inline``.
            expose_errors: show callers what failed nodes raised (their messages) in the
                422 answer, ``GET /runs/{id}`` and run events. Off by default: exception
                text can carry internal details (paths, hosts, data), so callers see only
                which nodes failed and their error types; the server's run history keeps
                the messages either way.

        Raises:
            GatewayConfigurationError: a name not matching ``^[A-Za-z0-9_-]{1,64}$``,
                a name already registered, not a built ``Workflow``, a workflow needing
                an input nothing provides and no caller may set, ``run_inline``
                for a workflow that is not sequential ``PythonCodeNode`` nodes only or
                together with ``timeout``/``isolation="process"``/``backend``, an invalid
                isolation option (see ``execution.run_policy``), or a ``backend`` that
                is not registered.
        """
        if not isinstance(name, str) or not _WORKFLOW_NAME.fullmatch(name):
            raise GatewayConfigurationError(
                f"workflow name {name!r:.80} must match ^[A-Za-z0-9_-]{{1,64}}$ "
                "(ASCII letters, digits, '_' and '-')"
            )
        if not isinstance(workflow, Workflow):
            raise GatewayConfigurationError(
                f"register_workflow({name!r}) needs a built Workflow (WorkflowBuilder.build()), "
                f"got {type(workflow).__name__}"
            )
        if name in self.workflows:
            raise GatewayConfigurationError(f"a workflow named {name!r} is already registered")
        if not isinstance(cache, bool):
            raise GatewayConfigurationError(f"cache must be True or False, got {cache!r}")
        if not isinstance(expose_errors, bool):
            raise GatewayConfigurationError(
                f"expose_errors must be True or False, got {expose_errors!r}"
            )
        if not isinstance(run_inline, bool):
            raise GatewayConfigurationError(f"run_inline must be True or False, got {run_inline!r}")
        if run_inline and not _inline_eligible(workflow):
            raise GatewayConfigurationError(
                f"register_workflow({name!r}, run_inline=True) needs a sequential workflow "
                "made only of PythonCodeNode nodes"
            )
        inputs = _workflow_inputs(name, workflow)
        if backend is not None:
            check_backend_name(backend, f"register_workflow({name!r}, backend=...)")
        elif isolation == "thread" and not run_inline:
            backend = self.settings.default_backend
        policy = run_policy(
            name,
            workflow,
            isolation=isolation,
            timeout=timeout,
            memory_limit_mb=memory_limit_mb,
            max_output_bytes=max_output_bytes,
            pool_size=process_pool_size,
            backend=backend,
        )
        if policy is not None and run_inline:
            raise GatewayConfigurationError(
                f"register_workflow({name!r}): run_inline=True runs on the event loop, where "
                "neither a timeout nor process isolation can apply; drop one of them"
            )
        # Nodes with metrics of their own (a coordinator's per-agent figures) show them
        # on /metrics; they describe runs in this process, not in worker processes.
        for node in workflow.nodes.values():
            node.register_metrics(self.metrics.registry, workflow=name)
        if policy is not None:
            self.run_policies[name] = policy
        elif run_inline or _provably_quick(workflow):
            self.inline_workflows.add(name)
            policy = INLINE
        if policy is not None:
            backend = self.runs.place(name, policy)
            if self.serving:
                backend.start()
        self.workflows[name] = (workflow, str(description))
        self._error_views[name] = _EXPOSED if expose_errors else _HIDDEN
        self.workflow_inputs[name] = inputs
        self._openapi = None
        if not cache:
            self.uncached_workflows.add(name)

    def openapi_document(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of this gateway (``GET /openapi.json``), rendered
        once per set of registered workflows from the schemas their registration
        compiled (do not mutate it)."""
        if self._openapi is None:
            served = [
                ServedWorkflow(
                    name,
                    self.workflows[name][1],
                    self.workflow_inputs[name].schema,
                    self.workflow_inputs[name].output_schema,
                )
                for name in sorted(self.workflows)
            ]
            self._openapi = render_document(
                served,
                title=self.settings.title,
                version=self.settings.version,
                description=self.settings.description,
                metrics_public=self.settings.metrics_public,
                redacted_outputs=self.runs.gate.redacts_outputs,
            )
        return self._openapi

    def error_view(self, workflow: str | None) -> ErrorView:
        """How answers show the run errors of the workflow registered as ``workflow``
        (node messages hidden unless it was registered with ``expose_errors=True``)."""
        return self._error_views.get(workflow or "", _HIDDEN)

    def run_records_for(self, tenant_id: str) -> Any:
        """The ``RunRecorder`` that keeps ``tenant_id``'s gateway runs (its ``store`` reads
        them back with ``get_gateway_run``), or ``None`` before ``start()``.

        The one place that maps a tenant to where its run records live: with
        ``database_per_tenant``, the recorder of the tenant's own database (opened on
        first use, so call it from a worker thread).
        """
        if self._tenant_records is not None:
            return self._tenant_records.recorder(tenant_id)
        return self._recorder

    def _run_changed(self, note: GatewayRunNote) -> None:
        """A run started or ended: count it, and have its tenant's recorder keep it."""
        self.metrics.observe_run(note.workflow_name, note.status)
        if self._tenant_records is not None:
            self._tenant_records.note(note)
            return
        recorder = self.run_records_for(note.tenant_id)
        if recorder is not None:
            recorder.record_gateway_run(note)

    def live_events(self) -> RunEventHub:
        """The hub of live run events, created and attached to ``events`` on first use
        (from then on every run publishes its node events too)."""
        with self._live_events_lock:
            if self._live_events is None:
                hub = RunEventHub()
                hub.attach(self.events)
                self._live_events = hub
            return self._live_events

    def _revoked_sessions(self) -> SessionLookup | None:
        return getattr(self.auth, "revoked_sessions", None)

    def _open_store(self) -> None:
        if self.run_store is None:
            self.run_store = RunStore(self.store_url)
        if self.tenant_databases is not None:
            if self._tenant_records is None:
                self._tenant_records = TenantRunRouter(self.tenant_databases, self.events)
            return
        if self._recorder is None:
            self._recorder = RunRecorder(self.run_store, self.events, batch_size=SERVER_BATCH_SIZE)


def _workflow_inputs(name: str, workflow: Workflow) -> Any:
    try:
        return WorkflowInputs(workflow, name)
    except WorkflowValidationError as exc:
        raise GatewayConfigurationError(f"register_workflow({name!r}): {exc}") from None


def _cors_policy(origins: tuple[str, ...]) -> Any:
    if not origins:
        return None
    return CorsPolicy(origins)


def _result_cache(settings: GatewaySettings) -> Any:
    if not settings.cache_enabled:
        return None
    return ResultCache(settings.cache_ttl)


def _tenant_databases(settings: GatewaySettings, store_url: str) -> Any:
    if not settings.database_per_tenant:
        return None
    return TenantDatabases(store_url)


def _inline_eligible(workflow: Workflow) -> bool:
    plan = workflow.plan
    return bool(plan.sequential) and all(
        type(node) is PythonCodeNode for node in plan.nodes.values()
    )


def _provably_quick(workflow: Workflow) -> bool:
    """Sequential, acyclic, and only straight-line glue code: safe on the event loop."""
    plan = workflow.plan
    return (
        _inline_eligible(workflow)
        and all(isinstance(unit, str) for unit in plan.units)
        and all(node.bounded for node in plan.nodes.values())
    )
