"""The errors of the ``kailash-nb`` command, each with its exit code."""

from __future__ import annotations

from kailash_nb.sdk_exceptions import KailashException

__all__ = ["CommandError", "UsageError"]


class UsageError(KailashException):
    """A command-line argument is malformed or names something that does not exist
    (the command exits 2)."""


class CommandError(KailashException):
    """The command cannot be carried out: a file is missing or unreadable, a port is
    taken, a setting is invalid (the command exits 1)."""
