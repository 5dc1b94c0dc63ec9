"""The Ollama provider (``provider="ollama"``): ``POST {base_url}/api/chat``.

Streaming sends one JSON object per line (NDJSON); the last one has ``"done": true``
and the token counts (``prompt_eval_count``, ``eval_count``). Tool calls come whole,
with their arguments as a JSON object, and without ids (the provider numbers them).
"""

from __future__ import annotations

import json
from typing import Any

from kailash_nb.nodes.ai.providers.base import ChatProvider
from kailash_nb.nodes.ai.providers.types import ChatRequest, ChatResult, ToolCall, Usage

__all__ = ["OllamaProvider"]

# generation_config names (OpenAI's) -> Ollama's options.
_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "stop": "stop",
    "max_tokens": "num_predict",
    "num_predict": "num_predict",
    "num_ctx": "num_ctx",
    "repeat_penalty": "repeat_penalty",
}


class OllamaProvider(ChatProvider):
    """A local or self-hosted Ollama server.

    Config: ``base_url`` (default ``http://localhost:11434``); no API key (an
    ``api_key`` given is sent as a bearer token, for servers behind a proxy).

    Loopback is allowed by default for this provider only, because an Ollama server
    runs on the user's machine by design; a private-network address (another box on
    the LAN) still needs ``allow_private_network=True`` in the node's config, and
    every other non-public address stays refused.

    Raises:
        ProviderError: an error body (``{"error": "..."}``, named with the status) or
            an error line inside a stream.
    """

    name = "ollama"
    default_base_url = "http://localhost:11434"
    allows_loopback = True
    path = "/api/chat"

    def headers(self, request: ChatRequest) -> dict[str, str]:
        """A bearer token only when a key is configured."""
        key = self.api_key()
        return {"authorization": f"Bearer {key}"} if key else {}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The ``/api/chat`` body: messages translated, options mapped."""
        body: dict[str, Any] = {
            "model": request.model,
            "messages": _messages(request.messages),
            "stream": request.stream,
        }
        options = {
            _OPTIONS[name]: value
            for name, value in request.generation_config.items()
            if name in _OPTIONS
        }
        if options:
            body["options"] = options
        if request.tools:
            body["tools"] = request.tools
        if request.response_schema is not None:
            body["format"] = request.response_schema
        return body

    def parse(self, payload: Any, request: ChatRequest) -> ChatResult:
        """The answer in a non-streamed ``/api/chat`` body."""
        if "error" in payload:
            detail, _, _ = self.error_detail(payload)
            raise self.error(request, f"answered with an error: {detail}", detail=detail)
        return _result(payload, request, (payload.get("message") or {}).get("content"))

    def stream_decoder(self, request: ChatRequest) -> _NDJSONDecoder:
        """A decoder of the NDJSON stream."""
        return _NDJSONDecoder(self, request)

    def error_detail(self, payload: Any) -> tuple[str, str | None, str | None]:
        """Ollama's ``{"error": "message"}``, or the raw body."""
        if isinstance(payload, dict) and "error" in payload:
            return str(payload["error"]), None, None
        return str(payload)[:500], None, None


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-format messages as Ollama takes them: tool-call arguments as objects,
    tool results naming their tool."""
    names: dict[str, str] = {}
    translated = []
    for message in messages:
        message = dict(message)
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function", {})
                names[call.get("id", "")] = function.get("name", "")
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    try:
                        arguments = json.loads(arguments) if arguments.strip() else {}
                    except ValueError:
                        arguments = {}
                calls.append({"function": {"name": function.get("name"), "arguments": arguments}})
            message["tool_calls"] = calls
        if message.get("role") == "tool":
            call_id = message.pop("tool_call_id", None)
            if call_id in names:
                message["tool_name"] = names[call_id]
        if message.get("content") is None:
            message["content"] = ""
        translated.append(message)
    return translated


def _calls(message: dict[str, Any], first: int) -> list[ToolCall]:
    calls = []
    for number, call in enumerate(message.get("tool_calls") or [], start=first):
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            raw = arguments
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = None
        else:
            raw = json.dumps(arguments if arguments is not None else {})
        calls.append(
            ToolCall(
                id=call.get("id") or f"call_{number}",
                name=function.get("name", ""),
                arguments=arguments if isinstance(arguments, dict) else None,
                raw_arguments=raw,
            )
        )
    return calls


def _result(
    payload: dict[str, Any],
    request: ChatRequest,
    content: str | None,
    calls: list[ToolCall] | None = None,
) -> ChatResult:
    if calls is None:
        calls = _calls(payload.get("message") or {}, 0)
    prompt, completion = payload.get("prompt_eval_count"), payload.get("eval_count")
    usage = None if prompt is None and completion is None else Usage(prompt, completion)
    finish = "tool_calls" if calls else payload.get("done_reason") or "stop"
    return ChatResult(
        content=content or None,
        tool_calls=tuple(calls),
        finish_reason=finish,
        model=payload.get("model") or request.model,
        usage=usage,
    )


class _NDJSONDecoder:
    """Joins the lines of one streamed ``/api/chat`` answer."""

    def __init__(self, provider: OllamaProvider, request: ChatRequest) -> None:
        self._provider = provider
        self._request = request
        self._content: list[str] = []
        self._calls: list[ToolCall] = []
        self._last: dict[str, Any] | None = None

    def feed(self, line: str) -> None:
        """Take one line of the stream."""
        if not line.strip():
            return
        try:
            chunk = json.loads(line)
        except ValueError:
            raise self._provider.error(
                self._request, f"sent a stream line that is not JSON: {line[:200]!r}"
            ) from None
        if "error" in chunk:
            detail, _, _ = self._provider.error_detail(chunk)
            raise self._provider.error(
                self._request, f"error inside the stream: {detail}", detail=detail
            )
        message = chunk.get("message") or {}
        if message.get("content"):
            self._content.append(message["content"])
        self._calls += _calls(message, len(self._calls))
        if chunk.get("done"):
            self._last = chunk

    def result(self) -> ChatResult:
        """The assembled answer; raises ``ProviderError`` when the stream ended early."""
        if self._last is None:
            raise self._provider.error(self._request, "the stream ended before its last line")
        return _result(self._last, self._request, "".join(self._content), self._calls)
