"""The lab sidebar's run history: the notebook's latest runs as protocol ``RunEntry`` dicts.

``RunLog`` turns the event buses' ``RunEvent`` and ``NodeEvent`` objects into the run
entries and node messages of the lab protocol (see ``lab_state``)::

    log = RunLog()
    log.started("etl", run_event)      # the entry, status "running"
    log.node("etl", node_event)        # the node message for the sidebar
    log.finished("etl", end_event)     # the entry with its final status and timeline
    log.entries()                      # newest first, at most ``limit``

Only texts the engine already scrubbed of secrets travel: node errors are shortened the
way ``NodeRecord.error`` is (``short_error``), run parameters are never copied. A
``RunLog`` is not thread-safe: its owner locks around every call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from kailash_nb.notebook.states import short_error
from kailash_nb.notebook.view import ENGINE_STATES
from kailash_nb.runtime.events import NodeEvent, RunEvent

__all__ = ["MAX_RUNS", "PROTOCOL_VERSION", "RunLog"]

#: The ``v`` field every kernel message of the lab protocol carries.
PROTOCOL_VERSION = 1
#: How many runs the sidebar's history keeps (the newest).
MAX_RUNS = 20
# Node states that end a node's part in a run.
_OUTCOMES = frozenset({"completed", "cached", "failed", "skipped"})


@dataclass
class _Run:
    run_id: str
    workflow: str
    started_at: float
    status: str = "running"
    duration: float | None = None
    error: str | None = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def entry(self) -> dict[str, Any]:
        """A ``RunEntry`` that later events do not change."""
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "started_at": self.started_at,
            "duration": self.duration,
            "error": self.error,
            "nodes": [dict(node) for node in self.nodes.values()],
        }


class RunLog:
    """The last ``limit`` runs (by start), with each node's part in them.

    Args:
        limit: how many runs to keep; the oldest is forgotten first.

    Raises:
        ValueError: ``limit`` is not a positive integer.
    """

    def __init__(self, limit: int = MAX_RUNS) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        self._limit = limit
        self._runs: dict[str, _Run] = {}  # oldest first
        self._starts: dict[str, int] = {}

    def starts(self, workflow: str) -> int:
        """How many runs of ``workflow`` have started so far."""
        return self._starts.get(workflow, 0)

    def entries(self) -> list[dict[str, Any]]:
        """Every kept run's ``RunEntry``, newest first."""
        return [run.entry() for run in reversed(self._runs.values())]

    def started(self, workflow: str, event: RunEvent) -> dict[str, Any]:
        """Record run ``event.run_id`` of ``workflow`` as running; return its entry."""
        self._starts[workflow] = self._starts.get(workflow, 0) + 1
        return self._run(workflow, event.run_id, event.timestamp).entry()

    def finished(self, workflow: str, event: RunEvent) -> dict[str, Any]:
        """Record how the run ended; its nodes become ``event.timeline`` (the last
        iteration of a node in a cycle), or, without a timeline, the nodes whose events
        said how they ended. Return its entry."""
        run = self._run(workflow, event.run_id, event.timestamp)
        run.status = event.state
        run.duration = event.duration
        run.error = event.error
        if event.timeline is None:
            run.nodes = {n: node for n, node in run.nodes.items() if node["state"] in _OUTCOMES}
        else:
            run.nodes = {}
            for timing in event.timeline:
                state = ENGINE_STATES.get(timing.state, timing.state)
                ran = state in ("completed", "failed")
                run.nodes[timing.node_id] = {
                    "node": timing.node_id,
                    "state": state,
                    "duration": timing.duration if ran else None,
                    "error": short_error(timing.error),
                    "started_at": timing.started_at if ran else None,
                }
        return run.entry()

    def node(self, workflow: str, event: NodeEvent) -> dict[str, Any] | None:
        """Record a node event of a run in progress; return the ``node`` message for
        the sidebar, or ``None`` for a state the sidebar does not show."""
        state = ENGINE_STATES.get(event.state)
        if state is None:
            return None
        run = self._run(workflow, event.run_id, event.timestamp)
        error = short_error(event.error)
        previous = run.nodes.get(event.node_id)
        started_at = event.timestamp if event.state == "started" else None
        if started_at is None and previous is not None:
            started_at = previous["started_at"]
        run.nodes[event.node_id] = {
            "node": event.node_id,
            "state": state,
            "duration": event.duration,
            "error": error,
            "started_at": started_at,
        }
        return {
            "v": PROTOCOL_VERSION,
            "type": "node",
            "workflow": workflow,
            "run_id": event.run_id,
            "node": event.node_id,
            "state": state,
            "duration": event.duration,
            "error": error,
            "timestamp": event.timestamp,
        }

    def not_started(self, workflow: str, error: str, started_at: float) -> dict[str, Any]:
        """Record a requested run of ``workflow`` that failed before the engine started
        it (``error`` says why) under a fresh run id; return its entry."""
        run = self._run(workflow, str(uuid.uuid4()), started_at)
        run.status = "failed"
        run.error = error
        return run.entry()

    def _run(self, workflow: str, run_id: str, started_at: float) -> _Run:
        """The record of ``run_id``, made (and the oldest dropped) when it is new: its
        events may come without its start (a follower that arrived mid-run)."""
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run(run_id, workflow, started_at)
            while len(self._runs) > self._limit:
                del self._runs[next(iter(self._runs))]
        return run
