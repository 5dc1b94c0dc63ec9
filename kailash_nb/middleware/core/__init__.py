"""Kailash's ``kailash.middleware.core`` path: the agent-UI middleware (defined in
:mod:`kailash_nb.middleware.agent_ui`)."""

from __future__ import annotations

from kailash_nb.middleware.agent_ui import AgentUIMiddleware

__all__ = ["AgentUIMiddleware"]
