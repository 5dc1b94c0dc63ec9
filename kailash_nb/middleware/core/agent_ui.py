"""Kailash's ``kailash.middleware.core.agent_ui`` path (an alias of
:mod:`kailash_nb.middleware.agent_ui`)."""

from kailash_nb.middleware.agent_ui import AgentUIMiddleware

__all__ = ["AgentUIMiddleware"]
