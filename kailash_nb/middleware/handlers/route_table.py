"""The gateway's route table, assembled in one place (:func:`routes`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kailash_nb.middleware.handlers import (
    auth,
    docs,
    events,
    realtime,
    run_lookup,
    service,
    sessions,
    workflows,
)

if TYPE_CHECKING:
    from kailash_nb.middleware._gateway_state import GatewayState

__all__ = ["routes"]

_NAME = r"([A-Za-z0-9_-]{1,64})"
_RUN_ID = r"([A-Za-z0-9-]{1,64})"


def routes(gateway: GatewayState) -> list[tuple[str, type, dict[str, Any]]]:
    """Every ``(pattern, handler, kwargs)`` of the gateway's application."""
    args = {"gateway": gateway}
    # Tornado tries the patterns in order: the busiest route goes first.
    table: list[tuple[str, type, dict[str, Any]]] = [
        (rf"/workflows/{_NAME}/execute", workflows.ExecuteHandler, args),
        (r"/health", service.HealthHandler, args),
        (r"/ready", service.ReadyHandler, args),
        (r"/metrics", service.MetricsHandler, args),
        (r"/workflows", workflows.WorkflowListHandler, args),
        (rf"/workflows/{_NAME}", workflows.WorkflowHandler, args),
        (rf"/runs/{_RUN_ID}", run_lookup.RunHandler, args),
        (r"/auth/token", auth.TokenHandler, args),
        (r"/auth/refresh", auth.RefreshHandler, args),
        (r"/sessions", sessions.SessionListHandler, args),
        (rf"/sessions/{_RUN_ID}", sessions.SessionHandler, args),
    ]
    live = {"gateway": gateway, "hub": gateway.live_events()}
    table += [
        (rf"/runs/{_RUN_ID}/events", events.RunEventsHandler, live),
        (r"/ws", realtime.RealtimeHandler, live),
    ]
    if gateway.settings.mcp:
        table += _mcp_routes(gateway, live)
    if gateway.settings.enable_docs and docs.docs_available():
        table += [
            (r"/openapi.json", docs.OpenAPIHandler, args),
            (r"/docs", docs.DocsPageHandler, args),
        ]
    return table


def _mcp_routes(
    gateway: GatewayState, live: dict[str, Any]
) -> list[tuple[str, type, dict[str, Any]]]:
    """``/mcp`` (streamable HTTP) and ``/mcp/ws`` (WebSocket), sharing one ``McpService``
    (imported here: the ``mcp`` SDK is an optional extra)."""
    from kailash_nb.middleware.handlers import mcp_http, mcp_ws
    from kailash_nb.middleware.mcp import McpService

    if gateway.mcp is None:
        gateway.mcp = McpService(gateway)
    return [
        (r"/mcp", mcp_http.McpHttpHandler, {"gateway": gateway, "mcp": gateway.mcp}),
        (r"/mcp/ws", mcp_ws.McpWebSocketHandler, {**live, "mcp": gateway.mcp}),
    ]
