"""Typed errors raised while configuring or starting the gateway."""

from __future__ import annotations

from kailash_nb.sdk_exceptions import KailashException

__all__ = ["GatewayConfigurationError", "GatewayFeatureNotImplementedError"]


class GatewayConfigurationError(KailashException, ValueError):
    """The gateway cannot serve as configured (bad workflow name, open gateway on a
    public address, ...); the message says what to change."""


class GatewayFeatureNotImplementedError(KailashException, NotImplementedError):
    """A ``create_gateway`` option was set to a value this release cannot honor yet.

    Raised at creation instead of silently ignoring the option; leave the option at its
    default to proceed.
    """
