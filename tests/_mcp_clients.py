"""Test helper: MCP client sessions of the ``mcp`` SDK against a served gateway, over
streamable HTTP (``/mcp``) or the WebSocket transport (``/mcp/ws``)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import mcp.types as types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

TRANSPORTS = ("http", "ws")


@contextlib.asynccontextmanager
async def mcp_session(
    base_url: str, transport: str, token: str | None, **session_options: Any
) -> AsyncIterator[ClientSession]:
    """An initialized ``ClientSession`` over ``transport`` (``"http"`` or ``"ws"``),
    authenticated with ``token`` (none when ``None``)."""
    if transport == "http":
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=300))
        streams = streamable_http_client(f"{base_url}/mcp", http_client=client)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # WebSocket leaves in mcp 2
            from mcp.client.websocket import websocket_client

            query = "" if token is None else f"?token={token}"
            streams = websocket_client(f"ws{base_url[4:]}/mcp/ws{query}")
    async with contextlib.AsyncExitStack() as stack:
        if transport == "http":
            await stack.enter_async_context(client)
        read, write, *_ = await stack.enter_async_context(streams)
        session = await stack.enter_async_context(ClientSession(read, write, **session_options))
        await session.initialize()
        yield session


def event_of(params: types.ProgressNotificationParams) -> dict[str, Any]:
    """The node event a progress notification's ``_meta`` carries."""
    return params.meta.model_dump()["kailash_nb/event"]


async def cancel(session: ClientSession, request_id: int, reason: str = "test") -> None:
    """Send ``notifications/cancelled`` for ``request_id``."""
    await session.send_notification(
        types.ClientNotification(
            types.CancelledNotification(
                params=types.CancelledNotificationParams(requestId=request_id, reason=reason)
            )
        )
    )
