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
import dataclasses
import gc
import importlib.util
import logging
import signal
from collections.abc import Iterable
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from kailash_nb.hosts import address_family, is_loopback
from kailash_nb.middleware._gateway_state import GatewaySettings, GatewayState
from kailash_nb.middleware._limits import DRAIN_TIMEOUT, MAX_BODY_BYTES, ServerLimits
from kailash_nb.middleware._result_cache import check_ttl
from kailash_nb.middleware._server import build_server
from kailash_nb.middleware._worker_limits import gateway_rate_limiter
from kailash_nb.middleware._workers import serve_workers
from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.middleware.execution import OPEN, PolicyGate, check_backend_name
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.middleware.handlers import routes
from kailash_nb.middleware.handlers.base import NotFoundHandler
from kailash_nb.monitoring import ProductionMonitor
from kailash_nb.runtime.access_controlled import AccessControlledRuntime
from kailash_nb.security.config import SecurityConfig
from kailash_nb.store.database import default_url, with_pool_size

__all__ = ["MAX_BODY_BYTES", "Gateway", "GatewaySettings", "ServerLimits", "create_gateway"]

logger = logging.getLogger(__name__)

#: Python's default first-generation collection threshold, and the gateway's while it
#: serves (``Gateway.start`` raises it unless the application changed it).
_DEFAULT_GC_THRESHOLD = 700
SERVING_GC_THRESHOLD = 10_000


