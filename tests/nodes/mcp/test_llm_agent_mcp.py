"""LLMAgentNode using MCP servers' tools (``mcp_servers``), against the local LLM
protocol server and a real FastMCP server."""

from __future__ import annotations

import asyncio

import pytest

from kailash_nb.nodes.ai.llm_agent import LLMAgentNode
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError
from kailash_nb.testing.llm_server import LLMServer, text, tool_call

pytestmark = pytest.mark.filterwarnings(
    "ignore:The WebSocket server transport is deprecated:DeprecationWarning"
)


@pytest.fixture
def llm_server():
    with LLMServer(api_key="sk-test-0123456789abcdef") as server:
        yield server


def agent(llm, mcp_servers, **config):
    return LLMAgentNode(
        provider="openai",
        model="gpt-4o-mini",
        base_url=llm.openai_base_url,
        api_key=llm.api_key,
        allow_private_network=True,
        mcp_servers=mcp_servers,
        **config,
    )


def ask(content):
    return [{"role": "user", "content": content}]


def test_agent_offers_and_calls_an_mcp_tool(llm_server, http_server):
    llm_server.add(tool_call("add", {"a": 2, "b": 40}))
    node = agent(llm_server, [{"name": "calc", "url": http_server.url}])
    try:
        out = node.execute(messages=ask("What is 2 + 40?"))
    finally:
        node.close()

    offered = {
        tool["function"]["name"]: tool["function"] for tool in llm_server.requests[0].body["tools"]
    }
    assert set(offered) == {"add", "shout", "fail", "slow", "whoami", "session"}
    assert offered["add"]["description"] == "Add two integers."
    assert offered["add"]["parameters"]["required"] == ["a", "b"]
    assert offered["add"]["parameters"]["properties"]["a"]["type"] == "integer"
    (call,) = out["tool_results"]
    assert (call["tool"], call["ok"], call["result"]) == ("add", True, '{"result": 42}')
    assert llm_server.requests[1].body["messages"][-1]["content"] == '{"result": 42}'
    assert out["response"]["tool_execution_rounds"] == 1


def test_mcp_tool_error_goes_back_to_the_model(llm_server, http_server):
    llm_server.add(tool_call("fail", {"message": "no such customer"}), text("Sorry."))
    node = agent(llm_server, [http_server.url])
    try:
        out = node.execute(messages=ask("Look up the customer"))
    finally:
        node.close()

    (call,) = out["tool_results"]
    assert call["ok"] is False
    assert (
        call["result"].startswith("error: MCPToolError:") and "no such customer" in call["result"]
    )
    assert out["response"]["content"] == "Sorry."


def test_async_agent_reuses_one_session_across_runs(llm_server, ws_server):
    async def main():
        node = agent(llm_server, [ws_server.url])
        try:
            for _ in range(2):
                llm_server.add(tool_call("session", {}))
                await node.execute_async(messages=ask("who are you?"))
            return node._mcp.pool.sessions()
        finally:
            await node.aclose()

    assert asyncio.run(main()) == 1
    answers = [
        r.body["messages"][-1]["content"]
        for r in llm_server.requests
        if r.body["messages"][-1]["role"] == "tool"
    ]
    assert len(answers) == 2 and answers[0] == answers[1]


def test_mcp_servers_is_config_only_and_checked(llm_server):
    with pytest.raises(NodeConfigurationError, match=r"mcp_servers\[0\]\['transport'\]"):
        agent(llm_server, [{"transport": "carrier-pigeon", "url": "http://x"}])
    with pytest.raises(NodeConfigurationError, match="mcp_servers must be a list"):
        agent(llm_server, "http://example.com/mcp")
    node = agent(llm_server, None)
    with pytest.raises(NodeValidationError):
        node.execute(messages=ask("hi"), mcp_servers=["http://127.0.0.1:1/mcp"])


def test_mcp_tool_named_like_a_function_tool_is_refused(llm_server, http_server):
    def add(a: int) -> int:
        """Local add."""
        return a

    node = agent(llm_server, [http_server.url], tools=[add])
    try:
        with pytest.raises(NodeValidationError, match="two tools are named 'add'"):
            node.execute(messages=ask("hi"))
    finally:
        node.close()
