"""``RunOutcome``: how a run ended, for front ends that must answer it (a server).

``LocalRuntime.execute`` keeps Kailash's contract (``(results, run_id)``, a failed node
without dependents is an ``{"error", "error_type", "failed": True}`` entry, a failed node
with dependents raises). ``LocalRuntime.execute_outcome`` runs the same way but
returns the whole outcome instead, so a caller cannot mistake a run with a failed node
for a success::

    outcome = runtime.execute_outcome(workflow, {"load": {"n": 3}})
    if outcome.status != "completed":
        for failure in outcome.failed_nodes:
            print(failure.node_id, failure.error_type)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["NodeFailure", "RunOutcome"]


@dataclass(frozen=True)
class NodeFailure:
    """One node that failed in a run.

    Attributes:
        node_id: the node.
        error_type: the exception's class name (the cause's, for a node wrapper error).
        message: the exception's text, scrubbed of the node's secrets; it may still
            hold internal details, so servers show it only where allowed.
        exception: what the node raised, with its traceback (``None`` when unknown).
            It is for the process that ran the node (a notebook shows its frames);
            its text is not scrubbed, and ``public`` never includes it.
        unavailable: it raised a ``ServiceUnavailableError`` (a store or service it
            needs could not be reached): the same run may succeed later.
    """

    node_id: str
    error_type: str
    message: str
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    unavailable: bool = False

    def public(self, with_message: bool) -> dict[str, str]:
        """JSON-ready ``{"node_id", "error_type"}``, plus ``"error"`` when
        ``with_message``."""
        shown = {"node_id": self.node_id, "error_type": self.error_type}
        if with_message:
            shown["error"] = self.message
        return shown


@dataclass(frozen=True)
class RunOutcome:
    """The end of one run.

    Attributes:
        run_id: the run.
        status: ``completed``, ``failed``, ``timeout`` or ``cancelled``
            (``kailash_nb.run_status``).
        results: each node's outputs; partial for a run that did not complete.
        error: ``"ErrorType: message"`` of the run (scrubbed), ``None`` when completed.
        failed_nodes: the nodes that failed, in the order they failed.
        stopped_at: the node whose failure stopped the run (it had dependents), else
            ``None``.
    """

    run_id: str
    status: str
    results: dict[str, Any]
    error: str | None = None
    failed_nodes: tuple[NodeFailure, ...] = field(default_factory=tuple)
    stopped_at: str | None = None

    @property
    def succeeded(self) -> bool:
        """True only when the run completed."""
        return self.status == "completed"
