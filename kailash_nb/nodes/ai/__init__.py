"""The agent nodes: an LLM agent over pluggable providers, an agent pool, and a
coordinator that schedules tasks over the pool.

- :class:`LLMAgentNode` (``llm_agent``): chat with a model through a provider
  (OpenAI-compatible, Ollama, or one you register), run the tools it calls, validate
  structured output; usage and cost in the outputs.
- :class:`AgentPoolManagerNode` (``self_organizing``): agents with capabilities, load
  and health.
- :class:`A2ACoordinatorNode` (``a2a``): hands tasks to agents by strategy, with a
  bounded queue and per-agent metrics.

Each node loads on first use, so ``import kailash_nb.nodes.ai`` contacts nothing and
imports no client library.
"""

from __future__ import annotations

from kailash_nb._lazy_exports import lazy_exports

__all__ = ["A2ACoordinatorNode", "AgentPoolManagerNode", "LLMAgentNode"]

_MODULES = {
    "LLMAgentNode": "kailash_nb.nodes.ai.llm_agent",
    "AgentPoolManagerNode": "kailash_nb.nodes.ai.self_organizing",
    "A2ACoordinatorNode": "kailash_nb.nodes.ai.a2a",
}


__getattr__, __dir__ = lazy_exports(__name__, _MODULES, __all__)
