"""Fixtures for the agent node and provider tests: the local protocol server."""

from __future__ import annotations

import pytest

from kailash_nb.nodes import _exchange
from kailash_nb.testing.llm_server import LLMServer

_API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def llm_server():
    """A running local LLM server that checks OpenAI requests carry its ``api_key``."""
    with LLMServer(api_key=_API_KEY) as server:
        yield server


class _RecordingClock:
    """Stands in for the ``time`` module in the exchange driver: records sleeps."""

    def __init__(self, recorded: list[float]) -> None:
        self.sleep = recorded.append


@pytest.fixture
def waits(monkeypatch):
    """The waits a sync provider makes between attempts, recorded instead of slept
    (``time.sleep`` as the exchange driver sees it)."""
    recorded: list[float] = []
    monkeypatch.setattr(_exchange, "time", _RecordingClock(recorded))
    return recorded
