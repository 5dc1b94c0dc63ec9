"""Kailash's ``kailash.middleware.communication.events`` path (an alias of
:mod:`kailash_nb.middleware.agent_events`)."""

from kailash_nb.middleware.agent_events import AgentEvent, EventType

__all__ = ["AgentEvent", "EventType"]
