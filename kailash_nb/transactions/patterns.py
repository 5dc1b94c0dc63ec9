"""Choosing between two-phase commit and a saga.

:func:`select_pattern` applies these rules, first match wins:

1. A participant that cannot prepare/commit/abort (``"2pc": false``) => ``saga``:
   two-phase commit needs every participant.
2. ``consistency: "strong"`` or ``isolation_level: "serializable"`` => ``two_phase``
   (every participant supports it, by rule 1).
3. ``availability: "high"`` with ``consistency: "eventual"`` => ``saga``: no
   participant holds locks waiting for the slowest one.
4. Otherwise ``two_phase`` (every participant supports it).

The manager refuses participants no single protocol suits (one without 2PC and one
without saga support in one transaction). With no participants yet, the rules read
the requirements alone; the manager chooses again each time a participant is added
(before execution starts)::

    select_pattern({"consistency": "strong"}, [{"id": "billing", "2pc": False}])  # "saga"
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kailash_nb.transactions.participants import ParticipantSpec

__all__ = ["select_pattern"]


def select_pattern(
    requirements: Mapping[str, Any] | None,
    participants: Iterable[ParticipantSpec | Mapping[str, Any]] = (),
) -> str:
    """``"two_phase"`` or ``"saga"`` for a transaction with these ``requirements``
    (``consistency``, ``availability``, ``isolation_level``...) and ``participants``
    (specs, or the seed's ``{"id", "2pc", "saga"}`` dicts)."""
    requirements = requirements or {}
    for participant in participants:
        supports_2pc = (
            participant.supports_2pc
            if isinstance(participant, ParticipantSpec)
            else participant.get("2pc", True)
        )
        if not supports_2pc:
            return "saga"
    consistency = str(requirements.get("consistency", "")).lower()
    availability = str(requirements.get("availability", "")).lower()
    isolation = str(requirements.get("isolation_level", "")).lower()
    if consistency == "strong" or isolation == "serializable":
        return "two_phase"
    if availability == "high" and consistency == "eventual":
        return "saga"
    return "two_phase"
