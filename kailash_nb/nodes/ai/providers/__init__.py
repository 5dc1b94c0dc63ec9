"""LLM providers: one small base class, a registry, and the built-in ``openai``
(OpenAI-compatible chat completions) and ``ollama`` providers.

    from kailash_nb.nodes.ai.providers import ChatRequest, get_provider

    provider = get_provider("ollama")(base_url="http://localhost:11434")
    answer = provider.chat(ChatRequest(model="llama3.2", messages=[
        {"role": "user", "content": "Say hi"}]))
    answer.content, answer.usage

Importing this package contacts nothing; built-in providers load on first lookup.
"""

from __future__ import annotations

from kailash_nb.nodes.ai.providers.base import ChatProvider, StreamDecoder
from kailash_nb.nodes.ai.providers.registry import (
    UnknownProviderError,
    get_provider,
    provider_names,
    register_provider,
)
from kailash_nb.nodes.ai.providers.types import (
    ChatRequest,
    ChatResult,
    ProviderError,
    ToolCall,
    Usage,
)

__all__ = [
    "ChatProvider",
    "ChatRequest",
    "ChatResult",
    "ProviderError",
    "StreamDecoder",
    "ToolCall",
    "UnknownProviderError",
    "Usage",
    "get_provider",
    "provider_names",
    "register_provider",
]
