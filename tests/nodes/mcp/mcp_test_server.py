"""A small MCP server for the MCP node tests, built with the SDK's FastMCP.

Run as a script it serves over stdio (``python mcp_test_server.py``); the tests
import ``build()`` to serve the same tools over streamable HTTP and WebSocket.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from mcp.server.fastmcp import Context, FastMCP


def build(instance: str = "stdio") -> FastMCP:
    """The test server: tools that add, shout, fail, sleep and say which server they are
    (``whoami``: the process id and ``instance``)."""
    server = FastMCP("kailash-nb-test", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def shout(text: str) -> str:
        """Upper-case the text."""
        return text.upper()

    @server.tool()
    def fail(message: str) -> str:
        """Always fail with the message."""
        raise ValueError(message)

    @server.tool()
    def slow(seconds: float) -> str:
        """Sleep, then answer."""
        time.sleep(seconds)
        return "done"

    @server.tool()
    def whoami() -> str:
        """Which server answered: its process id and instance name."""
        return f"{os.getpid()}-{instance}"

    @server.tool()
    def session(ctx: Context) -> str:
        """Which client session called: the same answer means the same session."""
        if not hasattr(ctx.session, "test_session_id"):
            ctx.session.test_session_id = uuid.uuid4().hex  # type: ignore[attr-defined]
        return ctx.session.test_session_id  # type: ignore[attr-defined]

    return server


if __name__ == "__main__":
    build().run("stdio")
    sys.exit(0)
