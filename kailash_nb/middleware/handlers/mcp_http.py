"""``/mcp``: the MCP streamable HTTP transport (``create_gateway(mcp=True)``).

- ``POST /mcp`` with one JSON-RPC message. ``initialize`` creates a session bound to the
  caller and answers its id in ``Mcp-Session-Id``; every later message carries that
  header (missing: 400; unknown, ended or another caller's, whatever its tenant: 404).
  A request is answered ``application/json``, or, for a ``tools/call`` with a progress
  token from a client that accepts ``text/event-stream``, as an SSE stream of its
  progress notifications ending with the response. A notification or response is
  answered 202 with no body.
- ``GET /mcp`` (``Accept: text/event-stream``): the session's server-to-client stream;
  it stays open (comments keep it alive) until the session ends. One per session (409).
- ``DELETE /mcp``: ends the session and cancels its calls in flight (204).

Authentication, rate limits, body limits (413 before the body is read), content type
(415) and logging are those of every gateway route (``GatewayHandler``). A body that is
not JSON answers 400 with a JSON-RPC ``PARSE_ERROR``; other protocol errors are JSON-RPC
errors (``mcp.protocol``); nothing answers 500 short of a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import mcp.types as types
import tornado.iostream
import tornado.web

from kailash_nb._json_text import json_text
from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware.contract.operations import Operation, Reply, serving
from kailash_nb.middleware.handlers.base import GatewayHandler
from kailash_nb.middleware.mcp import (
    SUPPORTED_PROTOCOL_VERSIONS,
    McpService,
    McpSession,
    McpSessionLimitError,
    jsonrpc_error,
)

if TYPE_CHECKING:
    from kailash_nb.middleware._gateway_state import GatewayState

__all__ = ["MCP_DELETE", "MCP_GET", "MCP_POST", "McpHttpHandler"]

SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "Mcp-Protocol-Version"
#: Seconds between keep-alive comments on an idle GET stream.
KEEPALIVE_SECONDS = 15.0
_SSE = "text/event-stream"

MCP_POST = Operation(
    "post", "/mcp", "mcpPost", "mcp", "send one MCP JSON-RPC message",
    {200: Reply("the JSON-RPC response (JSON, or an SSE stream ending with it)")},
)  # fmt: skip
MCP_GET = Operation(
    "get", "/mcp", "mcpStream", "mcp", "the session's server-to-client SSE stream",
    {200: Reply("event stream", media_type=_SSE)},
)  # fmt: skip
MCP_DELETE = Operation(
    "delete", "/mcp", "mcpEnd", "mcp", "end the MCP session",
    {204: Reply("ended", media_type=None)},
)  # fmt: skip


@tornado.web.stream_request_body
class McpHttpHandler(GatewayHandler):
    """The streamable HTTP transport of the gateway's MCP tools."""

    route = "/mcp"
    contract = serving(POST=MCP_POST, GET=MCP_GET, DELETE=MCP_DELETE)

    def initialize(self, gateway: GatewayState, mcp: McpService) -> None:  # type: ignore[override]
        """Receive the gateway and its MCP service."""
        super().initialize(gateway)
        self.mcp = mcp
        self._session: McpSession | None = None
        self._request_id: Any = None
        self._closed: asyncio.Future[None] | None = None

    # -- POST ---------------------------------------------------------------------------

    async def post(self) -> None:
        """Answer one JSON-RPC message (see the module docstring)."""
        try:
            message = self.json_body()
        except ProblemError as exc:
            self._answer(400, jsonrpc_error(None, types.PARSE_ERROR, f"Parse error: {exc.detail}"))
            return
        is_request = isinstance(message, dict) and "method" in message and "id" in message
        if is_request and message.get("method") == "initialize":
            await self._initialize(message)
            return
        session = self._find_session(message.get("id") if is_request else None)
        if session is None:
            return
        protocol = self.mcp.protocol
        if not is_request:
            answer = await protocol.handle(session, message)
            if answer is None:
                self.set_status(202)
                self.finish()
            else:
                self._answer(400, answer)
            return
        self._session, self._request_id = session, message["id"]
        if self._wants_progress(message):
            await self._stream(session, message)
            return
        answer = await protocol.handle(session, message)
        self._answer(_status_of(answer), answer)

    async def _initialize(self, message: dict[str, Any]) -> None:
        try:
            session = self.mcp.sessions.create(self.identity)
        except McpSessionLimitError as exc:
            self._answer(429, jsonrpc_error(message.get("id"), types.INVALID_REQUEST, str(exc)))
            return
        answer = await self.mcp.protocol.handle(session, message)
        if answer is None or "error" in answer:
            self.mcp.sessions.remove(session)
            self._answer(400, answer or {})
            return
        self.set_header(SESSION_HEADER, session.session_id)
        self._answer(200, answer)

    def _find_session(self, request_id: Any) -> McpSession | None:
        """The request's live session of this caller, or ``None`` once answered."""
        values = self.request.headers.get_list(SESSION_HEADER)
        if len(values) != 1:
            detail = f"send exactly one {SESSION_HEADER} header (initialize creates a session)"
            self._answer(400, jsonrpc_error(request_id, types.INVALID_REQUEST, detail))
            return None
        version = self.request.headers.get(VERSION_HEADER)
        if version is not None and version not in SUPPORTED_PROTOCOL_VERSIONS:
            detail = (
                f"unsupported {VERSION_HEADER}; supported: {', '.join(SUPPORTED_PROTOCOL_VERSIONS)}"
            )
            self._answer(400, jsonrpc_error(request_id, types.INVALID_REQUEST, detail))
            return None
        adopted_version = version or types.DEFAULT_NEGOTIATED_VERSION
        session = self.mcp.sessions.get(values[0], self.identity, adopted_version)
        if session is None:
            detail = "Session not found: it ended, expired or is not yours; initialize a new one"
            self._answer(404, jsonrpc_error(request_id, types.INVALID_REQUEST, detail))
        return session

    def _wants_progress(self, message: dict[str, Any]) -> bool:
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        return (
            message.get("method") == "tools/call"
            and isinstance(meta, dict)
            and meta.get("progressToken") is not None
            and _SSE in self.request.headers.get("Accept", "")
        )

    async def _stream(self, session: McpSession, message: dict[str, Any]) -> None:
        """Answer as SSE: the progress notifications, then the response."""
        self.set_status(200)
        self.set_header("Content-Type", _SSE)
        self.set_header("X-Accel-Buffering", "no")

        async def send(notification: dict[str, Any]) -> None:
            self.write(_sse(notification))
            with contextlib.suppress(tornado.iostream.StreamClosedError):
                await self.flush()

        answer = await self.mcp.protocol.handle(session, message, send)
        if self.request.connection.stream.closed():  # type: ignore[union-attr]
            return
        self.finish(_sse(answer))

    def _answer(self, status: int, payload: dict[str, Any] | None) -> None:
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None and stream.closed():
            return  # the client left while its call ran (the call was cancelled)
        self.write_json(payload, status=status)

    # -- GET, DELETE ----------------------------------------------------------------------

    async def get(self) -> None:
        """Hold the session's server-to-client SSE stream open until it ends."""
        if _SSE not in self.request.headers.get("Accept", ""):
            raise ProblemError(406, "not_acceptable", f"GET /mcp answers {_SSE} only")
        session = self._find_session(None)
        if session is None:
            return
        if session.stream_open:
            self._answer(
                409,
                jsonrpc_error(None, types.INVALID_REQUEST, "this session's stream is already open"),
            )
            return
        loop = asyncio.get_running_loop()
        session.stream_open = True
        session.ended = session.ended or loop.create_future()
        self._closed = loop.create_future()
        self.set_header("Content-Type", _SSE)
        self.set_header("X-Accel-Buffering", "no")
        try:
            self.write(b": stream open\n\n")
            await self.flush()
            waits = {session.ended, self._closed}
            while not any(wait.done() for wait in waits):
                await asyncio.wait(
                    waits, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if not any(wait.done() for wait in waits):
                    self.write(b": keep-alive\n\n")
                    await self.flush()
        except tornado.iostream.StreamClosedError:
            return
        finally:
            session.stream_open = False
        if not self._closed.done():
            self.finish()

    def head(self, *args: str) -> None:
        """What ``GET`` would answer, without opening the stream."""
        if _SSE not in self.request.headers.get("Accept", ""):
            raise ProblemError(406, "not_acceptable", f"GET /mcp answers {_SSE} only")
        if self._find_session(None) is not None:
            self.set_header("Content-Type", _SSE)
            self.finish()

    async def delete(self) -> None:
        """End the session and cancel its calls in flight."""
        session = self._find_session(None)
        if session is None:
            return
        self.mcp.sessions.remove(session)
        self.set_status(204)
        self.finish()

    def on_connection_close(self) -> None:
        """The client went away: end its stream; cancel the call it waited for."""
        super().on_connection_close()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        session = self._session
        if session is not None:
            call = session.calls.get(self._request_id)
            if call is not None:
                call.stop("the client disconnected")


def _status_of(answer: dict[str, Any] | None) -> int:
    """400 for a message that is no valid request, else 200 (a JSON-RPC result or an
    error the request's method produced)."""
    error = (answer or {}).get("error")
    if error is not None and error.get("code") in (types.PARSE_ERROR, types.INVALID_REQUEST):
        return 400
    return 200


def _sse(message: Any) -> bytes:
    return f"event: message\ndata: {json_text(message)}\n\n".encode()
