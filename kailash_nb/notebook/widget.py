"""``GraphWidget``: the live graph of a notebook workflow.

The widget reads a ``WorkflowView`` (node ids, edges, masked node details) and
follows its event bus: node colours change while a run goes on, the steps a node
reports (``kailash_nb.nodes.steps.report_step``: an agent's prompt, tool call, tool
result, answer) show under it as they happen, and a click on a node shows its
details, its step log among them. Updates are coalesced: events only mark nodes dirty, and at
most one update per ``update_interval`` seconds reaches the browser, plus one at
the end of every run so the last state is never lost::

    widget = GraphWidget(view)
    widget  # in a notebook: the live graph; saved notebooks keep a static SVG

Events arrive on worker threads and the runtime's loop thread, so everything the
widget shares with them is guarded by locks; the view itself is only called from
the thread that constructs the widget, changes the workflow or clicks a node.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple, cast

import anywidget
import traitlets

from kailash_nb.notebook.svg import GraphEdge, GraphNode, lay_out, render_svg, shorten
from kailash_nb.notebook.view import ENGINE_STATES, NODE_STATES, NodeInfo, WorkflowView
from kailash_nb.runtime.events import NodeEvent, NodeStepEvent, RunEvent
from kailash_nb.sdk_exceptions import close_matches

__all__ = ["DEFAULT_UPDATE_INTERVAL", "ENGINE_STATES", "STEP_LOG_LENGTH", "GraphWidget"]

logger = logging.getLogger(__name__)

#: Seconds between two coalesced updates sent while a run goes on.
DEFAULT_UPDATE_INTERVAL = 0.1
# Longest text of one detail (a parameter preview, an error, an output preview) sent
# to the browser; the view already truncates, this bounds a careless one.
_MAX_DETAIL = 2000
# Longest traceback sent to the browser; a longer one keeps its end, where the error is.
_MAX_TRACEBACK = 8000
#: Steps kept per node in the widget's step log (the latest ones) during one run.
STEP_LOG_LENGTH = 20
# Longest text of one step ("tool_call: search"); the engine caps the detail already.
_MAX_STEP_TEXT = 120
# Detail keys that say what a step is about, in the order they are looked for.
_STEP_SUBJECTS = ("tool", "name", "content", "prompt", "result", "query", "message")


class _Snapshot(NamedTuple):
    """The view's structure at one moment, read in the thread that changed it."""

    name: str
    node_ids: list[str]
    edges: list[tuple[str, str, str]]
    infos: dict[str, NodeInfo]


