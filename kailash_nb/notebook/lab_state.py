"""The kernel's side of the Kailash JupyterLab sidebar: what it shows, kept in the kernel.

``LabState`` follows the notebook's workflows (created, selected, reset: the session
module's hook), each workflow's changes and runs (its listener and event bus) and the
publications (the publish module's hook), and sends the lab protocol's messages to every
connected frontend; ``lab_comm`` connects one per comm::

    state = LabState()
    state.start()
    connection = state.connect(comm.send)        # a callable taking one message
    connection.request({"request": "snapshot"})   # the answer goes to this connection
    connection.close()

Messages sent (each carries ``"v": 1``):

- ``{"type": "snapshot", "state": State}``: ``State`` is ``{"kernel": {"version"},
  "current", "workflows": [{"name", "run_status", "nodes": [{"id", "type", "state",
  "duration", "error", "cell"}]}], "runs": [RunEntry] (newest first, see
  ``lab_runs``), "published": [{"workflow", "route", "preview": null | {"port",
  "base_url", "execute_url", "docs_path"}}]}``;
- ``{"type": "node", ...}`` for each node event of a run, and ``{"type": "run", "run":
  RunEntry}`` when a run starts and when it ends (see ``lab_runs``);
- ``{"type": "reply", "request_id", "ok", ...}`` to a request (see ``lab_requests``).

Snapshots follow changes of structure (a workflow created, selected or reset; a node
defined, removed or turned stale; a publication or preview), coalesced: a change marks
the state dirty and at most one snapshot per ``update_interval`` seconds follows, so the
last change is never lost. The start of a run sends one at once, before the run's first
message (its node messages must find the nodes defined just before it), and so does its
end, after the workflow settled its states. Node events travel as node messages only.

Events arrive on engine threads. What they share is guarded by one lock; messages are
queued under it, in the order they are made, and sent without it (``lab_outbox``). A
connection whose send raises is logged and closed. Node states and errors come from
``NodeInfo`` and the engine's scrubbed event texts: no secret travels.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kailash_nb import __version__
from kailash_nb.notebook import lab_requests as requests
from kailash_nb.notebook import publish as _publish
from kailash_nb.notebook import session as _session
from kailash_nb.notebook.errors import NotebookError
from kailash_nb.notebook.lab_outbox import Outbox
from kailash_nb.notebook.lab_runs import MAX_RUNS, PROTOCOL_VERSION, RunLog
from kailash_nb.notebook.lab_views import FollowedWorkflow, publications, read_nodes
from kailash_nb.runtime.events import NodeEvent, RunEvent

__all__ = ["DEFAULT_UPDATE_INTERVAL", "LabConnection", "LabState", "Sink"]

logger = logging.getLogger(__name__)

#: Least number of seconds between two coalesced snapshots.
DEFAULT_UPDATE_INTERVAL = 0.1

#: What receives a connection's messages (``comm.send`` in a kernel).
Sink = Callable[[dict[str, Any]], object]


class LabConnection:
    """One frontend connected to a ``LabState``: it receives every message sent to all,
    and the answers to its own requests. Made by ``LabState.connect``."""

    def __init__(self, state: LabState, sink: Sink) -> None:
        self._state = state
        self.sink = sink
        self.closed = False

    def request(self, data: Any) -> None:
        """Answer the request ``data`` (a comm message's data) on this connection; a run
        request also needs the running event loop (the kernel's)."""
        self._state._answer(self, data)

    def close(self) -> None:
        """Stop sending to this connection (idempotent)."""
        self._state._disconnect(self)


class LabState:
    """The sidebar's view of the notebook, and the messages that keep frontends current.

    Args:
        update_interval: least number of seconds between two coalesced snapshots.
        max_runs: how many runs the history keeps.

    Raises:
        ValueError: ``update_interval`` is not a positive number.
    """

    def __init__(
        self, *, update_interval: float = DEFAULT_UPDATE_INTERVAL, max_runs: int = MAX_RUNS
    ) -> None:
        if not isinstance(update_interval, (int, float)) or not update_interval > 0:
            raise ValueError(
                f"update_interval must be a positive number of seconds, got {update_interval!r}"
            )
        self._interval = float(update_interval)
        self._lock = threading.Lock()
        self._runs = RunLog(max_runs)
        self._followed: dict[str, FollowedWorkflow] = {}
        self._current: str | None = None
        self._published: list[dict[str, Any]] = []
        self._ending: set[str] = set()
        self._run_requests = requests.RunRequests(
            self._starts, self._not_started, loop=_running_loop()
        )
        self._outbox = Outbox()
        self._dirty = False
        self._last_snapshot = float("-inf")
        self._timer: threading.Timer | None = None
        self._hooks: list[Callable[[], None]] = []
        self._started = self._closed = False

    # -- public -------------------------------------------------------------------------
    def start(self) -> None:
        """Follow the notebook's workflows and publications from now on (idempotent)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self._hooks = [
            _session.add_workflows_listener(self._sync_workflows),
            _publish.add_publication_listener(self._on_publications_changed),
        ]
        self._sync_workflows()
        self._read_publications()

    def close(self) -> None:
        """Stop following the notebook and close every connection (idempotent)."""
        with self._lock:
            self._closed = True
            self._cancel_timer_locked()
            followed, self._followed = list(self._followed.values()), {}
        for remove in self._hooks:
            remove()
        for workflow in followed:
            workflow.stop()
        for connection in self._outbox.clear():
            connection.closed = True

    def connect(self, sink: Sink) -> LabConnection:
        """A new connection sending every message from now on to ``sink``."""
        connection = LabConnection(self, sink)
        self._outbox.add(connection)
        return connection

    def snapshot(self) -> dict[str, Any]:
        """The ``snapshot`` message of the notebook as it is now."""
        with self._lock:
            return self._snapshot_locked()

    def flush(self) -> None:
        """Send the pending snapshot now, whatever the update interval."""
        with self._lock:
            if not self._dirty or self._closed:
                return
            self._dirty = False
            self._cancel_timer_locked()
            self._last_snapshot = time.monotonic()
            if self._outbox.connected:
                self._outbox.post(self._snapshot_locked())
        self._outbox.drain()

    # -- requests -----------------------------------------------------------------------
    def _answer(self, connection: LabConnection, data: Any) -> None:
        request_id = requests.request_id_of(data)
        message: dict[str, Any] | None = None  # the snapshot: made when it is queued
        try:
            request = requests.parse(data)
            if request.kind == "graph":
                message = requests.reply(request_id, svg=requests.graph_svg(str(request.workflow)))
            elif request.kind == "run":
                self._run_requests.schedule(str(request.workflow), request.node)
                message = requests.reply(request_id)
        except NotebookError as exc:
            message = requests.error_reply(request_id, exc)
        except Exception as exc:
            logger.exception("the lab sidebar's request %r failed", data)
            message = requests.error_reply(request_id, exc)
        with self._lock:
            if message is None:
                message = self._snapshot_locked()
            self._outbox.post(message, to=connection)
        self._outbox.drain()

    def _starts(self, name: str) -> int:
        with self._lock:
            return self._runs.starts(name)

    def _not_started(
        self, session: _session.WorkflowSession, error: str, requested_at: float
    ) -> None:
        with self._lock:
            entry = self._runs.not_started(session.name, error, requested_at)
            self._outbox.post({"v": PROTOCOL_VERSION, "type": "run", "run": entry})
        self._outbox.drain()
        self._changed()

    # -- following the notebook -----------------------------------------------------------
    def _sync_workflows(self) -> None:
        """Follow the workflows created since the last call; let go of forgotten ones."""
        sessions = _session.workflows()
        selected = _session.selected()
        with self._lock:
            if self._closed:
                return
            gone = [
                followed
                for name, followed in self._followed.items()
                if sessions.get(name) is not followed.session
            ]
            for followed in gone:
                del self._followed[followed.session.name]
            new = [s for s in sessions.values() if s.name not in self._followed]
            for session in new:
                self._followed[session.name] = FollowedWorkflow(session)
            self._current = selected.name if selected is not None else None
        for followed in gone:
            followed.stop()
        for session in new:
            self._follow(session)
        self._changed()

    def _follow(self, session: _session.WorkflowSession) -> None:
        subscriptions = [
            session.events.subscribe(functools.partial(self._on_node_event, session), runs=False),
            session.events.subscribe(
                functools.partial(self._on_run_event, session), nodes=False, timeline=True
            ),
        ]
        remove_listener = session.add_listener(
            functools.partial(self._on_workflow_changed, session)
        )
        nodes, run_status = read_nodes(session)
        with self._lock:
            followed = self._followed.get(session.name)
            if followed is not None and followed.session is session:
                followed.subscriptions = subscriptions
                followed.remove_listener = remove_listener
                followed.nodes, followed.run_status = nodes, run_status
                return
        # Forgotten (a reset) while we subscribed.
        for subscription in subscriptions:
            subscription.close()
        remove_listener()

    def _on_workflow_changed(self, session: _session.WorkflowSession) -> None:
        """A change made outside a run, or the end of a run (the session settled)."""
        nodes, run_status = read_nodes(session)
        with self._lock:
            followed = self._following_locked(session)
            if followed is None:
                return
            followed.nodes, followed.run_status = nodes, run_status
            run_ended = session.name in self._ending
            self._ending.discard(session.name)
            self._dirty = True
        if run_ended:
            self.flush()
        else:
            self._changed()

    def _on_node_event(self, session: _session.WorkflowSession, event: NodeEvent) -> None:
        with self._lock:
            followed = self._following_locked(session)
            if followed is None:
                return
            message = self._runs.node(session.name, event)
            if message is None:
                return
            node = followed.nodes.get(event.node_id)
            if node is not None:  # for a snapshot asked for during the run
                node["state"] = message["state"]
            # The node message carries the change: no snapshot for it.
            self._outbox.post(message)
        self._outbox.drain()

    def _on_run_event(self, session: _session.WorkflowSession, event: RunEvent) -> None:
        with self._lock:
            followed = self._following_locked(session)
            if followed is None:
                return
            if event.state == "started":
                entry = self._runs.started(session.name, event)
                followed.running.add(event.run_id)
                # The structure goes first, at once: a coalesced snapshot still waiting
                # may hold nodes defined just before the run, which its node messages
                # name (a frontend ignores messages about nodes it does not know).
                if self._outbox.connected and not self._closed:
                    self._dirty = False
                    self._cancel_timer_locked()
                    self._last_snapshot = time.monotonic()
                    self._outbox.post(self._snapshot_locked())
                now = False
            else:
                entry = self._runs.finished(session.name, event)
                followed.running.discard(event.run_id)
                # The snapshot waits for the session to settle its node states and
                # run status: its listener is called right after (``_on_workflow_changed``).
                self._ending.add(session.name)
                now = False
            self._outbox.post({"v": PROTOCOL_VERSION, "type": "run", "run": entry})
        self._outbox.drain()
        if now:
            self.flush()

    def _on_publications_changed(self) -> None:
        self._read_publications()
        self._changed()

    def _read_publications(self) -> None:
        published = publications()
        with self._lock:
            self._published = published

    def _following_locked(self, session: _session.WorkflowSession) -> FollowedWorkflow | None:
        followed = self._followed.get(session.name)
        return followed if followed is not None and followed.session is session else None

    # -- snapshots and sending ------------------------------------------------------------
    def _snapshot_locked(self) -> dict[str, Any]:
        return {
            "v": PROTOCOL_VERSION,
            "type": "snapshot",
            "state": {
                "kernel": {"version": __version__},
                "current": self._current,
                "workflows": [followed.view() for followed in self._followed.values()],
                "runs": self._runs.entries(),
                "published": [
                    {**entry, "preview": dict(entry["preview"]) if entry["preview"] else None}
                    for entry in self._published
                ],
            },
        }

    def _changed(self) -> None:
        """The state changed: make sure a snapshot follows, within the update interval."""
        with self._lock:
            now = self._schedule_locked()
        if now:
            self.flush()

    def _schedule_locked(self) -> bool:
        """Mark the state dirty; True when a snapshot is due now (the caller flushes
        once the lock is released), else a timer sends it when the interval is over."""
        self._dirty = True
        if self._timer is not None or self._closed or not self._outbox.connected:
            return False
        delay = self._last_snapshot + self._interval - time.monotonic()
        if delay <= 0:
            return True
        timer = threading.Timer(delay, self._timer_fired)
        timer.args = (timer,)
        timer.daemon = True
        self._timer = timer
        timer.start()
        return False

    def _timer_fired(self, timer: threading.Timer) -> None:
        with self._lock:
            if self._timer is not timer:
                return
            self._timer = None
        try:
            self.flush()
        except Exception:
            logger.exception("the lab sidebar's snapshot failed")

    def _cancel_timer_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _disconnect(self, connection: LabConnection) -> None:
        connection.closed = True
        self._outbox.remove(connection)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread (the kernel's, during a cell), or ``None``."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
