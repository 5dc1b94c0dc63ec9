"""The one run status model every layer uses.

A run is ``queued`` (accepted, waiting for a slot), ``running``, then ends in exactly
one final status:

- ``completed``: every node that ran completed (skipped branches are fine);
- ``failed``: at least one node failed, even when every other node completed (the run
  keeps the partial results), or the run could not be executed;
- ``timeout``: the run's deadline passed;
- ``cancelled``: the run was cancelled (an interrupted kernel, a cancelled task);
- ``interrupted``: the process running it ended before the run finished (found when
  the store is next opened).

The engine's run events carry the final status as their state (``RunEvent.state``:
``started`` then one of ``completed``, ``failed``, ``timeout``, ``cancelled``); the run
store, the gateway's answers and events, the metrics and the notebook read the same
words::

    from kailash_nb.run_status import FINAL_STATUSES, is_success
    assert is_success("completed") and not is_success("failed")
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ENGINE_FINAL_STATES",
    "FINAL_STATUSES",
    "RUN_STATUSES",
    "FinalStatus",
    "RunStatus",
    "is_success",
]

RunStatus = Literal[
    "queued", "running", "completed", "failed", "timeout", "cancelled", "interrupted"
]
FinalStatus = Literal["completed", "failed", "timeout", "cancelled", "interrupted"]

#: Every status, in the order of a run's life.
RUN_STATUSES: tuple[str, ...] = (
    "queued",
    "running",
    "completed",
    "failed",
    "timeout",
    "cancelled",
    "interrupted",
)
#: Statuses a run never leaves.
FINAL_STATUSES = frozenset({"completed", "failed", "timeout", "cancelled", "interrupted"})
#: Final statuses the engine itself reports (``interrupted`` is found afterwards).
ENGINE_FINAL_STATES = frozenset({"completed", "failed", "timeout", "cancelled"})


def is_success(status: str) -> bool:
    """True only for ``completed``: every other final status is a failure of the run."""
    return status == "completed"