class GraphWidget(anywidget.AnyWidget):
    """The live graph of a workflow, for Jupyter (any front end anywidget supports).

    Args:
        view: the workflow to show; the widget subscribes to ``view.events`` and
            ``view.add_listener`` until ``close()``.
        update_interval: least number of seconds between two updates sent while
            events stream in (the end of a run and ``flush()`` send at once).
        edge_labels: write each edge's ``"output -> input"`` labels on the graph.

    Raises:
        ValueError: ``update_interval`` is not a positive number.

    Synced traits (what the browser receives):
        ``workflow_name`` (str); ``nodes`` (list of ``{id, type, state, x, y}``, in
        insertion order); ``edges`` (list of ``{source, target, label, back}``, one
        per connected pair); ``size`` (``{width, height}``); ``details`` (the
        selected node: ``{id, type, state, parameters, duration, error,
        output_preview, cell, traceback}``, or ``{}``; ``traceback`` is the last
        failure's text, trimmed to the user's frames); ``edge_labels`` (bool); ``run_status``
        (``""`` before any run, ``running``, then the run's final status from
        ``kailash_nb.run_status``: a run in which any node failed is ``failed``);
        ``steps`` (``{node_id: {latest, log}}``: the text of the node's latest step,
        e.g. ``"tool_call: search"``, and its last ``STEP_LOG_LENGTH`` steps, oldest
        first; emptied when a run starts).
    """

    _esm = Path(__file__).with_name("widget.js")

    workflow_name = traitlets.Unicode("").tag(sync=True)
    nodes = traitlets.List(traitlets.Dict()).tag(sync=True)
    edges = traitlets.List(traitlets.Dict()).tag(sync=True)
    size = traitlets.Dict().tag(sync=True)
    details = traitlets.Dict().tag(sync=True)
    edge_labels = traitlets.Bool(True).tag(sync=True)
    run_status = traitlets.Unicode("").tag(sync=True)
    steps = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        view: WorkflowView,
        *,
        update_interval: float = DEFAULT_UPDATE_INTERVAL,
        edge_labels: bool = True,
        **kwargs: Any,
    ) -> None:
        if not isinstance(update_interval, (int, float)) or not update_interval > 0:
            raise ValueError(
                f"update_interval must be a positive number of seconds, got {update_interval!r}"
            )
        self._view = view
        self._interval = float(update_interval)
        # _send_lock serializes trait writes (ipywidgets is not thread-safe);
        # _state_lock guards what event threads touch, and is never held while sending.
        self._send_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._states: dict[str, str] = {}
        self._infos: dict[str, NodeInfo] = {}
        self._dirty: set[str] = set()
        self._step_logs: dict[str, deque[str]] = {}
        self._steps_dirty = False
        self._pending: _Snapshot | None = None
        self._selected: str | None = None
        self._timer: threading.Timer | None = None
        self._closed = False
        self._connection_count = 0
        snapshot = self._read_view()
        self._accept(snapshot)
        self._pending = None
        # The first state travels with the widget's opening message.
        super().__init__(
            edge_labels=edge_labels,
            run_status=view.run_status(),
            **self._structure(snapshot, self._states),
            **kwargs,
        )
        self._last_flush = time.monotonic()
        self.on_msg(self._handle_message)
        self._subscriptions = [
            view.events.subscribe(self._on_node_event, runs=False),
            view.events.subscribe(self._on_run_event, nodes=False),
            view.events.subscribe(self._on_step_event, nodes=False, runs=False, steps=True),
        ]
        self._remove_listener = view.add_listener(self._on_view_changed)

    # -- public -------------------------------------------------------------------------
    def flush(self) -> None:
        """Send pending changes to the browser now, whatever the update interval."""
        with self._send_lock:
            with self._state_lock:
                if self._closed:
                    return
                pending, self._pending = self._pending, None
                dirty, self._dirty = self._dirty, set()
                steps_dirty, self._steps_dirty = self._steps_dirty, False
                if pending is None and not dirty and not steps_dirty:
                    return
                states = dict(self._states)
                steps = None
                if steps_dirty or pending is not None:
                    steps = {
                        node_id: {"latest": log[-1], "log": list(log)}
                        for node_id, log in self._step_logs.items()
                        if log and node_id in states
                    }
                selected = self._selected
                if selected is not None and selected not in states:
                    selected = self._selected = None
                info = self._infos.get(selected) if selected is not None else None
                self._last_flush = time.monotonic()
                self._cancel_timer_locked()
            with self.hold_sync():
                if pending is not None:
                    for name, value in self._structure(pending, states).items():
                        setattr(self, name, value)
                elif dirty:
                    self.nodes = [{**node, "state": states[node["id"]]} for node in self.nodes]
                if steps is not None and steps != self.steps:
                    self.steps = steps
                if selected is None or info is None:
                    self.details = {}
                elif pending is not None or selected in dirty:
                    self.details = _details(selected, info, states[selected])

    def select(self, node_id: str | None) -> None:
        """Show the details of ``node_id`` (``None`` hides them), as a click does.

        Raises:
            ValueError: no node ``node_id`` in the graph.
        """
        info = None
        if node_id is not None:
            with self._state_lock:
                node_ids = list(self._states)
            if node_id not in node_ids:
                raise ValueError(
                    f"workflow {self.workflow_name!r} has no node {node_id!r}"
                    f"{close_matches(str(node_id), node_ids)}"
                )
            info = self._view.node_info(node_id)
        with self._send_lock:
            with self._state_lock:
                state = self._states.get(node_id) if node_id is not None else None
                if info is None or state is None:
                    self._selected = None
                else:
                    self._selected = node_id
                    self._infos = {**self._infos, node_id: info}
            if info is None or state is None or node_id is None:
                self.details = {}
            else:
                self.details = _details(node_id, info, state)

    def to_svg(self) -> str:
        """The graph as shown now, as a static SVG document."""
        self.flush()
        return render_svg(
            self.workflow_name,
            cast("list[GraphNode]", self.nodes),
            cast("list[GraphEdge]", self.edges),
            self.size.get("width", 0),
            self.size.get("height", 0),
            edge_labels=self.edge_labels,
        )

    def close(self) -> None:
        """Stop following the workflow and close the widget (idempotent)."""
        state_lock = getattr(self, "_state_lock", None)
        if state_lock is not None:
            with state_lock:
                already_closed, self._closed = self._closed, True
                self._cancel_timer_locked()
            if not already_closed:
                for subscription in getattr(self, "_subscriptions", ()):
                    subscription.close()
                remove_listener = getattr(self, "_remove_listener", None)
                if remove_listener is not None:
                    remove_listener()
        super().close()

    def __repr__(self) -> str:
        """``<Workflow NAME: N nodes, M edges>``: deterministic, for doctests and nbval."""
        self.flush()
        nodes, edges = len(self.nodes), self._connection_count
        return (
            f"<Workflow {self.workflow_name}: {nodes} node{'' if nodes == 1 else 's'}, "
            f"{edges} edge{'' if edges == 1 else 's'}>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The widget, its deterministic ``repr`` as text and the graph as SVG."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        data["text/plain"] = repr(self)
        data["image/svg+xml"] = self.to_svg()
        return data, metadata

    # -- inputs: events, view changes, frontend messages -------------------------------
    def _on_node_event(self, event: NodeEvent) -> None:
        state = ENGINE_STATES.get(event.state)
        with self._state_lock:
            if state is None or event.node_id not in self._states or self._closed:
                return
            self._states[event.node_id] = state
            self._dirty.add(event.node_id)
            self._schedule_locked()

    def _on_step_event(self, event: NodeStepEvent) -> None:
        text = _step_text(event)
        with self._state_lock:
            if event.node_id not in self._states or self._closed:
                return
            log = self._step_logs.get(event.node_id)
            if log is None:
                log = self._step_logs[event.node_id] = deque(maxlen=STEP_LOG_LENGTH)
            log.append(text)
            self._steps_dirty = True
            self._schedule_locked()

    def _on_run_event(self, event: RunEvent) -> None:
        status = "running" if event.state == "started" else event.state
        if event.state == "started":
            with self._state_lock:
                self._step_logs = {}
                self._steps_dirty = False
        with self._send_lock:
            if not self._closed:
                with self.hold_sync():
                    self.run_status = status
                    if event.state == "started" and self.steps:
                        self.steps = {}
        if event.state != "started":
            self.flush()

    def _on_view_changed(self) -> None:
        self._accept(self._read_view())
        with self._state_lock:
            self._schedule_locked()

    def _read_view(self) -> _Snapshot:
        view = self._view
        node_ids = list(view.node_ids())
        return _Snapshot(
            name=str(view.name),
            node_ids=node_ids,
            edges=list(view.edges()),
            infos={node_id: view.node_info(node_id) for node_id in node_ids},
        )

    def _accept(self, snapshot: _Snapshot) -> None:
        with self._state_lock:
            # Outside a run the view knows best. Taking its states now, not at the next
            # flush, keeps the events of a run that starts right after this change.
            self._pending = snapshot
            self._states = {
                node_id: _known_state(snapshot.infos[node_id]["state"])
                for node_id in snapshot.node_ids
            }
            self._infos = snapshot.infos

    def _handle_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "select":
            return
        node_id = content.get("node")
        with self._state_lock:
            known = isinstance(node_id, str) and node_id in self._states
        self.select(node_id if known else None)

    # -- coalescing ---------------------------------------------------------------------
    def _schedule_locked(self) -> None:
        """Make sure a flush is coming; caller holds ``_state_lock``."""
        if self._timer is not None or self._closed:
            return
        delay = max(0.0, self._last_flush + self._interval - time.monotonic())
        timer = threading.Timer(delay, self._timer_fired)
        timer.args = (timer,)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _timer_fired(self, timer: threading.Timer) -> None:
        with self._state_lock:
            if self._timer is timer:
                self._timer = None
        try:
            self.flush()
        except Exception:
            logger.exception("graph widget update of %r failed", self.workflow_name)

    def _cancel_timer_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- outputs ------------------------------------------------------------------------
    def _structure(self, snapshot: _Snapshot, states: dict[str, str]) -> dict[str, Any]:
        """The traits describing ``snapshot``: name, laid-out nodes, edges, size."""
        types = {node_id: str(info["type"]) for node_id, info in snapshot.infos.items()}
        picture = lay_out(snapshot.node_ids, types, states, snapshot.edges)
        self._connection_count = picture.connections
        return {
            "workflow_name": snapshot.name,
            "nodes": picture.nodes,
            "edges": picture.edges,
            "size": {"width": picture.width, "height": picture.height},
        }


def _step_text(event: NodeStepEvent) -> str:
    """``"step: subject"`` (``"tool_call: search"``): the step and the first detail that
    says what it is about, prefixed with ``[iteration]`` inside a cycle."""
    text = event.step
    detail = event.detail if isinstance(event.detail, dict) else {}
    for key in _STEP_SUBJECTS:
        value = detail.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            text = f"{text}: {' '.join(str(value).split())}"
            break
    if event.iteration is not None:
        text = f"[{event.iteration}] {text}"
    return shorten(text, _MAX_STEP_TEXT)


def _known_state(state: str) -> str:
    return state if state in NODE_STATES else "idle"


def _text(value: Any) -> str | None:
    return None if value is None else shorten(str(value), _MAX_DETAIL)


def _tail(value: Any, limit: int) -> str | None:
    """``value`` as text; past ``limit`` characters only its last lines are kept, after
    an ellipsis line (a traceback's end names the error)."""
    if value is None:
        return None
    text = str(value)
    if len(text) <= limit:
        return text
    tail = text[len(text) - limit + 2 :]
    return "…\n" + tail[tail.find("\n") + 1 :] if "\n" in tail else "…" + tail[1:]


def _details(node_id: str, info: NodeInfo, state: str) -> dict[str, Any]:
    """The details panel of one node: only ``NodeInfo``'s fields, which the view masked."""
    duration = info.get("duration")
    parameters = info.get("parameters") or {}
    return {
        "id": node_id,
        "type": str(info.get("type", "")),
        "state": state,
        "parameters": {str(name): _text(value) for name, value in parameters.items()},
        "duration": float(duration) if isinstance(duration, (int, float)) else None,
        "error": _text(info.get("error")),
        "output_preview": _text(info.get("output_preview")),
        "cell": _text(info.get("cell")),
        "traceback": _tail(info.get("traceback"), _MAX_TRACEBACK),
    }
