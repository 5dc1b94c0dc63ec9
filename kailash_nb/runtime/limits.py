"""``RunLimit``: the engine's one hook for stopping a run that goes past a limit.

A runtime gives the engine its limits in ``EngineSettings.limits``. The engine asks
each limit before every node executes, when every node finishes (before its outputs
are kept) and every ``check_interval`` seconds while nodes run. A limit answers
``None`` (within the limit) or the error that stops the run; the engine then:

- records the nodes concerned (the one about to start, the one that just finished, or
  those running when the timer found the breach) as failed with that error, and
  discards the outputs of the nodes that were running;
- starts no further node, ends the run ``failed`` (events, run store and metrics say
  so) and raises the error from ``execute`` with the partial ``results`` and ``run_id``
  filled in.

Synchronous nodes run in worker threads while a run has limits, so the timer keeps
running while they do; a thread cannot be killed, so a node that is stopped goes on in
its thread until it returns, and what it returns is discarded. ``MemoryLimit``
(``kailash_nb.runtime.memory_limit``) is the limit ``memory_limit_mb`` sets.
"""

from __future__ import annotations

from typing import Protocol

from kailash_nb.sdk_exceptions import WorkflowExecutionError

__all__ = ["RunLimit"]


class RunLimit(Protocol):
    """What the engine calls to know whether a run may go on."""

    #: Seconds between checks while nodes run.
    check_interval: float

    def exceeded(self) -> WorkflowExecutionError | None:
        """``None`` while within the limit, else a new error describing the breach.

        Called on the engine's threads, often (before and after every node): it must be
        quick and must not raise.
        """
