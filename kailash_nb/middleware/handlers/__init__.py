"""The gateway's routes, assembled in one place (:func:`routes`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kailash_nb.middleware.handlers.auth import RefreshHandler, TokenHandler
from kailash_nb.middleware.handlers.docs import DocsPageHandler, OpenAPIHandler, docs_available
from kailash_nb.middleware.handlers.events import RunEventsHandler
from kailash_nb.middleware.handlers.realtime import RealtimeHandler
from kailash_nb.middleware.handlers.run_lookup import RunHandler
from kailash_nb.middleware.handlers.service import HealthHandler, MetricsHandler, ReadyHandler
from kailash_nb.middleware.handlers.sessions import SessionHandler, SessionListHandler
from kailash_nb.middleware.handlers.workflows import (
    ExecuteHandler,
    WorkflowHandler,
    WorkflowListHandler,
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
        (rf"/workflows/{_NAME}/execute", ExecuteHandler, args),
        (r"/health", HealthHandler, args),
        (r"/ready", ReadyHandler, args),
        (r"/metrics", MetricsHandler, args),
        (r"/workflows", WorkflowListHandler, args),
        (rf"/workflows/{_NAME}", WorkflowHandler, args),
        (rf"/runs/{_RUN_ID}", RunHandler, args),
        (r"/auth/token", TokenHandler, args),
        (r"/auth/refresh", RefreshHandler, args),
        (r"/sessions", SessionListHandler, args),
        (rf"/sessions/{_RUN_ID}", SessionHandler, args),
    ]
    live = {"gateway": gateway, "hub": gateway.live_events()}
    table += [(rf"/runs/{_RUN_ID}/events", RunEventsHandler, live), (r"/ws", RealtimeHandler, live)]
    if gateway.settings.enable_docs and docs_available():
        table += [(r"/openapi.json", OpenAPIHandler, args), (r"/docs", DocsPageHandler, args)]
    return table
