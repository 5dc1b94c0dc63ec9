"""The local LLM protocol server itself: life cycle, defaults, recording."""

from __future__ import annotations

import httpx
import pytest

from kailash_nb.testing.llm_server import LLMServer, default_reply, text

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
    }
]


def test_start_stop_and_addresses():
    server = LLMServer()
    with pytest.raises(RuntimeError, match="not running"):
        server.base_url  # noqa: B018
    with server:
        assert server.openai_base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.ollama_base_url == f"http://127.0.0.1:{server.port}"
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    assert server.port is None
    server.stop()  # stopping twice does nothing


def test_default_calls_the_first_tool_with_the_users_words():
    reply = default_reply([{"role": "user", "content": "Oslo for 3 days"}], TOOLS, None)
    assert reply.tool_calls == (("weather", {"city": "Oslo for 3 days", "days": 3}),)


def test_default_takes_a_json_object_as_the_arguments():
    reply = default_reply([{"role": "user", "content": '{"city": "Rome"}'}], TOOLS, None)
    assert reply.tool_calls == (("weather", {"city": "Rome"}),)


def test_default_quotes_a_tool_result_then_echoes():
    messages = [{"role": "user", "content": "x"}, {"role": "tool", "content": "sunny"}]
    assert default_reply(messages, TOOLS, None).content == "The tool said: sunny"
    assert default_reply([{"role": "user", "content": "hi"}], [], None).content == "You said: hi"


def test_default_follows_a_response_schema():
    schema = {"type": "object", "properties": {"n": {"type": "number"}, "ok": {"type": "boolean"}}}
    reply = default_reply([{"role": "user", "content": "n is 2.5"}], [], schema)
    assert reply.content == '{"n": 2.5, "ok": true}'


def test_script_first_and_requests_recorded_with_authorization_redacted():
    with LLMServer([text("scripted")], api_key="sk-x") as server:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        first = httpx.post(
            server.openai_base_url + "/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-x"},
        ).json()
        second = httpx.post(server.ollama_base_url + "/api/chat", json={**body, "stream": False})
        assert first["choices"][0]["message"]["content"] == "scripted"
        assert second.json()["message"]["content"] == "You said: hi"
        assert [r.protocol for r in server.requests] == ["openai", "ollama"]
        assert server.requests[0].headers["authorization"] == "<redacted>"
        assert server.requests[0].authorized is True
        assert server.requests[1].body["stream"] is False


def test_a_body_without_messages_is_a_400():
    with LLMServer() as server:
        response = httpx.post(server.openai_base_url + "/chat/completions", content=b"nope")
        assert response.status_code == 400
        assert "messages" in response.json()["error"]["message"]
