"""The MCP server side of one message: JSON-RPC 2.0 checked with the ``mcp`` SDK's
protocol models, answered for one session, whatever the transport.

Served methods: ``initialize``, ``ping``, ``tools/list`` and ``tools/call``; the client
notifications ``notifications/initialized`` and ``notifications/cancelled`` (which stops
the named call and its run). Anything else is a JSON-RPC error, never an exception: a
message that is not a JSON-RPC object ``INVALID_REQUEST``, an unknown method
``METHOD_NOT_FOUND``, bad parameters ``INVALID_PARAMS``, a request other than
``initialize`` or ``ping`` before ``initialize`` ``INVALID_REQUEST``, and an unexpected
failure ``INTERNAL_ERROR`` naming only an error id (the trace goes to the server log).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import mcp.types as types
from mcp.shared.version import SUPPORTED_PROTOCOL_VERSIONS
from pydantic import ValidationError

from kailash_nb.middleware._problems import new_error_id
from kailash_nb.middleware.mcp.tools import Send, ToolCallError, WorkflowTools

if TYPE_CHECKING:
    from kailash_nb.middleware._gateway_state import GatewayState
    from kailash_nb.middleware.mcp.sessions import McpSession

__all__ = [
    "SERVED_METHODS",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "McpProtocol",
    "jsonrpc_error",
    "negotiate_version",
]

#: The request model of each served method.
_REQUESTS: dict[str, type[Any]] = {
    "initialize": types.InitializeRequest,
    "ping": types.PingRequest,
    "tools/list": types.ListToolsRequest,
    "tools/call": types.CallToolRequest,
}
SERVED_METHODS = tuple(_REQUESTS)

logger = logging.getLogger(__name__)
_BEFORE_INIT = frozenset({"initialize", "ping"})
_INSTRUCTIONS = (
    "Each tool runs one workflow served by this kailash_nb gateway; its arguments are the "
    "workflow's parameters (workflow-level names, or {node_id: {input: value}}), its "
    "structured result the run's results by node."
)


def negotiate_version(requested: Any) -> str:
    """The client's protocol version if this server speaks it, else the latest."""
    if isinstance(requested, str) and requested in SUPPORTED_PROTOCOL_VERSIONS:
        return requested
    return types.LATEST_PROTOCOL_VERSION


def jsonrpc_error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    """A JSON-RPC error response (``request_id`` ``None`` when it is unknown)."""
    error: dict[str, Any] = {"code": code, "message": message[:1000]}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _request_id(message: dict[str, Any]) -> Any:
    """The message's id if it is one JSON-RPC allows, else ``None``."""
    value = message.get("id")
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None


class McpProtocol:
    """Answers MCP messages for the gateway's sessions.

    Args:
        gateway: the gateway whose workflows are served as tools.
    """

    def __init__(self, gateway: GatewayState) -> None:
        self.gateway = gateway
        self.tools = WorkflowTools(gateway)
        settings = gateway.settings
        self._server_info = types.Implementation(
            name=settings.title[:200], version=settings.version[:50]
        )

    async def handle(
        self, session: McpSession, message: Any, send: Send | None = None
    ) -> dict[str, Any] | None:
        """The response to one parsed JSON ``message`` (``None`` for a notification or
        a response). ``send`` delivers notifications belonging to the request
        (progress) while it runs; ``None`` when the transport cannot stream them."""
        if not isinstance(message, dict):
            return jsonrpc_error(
                None,
                types.INVALID_REQUEST,
                "send one JSON-RPC 2.0 message as a JSON object (batches are not supported)",
            )
        try:
            parsed = types.JSONRPCMessage.model_validate(message).root
        except ValidationError:
            return jsonrpc_error(
                _request_id(message),
                types.INVALID_REQUEST,
                'not a JSON-RPC 2.0 request, notification or response: send {"jsonrpc": '
                '"2.0", "id": 1, "method": "...", "params": {...}}',
            )
        if isinstance(parsed, types.JSONRPCNotification):
            self._notification(session, parsed)
            return None
        if not isinstance(parsed, types.JSONRPCRequest):
            return None  # a response: this server sends no requests
        return await self._request(session, parsed, send)

    async def _request(
        self, session: McpSession, request: types.JSONRPCRequest, send: Send | None
    ) -> dict[str, Any]:
        request_id, method = request.id, request.method
        model = _REQUESTS.get(method)
        if model is None:
            return jsonrpc_error(
                request_id,
                types.METHOD_NOT_FOUND,
                f"method {method[:80]!r} is not served; this server serves "
                f"{', '.join(SERVED_METHODS)}",
            )
        if session.protocol_version is None and method not in _BEFORE_INIT:
            return jsonrpc_error(
                request_id, types.INVALID_REQUEST, "send initialize before any other request"
            )
        try:
            typed = model.model_validate({"method": method, "params": request.params})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'][1:]) or 'params'}: {error['msg']}"
                for error in exc.errors()[:5]
            )
            return jsonrpc_error(
                request_id, types.INVALID_PARAMS, f"invalid params for {method}: {problems}"
            )
        try:
            result = await self._answer(session, request_id, typed, send)
        except ToolCallError as exc:
            return jsonrpc_error(request_id, exc.code, exc.message, exc.data)
        except Exception:
            error_id = new_error_id()
            logger.exception("unhandled error %s answering MCP %s", error_id, method)
            return jsonrpc_error(
                request_id,
                types.INTERNAL_ERROR,
                f"unexpected error; quote error_id {error_id} to the operator",
            )
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    async def _answer(
        self, session: McpSession, request_id: Any, request: Any, send: Send | None
    ) -> dict[str, Any]:
        if isinstance(request, types.CallToolRequest):
            params = request.params
            token = params.meta.progressToken if params.meta is not None else None
            return await self.tools.call(
                session, request_id, params.name, params.arguments or {}, token, send
            )
        if isinstance(request, types.ListToolsRequest):
            return {"tools": await self.tools.list(session.identity)}
        if isinstance(request, types.InitializeRequest):
            return self.initialize(session, request.params.protocolVersion)
        return {}  # ping

    def initialize(self, session: McpSession, requested: Any) -> dict[str, Any]:
        """Negotiate the protocol version for ``session``; the ``InitializeResult``."""
        session.protocol_version = negotiate_version(requested)
        return types.InitializeResult(
            protocolVersion=session.protocol_version,
            capabilities=types.ServerCapabilities(tools=types.ToolsCapability(listChanged=False)),
            serverInfo=self._server_info,
            instructions=_INSTRUCTIONS,
        ).model_dump(by_alias=True, mode="json", exclude_none=True)

    def _notification(self, session: McpSession, notification: types.JSONRPCNotification) -> None:
        if notification.method != "notifications/cancelled":
            return  # initialized, progress, roots changed...: nothing to do
        params = notification.params or {}
        request_id = params.get("requestId")
        if not isinstance(request_id, (str, int)):
            return  # not an id any call can have (and maybe not hashable)
        call = session.calls.get(request_id)
        if call is not None:
            reason = params.get("reason")
            call.stop(reason[:200] if isinstance(reason, str) else "cancelled by the client")
