"""Service routes: liveness and readiness (no authentication) and Prometheus metrics
(a bearer token unless the gateway was created with ``metrics_public=True``)."""

from __future__ import annotations

import asyncio
import os

import sqlalchemy as sa

from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware.contract import operations
from kailash_nb.middleware.handlers.base import GatewayHandler

__all__ = ["HealthHandler", "MetricsHandler", "ReadyHandler"]


class HealthHandler(GatewayHandler):
    """``GET /health``: the process is up (200 ``{"status": "ok"}``).

    With a monitor whose ``health_checks`` are on, the body also carries the alert
    states of its last evaluation, and ``"status"`` is ``"degraded"`` while an alert
    fires; the answer stays 200 (the process is alive) and costs no evaluation.
    With ``worker_processes > 1`` it also names the answering worker (``"worker_pid"``).
    """

    route = "/health"
    contract = operations.serving(GET=operations.HEALTH)
    requires_auth = False
    rate_limited = False

    def get(self) -> None:
        """Answer that the process is alive (with the monitor's alert states)."""
        monitor = self.gateway.monitor
        if monitor is None or not monitor.health_checks:
            body = {"status": "ok"}
        else:
            body = dict(monitor.health())
        if self.gateway.settings.worker_processes > 1:
            body["worker_pid"] = os.getpid()
        self.write_json(body)


class ReadyHandler(GatewayHandler):
    """``GET /ready``: 200 when the store answers and the gateway is not stopping, else 503."""

    route = "/ready"
    contract = operations.serving(GET=operations.READY)
    requires_auth = False
    rate_limited = False

    async def get(self) -> None:
        """Check the store with ``SELECT 1``."""
        gateway = self.gateway
        if gateway.stopping or gateway.run_store is None:
            raise ProblemError(503, "not_ready", "the gateway is stopping or not started")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, _ping, gateway.run_store.engine)
        except Exception as exc:
            raise ProblemError(
                503,
                "store_unreachable",
                f"the run store does not answer ({type(exc).__name__})",
                headers={"Retry-After": "5"},
            ) from None
        self.write_json({"status": "ready"})


class MetricsHandler(GatewayHandler):
    """``GET /metrics``: Prometheus text exposition of the gateway's metrics; needs a
    bearer token unless the gateway was created with ``metrics_public=True``."""

    route = "/metrics"
    contract = operations.serving(GET=operations.METRICS)
    rate_limited = False

    @property
    def requires_auth(self) -> bool:  # type: ignore[override]
        """A token is needed unless ``metrics_public`` (what the document says)."""
        return not self.gateway.settings.metrics_public

    def get(self) -> None:
        """Render the metrics registry."""
        text, content_type = self.gateway.metrics.render()
        self.set_header("Content-Type", content_type)
        self.finish(text)


def _ping(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
