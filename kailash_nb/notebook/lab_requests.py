"""Requests of the lab sidebar: checked, answered, or refused with an error naming what
was wrong (the request side of the lab protocol; see ``lab_state``), and the runs it
requests (``RunRequests``)::

    parse({"request": "run", "request_id": "r1", "workflow": "etl", "node": None})
    # Request(kind="run", request_id="r1", workflow="etl", node=None)
    parse({"request": "rnu"})
    # NotebookError: unknown request 'rnu' (did you mean 'run'?); requests: snapshot, run, graph
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from kailash_nb.notebook.errors import NotebookError
from kailash_nb.notebook.failures import NodeRunError
from kailash_nb.notebook.lab_runs import PROTOCOL_VERSION
from kailash_nb.notebook.session import WorkflowSession, find
from kailash_nb.notebook.svg import lay_out, render_svg
from kailash_nb.notebook.view import NODE_STATES
from kailash_nb.redaction import scrub_secrets
from kailash_nb.sdk_exceptions import close_matches

__all__ = [
    "REQUESTS",
    "Request",
    "RunRequests",
    "check_runnable",
    "error_reply",
    "failure_text",
    "graph_svg",
    "parse",
    "reply",
    "request_id_of",
]

logger = logging.getLogger(__name__)

#: The requests a frontend may send, by their ``request`` field.
REQUESTS = ("snapshot", "run", "graph")


class Request(NamedTuple):
    """A well-formed request: its kind and fields (``None`` where it has none)."""

    kind: str
    request_id: str | None
    workflow: str | None = None
    node: str | None = None


def request_id_of(data: Any) -> str | None:
    """The ``request_id`` a reply to ``data`` carries: the one given, when a string."""
    request_id = data.get("request_id") if isinstance(data, dict) else None
    return request_id if isinstance(request_id, str) else None


def parse(data: Any) -> Request:
    """Check a request sent by the frontend (a comm message's ``data``).

    ``snapshot`` needs nothing else (a ``request_id`` is optional); ``run`` and
    ``graph`` need a ``request_id`` and a ``workflow`` string; ``run`` takes a ``node``
    string or ``null`` (missing means ``null``: the whole workflow). Other fields are
    ignored.

    Raises:
        NotebookError: not an object, an unknown request, a missing or mistyped field.
    """
    if not isinstance(data, dict):
        raise NotebookError(
            'a request must be a JSON object such as {"request": "snapshot"}, got '
            f"{type(data).__name__}"
        )
    kind = data.get("request")
    if not isinstance(kind, str):
        raise NotebookError(
            f"a request needs a 'request' string, one of: {', '.join(REQUESTS)}; got {kind!r:.80}"
        )
    if kind not in REQUESTS:
        raise NotebookError(
            f"unknown request {kind!r:.80}{close_matches(kind, REQUESTS)}; requests: "
            f"{', '.join(REQUESTS)}"
        )
    request_id = data.get("request_id")
    if kind == "snapshot":
        if request_id is not None and not isinstance(request_id, str):
            raise NotebookError(f"'request_id' must be a string, got {request_id!r:.80}")
        return Request(kind, request_id)
    _need_string(kind, data, "request_id", "any id, echoed in the reply")
    _need_string(kind, data, "workflow", "a notebook workflow's name")
    node = data.get("node")
    if kind == "run" and node is not None and not isinstance(node, str):
        raise NotebookError(
            f"request 'run' takes a 'node' string or null (the whole workflow), got {node!r:.80}"
        )
    return Request(kind, request_id, data["workflow"], node if kind == "run" else None)


def check_runnable(session: WorkflowSession, node: str | None) -> None:
    """Refuse a run the session would refuse before starting it: no nodes, unknown node.

    Raises:
        NotebookError: the workflow has no nodes, or no node ``node`` (close matches).
    """
    if not session.node_ids():
        raise NotebookError(
            f"workflow {session.name!r} has no nodes yet; define one with @kn.node or "
            "%%kailash node"
        )
    if node is not None:
        session.node_info(node)  # raises the session's own error, with close matches


def graph_svg(name: str) -> str:
    """The static SVG of workflow ``name`` as it is now: the picture the graph widget
    shows (``lay_out`` + ``render_svg``, edge labels on).

    Raises:
        NotebookError: no workflow ``name`` (with close matches).
    """
    session = find(name)
    node_ids = session.node_ids()
    infos = {node_id: session.node_info(node_id) for node_id in node_ids}
    types = {node_id: str(info["type"]) for node_id, info in infos.items()}
    states = {
        node_id: info["state"] if info["state"] in NODE_STATES else "idle"
        for node_id, info in infos.items()
    }
    picture = lay_out(node_ids, types, states, session.edges())
    return render_svg(session.name, picture.nodes, picture.edges, picture.width, picture.height)


def failure_text(session: WorkflowSession, error: BaseException) -> str:
    """``"ErrorType: message"`` of ``error``, without the secrets of the session's node
    configs and parameter defaults (which a message may quote)."""
    sources = []
    for definition in session.definitions.values():
        sources += [definition.config, definition.defaults(all_parameters=True)]
    return scrub_secrets(f"{type(error).__name__}: {error}", *sources)


def reply(request_id: str | None, **fields: Any) -> dict[str, Any]:
    """A successful ``reply`` message carrying ``fields``."""
    return {"v": PROTOCOL_VERSION, "type": "reply", "request_id": request_id, "ok": True, **fields}


def error_reply(request_id: str | None, error: BaseException) -> dict[str, Any]:
    """A ``reply`` refusing a request: ``error`` is ``"ErrorType: message"``."""
    return {
        "v": PROTOCOL_VERSION,
        "type": "reply",
        "request_id": request_id,
        "ok": False,
        "error": f"{type(error).__name__}: {error}",
    }


def _need_string(kind: str, data: dict[str, Any], name: str, meaning: str) -> None:
    value = data.get(name)
    if not isinstance(value, str):
        what = "is missing" if name not in data else f"must be a string, got {value!r:.80}"
        raise NotebookError(f"request {kind!r} needs {name!r} ({meaning}); it {what}")


class RunRequests:
    """The runs the sidebar requested: scheduled on the kernel's event loop, one at a
    time per workflow, and what becomes of their failures.

    The loop is the one the notebook's cells run on (``loop``, read where the kernel
    imported kailash_nb): a front end may send comm messages on a kernel subshell
    (JupyterLab does, JEP 91), whose thread has a loop of its own, and a run there would
    race the cells over the same workflow. Without ``loop``, the loop running the
    request is used.

    A run that fails at a node is reported by its own run entry (status ``failed``, the
    node's masked error). Any other failure is logged; when the engine never started the
    run, ``not_started(session, error_text, requested_at)`` reports it.

    Args:
        starts: how many runs of a workflow (by name) have started so far.
        not_started: called with the session, the failure's scrubbed text and the time
            of the request, for a run the engine never started.
        loop: the event loop runs go to.
    """

    def __init__(
        self,
        starts: Callable[[str], int],
        not_started: Callable[[WorkflowSession, str, float], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._starts = starts
        self._not_started = not_started
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: dict[str, asyncio.Future[None] | concurrent.futures.Future[None]] = {}

    def schedule(self, name: str, node: str | None) -> None:
        """Start running workflow ``name`` (or only ``node`` and what it needs) on the
        running event loop, and return at once.

        Raises:
            NotebookError: unknown workflow or node, no nodes, no running event loop,
                or a run requested before still going on.
        """
        session = find(name)
        check_runnable(session, node)
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        loop = self._loop if self._loop is not None and not self._loop.is_closed() else here
        if loop is None:
            raise NotebookError(
                "a run request needs the kernel's running event loop; there is none here"
            )
        with self._lock:
            pending = self._pending.get(session.name)
            if pending is not None and not pending.done():
                raise NotebookError(
                    f"workflow {session.name!r} is still running the run requested before; "
                    "wait for it to end"
                )
            run: asyncio.Future[None] | concurrent.futures.Future[None]
            if loop is here:
                run = loop.create_task(self._run(session, node))
            else:
                run = asyncio.run_coroutine_threadsafe(self._run(session, node), loop)
            self._pending[session.name] = run
        run.add_done_callback(functools.partial(self._done, session.name))

    async def _run(self, session: WorkflowSession, node: str | None) -> None:
        before = self._starts(session.name)
        requested_at = time.time()
        try:
            await session.run_async(node)
        except Exception as exc:
            started = self._starts(session.name) > before
            if isinstance(exc, NodeRunError) and started:
                # The run's entry, sent already, says "failed" with the node's masked
                # error; caught only so the task does not log "exception never retrieved".
                return
            logger.exception("the lab sidebar's run of workflow %r failed", session.name)
            if not started:
                self._not_started(session, failure_text(session, exc), requested_at)

    def _done(
        self, name: str, task: asyncio.Future[None] | concurrent.futures.Future[None]
    ) -> None:
        with self._lock:
            if self._pending.get(name) is task:
                del self._pending[name]
