"""Pooled MCP client sessions: one live ``ClientSession`` per server per event loop.

An MCP session lives inside the SDK's async context managers, whose task groups must
be entered and left by one task. Each session therefore gets an owner task that opens
the transport, initializes the session, and waits until the pool closes it; calls
from any task on the same loop share it. A call that finds the connection lost (the
server restarted, the process died) drops the session, waits, and tries again on a
new one, up to ``retries`` times.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from kailash_nb.nodes._retry import backoff
from kailash_nb.nodes._ssrf import DestinationPolicy
from kailash_nb.nodes.mcp._failures import classify, describe, failure_error
from kailash_nb.nodes.mcp._spec import MCPServerSpec
from kailash_nb.nodes.mcp._transports import open_transport
from kailash_nb.sdk_exceptions import NodeConfigurationError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mcp import ClientSession

__all__ = ["MCPSessionPool", "require_mcp"]

T = TypeVar("T")
_INSTALL = "pip install 'kailash-nb[mcp]'"


def require_mcp() -> None:
    """Raise ``NodeConfigurationError`` unless the ``mcp`` SDK is importable (cheaply:
    nothing is imported)."""
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        raise NodeConfigurationError(
            f"MCP nodes need the official MCP SDK: install the 'mcp' extra ({_INSTALL})"
        )


class _Connection:
    """One session and the task that owns it."""

    def __init__(self, spec: MCPServerSpec, policy: DestinationPolicy) -> None:
        self.spec = spec
        self.policy = policy
        self.session: ClientSession | None = None
        self.failure: BaseException | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        #: Set when the owner task has ended: the session is gone.
        self.ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self, timeout: float) -> None:
        """Start the owner task (first caller) and wait until the session is ready."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._own(timeout))
        try:
            with anyio.fail_after(timeout):
                await self._ready.wait()
        except TimeoutError:
            self._task.cancel()
            raise
        if self.session is None:
            raise self.failure or ConnectionError("the session ended before it was ready")

    @property
    def alive(self) -> bool:
        return self._task is None or not self._task.done()

    async def close(self) -> None:
        """End the session (a stdio server's process is stopped) and wait for it."""
        self._closing.set()
        if self._task is not None and not self._task.done():
            # wait() neither raises the owner's failure nor cancels it on a timeout.
            await asyncio.wait([self._task], timeout=5)

    async def _own(self, timeout: float) -> None:
        from mcp import ClientSession

        try:
            async with (
                open_transport(self.spec, self.policy, timeout) as (read_stream, write_stream),
                ClientSession(read_stream, write_stream) as session,
            ):
                await session.initialize()
                self.session = session
                self._ready.set()
                await self._closing.wait()
        except Exception as exc:
            self.failure = exc
        finally:
            self.session = None
            self._ready.set()
            self.ended.set()

    async def run(self, operation: Callable[[ClientSession], Awaitable[T]]) -> T:
        """``operation`` on this session, abandoned if the session ends meanwhile.

        A message sent after the server went away (a dead stdio process) fails in the
        transport's task, not in the call, which would otherwise wait for an answer
        that cannot come until its timeout.
        """
        session = self.session
        if session is None:
            raise ConnectionError("the session has ended")
        outcome: list[T] = []
        async with anyio.create_task_group() as tasks:

            async def watch() -> None:
                await self.ended.wait()
                tasks.cancel_scope.cancel()

            tasks.start_soon(watch)
            outcome.append(await operation(session))
            tasks.cancel_scope.cancel()
        if not outcome:
            raise ConnectionError(f"the connection was lost ({describe(self.failure)})")
        return outcome[0]


