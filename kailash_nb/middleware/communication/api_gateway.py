"""Kailash's ``kailash.middleware.communication.api_gateway`` path (an alias of
:mod:`kailash_nb.middleware.api_gateway`)."""

from kailash_nb.middleware.api_gateway import APIGateway
from kailash_nb.middleware.gateway import create_gateway

__all__ = ["APIGateway", "create_gateway"]
