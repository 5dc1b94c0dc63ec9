"""``WS /mcp/ws``: the gateway's MCP tools over a WebSocket (subprotocol ``mcp``).

The handshake is ``/ws``'s (``RealtimeHandler``): a bad ``Origin`` answers 403, a
missing or invalid token 401 before any upgrade; the token comes in the
``Authorization: Bearer`` header or the ``token`` query parameter (the ``mcp`` SDK's
WebSocket client sends no headers: ``ws://HOST/mcp/ws?token=...``). The connection is
one MCP session of the caller; each text frame is one JSON-RPC message, each answer and
notification one frame. Requests are handled concurrently, so a
``notifications/cancelled`` reaches a call in flight. Every ``tools/call`` counts
against the caller's rate limit (a JSON-RPC error past it). Frames above 64 KiB close
with 1009, message floods with 1008, the token's expiry and a revoked session close
the socket as on ``/ws``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import mcp.types as types

from kailash_nb.middleware._json_body import parse_json_body
from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware._realtime import RunEventHub
from kailash_nb.middleware.handlers.realtime import RealtimeHandler
from kailash_nb.middleware.identity import rate_key
from kailash_nb.middleware.mcp import McpService, McpSession, jsonrpc_error

if TYPE_CHECKING:
    from kailash_nb.middleware._gateway_state import GatewayState

__all__ = ["McpWebSocketHandler"]

#: JSON-RPC error code of a ``tools/call`` over the caller's rate limit.
RATE_LIMITED = -32029


class McpWebSocketHandler(RealtimeHandler):
    """One caller's MCP session over a WebSocket.

    Class attributes: those of ``RealtimeHandler``; ``max_calls_in_flight`` bounds the
    requests one connection may have running at once (more get a JSON-RPC error).
    """

    path = "/mcp/ws"
    max_messages_per_second = 200
    max_calls_in_flight = 64

    def initialize(  # type: ignore[override]
        self, gateway: GatewayState, hub: RunEventHub, mcp: McpService
    ) -> None:
        """Receive the gateway, its run-event hub and its MCP service."""
        super().initialize(gateway, hub)
        self.mcp = mcp
        self.session: McpSession | None = None
        # Requests in flight (capped) and notifications being handled (never refused).
        self._requests: set[asyncio.Task[None]] = set()
        self._notices: set[asyncio.Task[None]] = set()

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Speak ``mcp`` when the client offers it."""
        return "mcp" if "mcp" in subprotocols else None

    def open(self, *args: str, **kwargs: str) -> None:
        """Start the connection (writer, expiry, revocation watch) and its session."""
        super().open(*args, **kwargs)
        self.session = McpSession(self.identity)

    def on_message(self, message: str | bytes) -> None:
        """Count the frame against the flood limit, then handle it concurrently."""
        if self.flooded() or self.session is None:
            return
        if not isinstance(message, str):
            self._send(jsonrpc_error(None, types.PARSE_ERROR, "Parse error: send text frames"))
            return
        try:
            body = parse_json_body(message.encode("utf-8", "surrogatepass"))
        except ProblemError as exc:
            self._send(jsonrpc_error(None, types.PARSE_ERROR, f"Parse error: {exc.detail}"))
            return
        # Notifications (no id) are never refused: notifications/cancelled is how a
        # client frees a place, and it is answered at once.
        notification = isinstance(body, dict) and "id" not in body
        if not notification and len(self._requests) >= self.max_calls_in_flight:
            request_id = body.get("id") if isinstance(body, dict) else None
            if request_id is not None:
                detail = f"at most {self.max_calls_in_flight} requests may run at once"
                self._send(jsonrpc_error(request_id, types.INVALID_REQUEST, detail))
            return
        task = asyncio.ensure_future(self._handle(self.session, body))
        tasks = self._notices if notification else self._requests
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _handle(self, session: McpSession, body: Any) -> None:
        if isinstance(body, dict) and body.get("method") == "tools/call" and "id" in body:
            refusal = await self._rate_refusal(body["id"])
            if refusal is not None:
                self._send(refusal)
                return
        answer = await self.mcp.protocol.handle(session, body, self._notify)
        if answer is not None:
            self._send(answer)

    async def _notify(self, message: dict[str, Any]) -> None:
        self._send(message)

    async def _rate_refusal(self, request_id: Any) -> dict[str, Any] | None:
        limiter = self.gateway.rate_limiter
        if limiter is None:
            return None
        decision = await limiter.acquire(rate_key(self.identity, self.request.remote_ip))
        if decision.allowed:
            return None
        wait = {"retry_after": decision.retry_after_seconds}
        return jsonrpc_error(request_id, RATE_LIMITED, decision.refusal, wait)

    def on_close(self) -> None:
        """Cancel the session's calls in flight, then release the connection."""
        if self.session is not None:
            self.session.end("the WebSocket closed")
        super().on_close()
