"""Helpers for testing workflows: local stand-ins for the services nodes talk to.

- :class:`LLMServer` (``llm_server``): a local server speaking the OpenAI and Ollama
  chat protocols, answering from a script (loads Tornado on first use).
"""

from __future__ import annotations

import importlib
import typing

__all__ = ["LLMServer"]


def __getattr__(name: str) -> typing.Any:
    if name != "LLMServer":
        raise AttributeError(f"module 'kailash_nb.testing' has no attribute {name!r}")
    return importlib.import_module("kailash_nb.testing.llm_server").LLMServer


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
