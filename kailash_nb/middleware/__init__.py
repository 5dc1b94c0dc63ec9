"""Middleware for serving workflows. For now: the authentication facade
:class:`~kailash_nb.middleware.auth.KailashJWTAuth` (the gateway comes later)."""

from __future__ import annotations

from kailash_nb.middleware.auth import KailashJWTAuth

__all__ = ["KailashJWTAuth"]
