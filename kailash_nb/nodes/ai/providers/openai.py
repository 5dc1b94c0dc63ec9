"""The OpenAI-compatible chat-completions provider (``provider="openai"``).

Speaks ``POST {base_url}/chat/completions`` as OpenAI defines it, so it also reaches
compatible servers (vLLM, LM Studio, LiteLLM, Azure-style gateways) through
``base_url``. Streaming uses server-sent events: content deltas are joined, tool-call
deltas are assembled by their ``index``, and ``stream_options.include_usage`` asks for
the final chunk that carries the usage.
"""

from __future__ import annotations

import json
from typing import Any

from kailash_nb.nodes.ai.providers.base import ChatProvider
from kailash_nb.nodes.ai.providers.types import ChatRequest, ChatResult, ToolCall, Usage

__all__ = ["OpenAIProvider"]


def tool_call(call_id: str, name: str, raw_arguments: str) -> ToolCall:
    """A ``ToolCall`` from OpenAI's JSON-text arguments (``None`` when not an object)."""
    try:
        arguments = json.loads(raw_arguments) if raw_arguments.strip() else {}
    except ValueError:
        arguments = None
    return ToolCall(
        id=call_id,
        name=name,
        arguments=arguments if isinstance(arguments, dict) else None,
        raw_arguments=raw_arguments,
    )


def _usage(payload: Any) -> Usage | None:
    if not isinstance(payload, dict):
        return None
    return Usage(payload.get("prompt_tokens"), payload.get("completion_tokens"))


class OpenAIProvider(ChatProvider):
    """OpenAI's ``/v1/chat/completions``, or any server speaking it.

    Config: ``base_url`` (default ``https://api.openai.com/v1``), the API key from
    the environment variable ``api_key_env`` (default ``OPENAI_API_KEY``) or from
    ``api_key``; there is no default key. Only public addresses are reached unless
    ``allow_private_network=True`` (a self-hosted compatible server).

    Raises:
        ProviderError: no API key, an error body (``{"error": {"message", "type",
            "code"}}``, named with the status), or an error event inside a stream.
    """

    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    default_api_key_env = "OPENAI_API_KEY"
    path = "/chat/completions"
    # USD per million tokens (prompt, completion), from OpenAI's price list.
    prices = {  # noqa: RUF012 - read-only class table
        "gpt-4o-mini": (0.15, 0.60),
        "gpt-4o": (2.50, 10.00),
        "gpt-4.1-nano": (0.10, 0.40),
        "gpt-4.1-mini": (0.40, 1.60),
        "gpt-4.1": (2.00, 8.00),
        "gpt-4-turbo": (10.00, 30.00),
        "gpt-4": (30.00, 60.00),
        "gpt-3.5-turbo": (0.50, 1.50),
        "o3-mini": (1.10, 4.40),
        "o4-mini": (1.10, 4.40),
    }

    def headers(self, request: ChatRequest) -> dict[str, str]:
        """``Authorization: Bearer <key>``; raises ``ProviderError`` without a key."""
        key = self.api_key()
        if not key:
            raise self.error(
                request,
                f"no API key: set the {self.api_key_env} environment variable, or name "
                "another one with api_key_env in the node's provider_config",
            )
        return {"authorization": f"Bearer {key}"}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The chat-completions body."""
        body: dict[str, Any] = {
            **request.generation_config,
            "model": request.model,
            "messages": request.messages,
        }
        if request.tools:
            body["tools"] = request.tools
        if request.response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.response_schema_name,
                    "schema": request.response_schema,
                },
            }
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def parse(self, payload: Any, request: ChatRequest) -> ChatResult:
        """The first choice of a chat completion."""
        choices = payload.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            raise self.error(request, "answered without any choice")
        message = choices[0].get("message") or {}
        calls = tuple(
            tool_call(
                call.get("id", ""),
                call.get("function", {}).get("name", ""),
                call.get("function", {}).get("arguments") or "",
            )
            for call in message.get("tool_calls") or []
        )
        return ChatResult(
            content=message.get("content"),
            tool_calls=calls,
            finish_reason=choices[0].get("finish_reason"),
            model=payload.get("model") or request.model,
            usage=_usage(payload.get("usage")),
        )

    def stream_decoder(self, request: ChatRequest) -> _SSEDecoder:
        """A decoder of chat-completion chunks sent as server-sent events."""
        return _SSEDecoder(self, request)

    def error_detail(self, payload: Any) -> tuple[str, str | None, str | None]:
        """OpenAI's ``{"error": {"message", "type", "code"}}``, or the raw body."""
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            code = error.get("code")
            return (
                str(error.get("message") or ""),
                error.get("type"),
                str(code) if code is not None else None,
            )
        return (str(error if error is not None else payload)[:500], None, None)


class _SSEDecoder:
    """Joins the chunks of one streamed chat completion."""

    def __init__(self, provider: OpenAIProvider, request: ChatRequest) -> None:
        self._provider = provider
        self._request = request
        self._content: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish_reason: str | None = None
        self._model = request.model
        self._usage: Usage | None = None

    def feed(self, line: str) -> None:
        """Take one line of the event stream."""
        if not line.startswith("data:"):
            return  # blank separators, comments and other fields
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            raise self._provider.error(
                self._request, f"sent a stream chunk that is not JSON: {data[:200]!r}"
            ) from None
        if "error" in chunk:
            detail, error_type, code = self._provider.error_detail(chunk)
            raise self._provider.error(
                self._request,
                f"error inside the stream: {detail}",
                detail=detail,
                error_type=error_type,
                code=code,
            )
        self._model = chunk.get("model") or self._model
        if chunk.get("usage"):
            self._usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._content.append(delta["content"])
            for part in delta.get("tool_calls") or []:
                call = self._calls.setdefault(
                    part.get("index", 0), {"id": "", "name": "", "arguments": ""}
                )
                call["id"] = part.get("id") or call["id"]
                function = part.get("function") or {}
                call["name"] += function.get("name") or ""
                call["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]

    def result(self) -> ChatResult:
        """The assembled answer."""
        return ChatResult(
            content="".join(self._content) if self._content else None,
            tool_calls=tuple(
                tool_call(call["id"], call["name"], call["arguments"])
                for _, call in sorted(self._calls.items())
            ),
            finish_reason=self._finish_reason,
            model=self._model,
            usage=self._usage,
        )
