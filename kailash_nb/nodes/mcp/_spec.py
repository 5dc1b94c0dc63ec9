"""MCP server specifications: which server a node talks to, and over what transport.

A specification is set by the workflow's author (config only, never an input): a URL,
or a dict in the shape Kailash's MCP client and Kaizen agents use::

    "https://tools.example.com/mcp"                           # streamable HTTP
    "wss://tools.example.com/mcp/ws"                          # WebSocket
    {"name": "files", "transport": "stdio", "command": "python", "args": ["server.py"]}
    {"name": "search", "transport": "streamable_http", "url": "https://...",
     "headers": {"Authorization": "Bearer ..."}}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MCPServerSpec", "server_spec", "shown_url"]

#: Accepted transport names -> the one used internally.
_TRANSPORTS = {
    "stdio": "stdio",
    "streamable_http": "streamable_http",
    "streamable-http": "streamable_http",
    "http": "streamable_http",
    "websocket": "websocket",
    "ws": "websocket",
}
_KEYS = frozenset({"name", "transport", "command", "args", "env", "cwd", "url", "headers"})


@dataclass(frozen=True)
class MCPServerSpec:
    """One MCP server: a command run over stdio, or a URL (streamable HTTP or WebSocket).

    Attributes:
        name: what messages call the server (given, or derived from the command or URL).
        transport: ``"stdio"``, ``"streamable_http"`` or ``"websocket"``.
        command, args, env, cwd: the stdio server's process (``env`` is added to a
            minimal inherited environment, as the MCP SDK does).
        url, headers: the HTTP or WebSocket endpoint and extra request headers.
    """

    name: str
    transport: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies one pooled session: the server and its URL or command line."""
        return (self.transport, self.command, self.args, self.env, self.cwd, self.url, self.headers)

    @property
    def where(self) -> str:
        """The server for messages: its name and URL or command (no header values)."""
        target = self.url if self.url else " ".join((self.command or "", *self.args)).strip()
        return f"MCP server {self.name!r} ({self.transport} {shown_url(target)})"


def server_spec(value: Any, label: str = "mcp_server") -> MCPServerSpec:
    """``value`` (a URL or a server dict) checked into an ``MCPServerSpec``.

    Raises:
        ValueError: the value is malformed; the message starts with ``label`` and says
            what to give instead.
    """
    if isinstance(value, MCPServerSpec):
        return value
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, dict):
        raise ValueError(
            f"{label} must be a URL or a dict such as {{'transport': 'stdio', 'command': "
            f"'python', 'args': ['server.py']}}, not {type(value).__name__}"
        )
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        raise ValueError(f"{label} has unknown keys {unknown}; the keys are {sorted(_KEYS)}")
    transport = _transport(value, label)
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{label}['name'] must be a string")
    if transport == "stdio":
        return _stdio_spec(value, name, label)
    return _url_spec(value, transport, name, label)


def _transport(value: dict[str, Any], label: str) -> str:
    given = value.get("transport")
    if given is None:
        if value.get("command") is not None:
            return "stdio"
        scheme = urlsplit(str(value.get("url") or "")).scheme.lower()
        if scheme in ("ws", "wss"):
            return "websocket"
        if scheme in ("http", "https"):
            return "streamable_http"
        raise ValueError(f"{label} needs a 'command' (stdio) or an http(s):// or ws(s):// 'url'")
    transport = _TRANSPORTS.get(str(given).lower())
    if transport is None:
        advice = " (the SSE transport is superseded by streamable_http)" if given == "sse" else ""
        raise ValueError(
            f"{label}['transport'] {given!r} is not supported{advice}; use one of "
            "stdio, streamable_http, websocket"
        )
    return transport


def _stdio_spec(value: dict[str, Any], name: str | None, label: str) -> MCPServerSpec:
    command = value.get("command")
    if not isinstance(command, str) or not command:
        raise ValueError(f"{label}: a stdio server needs a 'command' (a program to run)")
    args = value.get("args") or []
    if not isinstance(args, (list, tuple)) or not all(isinstance(arg, str) for arg in args):
        raise ValueError(f"{label}['args'] must be a list of strings")
    env = value.get("env") or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ValueError(f"{label}['env'] must be a dict of strings")
    cwd = value.get("cwd")
    if cwd is not None and not isinstance(cwd, (str, os.PathLike)):
        raise ValueError(f"{label}['cwd'] must be a directory path")
    if value.get("url") is not None:
        raise ValueError(f"{label}: a stdio server takes a 'command', not a 'url'")
    return MCPServerSpec(
        name=name or os.path.basename(command),
        transport="stdio",
        command=command,
        args=tuple(args),
        env=tuple(sorted(env.items())),
        cwd=os.fspath(cwd) if cwd is not None else None,
    )


def _url_spec(value: dict[str, Any], transport: str, name: str | None, label: str) -> MCPServerSpec:
    url = value.get("url")
    schemes = ("ws", "wss") if transport == "websocket" else ("http", "https")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme.lower() not in schemes or not parts.hostname:
        raise ValueError(
            f"{label}: a {transport} server needs an absolute "
            f"{' or '.join(s + '://' for s in schemes)} 'url', got {shown_url(str(url))!r}"
        )
    if value.get("command") is not None:
        raise ValueError(f"{label}: a {transport} server takes a 'url', not a 'command'")
    headers = value.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValueError(f"{label}['headers'] must be a dict of strings")
    return MCPServerSpec(
        name=name or parts.hostname,
        transport=transport,
        url=url,
        headers=tuple(sorted(headers.items())),
    )


def shown_url(url: str) -> str:
    """``url`` without user, password, query or fragment, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if not parts.scheme:
        return url
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
