"""Sagas: forward steps in participant order, compensations in reverse on failure.

Each step is marked ``sent`` in the log before its participant is called and
``done`` (with its result) after; a step whose participant fails for good, or
transiently beyond ``max_attempts``, or the deadline passing, turns the saga
``compensating``. Then every step that was sent (it may have had an effect, the failed
one included) is compensated, newest first, each once per (transaction, step id): a
compensation that fails transiently is retried with backoff, one that fails for good
or beyond ``compensation_attempts`` ends the saga ``compensation_failed`` with an
alert. All compensated: ``compensated`` (its own final status, not a failure).

Recovery resumes an ``executing`` saga after its last ``done`` step, asking a step
that was ``sent`` again with the same step id (the participant deduplicates, or
refuses a step it already compensated, which is then compensated like any failure),
and continues a ``compensating`` one.
"""

from __future__ import annotations

from kailash_nb.transactions.driver import Driver
from kailash_nb.transactions.model import TransactionStateError
from kailash_nb.transactions.participants import ParticipantError, PermanentParticipantError

__all__ = ["cancel", "drive"]


def drive(driver: Driver) -> None:
    """Bring the saga of ``driver`` to a final status.

    Raises:
        TransactionStoreUnavailableError: the log cannot be written.
        LeaseLostError: another driver took the saga over.
    """
    status = driver.status
    if status in ("created", "executing"):
        _forward(driver)
    elif status == "compensating":
        _compensate(driver)
    elif not driver.record.final:
        raise TransactionStateError(
            f"transaction {driver.record.id!r} is {status!r}, not a saga status"
        )


def cancel(driver: Driver, reason: str) -> None:
    """Stop the saga of ``driver`` where it is and compensate what it did."""
    driver.set(status="compensating", error=reason)
    _compensate(driver)


def _forward(driver: Driver) -> None:
    participants = driver.record.participants
    for index, spec in enumerate(participants):
        step = driver.step(index, "execute")
        if step is not None and step.state == "done":
            continue
        if driver.past_deadline():
            cancel(driver, driver.deadline_error("the saga"))
            return
        attempts = step.attempts if step is not None else 0
        failure = None
        while True:
            attempts += 1
            # The first mark also records the status: one write instead of two.
            starting = {"status": "executing"} if driver.status == "created" else {}
            driver.mark(index, "execute", "sent", attempts, **starting)
            driver.crash("saga.after_step_sent")
            try:
                result = driver.call(index, "execute", attempts)
            except PermanentParticipantError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            except ParticipantError as exc:
                if driver.past_deadline():
                    failure = f"{driver.deadline_error('the saga')}: {exc}"
                elif attempts < driver.retry.max_attempts:
                    driver.sleep(attempts)
                    continue
                else:
                    failure = f"{type(exc).__name__} after {attempts} attempts: {exc}"
            break
        if failure is not None:
            driver.mark(
                index,
                "execute",
                "failed",
                attempts,
                step_error=failure,
                status="compensating",
                error=f"step {spec.id!r} failed: {failure}",
            )
            driver.crash("saga.after_failure")
            _compensate(driver)
            return
        driver.crash("saga.after_step_effect")
        last = index == len(participants) - 1
        # The last step's record also records the saga completed, in one write.
        ending = {"status": "completed"} if last else {}
        driver.mark(index, "execute", "done", attempts, result=result, **ending)
        if not last:
            driver.crash("saga.between_steps")
    if driver.status != "completed":
        driver.set(status="completed")  # no step was left to run


def _compensate(driver: Driver) -> None:
    participants = driver.record.participants
    # Steps never sent have nothing to undo; steps compensated already are done.
    pending = [
        index
        for index in reversed(range(len(participants)))
        if driver.step(index, "execute") is not None
        and ((step := driver.step(index, "compensate")) is None or step.state != "done")
    ]
    for position, index in enumerate(pending):
        step = driver.step(index, "compensate")
        attempts = step.attempts if step is not None else 0
        failure = None
        while True:
            attempts += 1
            driver.mark(index, "compensate", "sent", attempts)
            driver.crash("saga.after_compensation_sent")
            try:
                driver.call(index, "compensate", attempts)
            except PermanentParticipantError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            except ParticipantError as exc:
                if attempts < driver.retry.compensation_attempts:
                    driver.sleep(attempts)
                    continue
                failure = f"{type(exc).__name__} after {attempts} attempts: {exc}"
            break
        if failure is not None:
            message = f"compensation of step {participants[index].id!r} failed: {failure}"
            driver.mark(
                index,
                "compensate",
                "failed",
                attempts,
                step_error=failure,
                status="compensation_failed",
                error=message,
            )
            driver.alert("transaction_compensation_failed", message)
            return
        driver.crash("saga.mid_compensation", "recovery.mid_compensation")
        ending = {"status": "compensated"} if position == len(pending) - 1 else {}
        driver.mark(index, "compensate", "done", attempts, **ending)
    if driver.status != "compensated":
        driver.set(status="compensated")  # nothing was left to undo
