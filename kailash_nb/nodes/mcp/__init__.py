"""MCP nodes: call tools on Model Context Protocol servers.

``MCPToolNode`` / ``AsyncMCPToolNode`` call one tool; ``MCPClient`` is the pooled
client they and ``LLMAgentNode`` (its ``mcp_servers`` config) share. Needs the
``mcp`` extra (``pip install 'kailash-nb[mcp]'``); importing this package does not
import the SDK.
"""

from kailash_nb.nodes.mcp._spec import MCPServerSpec, server_spec
from kailash_nb.nodes.mcp.client import MCPClient
from kailash_nb.nodes.mcp.errors import (
    MCPConnectionError,
    MCPError,
    MCPProtocolError,
    MCPTimeoutError,
    MCPToolError,
)
from kailash_nb.nodes.mcp.tool_node import AsyncMCPToolNode, MCPToolNode

__all__ = [
    "AsyncMCPToolNode",
    "MCPClient",
    "MCPConnectionError",
    "MCPError",
    "MCPProtocolError",
    "MCPServerSpec",
    "MCPTimeoutError",
    "MCPToolError",
    "MCPToolNode",
    "server_spec",
]
