"""Published workflows as Model Context Protocol tools (``create_gateway(mcp=True)``).

The gateway serves every registered workflow as an MCP tool, over the streamable HTTP
transport (``/mcp``: ``POST`` JSON-RPC, ``GET`` a server-to-client SSE stream,
``DELETE`` ends the session; sessions in the ``Mcp-Session-Id`` header) and over a
WebSocket (``/mcp/ws``, subprotocol ``mcp``; the connection is the session). The routes
(``handlers.mcp_http``, ``handlers.mcp_ws``) authenticate, rate-limit and log like every
other route; this package is the transport-independent part:

- ``protocol.McpProtocol``: one JSON-RPC message in, its answer out, checked with the
  ``mcp`` SDK's protocol models (``mcp.types``);
- ``tools.WorkflowTools``: the tools (the REST API's input and output schemas) and a
  call as a run of the gateway's executor (run queue, access gate, run history,
  progress from node events, cancellation);
- ``sessions``: sessions bound to their caller's tenant and subject.

Needs the ``mcp`` extra (``pip install 'kailash-nb[mcp]'``).
"""

from __future__ import annotations

from kailash_nb.middleware.mcp.protocol import (
    SERVED_METHODS,
    SUPPORTED_PROTOCOL_VERSIONS,
    McpProtocol,
    jsonrpc_error,
)
from kailash_nb.middleware.mcp.service import McpService
from kailash_nb.middleware.mcp.sessions import McpSession, McpSessionLimitError, McpSessions
from kailash_nb.middleware.mcp.tools import RUN_ID_META, ToolCallError, WorkflowTools

__all__ = [
    "RUN_ID_META",
    "SERVED_METHODS",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "McpProtocol",
    "McpService",
    "McpSession",
    "McpSessionLimitError",
    "McpSessions",
    "ToolCallError",
    "WorkflowTools",
    "jsonrpc_error",
]
