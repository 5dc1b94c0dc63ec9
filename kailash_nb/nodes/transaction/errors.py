"""The error a participant spec with unusable options raises when it is built."""

from __future__ import annotations

from kailash_nb.transactions.participants import PermanentParticipantError

__all__ = ["ParticipantConfigurationError"]


class ParticipantConfigurationError(PermanentParticipantError, ValueError):
    """A participant's options cannot work (no endpoint, a negative timeout, an unknown
    node type...). It is a ``ValueError`` for whoever builds the spec, and a
    ``PermanentParticipantError`` for a coordinator that resolves a stored spec: no
    retry can fix the options, so the step fails for good."""
