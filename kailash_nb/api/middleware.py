"""Alias of the seed's ``kailash.api.middleware`` import path."""

from __future__ import annotations

from kailash_nb.middleware.gateway import Gateway, create_gateway

__all__ = ["Gateway", "create_gateway"]
