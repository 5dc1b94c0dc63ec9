"""Crash points: places where a test can kill the coordinator process for real.

``crash_point("2pc.after_decision")`` does nothing unless the environment variable
``KAILASH_NB_TX_CRASH_POINT`` names that point; then the process sends itself
SIGKILL (no cleanup, no ``finally``, exactly like a power cut for the log). With
``KAILASH_NB_TX_CRASH_HIT=n`` it dies at the n-th time the point is reached in the
process (default: the first), so a test can kill after the second commit as well as
after the first. The environment is read on every call, so a test process can set it
for a child without touching its own behaviour::

    KAILASH_NB_TX_CRASH_POINT=2pc.after_decision python -m my_coordinator
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["CRASH_HIT_ENV", "CRASH_POINTS", "CRASH_POINT_ENV", "crash_point"]

#: Names the crash point at which the process kills itself.
CRASH_POINT_ENV = "KAILASH_NB_TX_CRASH_POINT"
#: Which time the named point is reached that kills (1 = the first).
CRASH_HIT_ENV = "KAILASH_NB_TX_CRASH_HIT"

#: Every crash point, with the moment it stands for.
CRASH_POINTS: tuple[str, ...] = (
    # Two-phase commit.
    "2pc.after_prepare_sent",  # prepare marked sent, participant not yet called
    "2pc.after_prepare_vote",  # participant prepared, its vote not yet logged
    "2pc.after_votes",  # every vote PREPARED and logged, no decision (DTM-01)
    "2pc.after_decision",  # decision commit durable, no commit sent (DTM-02)
    "2pc.after_first_commit",  # a participant committed, its done mark not logged (DTM-03)
    "2pc.after_abort_decision",  # decision abort durable, no abort sent
    "2pc.mid_abort",  # a participant aborted, its done mark not logged (DTM-04)
    # Saga.
    "saga.after_step_sent",  # step marked sent, participant not yet called
    "saga.after_step_effect",  # participant executed, done not logged (DTM-10)
    "saga.between_steps",  # step done logged, next step not sent (DTM-11)
    "saga.after_failure",  # a step failed for good and status is compensating
    "saga.after_compensation_sent",  # compensation marked sent, participant not called
    "saga.mid_compensation",  # participant compensated, done not logged
    # Recovery itself (DTM-05).
    "recovery.after_lease",  # recovery took the lease, did nothing yet
    "recovery.mid_commit",  # recovery resent a commit that took effect, not logged
    "recovery.mid_abort",  # recovery resent an abort that took effect, not logged
    "recovery.mid_compensation",  # recovery compensated a step, not logged
)

_KNOWN = frozenset(CRASH_POINTS)
_hits: dict[str, int] = {}
_hits_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``KAILASH_NB_TX_CRASH_POINT`` is ``name`` (and
    this is the ``KAILASH_NB_TX_CRASH_HIT``-th time it is reached); else return.

    Raises:
        ValueError: ``name`` is not one of :data:`CRASH_POINTS` (a typo in the engine).
    """
    if name not in _KNOWN:
        raise ValueError(f"unknown crash point {name!r}; the points are {CRASH_POINTS}")
    if os.environ.get(CRASH_POINT_ENV) != name:
        return
    wanted = int(os.environ.get(CRASH_HIT_ENV) or 1)
    with _hits_lock:
        _hits[name] = _hits.get(name, 0) + 1
        reached = _hits[name]
    if reached == wanted:
        os.kill(os.getpid(), signal.SIGKILL)
