"""MCP tool nodes: ``MCPToolNode`` and its async twin ``AsyncMCPToolNode``.

Each run calls one tool on an MCP server over a session pooled on the node::

    add = MCPToolNode(mcp_server={"command": "python", "args": ["server.py"]},
                      tool_name="add")
    add.execute(arguments={"a": 1, "b": 2})["result"]   # {"result": 3}

Both run the same coroutine; the sync node runs it on the shared background loop,
so its sessions live there between runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kailash_nb._loop_thread import run_blocking
from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.mcp._spec import server_spec
from kailash_nb.nodes.mcp.client import MCPClient
from kailash_nb.nodes.mcp.tool_result import outputs
from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError

__all__ = ["AsyncMCPToolNode", "MCPToolNode"]

_PARAMETERS = {
    parameter.name: parameter
    for parameter in (
        NodeParameter(name="tool_name", type=str, required=True, description="the tool to call"),
        NodeParameter(
            name="arguments", type=dict, required=False, description="the tool's arguments"
        ),
        NodeParameter(
            name="parameters",
            type=dict,
            required=False,
            description="the tool's arguments (Kailash's name; give one of the two)",
        ),
        NodeParameter(
            name="timeout",
            type=float,
            required=False,
            default=30.0,
            description="seconds to connect, and for the tool to answer",
        ),
        NodeParameter(
            name="retries",
            type=int,
            required=False,
            default=2,
            description="extra attempts after the server could not be reached",
        ),
        NodeParameter(
            name="backoff_factor",
            type=float,
            required=False,
            default=0.5,
            description="retry n (from 0) waits backoff_factor * 2**n seconds",
        ),
    )
}


class _MCPToolCore:
    """What both MCP tool nodes share: config, option checks, the call."""

    #: Set by the workflow author only, never inputs: which server (a command to run
    #: or a URL) and whether it may be on a private network (WF-09).
    config_only_keys: ClassVar[frozenset[str]] = frozenset({"mcp_server", "allow_private_network"})

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        label = f"node {self.id!r} ({self.type_name()})"  # type: ignore[attr-defined]
        problems = _option_problems(self.config)  # type: ignore[attr-defined]
        allow = self.config.get("allow_private_network", False)  # type: ignore[attr-defined]
        if not isinstance(allow, bool):
            problems.append(f"allow_private_network must be True or False, got {allow!r}")
        if "mcp_server" not in self.config:  # type: ignore[attr-defined]
            problems.append(
                "mcp_server is required in the config: a URL or a dict such as "
                "{'transport': 'stdio', 'command': 'python', 'args': ['server.py']}"
            )
        else:
            try:
                self._spec = server_spec(self.config["mcp_server"])  # type: ignore[attr-defined]
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise NodeConfigurationError(f"{label}: {'; '.join(problems)}")
        self._mcp = MCPClient(subject=label, allow_private_network=allow)

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The call's inputs; only ``tool_name`` is required."""
        return dict(_PARAMETERS)

    async def _call(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        problems = _option_problems(kwargs)
        if kwargs.get("arguments") is not None and kwargs.get("parameters") is not None:
            problems.append("give the tool's arguments as either 'arguments' or 'parameters'")
        if not kwargs["tool_name"]:
            problems.append("tool_name must be a non-empty string")
        if problems:
            raise NodeValidationError(
                f"node {self.id!r} ({self.type_name()}): {'; '.join(problems)}"  # type: ignore[attr-defined]
            )
        arguments = kwargs.get("arguments") or kwargs.get("parameters") or {}
        result, attempts = await self._mcp.call_tool(
            self._spec,
            kwargs["tool_name"],
            arguments,
            timeout=kwargs["timeout"],
            retries=kwargs["retries"],
            backoff_factor=kwargs["backoff_factor"],
        )
        return outputs(result, tool=kwargs["tool_name"], server=self._spec.name, attempts=attempts)


def _option_problems(options: dict[str, Any]) -> list[str]:
    problems = []
    for name in ("retries", "backoff_factor"):
        value = options.get(name)
        if value is not None and value < 0:
            problems.append(f"{name} must be 0 or more, got {value!r}")
    timeout = options.get("timeout")
    if timeout is not None and not timeout > 0:
        problems.append(f"timeout must be a positive number of seconds, got {timeout!r}")
    return problems


_DOC = """

    Config only (set by the workflow author, never inputs): ``mcp_server``, the server
    as a URL (``https://...`` streamable HTTP, ``wss://...`` WebSocket) or a dict
    (``name``, ``transport``: stdio / streamable_http / websocket, ``command``,
    ``args``, ``env``, ``cwd`` for stdio; ``url``, ``headers`` otherwise), and
    ``allow_private_network`` (reach an HTTP or WebSocket server on loopback or a
    private network; by default only public addresses are, as for the HTTP nodes).

    Inputs: ``tool_name`` (required), ``arguments`` (or Kailash's ``parameters``),
    ``timeout`` (seconds to connect and for the tool to answer; default 30),
    ``retries`` (attempts after the server could not be reached or the connection
    was lost, each on a new session; default 2) and ``backoff_factor`` (default 0.5).
    A call that timed out is not retried: the tool may have run.

    Outputs: ``success`` (True; failures raise), ``result`` (the tool's structured
    content when it sends one, else its text, else its content blocks),
    ``content`` (the text blocks joined, Kailash's), ``content_blocks``,
    ``structured_content``, ``tool_name``, ``server`` and ``attempts``.

    One session per server is kept on the node per event loop and reused by later
    runs; ``close()`` (sessions of sync runs) and ``aclose()`` end them.

    Raises:
        NodeConfigurationError: a missing or malformed ``mcp_server``, a bad option,
            or the ``mcp`` extra not installed (at build).
        NodeValidationError: bad options or both ``arguments`` and ``parameters``.
        MCPToolError: the tool reported an error (``isError``: bad arguments, a
            failure inside it) or there is no such tool (close names suggested).
        MCPConnectionError: the server could not be reached after the retries.
        MCPTimeoutError: no answer within ``timeout``.
        MCPProtocolError: a JSON-RPC error answer.
        DestinationNotAllowedError: the URL's host is not an allowed address.
        All of these are ``NodeExecutionError`` subclasses naming the node, the server
        and the tool.
"""


@register_node()
class MCPToolNode(_MCPToolCore, Node):
    __doc__ = (
        """Call one tool on an MCP server (stdio, streamable HTTP or WebSocket).

    Usage::

        builder.add_node("MCPToolNode", "weather", {
            "mcp_server": {"name": "weather", "command": "python", "args": ["weather.py"]},
            "tool_name": "get_weather",
        })
        # connect a dict to "weather"'s "arguments"; read "result"
"""
        + _DOC
    )

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Call the tool; see the class docstring for outputs and errors."""
        return run_blocking(self._call(kwargs))

    def close(self) -> None:
        """End the sessions of sync runs; a later run opens new ones."""
        self._mcp.close()


@register_node()
class AsyncMCPToolNode(_MCPToolCore, AsyncNode):
    """The async twin of ``MCPToolNode``: same config, inputs, outputs and errors.

    Sessions are pooled per event loop; ``await node.aclose()`` ends the running
    loop's.

    Usage::

        node = AsyncMCPToolNode(mcp_server="https://tools.example.com/mcp", tool_name="search")
        outputs = await node.execute_async(arguments={"query": "kailash"})
    """

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        """Call the tool; see ``MCPToolNode`` for outputs and errors."""
        return await self._call(kwargs)

    async def aclose(self) -> None:
        """End the running event loop's sessions."""
        await self._mcp.aclose()

    def close(self) -> None:
        """End the sessions of sync runs (``execute()``), on the shared loop."""
        self._mcp.close()
