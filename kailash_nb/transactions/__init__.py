"""Distributed transactions: two-phase commit and sagas over participants, with
durable state and crash recovery.

``participants`` is the interface every participant implements (callable, HTTP,
workflow node); the coordinators, the transaction log and recovery build on it.
"""

from __future__ import annotations

from kailash_nb.transactions.participants import (
    CallableParticipant,
    Participant,
    ParticipantError,
    ParticipantSpec,
    PermanentParticipantError,
    StepCall,
    UnknownParticipantError,
    Vote,
    register_callables,
    register_kind,
    resolve,
)

__all__ = [
    "CallableParticipant",
    "Participant",
    "ParticipantError",
    "ParticipantSpec",
    "PermanentParticipantError",
    "StepCall",
    "UnknownParticipantError",
    "Vote",
    "register_callables",
    "register_kind",
    "resolve",
]
