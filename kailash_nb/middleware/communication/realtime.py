"""Kailash's ``kailash.middleware.communication.realtime`` path (an alias of
:mod:`kailash_nb.middleware.realtime`)."""

from kailash_nb.middleware.realtime import RealtimeMiddleware

__all__ = ["RealtimeMiddleware"]
