"""Middleware for serving workflows: the Tornado gateway (:func:`create_gateway`) and
the authentication facade :class:`~kailash_nb.middleware.auth.KailashJWTAuth`."""

from __future__ import annotations

from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.middleware.gateway import Gateway, create_gateway

__all__ = ["Gateway", "KailashJWTAuth", "create_gateway"]
