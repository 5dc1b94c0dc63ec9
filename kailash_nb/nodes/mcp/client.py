"""``MCPClient``: call tools on MCP servers through pooled sessions.

What ``MCPToolNode`` and ``LLMAgentNode`` share: one session per server per event loop,
retries after a lost connection, the destination check, and a tool's ``isError``
answer raised as ``MCPToolError``::

    client = MCPClient(subject="my agent", allow_private_network=True)
    spec = server_spec({"command": "python", "args": ["server.py"]})
    result, attempts = await client.call_tool(spec, "add", {"a": 1, "b": 2})
    await client.aclose()
"""

from __future__ import annotations

from typing import Any

from kailash_nb._loop_thread import run_blocking
from kailash_nb.nodes._ssrf import DestinationPolicy
from kailash_nb.nodes.mcp._pool import MCPSessionPool, require_mcp
from kailash_nb.nodes.mcp._spec import MCPServerSpec
from kailash_nb.nodes.mcp.errors import MCPError, MCPToolError
from kailash_nb.nodes.mcp.tool_result import text_of
from kailash_nb.sdk_exceptions import close_matches

__all__ = ["MCPClient"]

_PREVIEW = 500


class MCPClient:
    """Tool calls and listings on MCP servers, over sessions pooled per event loop.

    Args:
        subject: who failure messages name first (a node's label).
        allow_private_network: reach HTTP/WebSocket servers on loopback or private
            networks (set by the workflow author; see ``kailash_nb.nodes._ssrf``).

    Raises:
        NodeConfigurationError: the ``mcp`` extra is not installed.
    """

    def __init__(self, *, subject: str = "MCP client", allow_private_network: bool = False) -> None:
        require_mcp()
        self.pool = MCPSessionPool(
            DestinationPolicy(allow_private_network=allow_private_network), subject
        )

    async def call_tool(
        self,
        spec: MCPServerSpec,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff_factor: float = 0.5,
    ) -> tuple[Any, int]:
        """Call ``tool`` and return its ``CallToolResult`` and the attempts made.

        Raises:
            MCPToolError: the tool answered ``isError``, or the server has no such tool.
            MCPConnectionError, MCPTimeoutError, MCPProtocolError,
            DestinationNotAllowedError: see ``kailash_nb.nodes.mcp.errors``.
        """
        options = {"timeout": timeout, "retries": retries, "backoff_factor": backoff_factor}
        result, attempts = await self.pool.call_tool(spec, tool, arguments, **options)
        if result.isError:
            raise await self._tool_error(spec, tool, text_of(result), attempts, options)
        return result, attempts

    async def list_tools(
        self,
        spec: MCPServerSpec,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff_factor: float = 0.5,
    ) -> list[Any]:
        """The tools ``spec``'s server offers (``mcp.types.Tool``: name, description,
        inputSchema)."""
        return await self.pool.list_tools(
            spec, timeout=timeout, retries=retries, backoff_factor=backoff_factor
        )

    async def aclose(self) -> None:
        """Close the sessions of the running event loop."""
        await self.pool.aclose()

    def close(self) -> None:
        """Close the sessions that synchronous runs opened (on the shared background loop)."""
        run_blocking(self.pool.aclose())

    async def _tool_error(
        self,
        spec: MCPServerSpec,
        tool: str,
        text: str,
        attempts: int,
        options: dict[str, Any],
    ) -> MCPToolError:
        head = f"{self.pool.subject}: tool {tool!r} on {spec.where}"
        try:
            names = [listed.name for listed in await self.list_tools(spec, **options)]
        except MCPError:
            names = None
        if names is not None and tool not in names:
            message = (
                f"{head}: the server has no tool named {tool!r}{close_matches(tool, names)}; "
                f"its tools are {sorted(names)}"
            )
        else:
            message = f"{head} reported an error: {text[:_PREVIEW] or '(no message)'}"
        return MCPToolError(message, server=spec.name, tool=tool, content=text, attempts=attempts)
