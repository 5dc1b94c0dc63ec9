"""Kailash's ``kailash.middleware.communication`` path: the gateway, the realtime
middleware and the event types (defined in :mod:`kailash_nb.middleware`)."""

from __future__ import annotations

from kailash_nb.middleware.agent_events import EventType
from kailash_nb.middleware.api_gateway import APIGateway
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.middleware.realtime import RealtimeMiddleware

__all__ = ["APIGateway", "EventType", "RealtimeMiddleware", "create_gateway"]
