"""``WorkflowView``: what the graph widget reads from a notebook workflow.

The notebook session implements it; the widget depends only on this protocol, so
the two evolve independently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, TypedDict

from kailash_nb.runtime.events import EventBus

__all__ = ["ENGINE_STATES", "NODE_STATES", "NodeInfo", "NodeState", "WorkflowView"]

NodeState = Literal[
    "idle", "stale", "queued", "running", "completed", "cached", "failed", "skipped"
]
NODE_STATES: tuple[str, ...] = (
    "idle",
    "stale",
    "queued",
    "running",
    "completed",
    "cached",
    "failed",
    "skipped",
)

#: Engine node states (``NodeEvent.state``) -> the state a view shows (one of ``NODE_STATES``).
ENGINE_STATES: dict[str, str] = {
    "queued": "queued",
    "started": "running",
    "retrying": "running",
    "completed": "completed",
    "failed": "failed",
    "skipped": "skipped",
    "cached": "cached",
}


class NodeInfo(TypedDict):
    """One node as the widget shows it. Nothing secret may appear in it."""

    id: str
    type: str
    state: NodeState
    parameters: dict[str, str]  # name -> short preview; secret-looking names are masked
    duration: float | None  # seconds of the last execution
    error: str | None
    output_preview: str | None  # truncated repr of the last output
    cell: str | None  # where the node was defined (e.g. "In [3]"), when known
    # the last failure as IPython shows an error: the user's frames only (cell and
    # line, the failing line), then "ErrorType: message"; secrets scrubbed
    traceback: str | None


class WorkflowView(Protocol):
    """A notebook workflow as seen by the widget."""

    name: str

    @property
    def events(self) -> EventBus:
        """The bus the workflow's runs publish node events on."""

    def node_ids(self) -> list[str]:
        """Node ids in the order they were added."""

    def edges(self) -> list[tuple[str, str, str]]:
        """``(source, target, label)`` per connection; label ``"output -> input"``."""

    def node_info(self, node_id: str) -> NodeInfo:
        """The current view of one node."""

    def run_status(self) -> str:
        """The latest run's final status (``kailash_nb.run_status``), ``""`` before any."""

    def add_listener(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback()`` after every structural or state change made outside a
        run (node added, replaced, removed, marked stale); returns an unsubscribe."""
