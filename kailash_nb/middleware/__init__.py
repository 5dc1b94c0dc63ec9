"""Middleware for serving workflows: the Tornado gateway (:func:`create_gateway`, or
:class:`APIGateway` from Kailash's arguments), the authentication facade
:class:`~kailash_nb.middleware.auth.KailashJWTAuth`, agent-UI sessions and executions
(:class:`AgentUIMiddleware`, whose events are :class:`EventType`) and their live
transports (:class:`RealtimeMiddleware`)."""

from __future__ import annotations

from kailash_nb.middleware.agent_events import EventType
from kailash_nb.middleware.agent_ui import AgentUIMiddleware
from kailash_nb.middleware.api_gateway import APIGateway
from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.middleware.gateway import Gateway, create_gateway
from kailash_nb.middleware.realtime import RealtimeMiddleware

__all__ = [
    "APIGateway",
    "AgentUIMiddleware",
    "EventType",
    "Gateway",
    "KailashJWTAuth",
    "RealtimeMiddleware",
    "create_gateway",
]
