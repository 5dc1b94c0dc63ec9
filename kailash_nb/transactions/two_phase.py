"""Two-phase commit with presumed abort.

Phase one asks every participant, in order, to ``prepare`` (each call marked ``sent``
in the log first). Any ABORT vote, timeout, error or unreadable answer, or the
deadline passing, decides ``abort``; all PREPARED decides ``commit``. The decision is
durable (status ``committing`` or ``aborting``) before any participant hears it.
Then ``commit`` goes to every participant (``abort`` to every one that was sent
``prepare``), each marked ``done`` when it acknowledged. An unreachable participant
is retried with backoff for ``commit_retry_seconds``; after that the transaction stays
``committing`` (in doubt, visible to operators) and recovery keeps retrying; it is
never reported failed.

A transaction found ``preparing`` by recovery has no decision: it is aborted
(presumed abort), whatever its votes.
"""

from __future__ import annotations

import time

from kailash_nb.transactions.driver import Driver
from kailash_nb.transactions.model import TransactionStateError
from kailash_nb.transactions.participants import ParticipantError, Vote

__all__ = ["drive", "presume_abort"]


def drive(driver: Driver) -> None:
    """Bring the two-phase transaction of ``driver`` as far as it can go: a final
    status, or ``committing``/``aborting`` while a participant stays unreachable.

    Raises:
        TransactionStoreUnavailableError: the log cannot be written; no participant
            was told anything the log does not show.
        LeaseLostError: another driver took the transaction over.
    """
    status = driver.status
    if status == "created":
        _prepare_all(driver)
    elif status == "preparing":
        presume_abort(driver, "the coordinator ended before a decision (presumed abort)")
    elif status in ("committing", "aborting"):
        _deliver(driver, "commit" if status == "committing" else "abort")
    elif not driver.record.final:
        raise TransactionStateError(
            f"transaction {driver.record.id!r} is {status!r}, not a two-phase status"
        )


def presume_abort(driver: Driver, reason: str) -> None:
    """Decide ``abort`` durably for a transaction without a decision, then abort every
    participant that was sent ``prepare``."""
    driver.set(status="aborting", decision="abort", error=reason)
    driver.crash("2pc.after_abort_decision")
    _deliver(driver, "abort")


def _prepare_all(driver: Driver) -> None:
    reason = None
    for index, spec in enumerate(driver.record.participants):
        if driver.past_deadline():
            reason = driver.deadline_error("prepare")
            break
        # The first mark also records the status: one write instead of two.
        driver.mark(index, "prepare", "sent", 1, **_status_once(driver, "preparing"))
        driver.crash("2pc.after_prepare_sent")
        try:
            vote = driver.call(index, "prepare", 1)
            prepared = vote == Vote.PREPARED  # a str enum: a plain "prepared" answers too
            error = None if prepared else f"voted {vote!r:.100}"
        except ParticipantError as exc:
            error = f"{type(exc).__name__}: {exc}"
            if driver.past_deadline():
                error = f"{driver.deadline_error('prepare')}: {error}"
        driver.crash("2pc.after_prepare_vote")
        if error is None:
            driver.mark(index, "prepare", "done", 1, result=Vote.PREPARED.value)
            continue
        reason = f"participant {spec.id!r} did not prepare: {error}"
        driver.mark(index, "prepare", "failed", 1, result=Vote.ABORT.value, step_error=error)
        break
    else:
        driver.crash("2pc.after_votes")
        if driver.past_deadline():
            reason = driver.deadline_error("prepare")
    if reason is not None:
        presume_abort(driver, reason)
        return
    driver.set(status="committing", decision="commit")
    driver.crash("2pc.after_decision")
    _deliver(driver, "commit")


def _deliver(driver: Driver, phase: str) -> None:
    """Send the decided ``phase`` to every participant that has not acknowledged it;
    the final status once all have."""
    if phase == "commit":
        targets = range(len(driver.record.participants))
        after, after_in_recovery, final = (
            "2pc.after_first_commit",
            "recovery.mid_commit",
            "committed",
        )
    else:
        targets = [
            index
            for index in range(len(driver.record.participants))
            if driver.step(index, "prepare") is not None
        ]
        after, after_in_recovery, final = "2pc.mid_abort", "recovery.mid_abort", "aborted"
    pending = [
        index
        for index in targets
        if (step := driver.step(index, phase)) is None or step.state != "done"
    ]
    budget_ends = time.monotonic() + driver.retry.commit_retry_seconds
    unacknowledged: list[int] = []
    for position, index in enumerate(pending):
        step = driver.step(index, phase)
        attempts = step.attempts if step is not None else 0
        error = None
        while True:
            attempts += 1
            driver.mark(index, phase, "sent", attempts, step_error=error)
            try:
                driver.call(index, phase, attempts)
            except ParticipantError as exc:
                error = f"{type(exc).__name__}: {exc}"
                if time.monotonic() + driver.retry.delay(attempts) > budget_ends:
                    driver.mark(index, phase, "sent", attempts, step_error=error)
                    unacknowledged.append(index)
                    break
                driver.sleep(attempts)
                continue
            driver.crash(after, after_in_recovery)
            # The last acknowledgement also records the final status, in one write.
            last = position == len(pending) - 1 and not unacknowledged
            driver.mark(index, phase, "done", attempts, **({"status": final} if last else {}))
            break
    if unacknowledged:
        ids = ", ".join(driver.record.participants[index].id for index in unacknowledged)
        driver.alert(
            f"transaction_{phase}_in_doubt",
            f"{phase} not acknowledged by {ids} after {driver.retry.commit_retry_seconds:g} s; "
            f"the transaction stays {driver.status!r} and recovery keeps retrying",
        )
        return
    if driver.status != final:
        driver.set(status=final)  # nothing was left to send


def _status_once(driver: Driver, status: str) -> dict[str, str]:
    return {} if driver.status == status else {"status": status}
