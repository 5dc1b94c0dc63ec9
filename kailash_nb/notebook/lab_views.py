"""What the lab sidebar shows of the notebook's parts, in the protocol's shapes: one
followed workflow (``FollowedWorkflow``, ``read_nodes``) and the publications
(``publications``).

Both read only what the notebook already masks (``NodeInfo``) or holds no secret
(routes, the preview's address; never its token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kailash_nb.notebook import publish as _publish
from kailash_nb.notebook.errors import NotebookError
from kailash_nb.notebook.session import WorkflowSession
from kailash_nb.runtime.events import Subscription

__all__ = ["DOCS_PATH", "FollowedWorkflow", "publications", "read_nodes"]

#: Where a preview's API documentation page is, under its base URL.
DOCS_PATH = "/docs"


@dataclass
class FollowedWorkflow:
    """A workflow the sidebar follows: what it shows of it, and the handles to let go.

    Attributes:
        session: the workflow.
        nodes: node id -> ``{"id", "type", "state", "duration", "error", "cell"}``.
        run_status: the latest run's final status (``""`` before any).
        running: ids of its runs in progress (the status shows ``running`` meanwhile).
        subscriptions: its event-bus subscriptions.
        remove_listener: removes the workflow listener.
    """

    session: WorkflowSession
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_status: str = ""
    running: set[str] = field(default_factory=set)
    subscriptions: list[Subscription] = field(default_factory=list)
    remove_listener: Callable[[], None] | None = None

    def view(self) -> dict[str, Any]:
        """The workflow's entry of the snapshot (a copy)."""
        status = "running" if self.running else self.run_status
        nodes = [dict(node) for node in self.nodes.values()]
        return {"name": self.session.name, "run_status": status, "nodes": nodes}

    def stop(self) -> None:
        """Let go of the workflow's bus and listener."""
        for subscription in self.subscriptions:
            subscription.close()
        if self.remove_listener is not None:
            self.remove_listener()


def read_nodes(session: WorkflowSession) -> tuple[dict[str, dict[str, Any]], str]:
    """``session``'s nodes as ``FollowedWorkflow.nodes`` holds them, and its run status.
    Call it in the thread that changed the workflow: the session is not read from event
    threads."""
    nodes = {}
    for node_id in session.node_ids():
        try:
            info = session.node_info(node_id)
        except NotebookError:  # removed since node_ids(): the next change notifies
            continue
        nodes[node_id] = {
            "id": node_id,
            "type": info["type"],
            "state": info["state"],
            "duration": info["duration"],
            "error": info["error"],
            "cell": info["cell"],
        }
    return nodes, session.run_status()


def publications() -> list[dict[str, Any]]:
    """The published workflows in publish order: ``{"workflow", "route", "preview"}``,
    ``preview`` being where the running preview serves the workflow (``None`` when
    it does not)."""
    address = _publish.preview_address()
    entries = []
    for workflow, route in _publish.published().items():
        preview = None
        if address is not None and address.served.get(workflow) == route:
            preview = {
                "port": address.port,
                "base_url": address.base_url,
                "execute_url": f"{address.base_url}/workflows/{route}/execute",
                "docs_path": DOCS_PATH,
            }
        entries.append({"workflow": workflow, "route": route, "preview": preview})
    return entries
