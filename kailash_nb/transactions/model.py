"""What a transaction is: its statuses, its immutable record, retry settings and errors.

A :class:`TransactionRecord` is a snapshot of one transaction as the log holds it;
every API of the engine returns one. Errors carry ``http_status``, the answer the
gateway gives for them (400, 404, 409, 422, 503).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from kailash_nb.sdk_exceptions import KailashException, ServiceUnavailableError
from kailash_nb.transactions.participants import ParticipantSpec

__all__ = [
    "FINAL_STATUSES",
    "IN_DOUBT_STATUSES",
    "PATTERNS",
    "STATUSES",
    "IdempotencyConflictError",
    "InvalidTransactionError",
    "RetryPolicy",
    "StepRecord",
    "TransactionBusyError",
    "TransactionError",
    "TransactionNotFoundError",
    "TransactionRecord",
    "TransactionStateError",
    "TransactionStoreUnavailableError",
]

#: The protocols a transaction runs.
PATTERNS = ("two_phase", "saga")

#: Every status a transaction can have.
STATUSES = (
    "created",
    "preparing",
    "committing",
    "committed",
    "aborting",
    "aborted",
    "executing",
    "compensating",
    "compensated",
    "compensation_failed",
    "completed",
    "quarantined",
)

#: Statuses a transaction never leaves.
FINAL_STATUSES = frozenset(
    {"committed", "aborted", "compensated", "compensation_failed", "completed", "quarantined"}
)

#: Statuses of a transaction whose driver may have died: recovery finishes them
#: (when no live lease says another process is driving them).
IN_DOUBT_STATUSES = frozenset({"preparing", "committing", "aborting", "executing", "compensating"})


class TransactionError(KailashException):
    """Root of the transaction engine's errors; ``http_status`` is the gateway's answer."""

    http_status = 500


class InvalidTransactionError(TransactionError, ValueError):
    """The request is malformed: an unknown pattern, a context key that shadows a step
    parameter, a participant listed twice. Fix the request and send it again."""

    http_status = 400


class TransactionNotFoundError(TransactionError, LookupError):
    """No transaction with that id is in the log."""

    http_status = 404


class TransactionBusyError(TransactionError):
    """Another process (or thread) is driving this transaction now; retry later, or
    read its status."""

    http_status = 409


class TransactionStateError(TransactionError):
    """The transaction's status does not allow the operation (adding a participant after
    it started, aborting one whose commit is decided)."""

    http_status = 409


class IdempotencyConflictError(TransactionError):
    """The idempotency key was used before, by the same tenant and principal, with a
    different request body; use a new key for a new request."""

    http_status = 422


class TransactionStoreUnavailableError(TransactionError, ServiceUnavailableError):
    """The transaction log cannot be read or written (database down, locked beyond the
    wait, disk full). No participant was told to commit after the failed write; retry
    when the store is back, and recovery finishes what is in doubt. A
    ``ServiceUnavailableError``: a gateway answers the run 503 with ``Retry-After``."""

    http_status = 503


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How participant calls that fail transiently are retried, with exponential backoff.

    Attributes:
        max_attempts: tries of a forward saga step before it counts as failed.
        compensation_attempts: tries of one compensation before the saga ends
            ``compensation_failed``.
        initial_delay: seconds before the second try; each later wait is
            ``multiplier`` times longer, at most ``max_delay``.
        max_delay: the longest wait between tries.
        multiplier: the backoff factor.
        commit_retry_seconds: how long ``execute`` keeps resending a decided commit (or
            abort) to an unreachable participant before it returns the transaction
            still ``committing`` (in doubt) for recovery to finish.
    """

    max_attempts: int = 3
    compensation_attempts: int = 10
    initial_delay: float = 0.05
    max_delay: float = 2.0
    multiplier: float = 2.0
    commit_retry_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_attempts", "compensation_attempts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name in ("initial_delay", "max_delay", "multiplier", "commit_retry_seconds"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after try number ``attempt`` (1-based) failed."""
        return min(self.initial_delay * self.multiplier ** max(attempt - 1, 0), self.max_delay)


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One call of the protocol to one participant, as logged.

    Attributes:
        index: the participant's position in the transaction (0-based).
        participant_id: the participant.
        phase: ``prepare``, ``commit``, ``abort``, ``execute`` or ``compensate``.
        state: ``sent`` (the participant may have been told), ``done`` or ``failed``.
        attempts: calls made so far.
        result: the vote (``prepare``) or the step's result (``execute``).
        error: the last failure, if any.
    """

    index: int
    participant_id: str
    phase: str
    state: str
    attempts: int
    result: Any = None
    error: str | None = None
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The step as JSON-ready data."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TransactionRecord:
    """A transaction as the log holds it at one moment (immutable).

    ``status`` is one of :data:`STATUSES`; ``in_doubt`` says whether recovery still
    has to finish it. ``steps`` are ordered by participant, then protocol phase.
    """

    id: str
    name: str
    pattern: str
    status: str
    decision: str | None
    tenant_id: str
    principal: str
    requirements: Mapping[str, Any]
    context: Mapping[str, Any]
    participants: tuple[ParticipantSpec, ...]
    steps: tuple[StepRecord, ...]
    idempotency_key: str | None
    body_digest: str
    deadline: float | None
    error: str | None
    version: int
    created_at: float
    updated_at: float

    @property
    def in_doubt(self) -> bool:
        """Whether the transaction has not reached a final status."""
        return self.status in IN_DOUBT_STATUSES

    @property
    def final(self) -> bool:
        """Whether the transaction has reached a status it never leaves."""
        return self.status in FINAL_STATUSES

    def step(self, index: int, phase: str) -> StepRecord | None:
        """The logged step of participant ``index`` in ``phase``, if any."""
        for step in self.steps:
            if step.index == index and step.phase == phase:
                return step
        return None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (``transaction_id`` and ``selected_pattern`` as
        the seed's nodes name them)."""
        return {
            "transaction_id": self.id,
            "name": self.name,
            "selected_pattern": self.pattern,
            "status": self.status,
            "decision": self.decision,
            "in_doubt": self.in_doubt,
            "tenant_id": self.tenant_id,
            "principal": self.principal,
            "requirements": dict(self.requirements),
            "context": dict(self.context),
            "participants": [spec.to_dict() for spec in self.participants],
            "steps": [step.to_dict() for step in self.steps],
            "idempotency_key": self.idempotency_key,
            "deadline": self.deadline,
            "error": self.error,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
