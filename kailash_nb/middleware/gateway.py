"""``create_gateway``: serve registered workflows over HTTP with Tornado.

Every keyword of the seed is honored; an unknown keyword is a ``TypeError``::

    gateway = create_gateway(
        title="Enterprise Application",
        security_config=SecurityConfig(jwt_secret=os.environ["KAILASH_NB_JWT_SECRET"]),
    )
    gateway.register_workflow("etl", workflow, description="nightly load")
    gateway.run(host="0.0.0.0", port=8000)      # blocks; SIGTERM/SIGINT stop gracefully
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from kailash_nb.middleware._executor import RunExecutor
from kailash_nb.middleware._limits import DRAIN_TIMEOUT, MAX_BODY_BYTES, ServerLimits
from kailash_nb.middleware._metrics import GatewayMetrics
from kailash_nb.middleware._run_errors import ErrorView
from kailash_nb.middleware._runs import RunIndex
from kailash_nb.middleware._server import address_family, build_server, is_loopback
from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.runtime.events import EventBus
from kailash_nb.security.config import SecurityConfig
from kailash_nb.workflow.graph import Workflow

__all__ = ["MAX_BODY_BYTES", "Gateway", "ServerLimits", "create_gateway"]

logger = logging.getLogger(__name__)

#: Python's default first-generation collection threshold, and the gateway's while it
#: serves (``Gateway.start`` raises it unless the application changed it).
_DEFAULT_GC_THRESHOLD = 700
SERVING_GC_THRESHOLD = 10_000

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


class Gateway:
    """Registered workflows served over HTTP; build it with :func:`create_gateway`.

    Args:
        settings: the options from ``create_gateway``.
        auth: login/refresh/verification; ``None`` serves without authentication,
            which ``start`` allows on loopback addresses only.
        rate_limiter: an object with ``await acquire(key) -> RateDecision``; ``None``
            disables rate limiting.

    Attributes:
        auth: the ``KailashJWTAuth`` (``auth.add_user(...)`` creates users), or ``None``.
        metrics: the gateway's Prometheus metrics.
        events: the bus every run's events reach (the run recorder subscribes here).
    """

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        auth: KailashJWTAuth | None = None,
        rate_limiter: Any = None,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.rate_limiter = rate_limiter
        self.cors = _cors_policy(settings.cors_origins)
        self.metrics = GatewayMetrics()
        self.events = EventBus()
        self.runs = RunExecutor(self.events, RunIndex())
        self.runs.index.on_change = self._run_changed
        self.workflows: dict[str, tuple[Workflow, str]] = {}
        #: Each served workflow's compiled input contract (``contract.workflow_inputs``),
        #: built once at registration; the execute route checks requests against it.
        self.workflow_inputs: dict[str, Any] = {}
        #: Deadlines and process isolation of workflows registered with ``timeout`` or
        #: ``isolation="process"`` (``_isolation.RunPolicy``); the executor applies them.
        self.run_policies: dict[str, Any] = {}
        #: Names of workflows run on the event loop: ``run_inline=True`` or provably quick.
        self.inline_workflows: set[str] = set()
        self.run_store: Any = None
        #: ``database_url`` (or the default) with the ``connection_pool_size`` to use.
        self.store_url = _pooled_url(settings.database_url, settings.connection_pool_size)
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
        self._tenant_runs: Any = None
        from kailash_nb.middleware.agent_ui import AgentUIMiddleware

        #: Sessions (``create_session``/``get_session``/...), stored in ``database_url``.
        self.agent_ui = AgentUIMiddleware(self.store_url, tenant_databases=self.tenant_databases)
        self.stopping = False
        #: Timeouts, per-IP connection cap and header limits of the server; replace it
        #: (``ServerLimits(header_timeout=10, ...)``) before ``start()``/``run()``.
        self.limits = ServerLimits()
        self._recorder: Any = None
        self._server: tornado.httpserver.HTTPServer | None = None

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
                together with ``timeout``/``isolation="process"``, or an invalid
                isolation option (see ``_isolation.run_policy``).
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
        from kailash_nb.middleware._isolation import run_policy

        policy = run_policy(
            name,
            workflow,
            self.events,
            isolation=isolation,
            timeout=timeout,
            memory_limit_mb=memory_limit_mb,
            max_output_bytes=max_output_bytes,
            pool_size=process_pool_size,
        )
        if policy is not None and run_inline:
            raise GatewayConfigurationError(
                f"register_workflow({name!r}): run_inline=True runs on the event loop, where "
                "neither a timeout nor process isolation can apply; drop one of them"
            )
        if policy is not None:
            self.runs.policies[name] = policy
            self.run_policies[name] = policy
            if self._server is not None:
                policy.start()
        self.workflows[name] = (workflow, str(description))
        self._error_views[name] = _EXPOSED if expose_errors else _HIDDEN
        self.workflow_inputs[name] = inputs
        self._openapi = None
        if policy is None and (run_inline or _provably_quick(workflow)):
            self.inline_workflows.add(name)
        if not cache:
            self.uncached_workflows.add(name)

    # -- application -------------------------------------------------------------

    def make_app(self) -> tornado.web.Application:
        """The Tornado application with every route (assembled in ``handlers.routes``)."""
        from kailash_nb.middleware.handlers import routes
        from kailash_nb.middleware.handlers.base import NotFoundHandler

        return tornado.web.Application(
            routes(self),
            default_handler_class=NotFoundHandler,
            default_handler_args={"gateway": self},
            compress_response=self.settings.enable_compression,
            log_function=_no_tornado_log,
            xheaders=False,
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind ``host:port`` (0: a free port) and serve; return the bound port.

        Raises:
            GatewayConfigurationError: no signing key configured and ``host`` is not a
                loopback address, or the gateway is already started.
            StoreConfigurationError: the database URL is invalid.
            GatewayConfigurationError: ``worker_processes > 1``: workers are forked by
                ``run()``, before any event loop exists; call ``run(host, port)``.
        """
        workers = self.settings.worker_processes
        if workers > 1:
            raise GatewayConfigurationError(
                f"await gateway.start() serves from this process's running event loop, but "
                f"worker_processes={workers} needs worker processes forked before any event "
                "loop runs: call gateway.run(host, port) (blocking) from a plain script, or "
                "use worker_processes=1"
            )
        if self._server is not None:
            raise GatewayConfigurationError("this gateway is already started; stop() it first")
        self._check_open_mode(host)
        self._open_store()
        sockets = tornado.netutil.bind_sockets(port, address=host, family=address_family(host))
        return self._serve_sockets(sockets, host)

    def _serve_sockets(self, sockets: list[Any], host: str) -> int:
        """Serve the application on already bound ``sockets``; return the port."""
        app = self.make_app()
        server = build_server(app, self.limits, self.settings.max_connections)
        server.add_sockets(sockets)
        self._server = server
        self.stopping = False
        for policy in self.run_policies.values():
            policy.start()  # worker processes of isolated workflows, in the background
        if self.monitor is not None:
            self.monitor.start()
        bound = sockets[0].getsockname()[1]
        logger.info("gateway %r serving on %s:%d", self.settings.title, host, bound)
        # What exists now (modules, the application, workflows) lives as long as the
        # server: keep it out of the collector's scans, which otherwise walk it again
        # and again while requests allocate.
        gc.freeze()
        if gc.get_threshold()[0] == _DEFAULT_GC_THRESHOLD:
            # Each request allocates (and frees) a few hundred containers; at Python's
            # default the young generation would be collected every few requests. A
            # threshold the application chose itself is left alone.
            gc.set_threshold(SERVING_GC_THRESHOLD, *gc.get_threshold()[1:])
        return int(bound)

    async def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Stop accepting connections, let in-flight runs finish (up to ``timeout``
        seconds), then close connections and the run recorder."""
        if self._server is None:
            return
        self.stopping = True
        server, self._server = self._server, None
        server.stop()
        await self.runs.drain(timeout)
        for policy in self.run_policies.values():
            await asyncio.get_running_loop().run_in_executor(None, policy.close)
        from kailash_nb.middleware._realtime import session_watch

        # Tornado detaches WebSocket streams from the server, so close them here.
        session_watch(self).end_all()
        await server.close_all_connections()
        if self.monitor is not None:
            await self.monitor.stop()
        if self._recorder is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._recorder.close)
            self._recorder = None
        if self._tenant_runs is not None:
            self._tenant_runs.close()
            self._tenant_runs = None
            await asyncio.get_running_loop().run_in_executor(None, self.tenant_databases.close)
        if self.rate_limiter is not None and hasattr(self.rate_limiter, "aclose"):
            await self.rate_limiter.aclose()

    def run(self, host: str = "127.0.0.1", port: int = 8000) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully (blocking).

        With ``worker_processes > 1`` this process binds ``host:port``, forks the
        workers and supervises them (``kailash_nb.middleware._workers``): SIGTERM or
        SIGINT drains and stops every worker, a worker that dies is restarted.

        Raises:
            GatewayConfigurationError: see ``start``; also called inside a running
                event loop with ``worker_processes > 1``.
            WorkerCrashLoopError: workers kept dying (more than 5 restarts within
                60 s) or a worker failed while stopping.
        """
        if self.settings.worker_processes > 1:
            from kailash_nb.middleware._workers import serve_workers

            serve_workers(self, host, port)
            return
        asyncio.run(self._serve(host, port))

    async def _serve(
        self,
        host: str,
        port: int,
        sockets: list[Any] | None = None,
        stop_requested: asyncio.Event | None = None,
    ) -> None:
        """Serve until SIGTERM/SIGINT, or until ``stop_requested`` is set by a worker
        process, which passes the sockets its parent bound and handles signals itself."""
        handle_signals = stop_requested is None
        stop_requested = stop_requested or asyncio.Event()
        loop = asyncio.get_running_loop()
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop_requested.set)
        try:
            if sockets is None:
                await self.start(host, port)
            else:  # a worker: its parent checked the open mode before forking
                self._open_store()
                self._serve_sockets(sockets, host)
            await stop_requested.wait()
            logger.info("gateway stopping: draining in-flight runs")
        finally:
            await self.stop()
            if handle_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)

    # -- helpers -----------------------------------------------------------------

    def _check_open_mode(self, host: str) -> None:
        if self.auth is not None:
            return
        if not is_loopback(host):
            raise GatewayConfigurationError(
                f"refusing to serve {host!r} without authentication: pass "
                "security_config=SecurityConfig(jwt_secret=...) (at least 32 random bytes, "
                "e.g. from KAILASH_NB_JWT_SECRET) or an RS256/ES256 key to create_gateway, "
                "or bind 127.0.0.1 for local development"
            )
        logger.warning(
            "gateway on %s runs WITHOUT authentication (no security_config); every caller "
            "is anonymous. Configure security_config before exposing it.",
            host,
        )

    def openapi_document(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of this gateway (``GET /openapi.json``), rendered
        once per set of registered workflows from the schemas their registration
        compiled (do not mutate it)."""
        if self._openapi is None:
            from kailash_nb.middleware.contract.document import ServedWorkflow, render_document

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
        if self._tenant_runs is not None:
            return self._tenant_runs.recorder(tenant_id)
        return self._recorder

    def _run_changed(self, note: Any) -> None:
        """A run started or ended: count it, and have its tenant's recorder keep it."""
        self.metrics.observe_run(note.workflow_name, note.status)
        if self._tenant_runs is not None:
            self._tenant_runs.note(note)
            return
        recorder = self.run_records_for(note.tenant_id)
        if recorder is not None:
            recorder.record_gateway_run(note)

    def _open_store(self) -> None:
        from kailash_nb.runtime.recorder import SERVER_BATCH_SIZE, RunRecorder
        from kailash_nb.store.run_history import RunStore

        if self.run_store is None:
            self.run_store = RunStore(self.store_url)
        if self.tenant_databases is not None:
            if self._tenant_runs is None:
                from kailash_nb.middleware._tenant_runs import TenantRunRouter

                self._tenant_runs = TenantRunRouter(self.tenant_databases, self.events)
            return
        if self._recorder is None:
            self._recorder = RunRecorder(self.run_store, self.events, batch_size=SERVER_BATCH_SIZE)


def _workflow_inputs(name: str, workflow: Workflow) -> Any:
    from kailash_nb.middleware.contract.workflow_inputs import WorkflowInputs
    from kailash_nb.sdk_exceptions import WorkflowValidationError

    try:
        return WorkflowInputs(workflow, name)
    except WorkflowValidationError as exc:
        raise GatewayConfigurationError(f"register_workflow({name!r}): {exc}") from None


def _no_tornado_log(handler: tornado.web.RequestHandler) -> None:
    # Handlers log their own one-line JSON record (GW-14); Tornado's line would double it.
    return None


def _cors_policy(origins: tuple[str, ...]) -> Any:
    if not origins:
        return None
    from kailash_nb.middleware.cors import CorsPolicy

    return CorsPolicy(origins)


def _rate_limiter(config: SecurityConfig | None, workers: int) -> Any:
    from kailash_nb.middleware._worker_limits import gateway_rate_limiter

    return gateway_rate_limiter(config, workers)


def _pooled_url(database_url: str | None, pool_size: int) -> str:
    from kailash_nb.store.database import default_url, with_pool_size

    return with_pool_size(database_url or default_url(), pool_size)


def _result_cache(settings: GatewaySettings) -> Any:
    if not settings.cache_enabled:
        return None
    from kailash_nb.middleware._result_cache import ResultCache

    return ResultCache(settings.cache_ttl)


def _monitor(monitoring: Any) -> Any:
    from kailash_nb.monitoring import ProductionMonitor

    if monitoring is None or isinstance(monitoring, ProductionMonitor):
        return monitoring
    if monitoring is True:
        return ProductionMonitor()
    raise TypeError(
        f"monitoring must be a kailash_nb.monitoring.ProductionMonitor, True (one with the "
        f"default rules) or None, got {type(monitoring).__name__}"
    )


def _tenant_databases(settings: GatewaySettings, store_url: str) -> Any:
    if not settings.database_per_tenant:
        return None
    from kailash_nb.store.tenant_databases import TenantDatabases

    return TenantDatabases(store_url)


def create_gateway(
    *,
    title: str = "kailash_nb gateway",
    description: str = "",
    version: str = "1.0.0",
    cors_origins: Iterable[str] = (),
    enable_docs: bool = True,
    security_config: SecurityConfig | None = None,
    tenant_isolation: bool = False,
    database_per_tenant: bool = False,
    monitoring: Any = None,
    worker_processes: int = 1,
    max_connections: int = 1000,
    enable_compression: bool = False,
    cache_enabled: bool = False,
    cache_ttl: float = 300,
    connection_pool_size: int = 10,
    database_url: str | None = None,
    metrics_public: bool = False,
) -> Gateway:
    """Create a gateway; register workflows on it, then ``run()`` or ``await start()``.

    Args:
        title, description, version: shown in the OpenAPI document and docs page.
        cors_origins: exact browser origins allowed to call the gateway (``CorsPolicy``).
        enable_docs: serve ``/openapi.json`` and ``/docs``.
        security_config: token keys and rate limits. ``None`` serves without
            authentication, on loopback addresses only (``start`` refuses others).
        tenant_isolation: require authentication and refuse an ``X-Tenant-ID`` header
            naming another tenant than the token's (runs are always tenant-scoped).
        max_connections: open connections accepted; further ones are closed at once.
        enable_compression: gzip responses for clients that accept it.
        database_url: store for run history, users and sessions (default:
            ``KAILASH_NB_DATABASE_URL`` or the default SQLite file).
        connection_pool_size: connections kept in the store engine's pool (SQLite
            files and PostgreSQL; an in-memory SQLite database shares one connection).
        monitoring: a ``kailash_nb.monitoring.ProductionMonitor`` (alert rules on
            ``/metrics`` and ``GET /health``), ``True`` for one with the default rules,
            or ``None`` (none).
        metrics_public: ``False`` (default): ``GET /metrics`` needs a bearer token like
            any other route, as the OpenAPI document says. ``True``: anyone may read it
            (for a scraper on a private network); the document then lists it without
            a security requirement.
        worker_processes: processes serving the gateway from one port (``run()`` forks
            and supervises them; ``start()`` needs 1). Each worker has its own store
            connections and run pool; runs are readable from every worker through the
            store. Rate limits: global through Redis with ``KAILASH_NB_REDIS_URL``,
            else split evenly over the workers (``_worker_limits``).
        cache_enabled, cache_ttl: keep results of successful synchronous runs for
            ``cache_ttl`` seconds (> 0) per tenant, workflow and parameters, and answer
            identical requests from them (``X-Cache: hit``); see ``_result_cache``.
        database_per_tenant: keep each tenant's sessions and run history in a database
            of its own, derived from ``database_url`` (SQLite ``app.db`` ->
            ``app.tenant-<safe id>.db``; PostgreSQL: a database per tenant, created on
            first use); users and auth state stay in the main one. Needs
            ``tenant_isolation=True``. See ``kailash_nb.store.tenant_databases``.

    Raises:
        TypeError: an unknown keyword, or ``monitoring`` of another type.
        GatewayConfigurationError: ``tenant_isolation`` without ``security_config``,
            ``database_per_tenant`` without ``tenant_isolation``, a non-bool
            ``metrics_public``, or a
            bad ``cache_enabled``/``cache_ttl``, ``max_connections``,
            ``connection_pool_size`` or ``worker_processes``
            (or a rate limit too small to split over the workers without Redis).
        ValueError: an invalid CORS origin.
    """
    if not isinstance(database_per_tenant, bool):
        raise GatewayConfigurationError(
            f"database_per_tenant must be True or False, got {database_per_tenant!r}"
        )
    if database_per_tenant and not tenant_isolation:
        raise GatewayConfigurationError(
            "database_per_tenant=True needs tenant_isolation=True (and security_config): "
            "a caller's tenant, and so its database, comes from a verified token"
        )
    if not isinstance(metrics_public, bool):
        raise GatewayConfigurationError(
            f"metrics_public must be True or False, got {metrics_public!r}"
        )
    monitor = _monitor(monitoring)
    if (
        isinstance(worker_processes, bool)
        or not isinstance(worker_processes, int)
        or worker_processes < 1
    ):
        raise GatewayConfigurationError(
            f"worker_processes must be an int >= 1, got {worker_processes!r}"
        )
    if not isinstance(cache_enabled, bool):
        raise GatewayConfigurationError(
            f"cache_enabled must be True or False, got {cache_enabled!r}"
        )
    from kailash_nb.middleware._result_cache import check_ttl

    try:
        cache_seconds = check_ttl(cache_ttl)
    except ValueError as exc:
        raise GatewayConfigurationError(str(exc)) from None
    if isinstance(max_connections, bool) or not isinstance(max_connections, int):
        raise GatewayConfigurationError(f"max_connections must be an int, got {max_connections!r}")
    if max_connections < 1:
        raise GatewayConfigurationError(f"max_connections must be >= 1, got {max_connections}")
    if security_config is not None and not isinstance(security_config, SecurityConfig):
        raise TypeError(
            f"security_config must be a SecurityConfig, got {type(security_config).__name__}"
        )
    if (
        isinstance(connection_pool_size, bool)
        or not isinstance(connection_pool_size, int)
        or connection_pool_size < 1
    ):
        raise GatewayConfigurationError(
            f"connection_pool_size must be an int >= 1, got {connection_pool_size!r}"
        )
    if tenant_isolation and security_config is None:
        raise GatewayConfigurationError(
            "tenant_isolation=True needs security_config: tenants come from verified tokens"
        )
    if isinstance(cors_origins, str):
        cors_origins = (cors_origins,)
    settings = GatewaySettings(
        title=str(title),
        description=str(description),
        version=str(version),
        cors_origins=tuple(cors_origins),
        enable_docs=bool(enable_docs),
        tenant_isolation=bool(tenant_isolation),
        database_per_tenant=database_per_tenant,
        max_connections=max_connections,
        enable_compression=bool(enable_compression),
        database_url=database_url,
        connection_pool_size=connection_pool_size,
        cache_enabled=cache_enabled,
        cache_ttl=cache_seconds,
        worker_processes=worker_processes,
        metrics_public=metrics_public,
    )
    auth = None
    if security_config is not None:
        store_url = _pooled_url(database_url, connection_pool_size)
        auth = KailashJWTAuth(config=security_config, store_url=store_url)
    limiter = _rate_limiter(security_config, worker_processes)
    gateway = Gateway(settings, auth=auth, rate_limiter=limiter)
    if monitor is not None:
        monitor.attach(gateway)
    return gateway


def _inline_eligible(workflow: Workflow) -> bool:
    from kailash_nb.nodes.code import PythonCodeNode

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
