"""Typed errors raised while configuring or starting the gateway."""

from __future__ import annotations

from kailash_nb.sdk_exceptions import KailashException

__all__ = ["GatewayConfigurationError"]


class GatewayConfigurationError(KailashException, ValueError):
    """The gateway cannot serve as configured (bad workflow name, open gateway on a
    public address, ...); the message says what to change."""
