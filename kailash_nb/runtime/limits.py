"""``RunLimit``: the engine's one hook for stopping a run that goes past a limit.

A runtime gives the engine its limits in ``EngineSettings.limits``. For each run the
engine:

- asks every limit (``exceeded()``) when each node finishes, before its outputs are
  kept;
- hands the run to every limit to watch while it runs (``watch(run)``, undone when the
  run ends); a limit's watcher (a timer thread) calls ``run.interrupt(error)`` from any
  thread when it finds the limit exceeded while nodes run. The runtime may interrupt a
  run before it starts (the process is already past the limit);
- starts no node once the run is interrupted.

A limit answers ``None`` (within the limit) or the error that stops the run; the engine
then records the nodes concerned (the one about to start, the one that just finished,
or those running when the run was interrupted) as failed with that error, discards the
outputs of the nodes that were running, starts no further node, ends the run ``failed``
(events, run store and metrics say so) and raises the error from ``execute`` with the
partial ``results``, ``run_id`` and ``node_id`` filled in.

When the run is interrupted, its nodes that are awaiting (async nodes) or running in
worker threads (concurrent branches, timeouts) are cancelled at once, on an asyncio
loop; a synchronous node running in the caller's thread or on the loop is stopped when
it returns. A thread cannot be killed: a cancelled node's thread runs on until its node
returns, and what it returns is discarded. ``MemoryLimit``
(``kailash_nb.runtime.memory_limit``) is the limit ``memory_limit_mb`` sets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from kailash_nb.sdk_exceptions import WorkflowExecutionError

__all__ = ["Interruptible", "RunLimit"]


class Interruptible(Protocol):
    """What a limit's watcher sees of a run (a ``WorkflowRun``)."""

    def interrupt(self, error: WorkflowExecutionError) -> None:
        """Stop the run with ``error``; callable from any thread; the first call wins."""


class RunLimit(Protocol):
    """What the engine calls to know whether a run may go on."""

    def exceeded(self) -> WorkflowExecutionError | None:
        """``None`` while within the limit, else a new error describing the breach.

        Called on the engine's threads, often (after every node): it must be quick and
        must not raise.
        """

    def watch(self, run: Interruptible) -> Callable[[], object]:
        """Watch ``run`` until the returned function is called (when the run ends);
        call ``run.interrupt(error)`` if the limit is exceeded meanwhile."""
