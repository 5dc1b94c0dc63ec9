"""What the local LLM server answers: scripted replies, and the deterministic default
when the script is empty."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Reply", "default_reply", "error", "rate_limited", "text", "tool_call"]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Reply:
    """One scripted answer of the local LLM server.

    Attributes:
        content: the answer's text.
        tool_calls: tools to call, as ``(name, arguments)`` pairs.
        status: the HTTP status (an error status sends an error body instead).
        error: the error's message (sent in the provider's error body).
        error_type: OpenAI's ``error.type``.
        error_code: OpenAI's ``error.code``.
        retry_after: the ``Retry-After`` header's value, if any.
        delay: seconds to wait before answering (to exercise timeouts).
        stream_error: in a streamed answer, an error event sent after the first chunk.
        usage: ``(prompt_tokens, completion_tokens)``; ``None``: counted in words.
        finish_reason: overrides the finish reason (``"length"``...).
    """

    content: str | None = None
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    status: int = 200
    error: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    stream_error: str | None = None
    usage: tuple[int, int] | None = None
    finish_reason: str | None = None


def text(content: str, **options: Any) -> Reply:
    """A reply answering ``content``."""
    return Reply(content=content, **options)


def tool_call(name: str, arguments: dict[str, Any] | None = None, **options: Any) -> Reply:
    """A reply calling tool ``name`` with ``arguments`` (more calls: ``Reply(tool_calls=...)``)."""
    return Reply(tool_calls=((name, arguments or {}),), **options)


def error(
    status: int,
    message: str,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    **options: Any,
) -> Reply:
    """A reply with error status ``status`` and the provider's error body."""
    return Reply(status=status, error=message, error_type=error_type, error_code=code, **options)


def rate_limited(retry_after: str | float = 1, **options: Any) -> Reply:
    """A 429 asking the client to come back after ``retry_after`` seconds."""
    return Reply(
        status=429,
        error="Rate limit reached, please retry later",
        error_type="requests",
        error_code="rate_limit_exceeded",
        retry_after=str(retry_after),
        **options,
    )


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def _fill(schema: dict[str, Any], said: str) -> Any:
    """A value of ``schema``'s type taken from the user's words."""
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: _fill(sub, said) for name, sub in properties.items()}
    number = _NUMBER.search(said)
    if kind == "integer":
        return int(float(number.group())) if number else 0
    if kind == "number":
        return float(number.group()) if number else 0.0
    if kind == "boolean":
        return True
    if kind == "array":
        return [_fill(schema.get("items") or {"type": "string"}, said)]
    if schema.get("enum"):
        return schema["enum"][0]
    return said


def default_reply(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], schema: dict[str, Any] | None
) -> Reply:
    """The answer when the script is empty, decided by the conversation alone:

    1. tools offered and no tool result since the last user message: call the first
       tool, arguments taken from the last user message (a JSON object in it is used
       as is; otherwise each property gets the message's text, or its first number
       for numeric properties);
    2. the last message is a tool result: answer ``"The tool said: <result>"``;
    3. a response schema asked for: a JSON object following it, filled the same way;
    4. otherwise: ``"You said: <last user message>"``.
    """
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    said = _text_of(last_user)
    if messages and messages[-1].get("role") == "tool":
        return Reply(content=f"The tool said: {_text_of(messages[-1])}")
    if tools:
        function = tools[0].get("function") or {}
        try:
            arguments = json.loads(said)
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            arguments = _fill(function.get("parameters") or {"type": "object"}, said)
        return Reply(tool_calls=((function.get("name", ""), arguments),))
    if schema is not None:
        return Reply(content=json.dumps(_fill(schema, said)))
    return Reply(content=f"You said: {said}")


def word_count(messages: list[dict[str, Any]]) -> int:
    """Words in every message: the deterministic stand-in for prompt tokens."""
    return sum(len(_text_of(message).split()) for message in messages)
