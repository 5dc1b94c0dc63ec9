"""Run events for live clients: a bounded replay buffer per run, and per-client outboxes.

The :class:`RunEventHub` subscribes to the gateway's ``EventBus`` when the routes are
built (``GatewayState.live_events``; every run started afterwards emits node events
too, and the steps its nodes report: ``NodeStepEvent``). It keeps the last events of
recent runs in memory, so a client that connects after a run started gets the events
it missed, and forwards new events to the clients watching that run. Steps are kept
apart (``MAX_STEPS_PER_RUN``), so a chatty agent cannot push a run's node events out
of its replay.

Events arrive from worker threads; each client's :class:`Outbox` hands them to the
client's event loop with ``call_soon_threadsafe`` and holds at most ``capacity`` of
them. A client that stops reading fills its outbox and is dropped (GW-26): memory per
client stays bounded and other clients are unaffected.

A :class:`SessionWatch` ends live connections whose session is revoked (logout,
refresh-token reuse) within the revocation bound, however long their token still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from kailash_nb.middleware._run_errors import ErrorView
from kailash_nb.middleware.execution import RunEntry, RunIndex, may_read
from kailash_nb.middleware.identity import Identity
from kailash_nb.run_status import FINAL_STATUSES
from kailash_nb.runtime.events import (
    Event,
    EventBus,
    NodeEvent,
    NodeStepEvent,
    RunEvent,
    Subscription,
)
from kailash_nb.security import REVOCATION_CACHE_SECONDS

__all__ = [
    "ANONYMOUS_SESSION",
    "Outbox",
    "OutboxClosed",
    "RunEventHub",
    "SessionLookup",
    "SessionWatch",
    "event_frame",
    "is_final",
    "owned_run",
]

logger = logging.getLogger("kailash_nb.middleware.access")

MAX_RUNS = 256
"""Runs whose events are kept for replay (oldest forgotten first)."""
MAX_EVENTS_PER_RUN = 512
"""Events kept per run (a run with more replays only its latest ones); with
``MAX_RUNS`` this bounds the replay memory to about 130 000 small events."""
MAX_STEPS_PER_RUN = 128
"""Step events kept per run for replay, besides its node and run events (the latest
ones; each one's detail is capped by the engine)."""
OUTBOX_CAPACITY = 2_048
"""Items waiting for one client before it is dropped as a slow reader (a healthy
client drains its outbox on every loop turn; a replay is queued as one item)."""

REVOCATION_POLL_SECONDS = REVOCATION_CACHE_SECONDS / 2
"""Seconds between two revocation checks of the live connections: half the revocation
bound, so a revoked session's connections close within the bound (1 s)."""

#: ``RunEvent`` fields kept in replay buffers: all but ``parameters`` and ``timeline``.
_RUN_EVENT_PUBLIC_FIELDS = RunEvent._fields.index("parameters")

Watcher = Callable[[Event], None]


def timeline_events(run_id: str, nodes: Iterable[Any]) -> list[NodeEvent]:
    """The node events of a finished run rebuilt from its timeline (``NodeTiming``
    entries, or stored node records with the same fields): ``started`` then how the
    node ended, or only ``skipped`` for a node that did not run."""
    events = []
    for node in nodes:
        if node.state != "skipped":
            events.append(
                NodeEvent(
                    run_id, node.node_id, "started", node.started_at, None, None, node.iteration
                )
            )
        events.append(
            NodeEvent(
                run_id,
                node.node_id,
                node.state,
                node.finished_at,
                node.duration,
                node.error,
                node.iteration,
            )
        )
    return events


def is_final(event: Event) -> bool:
    """True for the ``RunEvent`` that ends its run."""
    # Replays of stored runs may end ``interrupted``, which no engine event says.
    return isinstance(event, RunEvent) and event.state in FINAL_STATUSES


def event_frame(event: Event, view: ErrorView) -> tuple[str, dict[str, Any]]:
    """``("node" | "run" | "node.step", data)``: the event's kind and its JSON-ready
    fields, errors as the run's workflow lets callers see them (``view``).

    A step's data is ``{"run_id", "node_id", "step", "detail", "timestamp"}`` (plus
    ``"iteration"`` inside a cycle): what the node chose to report to its watchers,
    already JSON-safe, capped and scrubbed of secrets by the engine. Parameters and
    timelines are never included (they may carry caller data).
    """
    if isinstance(event, NodeStepEvent):
        step: dict[str, Any] = {
            "run_id": event.run_id,
            "node_id": event.node_id,
            "step": event.step,
            "detail": event.detail,
            "timestamp": event.timestamp,
        }
        if event.iteration is not None:
            step["iteration"] = event.iteration
        return "node.step", step
    if isinstance(event, NodeEvent):
        data: dict[str, Any] = {
            "run_id": event.run_id,
            "node_id": event.node_id,
            "state": event.state,
            "timestamp": event.timestamp,
            "duration": event.duration,
            "error": view.error_text(event.error),
        }
        if event.iteration is not None:
            data["iteration"] = event.iteration
        return "node", data
    return "run", {
        "run_id": event.run_id,
        "node_id": None,
        "state": event.state,
        "timestamp": event.timestamp,
        "duration": event.duration,
        "error": view.run_error_text(event.state, event.error),
    }


def owned_run(index: RunIndex, run_id: str, identity: Identity) -> RunEntry | None:
    """The run if the caller may read it (``may_read``: its subject, or an admin of its
    tenant); else ``None`` (a 404)."""
    entry = index.get(run_id, identity.tenant_id)
    if entry is None or not may_read(identity, entry.tenant_id, entry.subject):
        return None
    return entry


def final_event_of(entry: RunEntry) -> RunEvent | None:
    """A closing ``RunEvent`` rebuilt from a finished index entry (``None`` if running).

    Used when a finished run's events were already evicted from the replay buffer.
    """
    if entry.status not in FINAL_STATUSES:
        return None
    finished = entry.finished_at or entry.created_at
    error = (entry.error or {}).get("message")
    return RunEvent(
        entry.run_id,
        entry.workflow,
        entry.status,  # type: ignore[arg-type]
        finished,
        duration=max(0.0, finished - entry.created_at),
        error=error,
    )


class _RunBuffer:
    __slots__ = ("events", "finished", "has_nodes", "steps", "timeline")

    def __init__(self, capacity: int) -> None:
        self.events: deque[Event] = deque(maxlen=capacity)
        self.steps: deque[NodeStepEvent] | None = None
        self.finished = False
        self.has_nodes = False
        self.timeline: Any = None

    def replay(self, run_id: str) -> list[Event]:
        """The buffered events, node events rebuilt from the timeline when the run
        published none (they go before the run's final event), steps merged in by time."""
        events = list(self.events)
        if self.timeline and events:
            events[-1:-1] = timeline_events(run_id, self.timeline)
        if self.steps:
            # Stable: a step and a node event of the same instant keep the node's first.
            events = list(heapq.merge(events, self.steps, key=lambda event: event.timestamp))
        return events


class RunEventHub:
    """Replay buffers and live watchers of the gateway's runs (thread-safe).

    Args:
        max_runs: runs whose events are remembered.
        max_events_per_run: events remembered per run.
    """

    def __init__(self, max_runs: int = MAX_RUNS, max_events_per_run: int = MAX_EVENTS_PER_RUN):
        self.max_runs = max_runs
        self.max_events_per_run = max_events_per_run
        self._buffers: OrderedDict[str, _RunBuffer] = OrderedDict()
        self._watchers: dict[str, set[Watcher]] = {}
        self._lock = threading.Lock()
        self._subscription: Subscription | None = None

    def attach(self, bus: EventBus) -> None:
        """Receive node, run and step events from ``bus`` (idempotent)."""
        if self._subscription is None:
            self._subscription = bus.subscribe(self.on_event, nodes=True, runs=True, steps=True)

    def on_event(self, event: Event) -> None:
        """Buffer ``event`` and pass it to the run's watchers (called from any thread)."""
        final = False
        timeline = None
        if type(event) is RunEvent:
            final = event.state in FINAL_STATUSES
            timeline = event.timeline
            if event.parameters is not None or timeline is not None:
                event = RunEvent(*event[:_RUN_EVENT_PUBLIC_FIELDS])  # hold no caller data
        run_id = event.run_id
        with self._lock:
            buffer = self._buffers.get(run_id)
            if buffer is None:
                buffer = self._buffers[run_id] = _RunBuffer(self.max_events_per_run)
                if len(self._buffers) > self.max_runs:
                    self._buffers.popitem(last=False)
            if final and timeline and not buffer.has_nodes:
                # A run that published no node events (nobody could watch it live):
                # its timeline stands in for them when the run is replayed.
                buffer.timeline = timeline
            self._append(buffer, run_id, event)
            if final:
                buffer.finished = True

    def _append(self, buffer: _RunBuffer, run_id: str, event: Event) -> None:
        if type(event) is NodeStepEvent:
            if buffer.steps is None:
                buffer.steps = deque(maxlen=MAX_STEPS_PER_RUN)
            buffer.steps.append(event)
        else:
            buffer.events.append(event)
        if type(event) is NodeEvent:
            buffer.has_nodes = True
        watchers = self._watchers.get(run_id)
        if watchers:
            # Under the hub's lock, so watchers see events in buffer order (they only
            # enqueue).
            for watcher in watchers:
                watcher(event)

    def watch(self, run_id: str, watcher: Watcher) -> tuple[list[Event], bool]:
        """Register ``watcher`` for ``run_id``; return ``(replay, finished)``.

        ``replay`` holds the buffered events; ``watcher`` receives every later one, with
        no gap or duplicate between the two. When ``finished`` the run already ended and
        the watcher is not registered.
        """
        with self._lock:
            buffer = self._buffers.get(run_id)
            replay = buffer.replay(run_id) if buffer is not None else []
            finished = buffer is not None and buffer.finished
            if not finished:
                self._watchers.setdefault(run_id, set()).add(watcher)
        return replay, finished

    def unwatch(self, run_id: str, watcher: Watcher) -> None:
        """Stop passing ``run_id``'s events to ``watcher`` (idempotent)."""
        with self._lock:
            watchers = self._watchers.get(run_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[run_id]

    def watcher_count(self, run_id: str) -> int:
        """Watchers registered for ``run_id`` (for tests and metrics)."""
        with self._lock:
            return len(self._watchers.get(run_id, ()))


class OutboxClosed(Exception):
    """The outbox was closed, or overflowed because its client stopped reading."""


class Outbox:
    """One client's bounded queue, filled from any thread, drained on ``loop``.

    Args:
        loop: the client's event loop.
        capacity: items held; one more closes the outbox and calls ``on_overflow``.
        on_overflow: drops the client (runs on ``loop``).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        capacity: int = OUTBOX_CAPACITY,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self.loop = loop
        self.capacity = capacity
        self.on_overflow = on_overflow
        self.overflowed = False
        self.closed = False
        self._items: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._loop_thread = threading.get_ident()  # created on its loop's thread

    def push(self, item: Any) -> None:
        """Queue ``item`` from any thread."""
        if threading.get_ident() == self._loop_thread:
            # Runs that finish on the loop itself: no need to wake it through its pipe.
            self.loop.call_soon(self.put, item)
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: the client is gone
            self.loop.call_soon_threadsafe(self.put, item)

    def put(self, item: Any) -> None:
        """Queue ``item`` (on the loop); overflow closes the outbox and drops the client."""
        if self.closed:
            return
        if len(self._items) >= self.capacity:
            self.overflowed = True
            self.close()
            if self.on_overflow is not None:
                self.on_overflow()
            return
        self._items.append(item)
        self._wake.set()

    def close(self) -> None:
        """Discard queued items and wake the reader with ``OutboxClosed``."""
        self.closed = True
        self._items.clear()
        self._wake.set()
        if not self._closed.done():
            self._closed.set_result(None)

    async def guard(self, awaitable: Awaitable[Any]) -> Any:
        """Await ``awaitable`` (a write to the client) unless the outbox closes first.

        A write to a client that stopped reading may never complete, and Tornado does
        not always fail it when the connection is closed; this keeps the sender from
        waiting forever.

        Raises:
            OutboxClosed: the outbox closed (overflow or disconnect) before the write ended.
        """
        write = asyncio.ensure_future(awaitable)
        if write.done():  # the socket took the frame at once (the usual case)
            return write.result()
        await asyncio.wait({write, self._closed}, return_when=asyncio.FIRST_COMPLETED)
        if not write.done():
            write.add_done_callback(_consume)
            raise OutboxClosed
        return write.result()

    async def get(self, timeout: float | None = None) -> Any:
        """The next item, or ``None`` after ``timeout`` seconds without one.

        Raises:
            OutboxClosed: the outbox was closed or overflowed.
        """
        while not self._items:
            if self.closed:
                raise OutboxClosed
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        return self._items.popleft()


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned write's outcome so asyncio does not log it."""
    if not future.cancelled():
        future.exception()


ANONYMOUS_SESSION = ""
"""The session key of connections made without a token (never a real session id)."""

SessionLookup = Callable[[list[str]], Collection[str]]
"""Given session ids, those revoked now (``KailashJWTAuth.revoked_sessions``)."""
Ender = Callable[[int, str], None]
"""Closes one connection with a WebSocket close code and reason."""


class SessionWatch:
    """Ends live connections whose session has been revoked, within the bound.

    While connections are watched, one task on their event loop asks ``lookup`` every
    ``interval`` seconds (default 0.5 s) which of their sessions are revoked: one
    uncached store read in a worker thread for all connections of the process, so a
    logout or a refresh-token reuse in any process closes them within ``bound`` (1 s,
    the revocation propagation bound of ``verify_access``) with 1008. When the lookup
    fails for longer than ``bound`` (store down), revocations can no longer be seen, so
    every watched connection is closed with 1011 (fail closed); clients reconnect
    through a handshake that checks the token again. The task ends with its last
    connection.

    Connections without a session (a gateway without authentication) are watched under
    ``ANONYMOUS_SESSION``: never looked up, but ended by ``end_all`` like the others.
    Watch and unwatch are called on the connections' event loop.

    Args:
        lookup: session ids -> those revoked now, or ``None`` (read at each poll, so a
            gateway's ``auth`` may be replaced) when there is nothing to check.
        interval: seconds between two lookups.
        bound: longest time a revocation may go unnoticed.
    """

    def __init__(
        self,
        lookup: Callable[[], SessionLookup | None],
        *,
        interval: float = REVOCATION_POLL_SECONDS,
        bound: float = REVOCATION_CACHE_SECONDS,
    ) -> None:
        self._lookup = lookup
        self.interval = interval
        self.bound = bound
        self._enders: dict[str, set[Ender]] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, session_id: str, end: Ender) -> None:
        """Call ``end(code, reason)`` once ``session_id`` is revoked (or unverifiable)."""
        self._enders.setdefault(session_id, set()).add(end)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def unwatch(self, session_id: str, end: Ender) -> None:
        """Stop watching for ``end`` (idempotent)."""
        enders = self._enders.get(session_id)
        if enders is not None:
            enders.discard(end)
            if not enders:
                del self._enders[session_id]

    def end_all(self, code: int = 1001, reason: str = "server shutting down") -> int:
        """End every watched connection (a gateway stopping); return how many."""
        count = self.watched()
        self._end(list(self._enders), code, reason)
        return count

    def watched(self) -> int:
        """Connections watched (for tests and metrics)."""
        return sum(len(enders) for enders in self._enders.values())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_checked = loop.time()
        failing = False
        pending: asyncio.Future[Collection[str]] | None = None
        while self._enders:
            await asyncio.sleep(self.interval)
            sessions = [session for session in self._enders if session != ANONYMOUS_SESSION]
            lookup = self._lookup()
            if not sessions or lookup is None:
                last_checked = loop.time()
                continue
            if pending is None:  # a hung read is waited for, never piled up
                pending = loop.run_in_executor(None, lookup, sessions)
            done, _ = await asyncio.wait({pending}, timeout=self.bound)
            error: BaseException | None = TimeoutError("the store did not answer")
            if done:
                finished, pending = pending, None
                error = finished.exception()
            if error is not None:  # revocations cannot be seen: fail closed after the bound
                if not failing:
                    logger.warning(
                        "cannot check %d websocket session(s) for revocation (%s: %s)",
                        len(sessions),
                        type(error).__name__,
                        error,
                    )
                failing = True
                if loop.time() - last_checked > self.bound:
                    self._end(list(self._enders), 1011, "session check unavailable")
                continue
            failing = False
            last_checked = loop.time()
            self._end(finished.result(), 1008, "session revoked")
        if pending is not None:
            pending.add_done_callback(_consume)

    def _end(self, sessions: Iterable[str], code: int, reason: str) -> None:
        for session_id in sessions:
            for end in list(self._enders.pop(session_id, ())):
                end(code, reason)
