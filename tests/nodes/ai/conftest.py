"""Fixtures for the agent node and provider tests: the local protocol server."""

from __future__ import annotations

import pytest

from kailash_nb.nodes.ai.providers import base as provider_base
from kailash_nb.testing.llm_server import LLMServer

_API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def llm_server():
    """A running local LLM server that checks OpenAI requests carry its ``api_key``."""
    with LLMServer(api_key=_API_KEY) as server:
        yield server


@pytest.fixture
def waits(monkeypatch):
    """The waits a sync provider makes between attempts, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(provider_base.time, "sleep", recorded.append)
    return recorded
