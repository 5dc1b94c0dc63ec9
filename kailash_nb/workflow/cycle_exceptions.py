"""Kailash's module path of ``CycleConfigurationError`` (from ``kailash_nb.sdk_exceptions``)."""

from kailash_nb.sdk_exceptions import CycleConfigurationError

__all__ = ["CycleConfigurationError"]
