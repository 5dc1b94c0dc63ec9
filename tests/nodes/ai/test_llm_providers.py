"""The OpenAI-compatible and Ollama providers against the local protocol server."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from kailash_nb.nodes.ai.providers import (
    ChatProvider,
    ChatRequest,
    ProviderError,
    UnknownProviderError,
    get_provider,
    provider_names,
    register_provider,
)
from kailash_nb.nodes.ai.providers.ollama import OllamaProvider
from kailash_nb.nodes.ai.providers.openai import OpenAIProvider
from kailash_nb.sdk_exceptions import NodeConfigurationError
from kailash_nb.testing.llm_server import LLMServer, Reply, error, rate_limited, text, tool_call

ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two numbers",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
HELLO = [{"role": "user", "content": "hello there"}]


def openai(server, **config):
    config = {"api_key": server.api_key, "allow_private_network": True, **config}
    return OpenAIProvider(base_url=server.openai_base_url, **config)


def ollama(server, **config):
    return OllamaProvider(base_url=server.ollama_base_url, **config)


PROVIDERS = {"openai": openai, "ollama": ollama}


# -- both providers, streamed and not ----------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("name", ["openai", "ollama"])
def test_text_answer_with_usage(llm_server, name, stream):
    llm_server.add(text("Paris is the capital.", usage=(11, 5)))
    result = PROVIDERS[name](llm_server).chat(
        ChatRequest(model="m1", messages=HELLO, stream=stream)
    )
    assert result.content == "Paris is the capital."
    assert result.tool_calls == ()
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (11, 5)
    assert result.usage.total_tokens == 16
    assert llm_server.requests[-1].body["messages"] == HELLO


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("name", ["openai", "ollama"])
def test_tool_calls_are_assembled(llm_server, name, stream):
    long_text = "a long argument that the stream splits over many chunks"
    llm_server.add(Reply(tool_calls=(("add", {"a": 1, "b": 2}), ("note", {"text": long_text}))))
    request = ChatRequest(model="m1", messages=HELLO, tools=[ADD_TOOL], stream=stream)
    result = PROVIDERS[name](llm_server).chat(request)
    assert [(call.name, call.arguments) for call in result.tool_calls] == [
        ("add", {"a": 1, "b": 2}),
        ("note", {"text": long_text}),
    ]
    assert len({call.id for call in result.tool_calls}) == 2
    assert result.finish_reason == "tool_calls"
    assert llm_server.requests[-1].body["tools"] == [ADD_TOOL]


def test_openai_stream_really_splits_tool_call_deltas(llm_server):
    """The server under the streaming tests sends a call's arguments in several chunks
    (so the assembly above is exercised), and usage in a final chunk without choices."""
    llm_server.add(tool_call("add", {"a": 1, "b": 2}))
    body = {
        "model": "m1",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"authorization": f"Bearer {llm_server.api_key}"}
    response = httpx.post(
        llm_server.openai_base_url + "/chat/completions", json=body, headers=headers
    )
    chunks = [
        json.loads(line[6:])
        for line in response.text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    pieces = [
        part["function"]["arguments"]
        for chunk in chunks
        for choice in chunk["choices"]
        for part in choice["delta"].get("tool_calls", [])
        if part["function"].get("arguments")
    ]
    assert len(pieces) > 1 and "".join(pieces) == '{"a": 1, "b": 2}'
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert response.text.endswith("data: [DONE]\n\n")


def test_openai_streaming_asks_for_the_usage_chunk(llm_server):
    openai(llm_server).chat(ChatRequest(model="m1", messages=HELLO, stream=True))
    body = llm_server.requests[-1].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_ollama_request_uses_its_own_format(llm_server):
    messages = [
        *HELLO,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
    ]
    config = {"max_tokens": 20, "temperature": 0.1}
    ollama(llm_server).chat(ChatRequest(model="m1", messages=messages, generation_config=config))
    body = llm_server.requests[-1].body
    assert body["stream"] is False
    assert body["options"] == {"num_predict": 20, "temperature": 0.1}
    assert body["messages"][1]["tool_calls"] == [
        {"function": {"name": "add", "arguments": {"a": 1}}}
    ]
    assert body["messages"][2] == {"role": "tool", "content": "3", "tool_name": "add"}


@pytest.mark.parametrize("name", ["openai", "ollama"])
def test_async_chat(llm_server, name):
    llm_server.add(text("async answer"))
    provider = PROVIDERS[name](llm_server)
    for stream in (False, True):
        llm_server.add(text("async answer"))
        request = ChatRequest(model="m1", messages=HELLO, stream=stream)
        assert asyncio.run(provider.achat(request)).content == "async answer"


# -- errors -----------------------------------------------------------------------------


def test_openai_error_body_becomes_a_typed_error(llm_server):
    llm_server.add(error(400, "Invalid 'messages': empty", "invalid_request_error", "bad_messages"))
    with pytest.raises(ProviderError) as caught:
        openai(llm_server, max_retries=0).chat(ChatRequest(model="gpt-x", messages=HELLO))
    failure = caught.value
    assert (failure.provider, failure.model, failure.status) == ("openai", "gpt-x", 400)
    assert (failure.error_type, failure.code) == ("invalid_request_error", "bad_messages")
    assert failure.detail == "Invalid 'messages': empty"
    assert "openai provider, model 'gpt-x': HTTP 400" in str(failure)


def test_ollama_error_body_becomes_a_typed_error(llm_server):
    llm_server.add(error(404, "model 'nope' not found"))
    with pytest.raises(ProviderError, match="HTTP 404: model 'nope' not found") as caught:
        ollama(llm_server).chat(ChatRequest(model="nope", messages=HELLO))
    assert caught.value.status == 404 and caught.value.provider == "ollama"


@pytest.mark.parametrize("name", ["openai", "ollama"])
def test_error_inside_a_stream(llm_server, name):
    llm_server.add(Reply(content="partial", stream_error="the model crashed"))
    with pytest.raises(ProviderError, match="error inside the stream: the model crashed"):
        PROVIDERS[name](llm_server).chat(ChatRequest(model="m1", messages=HELLO, stream=True))


@pytest.mark.parametrize("stream", [False, True])
def test_429_retry_after_is_honored_then_success(llm_server, waits, stream):
    llm_server.add(rate_limited(retry_after=7), text("finally"))
    provider = openai(llm_server, backoff_factor=100)
    result = provider.chat(ChatRequest(model="m1", messages=HELLO, stream=stream))
    assert result.content == "finally"
    assert waits == [7.0]  # the server's Retry-After, not the backoff
    assert len(llm_server.requests) == 2


def test_retry_after_is_capped_by_max_retry_wait(llm_server, waits):
    llm_server.add(rate_limited(retry_after=3600), text("ok"))
    openai(llm_server, max_retry_wait=2).chat(ChatRequest(model="m1", messages=HELLO))
    assert waits == [2.0]


def test_async_429_then_success(llm_server):
    llm_server.add(rate_limited(retry_after=0), error(503, "overloaded"), text("ok"))
    provider = ollama(llm_server, backoff_factor=0)
    assert asyncio.run(provider.achat(ChatRequest(model="m", messages=HELLO))).content == "ok"
    assert len(llm_server.requests) == 3


def test_retries_exhausted(llm_server, waits):
    llm_server.add(*[rate_limited(retry_after=1)] * 3)
    with pytest.raises(ProviderError, match=r"HTTP 429 .*after 3 attempts") as caught:
        openai(llm_server, max_retries=2).chat(ChatRequest(model="m1", messages=HELLO))
    assert caught.value.status == 429 and caught.value.code == "rate_limit_exceeded"
    assert waits == [1.0, 1.0]
    assert len(llm_server.requests) == 3


def test_a_4xx_is_not_retried(llm_server, waits):
    llm_server.add(error(400, "bad"), text("never sent"))
    with pytest.raises(ProviderError):
        openai(llm_server).chat(ChatRequest(model="m1", messages=HELLO))
    assert waits == [] and llm_server.pending == 1


def test_no_server_is_a_connection_failure_after_the_retries(waits):
    server = LLMServer().start()
    base_url = server.openai_base_url
    server.stop()
    provider = OpenAIProvider(
        base_url=base_url, api_key="k", allow_private_network=True, max_retries=1
    )
    with pytest.raises(ProviderError, match=r"no answer from .* after 2 attempt"):
        provider.chat(ChatRequest(model="m1", messages=HELLO))
    assert waits == [0.5]


def test_timeout_is_the_http_timeout(llm_server):
    llm_server.add(Reply(content="slow", delay=2))
    provider = openai(llm_server, timeout=0.2, max_retries=0)
    with pytest.raises(ProviderError, match="ReadTimeout"):
        provider.chat(ChatRequest(model="m1", messages=HELLO))


# -- destinations and keys -----------------------------------------------------------------


def test_openai_refuses_loopback_without_allow_private_network(llm_server):
    provider = OpenAIProvider(base_url=llm_server.openai_base_url, api_key=llm_server.api_key)
    with pytest.raises(ProviderError, match=r"loopback address.*allow_private_network=True"):
        provider.chat(ChatRequest(model="m1", messages=HELLO))
    assert llm_server.requests == []


def test_ollama_reaches_loopback_by_default_but_not_private_networks():
    provider = OllamaProvider(base_url="http://10.0.0.1:11434", max_retries=0)
    with pytest.raises(ProviderError, match=r"nothing was sent: .*a private"):
        provider.chat(ChatRequest(model="m1", messages=HELLO))


def test_api_key_comes_from_the_environment(llm_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", llm_server.api_key)
    provider = OpenAIProvider(base_url=llm_server.openai_base_url, allow_private_network=True)
    assert provider.chat(ChatRequest(model="m1", messages=HELLO)).content
    assert llm_server.requests[-1].authorized is True
    assert llm_server.requests[-1].headers["authorization"] == "<redacted>"


def test_api_key_env_names_another_variable(llm_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TEAM_LLM_KEY", llm_server.api_key)
    provider = openai(llm_server, api_key=None, api_key_env="TEAM_LLM_KEY")
    provider.chat(ChatRequest(model="m1", messages=HELLO))
    assert llm_server.requests[-1].authorized is True


def test_missing_api_key_names_the_variable_and_sends_nothing(llm_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = openai(llm_server, api_key=None)
    with pytest.raises(ProviderError, match="set the OPENAI_API_KEY environment variable"):
        provider.chat(ChatRequest(model="m1", messages=HELLO))
    assert llm_server.requests == []


def test_a_rejected_key_is_not_repeated_in_the_error(llm_server):
    wrong = "sk-wrong-key-that-must-not-leak"
    with pytest.raises(ProviderError) as caught:
        openai(llm_server, api_key=wrong).chat(ChatRequest(model="m1", messages=HELLO))
    assert caught.value.status == 401 and caught.value.code == "invalid_api_key"
    assert wrong not in str(caught.value) and wrong not in caught.value.detail
    assert "Incorrect API key provided: ***" in str(caught.value)


def test_bad_config_is_a_configuration_error():
    with pytest.raises(NodeConfigurationError, match="base_url 'ftp://x' is not an absolute"):
        OpenAIProvider(base_url="ftp://x")
    with pytest.raises(NodeConfigurationError, match="max_retries must be 0 or more"):
        OllamaProvider(max_retries=-1)


# -- registry -------------------------------------------------------------------------------


def test_registry_knows_the_built_in_providers():
    assert get_provider("openai") is OpenAIProvider
    assert get_provider("ollama") is OllamaProvider
    assert {"openai", "ollama"} <= set(provider_names())


def test_unknown_provider_lists_the_known_ones():
    with pytest.raises(
        UnknownProviderError, match=r"unknown LLM provider 'opneai'.*did you mean.*openai"
    ):
        get_provider("opneai")


def test_a_registered_provider_is_found_by_name(llm_server):
    @register_provider("echo-compatible")
    class EchoCompatible(OpenAIProvider):
        name = "echo-compatible"

    provider = get_provider("echo-compatible")(
        base_url=llm_server.openai_base_url, api_key=llm_server.api_key, allow_private_network=True
    )
    assert provider.chat(ChatRequest(model="m", messages=HELLO)).content == "You said: hello there"
    assert "echo-compatible" in provider_names()


def test_only_chat_providers_register():
    with pytest.raises(TypeError, match="must be a ChatProvider subclass"):
        register_provider("bad", dict)  # type: ignore[arg-type]
    assert issubclass(OllamaProvider, ChatProvider)
