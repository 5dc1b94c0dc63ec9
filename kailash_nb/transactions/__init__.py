"""Distributed transactions: two-phase commit and sagas over participants, with
durable state and crash recovery.

``participants`` is the interface every participant implements (callable, HTTP,
workflow node); :class:`TransactionManager` creates, runs, aborts and recovers
transactions over the durable log (``log``), with two-phase commit (``two_phase``)
or a saga (``saga``) chosen by :func:`select_pattern`::

    manager = TransactionManager("sqlite:///app.db")
    record = manager.create_transaction("order", participants=[...])
    manager.execute_transaction(record.id).status  # "committed"
"""

from __future__ import annotations

from kailash_nb.transactions.crash import CRASH_POINT_ENV, CRASH_POINTS, crash_point
from kailash_nb.transactions.log import CorruptTransactionError, LeaseLostError, TransactionLog
from kailash_nb.transactions.manager import RESERVED_CONTEXT_KEYS, TransactionManager
from kailash_nb.transactions.model import (
    FINAL_STATUSES,
    IN_DOUBT_STATUSES,
    STATUSES,
    IdempotencyConflictError,
    InvalidTransactionError,
    RetryPolicy,
    StepRecord,
    TransactionBusyError,
    TransactionError,
    TransactionNotFoundError,
    TransactionRecord,
    TransactionStateError,
    TransactionStoreUnavailableError,
)
from kailash_nb.transactions.participants import (
    OPERATIONS,
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
from kailash_nb.transactions.patterns import select_pattern

__all__ = [
    "CRASH_POINTS",
    "CRASH_POINT_ENV",
    "FINAL_STATUSES",
    "IN_DOUBT_STATUSES",
    "OPERATIONS",
    "RESERVED_CONTEXT_KEYS",
    "STATUSES",
    "CallableParticipant",
    "CorruptTransactionError",
    "IdempotencyConflictError",
    "InvalidTransactionError",
    "LeaseLostError",
    "Participant",
    "ParticipantError",
    "ParticipantSpec",
    "PermanentParticipantError",
    "RetryPolicy",
    "StepCall",
    "StepRecord",
    "TransactionBusyError",
    "TransactionError",
    "TransactionLog",
    "TransactionManager",
    "TransactionNotFoundError",
    "TransactionRecord",
    "TransactionStateError",
    "TransactionStoreUnavailableError",
    "UnknownParticipantError",
    "Vote",
    "crash_point",
    "register_callables",
    "register_kind",
    "resolve",
    "select_pattern",
]
