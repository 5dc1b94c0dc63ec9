"""MCPToolNode and AsyncMCPToolNode against real FastMCP servers over stdio,
streamable HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest

from kailash_nb.nodes._ssrf import DestinationNotAllowedError
from kailash_nb.nodes.mcp import (
    AsyncMCPToolNode,
    MCPConnectionError,
    MCPTimeoutError,
    MCPToolError,
    MCPToolNode,
)
from kailash_nb.nodes.registry import NodeRegistry
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
)
from kailash_nb.workflow.builder import WorkflowBuilder

pytestmark = pytest.mark.filterwarnings(
    "ignore:The WebSocket server transport is deprecated:DeprecationWarning"
)


@pytest.fixture(scope="module")
def stdio_node(stdio_server):
    """One node for the module: its server process starts once (~1 s) and is reused."""
    node = MCPToolNode(mcp_server=stdio_server, tool_name="add")
    yield node
    node.close()


@pytest.fixture
def own_stdio_node(stdio_server):
    """A node with a server process of its own, for tests that kill it."""
    node = MCPToolNode(mcp_server=stdio_server, tool_name="add")
    yield node
    node.close()


def _http_node(server, **config):
    return MCPToolNode(mcp_server=server.url, allow_private_network=True, **config)


# -- calls over each transport --------------------------------------------------------


def test_stdio_call_returns_structured_result(stdio_node):
    outputs = stdio_node.execute(arguments={"a": 2, "b": 3})

    assert outputs["success"] is True
    assert outputs["result"] == {"result": 5}
    assert outputs["structured_content"] == {"result": 5}
    assert outputs["content"] == "5"
    assert outputs["content_blocks"] == [{"type": "text", "text": "5"}]
    assert (outputs["tool_name"], outputs["server"], outputs["attempts"]) == ("add", "test", 1)


def test_kailash_parameters_name_is_accepted(stdio_node):
    assert stdio_node.execute(tool_name="shout", parameters={"text": "hi"})["result"] == {
        "result": "HI"
    }


def test_streamable_http_call(http_server):
    node = _http_node(http_server, tool_name="shout")
    try:
        assert node.execute(arguments={"text": "over http"})["content"] == "OVER HTTP"
    finally:
        node.close()


def test_websocket_call(ws_server):
    node = _http_node(ws_server, tool_name="add")
    try:
        assert node.execute(arguments={"a": 40, "b": 2})["result"] == {"result": 42}
    finally:
        node.close()


def test_async_node_over_http_shares_one_session(http_server):
    async def main():
        node = AsyncMCPToolNode(
            mcp_server={"name": "tools", "url": http_server.url},
            allow_private_network=True,
            tool_name="session",
        )
        try:
            concurrent = await asyncio.gather(*(node.execute_async() for _ in range(3)))
            later = await node.execute_async()
            added = await node.execute_async(tool_name="add", arguments={"a": 2, "b": 2})
            return [*concurrent, later], added, node._mcp.pool.sessions()
        finally:
            await node.aclose()

    runs, added, sessions = asyncio.run(main())
    assert len({run["result"]["result"] for run in runs}) == 1  # one server-side session
    assert added["result"] == {"result": 4} and added["server"] == "tools"
    assert sessions == 1


def test_node_runs_in_a_workflow(http_server):
    from kailash_nb.runtime.local import LocalRuntime

    builder = WorkflowBuilder()
    builder.add_node(
        "MCPToolNode",
        "add",
        {"mcp_server": http_server.url, "allow_private_network": True, "tool_name": "add"},
    )
    results, _ = LocalRuntime().execute(
        builder.build(), parameters={"add": {"arguments": {"a": 20, "b": 22}}}
    )
    assert results["add"]["result"] == {"result": 42}


def test_nodes_are_registered():
    assert NodeRegistry.get("MCPToolNode") is MCPToolNode
    assert NodeRegistry.get("AsyncMCPToolNode") is AsyncMCPToolNode


# -- failures are typed errors naming the server and the tool -------------------------


def test_is_error_raises_tool_error(stdio_node):
    with pytest.raises(MCPToolError) as caught:
        stdio_node.execute(tool_name="fail", arguments={"message": "disk on fire"})

    error = caught.value
    assert isinstance(error, NodeExecutionError)
    assert (error.server, error.tool) == ("test", "fail")
    assert "disk on fire" in str(error) and "MCP server 'test'" in str(error)


def test_unknown_tool_names_the_tools(stdio_node):
    with pytest.raises(MCPToolError, match=r"no tool named 'ad'.*did you mean 'add'"):
        stdio_node.execute(tool_name="ad", arguments={"a": 1, "b": 2})


def test_bad_arguments_are_a_tool_error_naming_the_argument(stdio_node):
    with pytest.raises(MCPToolError, match="tool 'add'") as caught:
        stdio_node.execute(arguments={"a": "not a number", "b": 1})
    assert "a\n" in caught.value.content or "'a'" in caught.value.content


def test_timeout_is_not_retried(stdio_node):
    stdio_node.execute(arguments={"a": 1, "b": 1})  # connected: the timeout is the call's
    with pytest.raises(MCPTimeoutError, match=r"timed out after 0.3 s") as caught:
        stdio_node.execute(tool_name="slow", arguments={"seconds": 0.6}, timeout=0.3, retries=3)
    assert caught.value.attempts == 1
    # the session survives a timeout
    assert stdio_node.execute(arguments={"a": 1, "b": 2})["result"] == {"result": 3}


def test_unreachable_server_fails_after_retries(http_server):
    url = http_server.url
    http_server.stop()
    node = MCPToolNode(
        mcp_server=url,
        allow_private_network=True,
        tool_name="add",
        retries=1,
        backoff_factor=0.01,
        timeout=2,
    )
    with pytest.raises(MCPConnectionError, match="failed after 2 attempt") as caught:
        node.execute(arguments={"a": 1, "b": 1})
    assert caught.value.attempts == 2


def test_stdio_command_that_does_not_exist_fails_clearly():
    node = MCPToolNode(mcp_server={"command": "/nonexistent/mcp-server"}, tool_name="x", retries=0)
    with pytest.raises(MCPConnectionError, match="mcp-server"):
        node.execute()


# -- destinations -----------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["http_server", "ws_server"])
def test_loopback_refused_without_allow_private_network(request, fixture):
    server = request.getfixturevalue(fixture)
    node = MCPToolNode(mcp_server=server.url, tool_name="add", retries=2)
    with pytest.raises(DestinationNotAllowedError, match="loopback") as caught:
        node.execute(arguments={"a": 1, "b": 1})
    assert "allow_private_network" in str(caught.value)
    assert caught.value.address == "127.0.0.1"


def test_deployment_allowed_network_reaches_loopback(http_server, monkeypatch):
    monkeypatch.setenv("KAILASH_NB_HTTP_ALLOW_NETWORKS", "127.0.0.0/8")
    node = MCPToolNode(mcp_server=http_server.url, tool_name="add")
    try:
        assert node.execute(arguments={"a": 1, "b": 1})["result"] == {"result": 2}
    finally:
        node.close()


def test_allow_private_network_is_config_only(stdio_server):
    node = MCPToolNode(mcp_server=stdio_server, tool_name="add")
    with pytest.raises(NodeValidationError):
        node.execute(allow_private_network=True, arguments={"a": 1, "b": 1})
    with pytest.raises(NodeValidationError):
        node.execute(mcp_server="http://127.0.0.1:1/mcp", arguments={"a": 1, "b": 1})


# -- pooling and reconnecting -----------------------------------------------------------


def test_one_session_across_runs(stdio_node):
    first = stdio_node.execute(tool_name="whoami")["result"]
    second = stdio_node.execute(tool_name="whoami")["result"]
    assert first == second  # the same server process answered both


@pytest.mark.parametrize("fixture", ["http_server", "ws_server"])
def test_one_session_across_sync_runs_over_the_network(request, fixture):
    node = _http_node(request.getfixturevalue(fixture), tool_name="session")
    try:
        sessions = {node.execute()["result"]["result"] for _ in range(3)}
    finally:
        node.close()
    assert len(sessions) == 1


@pytest.mark.slow
def test_retry_after_stdio_server_dies(own_stdio_node):
    first = own_stdio_node.execute(tool_name="whoami")
    pid = int(first["result"]["result"].split("-")[0])
    os.kill(pid, signal.SIGKILL)
    _wait_until_dead(pid)  # its pipes are closed before the next call is sent

    second = own_stdio_node.execute(tool_name="whoami", timeout=5)

    assert second["result"] != first["result"]
    assert second["attempts"] == 2


def test_retry_after_http_server_restart(http_server):
    node = _http_node(http_server, tool_name="whoami", backoff_factor=0.01)
    try:
        assert node.execute()["result"] == {"result": f"{os.getpid()}-http-1"}
        http_server.stop()
        http_server.start()  # same port, a new server that does not know the session

        outputs = node.execute()

        assert outputs["result"] == {"result": f"{os.getpid()}-http-2"}
        assert outputs["attempts"] == 2
    finally:
        node.close()


def test_retry_after_websocket_server_restart(ws_server):
    node = _http_node(ws_server, tool_name="whoami", backoff_factor=0.01)
    try:
        assert node.execute()["result"] == {"result": f"{os.getpid()}-ws-1"}
        ws_server.stop()
        ws_server.start()

        outputs = node.execute()

        assert outputs["result"] == {"result": f"{os.getpid()}-ws-2"}
        # The closed WebSocket may end the old session before the call is made.
        assert outputs["attempts"] in (1, 2)
    finally:
        node.close()


def _wait_until_dead(pid: int) -> None:
    """Wait until the killed child ``pid`` is dead: a zombie, or already reaped."""
    for _ in range(500):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die")


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (None, "mcp_server is required"),
        ({"transport": "sse", "url": "http://x/sse"}, "superseded by streamable_http"),
        ({"command": "python", "args": "server.py"}, "args'] must be a list"),
        ({"url": "ftp://example.com"}, "needs a 'command'"),
        ({"transport": "websocket", "url": "http://example.com"}, "ws:// or wss://"),
        ({"command": "python", "colour": "red"}, "unknown keys \\['colour'\\]"),
        (42, "must be a URL or a dict"),
    ],
)
def test_bad_server_spec_fails_at_build(server, message):
    config = {"tool_name": "add"} if server is None else {"mcp_server": server}
    with pytest.raises(NodeConfigurationError, match=message):
        MCPToolNode(**config)


def test_bad_options(stdio_node):
    with pytest.raises(NodeConfigurationError, match="timeout must be a positive"):
        MCPToolNode(mcp_server="https://example.com/mcp", timeout=0)
    with pytest.raises(NodeValidationError, match="either 'arguments' or 'parameters'"):
        stdio_node.execute(arguments={"a": 1}, parameters={"a": 1})
    with pytest.raises(NodeValidationError, match="retries must be 0 or more"):
        stdio_node.execute(arguments={"a": 1, "b": 1}, retries=-1)


def test_importing_the_package_does_not_import_the_sdk():
    import subprocess

    code = "import sys, kailash_nb.nodes.mcp; print('mcp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_the_extra_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mcp", None)  # as if the SDK were not installed
    with pytest.raises(NodeConfigurationError, match=r"kailash-nb\[mcp\]"):
        MCPToolNode(mcp_server="https://example.com/mcp", tool_name="add")


def test_a_failure_message_never_quotes_the_urls_token_even_rewritten():
    # httpx quotes the URL it sent: host lowercased, default port dropped. The query's
    # token and the header's credential are scrubbed wherever they appear.
    import httpx

    from kailash_nb.nodes.mcp._failures import failure_error
    from kailash_nb.nodes.mcp._spec import server_spec

    spec = server_spec(
        {
            "url": "https://Tools.example.com:443/mcp?token=abcdef123",
            "headers": {"Authorization": "Bearer tok-98765"},
        }
    )
    sent = "https://tools.example.com/mcp?token=abcdef123"
    request = httpx.Request("POST", sent)
    leaf = httpx.HTTPStatusError(
        f"Client error '401 Unauthorized' for url '{sent}' (Bearer tok-98765)",
        request=request,
        response=httpx.Response(401, request=request),
    )
    message = str(failure_error("node 'n' (MCPToolNode)", spec, "add", leaf, "protocol", 1, 5.0))
    assert "abcdef123" not in message
    assert "tok-98765" not in message
    assert "401 Unauthorized" in message


@pytest.mark.parametrize(("status", "failure"), [(503, "lost"), (429, "lost"), (501, "protocol")])
def test_an_http_status_is_retried_exactly_when_the_http_nodes_retry_it(status, failure):
    # 501 and 505 say the server will never handle the request: no new session helps.
    import httpx

    from kailash_nb.nodes.mcp._failures import classify

    request = httpx.Request("POST", "https://tools.example.com/mcp")
    error = httpx.HTTPStatusError(
        str(status), request=request, response=httpx.Response(status, request=request)
    )
    assert classify(error)[0] == failure


@pytest.mark.parametrize(
    ("reason", "allowed", "suggests_the_flag"),
    [
        ("a loopback address", False, True),
        ("a loopback address", True, False),  # set already: only the deployment can
        ("a link-local address", False, False),  # the flag never reaches link-local
    ],
)
def test_a_refusal_suggests_allow_private_network_only_where_it_would_help(
    reason, allowed, suggests_the_flag
):
    from kailash_nb.nodes.mcp._failures import failure_error
    from kailash_nb.nodes.mcp._spec import server_spec

    refusal = DestinationNotAllowedError(
        f"host 'h' is 10.0.0.1, {reason}", host="h", address="10.0.0.1", reason=reason
    )
    spec = server_spec("https://h/mcp")
    error = failure_error("node 'n'", spec, "add", refusal, "refused", 1, 5.0, allowed)
    assert isinstance(error, DestinationNotAllowedError)
    assert ("allow_private_network=True" in str(error)) == suggests_the_flag
    assert "KAILASH_NB_HTTP_ALLOW_NETWORKS" in str(error)
