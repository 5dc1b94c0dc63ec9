"""What goes to a chat model and what comes back, independent of any provider's wire
format; providers translate to and from these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kailash_nb.sdk_exceptions import NodeExecutionError

__all__ = ["ChatRequest", "ChatResult", "ProviderError", "ToolCall", "Usage"]


@dataclass(frozen=True)
class ChatRequest:
    """One request to a chat model.

    Attributes:
        model: the model's name at the provider.
        messages: the conversation in OpenAI's message format (``role``, ``content``,
            an assistant's ``tool_calls``, a tool result's ``tool_call_id``).
        tools: tools offered, as OpenAI function tools
            (``{"type": "function", "function": {"name", "description", "parameters"}}``).
        generation_config: sampling options (``temperature``, ``max_tokens``, ``top_p``,
            ``seed``, ``stop``); each provider maps the ones it knows.
        response_schema: a JSON schema the answer must follow, or ``None``.
        response_schema_name: the schema's name (OpenAI asks for one).
        stream: receive the answer in chunks (assembled before it is returned).
    """

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    generation_config: dict[str, Any] = field(default_factory=dict)
    response_schema: dict[str, Any] | None = None
    response_schema_name: str = "response"
    stream: bool = False


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asks to be called.

    Attributes:
        id: the call's id, quoted by the tool result that answers it.
        name: the tool's name.
        arguments: the arguments, decoded (a dict), or ``None`` when the model sent
            text that is not a JSON object (``raw_arguments`` holds it).
        raw_arguments: the arguments as the model sent them (JSON text).
    """

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str

    def to_message(self) -> dict[str, Any]:
        """The call as an OpenAI assistant message's ``tool_calls`` entry."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.raw_arguments},
        }


@dataclass(frozen=True)
class Usage:
    """Tokens a request used; ``None`` where the provider did not say."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def total_tokens(self) -> int | None:
        """Prompt plus completion tokens, or ``None`` when either is unknown."""
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        def plus(a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else a + b

        return Usage(
            plus(self.prompt_tokens, other.prompt_tokens),
            plus(self.completion_tokens, other.completion_tokens),
        )


@dataclass(frozen=True)
class ChatResult:
    """The model's answer to one request.

    Attributes:
        content: the text of the answer (``None`` when it only calls tools).
        tool_calls: the tools it asks to be called, in order.
        finish_reason: why it stopped (``"stop"``, ``"tool_calls"``, ``"length"``...).
        model: the model that answered, as the provider names it.
        usage: the tokens used, or ``None`` when the provider did not report them.
    """

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None
    model: str
    usage: Usage | None


class ProviderError(NodeExecutionError):
    """A provider refused or failed a request; the message never quotes the API key.

    Attributes:
        provider: the provider's registered name.
        model: the model asked for.
        status: the HTTP status, or ``None`` when no response came (or the error came
            inside a stream).
        detail: the provider's own message.
        error_type: the provider's error type (``"invalid_request_error"``), if given.
        code: the provider's error code (``"invalid_api_key"``), if given.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        status: int | None = None,
        detail: str = "",
        error_type: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status = status
        self.detail = detail
        self.error_type = error_type
        self.code = code
