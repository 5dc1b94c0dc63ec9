"""Fixtures for the MCP node tests: real MCP servers built with the SDK's FastMCP.

stdio: the server script run as a subprocess by the client itself. Streamable HTTP
and WebSocket: the same tools served by uvicorn on a free loopback port in a thread.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import uvicorn

from tests.nodes.mcp.mcp_test_server import build

SERVER_SCRIPT = Path(__file__).with_name("mcp_test_server.py")


class _ReadyServer(uvicorn.Server):
    """A uvicorn server that says when it is listening (no polling)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class ThreadedServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a thread; ``port`` 0 picks a free one.

    ``stop()`` then ``start()`` again serves a new app from ``factory`` on the same port
    (a server restart).
    """

    def __init__(self, factory: Callable[[str], Any], path: str, scheme: str = "http") -> None:
        self.factory = factory
        self.path = path
        self.scheme = scheme
        self.port = 0
        self.starts = 0
        self._server: _ReadyServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{self.path}"

    def start(self) -> ThreadedServer:
        self.starts += 1
        config = uvicorn.Config(
            self.factory(f"{self.scheme}-{self.starts}"),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="websockets-sansio",
            timeout_graceful_shutdown=1,
        )
        server = self._server = _ReadyServer(config)
        self._thread = threading.Thread(target=server.run, daemon=True)
        self._thread.start()
        if not server.ready.wait(10):
            raise RuntimeError("the test MCP server did not start")
        self.port = server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = self._thread = None


def _streamable_http_app(instance: str) -> Any:
    return build(instance).streamable_http_app()


def _websocket_app(instance: str) -> Any:
    """A bare ASGI app serving the test tools over the SDK's WebSocket server transport."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from mcp.server.websocket import websocket_server
    low_level = build(instance)._mcp_server

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        async with websocket_server(scope, receive, send) as (read_stream, write_stream):
            await low_level.run(
                read_stream, write_stream, low_level.create_initialization_options()
            )

    return app


@pytest.fixture(scope="session")
def stdio_server() -> dict[str, Any]:
    """The test server as a stdio server spec (run by the client as a subprocess)."""
    return {
        "name": "test",
        "transport": "stdio",
        "command": sys.executable,
        "args": [str(SERVER_SCRIPT)],
    }


@pytest.fixture
def http_server() -> Iterator[ThreadedServer]:
    """The test server over streamable HTTP at ``http://127.0.0.1:PORT/mcp``."""
    server = ThreadedServer(_streamable_http_app, "/mcp").start()
    yield server
    server.stop()


@pytest.fixture
def ws_server() -> Iterator[ThreadedServer]:
    """The test server over WebSocket at ``ws://127.0.0.1:PORT/ws``."""
    server = ThreadedServer(_websocket_app, "/ws", scheme="ws").start()
    yield server
    server.stop()
