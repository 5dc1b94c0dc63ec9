"""MCP servers as a tool source for the agent: each server's tools, offered to the
model with their input schemas and run through the agent's pooled MCP sessions."""

from __future__ import annotations

import re
from typing import Any

from kailash_nb.nodes.ai._tools import Tool
from kailash_nb.nodes.mcp import MCPClient, MCPServerSpec, server_spec
from kailash_nb.nodes.mcp.tool_result import model_text

__all__ = ["mcp_server_specs", "mcp_tools"]

_NAME = re.compile(r"[^A-Za-z0-9_-]")
_EMPTY_SCHEMA = {"type": "object", "properties": {}}


def mcp_server_specs(value: Any) -> list[MCPServerSpec]:
    """The agent's ``mcp_servers`` config checked into server specs.

    Raises:
        ValueError: not a list, or an entry is malformed (the entry is named).
    """
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ValueError("mcp_servers must be a list of MCP servers (URLs or dicts)")
    return [server_spec(item, f"mcp_servers[{position}]") for position, item in enumerate(value)]


async def mcp_tools(
    client: MCPClient, specs: list[MCPServerSpec], *, timeout: float, retries: int
) -> list[Tool]:
    """Every tool of every server in ``specs``, runnable through ``client``.

    Raises:
        MCPError: a server could not be listed (see ``kailash_nb.nodes.mcp.errors``).
    """
    tools: list[Tool] = []
    for spec in specs:
        for listed in await client.list_tools(spec, timeout=timeout, retries=retries):
            tools.append(
                Tool(
                    name=_NAME.sub("_", listed.name)[:64],
                    description=(listed.description or listed.name).split("\n\n", 1)[0].strip(),
                    parameters=listed.inputSchema or _EMPTY_SCHEMA,
                    target=_caller(client, spec, listed.name, timeout, retries),
                )
            )
    return tools


def _caller(client: MCPClient, spec: MCPServerSpec, name: str, timeout: float, retries: int):
    async def call_mcp_tool(**arguments: Any) -> str:
        result, _ = await client.call_tool(spec, name, arguments, timeout=timeout, retries=retries)
        return model_text(result)

    return call_mcp_tool
