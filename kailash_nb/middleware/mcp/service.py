"""``McpService``: what a gateway serving MCP holds (its protocol and HTTP sessions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kailash_nb.middleware.mcp.protocol import McpProtocol
from kailash_nb.middleware.mcp.sessions import McpSessions

if TYPE_CHECKING:
    from kailash_nb.middleware._gateway_state import GatewayState

__all__ = ["McpService"]


class McpService:
    """The MCP side of one gateway.

    Attributes:
        protocol: answers JSON-RPC messages (``McpProtocol``).
        sessions: the streamable HTTP sessions (WebSocket sessions live with their
            connection).
    """

    def __init__(self, gateway: GatewayState) -> None:
        self.protocol = McpProtocol(gateway)
        self.sessions = McpSessions(key=gateway.mcp_session_key)

    def close(self) -> None:
        """End every session and the calls in flight (the gateway stops)."""
        self.sessions.end_all()
