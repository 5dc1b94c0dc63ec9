"""The lease holder's view of one transaction while a protocol drives it.

A :class:`Driver` is created by the manager or by recovery once the lease is taken.
It writes every state change through the log (fenced by the lease) before the action
it allows, calls participants with their timeouts, and raises alerts. The protocols
(``two_phase``, ``saga``) hold no state of their own: everything they decide is in
the log, so a new driver in another process picks up where a dead one stopped.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from kailash_nb.monitoring import record_alert as alert_monitors
from kailash_nb.monitoring.events import AlertRecorder
from kailash_nb.transactions.crash import crash_point
from kailash_nb.transactions.log import TransactionLog
from kailash_nb.transactions.model import RetryPolicy, StepRecord, TransactionRecord
from kailash_nb.transactions.participants import (
    Participant,
    ParticipantError,
    ParticipantSpec,
    StepCall,
    resolve,
)

__all__ = ["Driver", "raise_alert", "step_id"]

logger = logging.getLogger("kailash_nb.transactions")


def step_id(tx_id: str, spec: ParticipantSpec) -> str:
    """The step id of ``spec`` in transaction ``tx_id``: the same for every call of
    every phase and after recovery, so the participant deduplicates by it."""
    return f"{tx_id}/{spec.id}"


class Driver:
    """Drives one transaction while holding its lease.

    Args:
        log: the transaction log.
        record: the transaction as read when the lease was taken.
        token: the lease owner.
        lease_seconds: how long each write renews the lease for.
        retry: backoff and budgets of participant calls.
        monitor: an :class:`AlertRecorder` that records alerts, or ``None`` for every
            ``ProductionMonitor`` of the process (alerts are logged either way).
        recovering: whether this driver finishes a transaction another driver left.
    """

    def __init__(
        self,
        log: TransactionLog,
        record: TransactionRecord,
        token: str,
        lease_seconds: float,
        retry: RetryPolicy,
        monitor: AlertRecorder | None = None,
        *,
        recovering: bool = False,
    ) -> None:
        self.log = log
        self.record = record
        self.token = token
        self.lease_seconds = lease_seconds
        self.retry = retry
        self.monitor = monitor
        self.recovering = recovering
        self.status = record.status
        self._steps = {(step.index, step.phase): step for step in record.steps}
        self._participants: dict[int, Participant] = {}

    # -- the log ----------------------------------------------------------------------

    def set(self, **changes: Any) -> None:
        """Write the transaction's ``status``/``decision``/``error`` durably."""
        self.log.write(self.record.id, self.token, self.lease_seconds, **changes)
        self.status = changes.get("status", self.status)

    def step(self, index: int, phase: str) -> StepRecord | None:
        """The latest logged state of participant ``index`` in ``phase``."""
        return self._steps.get((index, phase))

    def mark(
        self,
        index: int,
        phase: str,
        state: str,
        attempts: int,
        *,
        result: Any = None,
        step_error: str | None = None,
        **changes: Any,
    ) -> None:
        """Write the step's new state (and its ``step_error``) durably, with any
        transaction ``changes`` (``status``, ``error``...) in the same database
        transaction."""
        step = StepRecord(
            index=index,
            participant_id=self.record.participants[index].id,
            phase=phase,
            state=state,
            attempts=attempts,
            result=_json_ready(result),
            error=None if step_error is None else step_error[:2000],
            updated_at=time.time(),
        )
        self.log.write(self.record.id, self.token, self.lease_seconds, step=step, **changes)
        self._steps[(index, phase)] = step
        self.status = changes.get("status", self.status)

    def crash(self, point: str, recovery_point: str | None = None) -> None:
        """Reach crash ``point`` (``recovery_point`` instead when recovering, if given)."""
        crash_point(recovery_point if self.recovering and recovery_point else point)

    # -- time -------------------------------------------------------------------------

    def past_deadline(self) -> bool:
        """Whether the transaction's deadline (``requirements.timeout``) has passed."""
        return self.record.deadline is not None and time.time() >= self.record.deadline

    def deadline_error(self, during: str) -> str:
        """The error recorded when the deadline passes ``during`` a phase."""
        timeout = self.record.requirements.get("timeout")
        return f"deadline passed during {during} (requirements.timeout = {timeout} s)"

    def sleep(self, attempt: int) -> None:
        """Wait the backoff after try number ``attempt`` failed."""
        time.sleep(self.retry.delay(attempt))

    # -- participants -----------------------------------------------------------------

    def call(self, index: int, operation: str, attempt: int) -> Any:
        """Call ``operation`` of participant ``index`` with its step id.

        The call is bounded by the participant's ``options["timeout"]`` and, for
        ``prepare`` and ``execute``, by the transaction's deadline.

        Raises:
            ParticipantError: it failed or timed out.
            PermanentParticipantError: it failed for good.
            UnknownParticipantError: this process cannot build it (its kind or its
                callables are not registered here).
        """
        spec = self.record.participants[index]
        participant = self._participant(index)
        call = StepCall(
            transaction_id=self.record.id,
            step_id=step_id(self.record.id, spec),
            participant_id=spec.id,
            context=self.record.context,
            attempt=attempt,
        )
        timeout = _number(spec.options.get("timeout"))
        if operation in ("prepare", "execute") and self.record.deadline is not None:
            remaining = self.record.deadline - time.time()
            if remaining <= 0:
                raise ParticipantError(f"{spec.id}.{operation} not sent: the deadline passed")
            timeout = remaining if timeout is None else min(timeout, remaining)
        method = getattr(participant, operation)
        try:
            if timeout is None:
                return method(call)
            return _call_with_timeout(method, call, timeout, f"{spec.id}.{operation}")
        except ParticipantError:
            raise
        except Exception as exc:
            # A participant kind should raise ParticipantError; anything else it raises
            # is a failure of that call (recorded with the step), not of the coordinator.
            raise ParticipantError(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Close the participants this driver built (their connections)."""
        participants, self._participants = self._participants, {}
        for participant in participants.values():
            participant.close()

    def _participant(self, index: int) -> Participant:
        participant = self._participants.get(index)
        if participant is None:
            # UnknownParticipantError goes up as it is: this process cannot reach the
            # participant, which says nothing about the participant, so the drive stops
            # and leaves the transaction as the log has it for a process that can.
            participant = self._participants[index] = resolve(self.record.participants[index])
        return participant

    # -- alerts -----------------------------------------------------------------------

    def alert(self, name: str, message: str) -> None:
        """Raise the operator alert ``name`` about this transaction."""
        raise_alert(self.monitor, name, self.record.id, self.record.tenant_id, message)


def raise_alert(
    monitor: AlertRecorder | None, name: str, tx_id: str, tenant_id: str | None, message: str
) -> None:
    """Raise the operator alert ``name``: logged at ERROR on ``kailash_nb.transactions``,
    and recorded by ``monitor``, or when it is ``None`` by every
    ``kailash_nb.monitoring.ProductionMonitor`` of the process
    (``kailash_nb.monitoring.record_alert``). The detail names the transaction and
    its tenant."""
    logger.error("transaction %s: %s", tx_id, message)
    tenant = "" if tenant_id is None else f" of tenant {tenant_id!r}"
    detail = f"transaction {tx_id}{tenant}: {message}"
    if monitor is None:
        alert_monitors(name, detail)
    else:
        monitor.record_alert(name, detail)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(value)


def _json_ready(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return {"unserializable": repr(value)[:500]}
    return value


def _call_with_timeout(method: Any, call: StepCall, timeout: float, what: str) -> Any:
    # A participant that hangs keeps its (daemon) thread; the coordinator moves on and
    # treats the call as failed (a late prepare is then told to abort).
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = method(call)
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"tx-call-{what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ParticipantError(f"{what} did not answer within {timeout:.3g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
