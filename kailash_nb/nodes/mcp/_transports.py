"""Opening an MCP server's transport: a pair of message streams for ``ClientSession``.

stdio runs the configured command; streamable HTTP and WebSocket connect only where
the node's ``DestinationPolicy`` allows (WF-09): HTTP through the guarded httpx
transport the HTTP nodes use, WebSocket by resolving the name once, checking every
address and connecting to a checked one (TLS still verifies the URL's own name).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx

from kailash_nb.nodes._ssrf import DestinationPolicy, async_guarded_transport, system_resolver
from kailash_nb.nodes.mcp._spec import MCPServerSpec

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["open_transport"]

# Streamable HTTP holds a response stream open while a call runs; the call's own
# timeout (the session's) bounds it, this only ends a stream gone silent.
_STREAM_READ_TIMEOUT = 300.0


@asynccontextmanager
async def open_transport(
    spec: MCPServerSpec, policy: DestinationPolicy, timeout: float
) -> AsyncIterator[tuple[MemoryObjectReceiveStream[Any], MemoryObjectSendStream[Any]]]:
    """The ``(read_stream, write_stream)`` pair of ``spec``'s server, open while inside.

    ``timeout`` bounds connecting (and each HTTP connect, write and pool wait).
    """
    if spec.transport == "stdio":
        from mcp.client.stdio import StdioServerParameters, stdio_client

        parameters = StdioServerParameters(
            command=spec.command or "",
            args=list(spec.args),
            env=dict(spec.env) or None,
            cwd=spec.cwd,
        )
        async with stdio_client(parameters) as (read_stream, write_stream):
            yield read_stream, write_stream
    elif spec.transport == "streamable_http":
        from mcp.client.streamable_http import streamable_http_client

        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=async_guarded_transport(policy),
                    headers=dict(spec.headers),
                    timeout=httpx.Timeout(timeout, read=max(timeout, _STREAM_READ_TIMEOUT)),
                )
            )
            read_stream, write_stream, _ = await stack.enter_async_context(
                streamable_http_client(spec.url or "", http_client=client)
            )
            yield read_stream, write_stream
    else:
        async with _websocket(spec, policy, timeout) as streams:
            yield streams


@asynccontextmanager
async def _websocket(
    spec: MCPServerSpec, policy: DestinationPolicy, timeout: float
) -> AsyncIterator[tuple[MemoryObjectReceiveStream[Any], MemoryObjectSendStream[Any]]]:
    """MCP over a WebSocket (subprotocol ``mcp``): one JSON-RPC message per text frame.

    Written here rather than taken from ``mcp.client.websocket`` because the
    connection must go to an address that passed the destination check.
    """
    import mcp.types
    from mcp.shared.message import SessionMessage
    from pydantic import ValidationError
    from websockets.asyncio.client import connect

    url = spec.url or ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "wss" else 80)
    addresses = await anyio.to_thread.run_sync(system_resolver, host, port)
    policy.check(host, addresses)
    read_writer, read_stream = anyio.create_memory_object_stream[Any](0)
    write_stream, write_reader = anyio.create_memory_object_stream[Any](0)
    failure: Exception = OSError(f"{host!r} resolved to no address")
    for address in addresses:
        try:
            socket = await connect(
                url,
                subprotocols=["mcp"],  # type: ignore[list-item]
                additional_headers=dict(spec.headers),
                open_timeout=timeout,
                proxy=None,
                host=address,
                port=port,
            )
            break
        except OSError as exc:
            failure = exc
    else:
        raise failure

    async def read_frames() -> None:
        async with read_writer:
            async for frame in socket:
                try:
                    message = mcp.types.JSONRPCMessage.model_validate_json(frame)
                except ValidationError as exc:
                    await read_writer.send(exc)
                else:
                    await read_writer.send(SessionMessage(message))

    async def write_frames() -> None:
        async with write_reader:
            async for session_message in write_reader:
                payload = session_message.message.model_dump(
                    by_alias=True, mode="json", exclude_none=True
                )
                await socket.send(json.dumps(payload))

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read_frames)
            tasks.start_soon(write_frames)
            yield read_stream, write_stream
            tasks.cancel_scope.cancel()
    finally:
        await socket.close()
