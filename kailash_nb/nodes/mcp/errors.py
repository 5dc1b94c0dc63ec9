"""Errors of MCP tool calls: each names the server and the tool, and says what to do.

A tool that answers ``isError`` is a failure (``MCPToolError``), never an output with
``success=False``; so are a server that cannot be reached (``MCPConnectionError``), a
call that outlasts its timeout (``MCPTimeoutError``) and a JSON-RPC error answer
(``MCPProtocolError``). All are subclasses of ``NodeExecutionError``.
"""

from __future__ import annotations

from kailash_nb.sdk_exceptions import NodeExecutionError

__all__ = [
    "MCPConnectionError",
    "MCPError",
    "MCPProtocolError",
    "MCPTimeoutError",
    "MCPToolError",
]


class MCPError(NodeExecutionError):
    """A call to an MCP server failed.

    Attributes:
        server: the server's name.
        tool: the tool called (``None`` for listing tools).
        attempts: how many attempts were made.
    """

    def __init__(
        self, message: str, *, server: str, tool: str | None = None, attempts: int = 1
    ) -> None:
        super().__init__(message)
        self.server = server
        self.tool = tool
        self.attempts = attempts


class MCPToolError(MCPError):
    """The tool ran and reported an error (``isError``), or there is no such tool.

    Attributes:
        content: the text the tool sent with its error.
    """

    def __init__(
        self, message: str, *, server: str, tool: str | None, content: str, attempts: int = 1
    ) -> None:
        super().__init__(message, server=server, tool=tool, attempts=attempts)
        self.content = content


class MCPConnectionError(MCPError):
    """The server could not be reached, or the connection was lost, after the retries."""


class MCPTimeoutError(MCPError):
    """The server did not answer within the timeout (not retried: the call may have run)."""


class MCPProtocolError(MCPError):
    """The server answered with a JSON-RPC error or a malformed result.

    Attributes:
        code: the JSON-RPC error code, when there is one (``-32602``: invalid params).
    """

    def __init__(
        self,
        message: str,
        *,
        server: str,
        tool: str | None = None,
        code: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, server=server, tool=tool, attempts=attempts)
        self.code = code