class MCPSessionPool:
    """Live MCP sessions of one owner (a node), per event loop and per server.

    A session is opened on first use and reused by later calls on the same loop
    (an asyncio loop cannot share another's streams); a loop that ends takes its
    sessions with it. ``aclose()`` closes the running loop's sessions.

    Args:
        policy: where HTTP and WebSocket servers may be reached.
        subject: who failure messages name first (``"node 'call' (MCPToolNode)"``).
    """

    def __init__(self, policy: DestinationPolicy, subject: str) -> None:
        self.policy = policy
        self.subject = subject
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[Any, ...], _Connection]
        ] = weakref.WeakKeyDictionary()

    def sessions(self) -> int:
        """How many live sessions the running loop holds (for tests and monitoring)."""
        with self._lock:
            connections = self._loops.get(asyncio.get_running_loop(), {})
            return sum(1 for connection in connections.values() if connection.alive)

    async def call_tool(
        self,
        spec: MCPServerSpec,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float,
        retries: int,
        backoff_factor: float,
    ) -> tuple[Any, int]:
        """Call ``tool`` on ``spec``'s server: the ``CallToolResult`` and the attempts made.

        Raises:
            MCPConnectionError, MCPTimeoutError, MCPProtocolError,
            DestinationNotAllowedError: see ``kailash_nb.nodes.mcp.errors``.
        """

        async def call(session: ClientSession) -> Any:
            return await session.call_tool(
                tool, arguments, read_timeout_seconds=timedelta(seconds=timeout)
            )

        return await self._with_retries(
            spec, tool, call, timeout=timeout, retries=retries, backoff_factor=backoff_factor
        )

    async def list_tools(
        self, spec: MCPServerSpec, *, timeout: float, retries: int, backoff_factor: float
    ) -> list[Any]:
        """Every tool ``spec``'s server offers (``mcp.types.Tool``), all pages."""

        async def listing(session: ClientSession) -> list[Any]:
            tools: list[Any] = []
            cursor = None
            while True:
                with anyio.fail_after(timeout):
                    page = await session.list_tools(cursor)
                tools.extend(page.tools)
                cursor = page.nextCursor
                if not cursor:
                    return tools

        tools, _ = await self._with_retries(
            spec, None, listing, timeout=timeout, retries=retries, backoff_factor=backoff_factor
        )
        return tools

    async def aclose(self) -> None:
        """Close the sessions of the running event loop."""
        with self._lock:
            connections = self._loops.pop(asyncio.get_running_loop(), {})
        for connection in connections.values():
            await connection.close()

    async def _with_retries(
        self,
        spec: MCPServerSpec,
        tool: str | None,
        operation: Callable[[ClientSession], Awaitable[T]],
        *,
        timeout: float,
        retries: int,
        backoff_factor: float,
    ) -> tuple[T, int]:
        attempt = 0
        while True:
            attempt += 1
            connection = self._connection(spec)
            try:
                await connection.open(timeout)
                return await connection.run(operation), attempt
            except Exception as exc:
                failure, cause = classify(exc)
                if failure != "protocol" and failure != "timeout":
                    await self._drop(spec, connection)
                if failure != "lost" or attempt > retries:
                    raise failure_error(
                        self.subject,
                        spec,
                        tool,
                        cause,
                        failure,
                        attempt,
                        timeout,
                        self.policy.allow_private_network,
                    ) from None
            await anyio.sleep(backoff(attempt, backoff_factor))

    def _connection(self, spec: MCPServerSpec) -> _Connection:
        with self._lock:
            # A connection's task refers to its loop, so a finished loop's entry would
            # never leave the weak dictionary by itself.
            for finished in [loop for loop in self._loops if loop.is_closed()]:
                del self._loops[finished]
            connections = self._loops.setdefault(asyncio.get_running_loop(), {})
            connection = connections.get(spec.key)
            if connection is None or not connection.alive:
                connection = connections[spec.key] = _Connection(spec, self.policy)
            return connection

    async def _drop(self, spec: MCPServerSpec, connection: _Connection) -> None:
        with self._lock:
            connections = self._loops.get(asyncio.get_running_loop(), {})
            if connections.get(spec.key) is connection:
                del connections[spec.key]
        await connection.close()