class Gateway(GatewayState):
    """Registered workflows served over HTTP; build it with :func:`create_gateway`.

    ``settings``, ``auth`` and ``rate_limiter`` and the attributes that serving reads
    are :class:`GatewayState`'s; the database URL comes from ``settings``.

    Attributes:
        limits: timeouts, per-IP connection cap and header limits of the server;
            replace it (``ServerLimits(header_timeout=10, ...)``) before
            ``start()``/``run()``.
        runtime: the ``AccessControlledRuntime`` deciding who may run what
            (``create_gateway(runtime=...)``), or ``None``.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        auth: KailashJWTAuth | None = None,
        rate_limiter: Any = None,
        runtime: AccessControlledRuntime | None = None,
    ) -> None:
        super().__init__(
            settings,
            store_url=_pooled_url(settings.database_url, settings.connection_pool_size),
            auth=auth,
            rate_limiter=rate_limiter,
            gate=OPEN if runtime is None else PolicyGate(runtime),
        )
        self.runtime = runtime
        self.limits = ServerLimits()
        self._server: tornado.httpserver.HTTPServer | None = None

    def serve_mcp(self) -> None:
        """Also serve the registered workflows as MCP tools, as
        ``create_gateway(mcp=True)`` does; call it before ``start()``/``run()``.

        Raises:
            GatewayConfigurationError: the ``mcp`` package is not installed, or the
                gateway already serves.
        """
        if self._server is not None:
            raise GatewayConfigurationError("serve_mcp() must be called before start()")
        _check_mcp(True)
        self.settings = dataclasses.replace(self.settings, mcp=True)

    def make_app(self) -> tornado.web.Application:
        """The Tornado application with every route (assembled in ``handlers.routes``)."""
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
        self.check_can_serve(host)
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
        self.serving = True
        self.runs.start_backends()  # worker processes of isolated workflows, in the background
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
        self.serving = False
        server, self._server = self._server, None
        server.stop()
        await self.runs.drain(timeout)
        if self.mcp is not None:
            self.mcp.close()
        await self.runs.close_backends()
        # Tornado detaches WebSocket streams from the server, so close them here.
        self.session_watch.end_all()
        await server.close_all_connections()
        if self.monitor is not None:
            await self.monitor.stop()
        if self._recorder is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._recorder.close)
            self._recorder = None
        if self._tenant_records is not None:
            self._tenant_records.close()
            self._tenant_records = None
            await asyncio.get_running_loop().run_in_executor(None, self.tenant_databases.close)
        if self.rate_limiter is not None and hasattr(self.rate_limiter, "aclose"):
            await self.rate_limiter.aclose()
        if self.runtime is not None:  # the runtime is the application's: flushed, not closed
            await asyncio.get_running_loop().run_in_executor(None, self.runtime.flush_audit)

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
            serve_workers(self, host, port)
            return
        asyncio.run(self.serve(host, port))

    async def serve(
        self,
        host: str,
        port: int,
        sockets: list[Any] | None = None,
        stop_requested: asyncio.Event | None = None,
    ) -> None:
        """Serve until SIGTERM/SIGINT, then stop gracefully; or, in a worker process
        (``_workers``), serve the ``sockets`` its parent bound until ``stop_requested``
        is set (the worker handles signals itself).

        Raises:
            GatewayConfigurationError: see ``start``.
        """
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

    def check_can_serve(self, host: str) -> None:
        """Refuse to serve ``host`` without authentication unless it is a loopback
        address; warn when serving without authentication.

        Raises:
            GatewayConfigurationError: no ``security_config`` and ``host`` is not a
                loopback address.
        """
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


def _no_tornado_log(handler: tornado.web.RequestHandler) -> None:
    # Handlers log their own one-line JSON record (GW-14); Tornado's line would double it.
    return None


def _pooled_url(database_url: str | None, pool_size: int) -> str:
    return with_pool_size(database_url or default_url(), pool_size)


def _check_count(option: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GatewayConfigurationError(f"{option} must be an int >= 1, got {value!r}")


def _check_mcp(mcp: Any) -> None:
    if not isinstance(mcp, bool):
        raise GatewayConfigurationError(f"mcp must be True or False, got {mcp!r}")
    if mcp and importlib.util.find_spec("mcp") is None:
        raise GatewayConfigurationError(
            "mcp=True serves workflows over the Model Context Protocol with the official "
            "`mcp` SDK, which is not installed: pip install 'kailash-nb[mcp]'"
        )


def _monitor(monitoring: Any) -> Any:
    if monitoring is None or isinstance(monitoring, ProductionMonitor):
        return monitoring
    if monitoring is True:
        return ProductionMonitor()
    raise TypeError(
        f"monitoring must be a kailash_nb.monitoring.ProductionMonitor, True (one with the "
        f"default rules) or None, got {type(monitoring).__name__}"
    )


def _check_runtime(runtime: Any, security_config: Any, cache_enabled: bool) -> None:
    if runtime is None:
        return
    if not isinstance(runtime, AccessControlledRuntime):
        raise TypeError(
            "runtime must be a kailash_nb.runtime.access_controlled.AccessControlledRuntime "
            f"(the gateway's access policy), got {type(runtime).__name__}; without access "
            "control leave it out"
        )
    if security_config is None:
        raise GatewayConfigurationError(
            "runtime=AccessControlledRuntime(...) needs security_config: the caller's "
            "tenant and roles come from verified tokens"
        )
    if cache_enabled:
        raise GatewayConfigurationError(
            "cache_enabled=True cannot be combined with an AccessControlledRuntime: a "
            "cached answer would skip the caller's access decisions and their audit"
        )


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
    runtime: AccessControlledRuntime | None = None,
    mcp: bool = False,
    execution_backend: str | None = None,
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
        execution_backend: the execution backend of every workflow registered without
            ``backend``, ``isolation="process"`` or ``run_inline`` (``"dask"``: run their
            nodes on a dask.distributed cluster, see ``execution.DaskBackend``);
            ``None`` (default): the gateway's run threads, or its event loop for
            provably quick workflows.
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
        runtime: an ``AccessControlledRuntime`` whose policy decides every run (needs
            ``security_config``: the caller's tenant, roles and other claims come from
            the verified token). ``GET /workflows`` then lists only what the caller may
            execute (another workflow is a 404), a denied execute answers 403
            ``access_denied``, a denied node fails the run with 403
            ``node_access_denied``, and results show only what the caller may read.
            The workflow's resource id in the policy is its registered name. Every
            decision and run is audited when the runtime's ``audit_enabled`` is on
            (``audit_write="batched"`` keeps audit writes off the request path). Not
            with ``cache_enabled``: a cached answer would skip the caller's decisions.
        mcp: also serve every registered workflow as a Model Context Protocol tool,
            over streamable HTTP at ``/mcp`` and a WebSocket at ``/mcp/ws`` (subprotocol
            ``mcp``), with the same authentication, tenancy, rate limits, run queue and
            run history as the REST routes (``kailash_nb.middleware.mcp``). Needs the
            ``mcp`` extra (``pip install 'kailash-nb[mcp]'``).

    Raises:
        TypeError: an unknown keyword, or ``monitoring`` or ``runtime`` of another type.
        GatewayConfigurationError: ``tenant_isolation`` without ``security_config``,
            ``database_per_tenant`` without ``tenant_isolation``, ``runtime`` without
            ``security_config`` or with ``cache_enabled``, a non-bool
            ``metrics_public``, or a
            bad ``cache_enabled``/``cache_ttl``, ``max_connections``, a non-bool
            ``mcp`` or ``mcp=True`` without the ``mcp`` package,
            ``connection_pool_size`` or ``worker_processes``, an
            ``execution_backend`` that is not registered
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
    _check_mcp(mcp)
    if execution_backend is not None:
        check_backend_name(execution_backend, "create_gateway(execution_backend=...)")
    monitor = _monitor(monitoring)
    _check_count("worker_processes", worker_processes)
    if not isinstance(cache_enabled, bool):
        raise GatewayConfigurationError(
            f"cache_enabled must be True or False, got {cache_enabled!r}"
        )
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
    _check_count("connection_pool_size", connection_pool_size)
    _check_runtime(runtime, security_config, cache_enabled)
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
        mcp=mcp,
        default_backend=execution_backend,
    )
    auth = None
    if security_config is not None:
        store_url = _pooled_url(database_url, connection_pool_size)
        auth = KailashJWTAuth(config=security_config, store_url=store_url)
    limiter = gateway_rate_limiter(security_config, worker_processes)
    gateway = Gateway(settings, auth=auth, rate_limiter=limiter, runtime=runtime)
    if monitor is not None:
        monitor.attach(gateway)
    return gateway
