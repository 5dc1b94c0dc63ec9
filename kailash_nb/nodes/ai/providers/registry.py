"""The LLM providers by name: the built-in ones and those registered by users.

Built-in providers (``openai``, ``ollama``) load on first lookup, so importing the
registry imports no provider. Add one by subclassing ``ChatProvider``::

    @register_provider("acme")
    class AcmeProvider(ChatProvider):
        ...

    LLMAgentNode(provider="acme", model="acme-1")
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from kailash_nb.sdk_exceptions import NodeConfigurationError, close_matches

if TYPE_CHECKING:
    from kailash_nb.nodes.ai.providers.base import ChatProvider

__all__ = ["UnknownProviderError", "get_provider", "provider_names", "register_provider"]

P = TypeVar("P", bound="type[ChatProvider]")

_BUILTIN = {
    "openai": ("kailash_nb.nodes.ai.providers.openai", "OpenAIProvider"),
    "ollama": ("kailash_nb.nodes.ai.providers.ollama", "OllamaProvider"),
}
_registered: dict[str, type[ChatProvider]] = {}
_lock = threading.Lock()


class UnknownProviderError(NodeConfigurationError):
    """No provider is registered under the name asked for."""


def register_provider(name: str, cls: P | None = None) -> Callable[[P], P] | P:
    """Register provider class ``cls`` under ``name`` (replacing one of that name);
    without ``cls``, a class decorator.

    Raises:
        TypeError: ``cls`` is not a ``ChatProvider`` subclass.
    """
    from kailash_nb.nodes.ai.providers.base import ChatProvider

    def register(provider: P) -> P:
        if not (isinstance(provider, type) and issubclass(provider, ChatProvider)):
            raise TypeError(f"provider {name!r} must be a ChatProvider subclass, got {provider!r}")
        with _lock:
            _registered[name] = provider
        return provider

    return register if cls is None else register(cls)


def provider_names() -> list[str]:
    """The names of every provider available, sorted."""
    with _lock:
        return sorted(set(_BUILTIN) | set(_registered))


def get_provider(name: str) -> type[ChatProvider]:
    """The provider class registered under ``name``.

    Raises:
        UnknownProviderError: no such provider (the message lists the known names).
    """
    with _lock:
        found = _registered.get(name)
    if found is not None:
        return found
    if name in _BUILTIN:
        module, attribute = _BUILTIN[name]
        cls: type[ChatProvider] = getattr(importlib.import_module(module), attribute)
        return cls
    known = provider_names()
    raise UnknownProviderError(
        f"unknown LLM provider {name!r}{close_matches(str(name), known)}; known providers: "
        f"{', '.join(known)} (add one with register_provider)"
    )
