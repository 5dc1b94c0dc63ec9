"""``GET /runs/{run_id}/events``: a run's node and run events as Server-Sent Events.

Each event is one SSE message, ``event: node`` or ``event: run``, whose ``data:`` is
JSON ``{"run_id", "node_id", "state", "timestamp", "duration", "error"}``. The events
already seen for the run are replayed first; the stream ends after the run's final
event. Only the caller's own runs (tenant and subject) are served, anything else is the
same 404 as ``GET /runs/{id}``. A client that stops reading is dropped once its bounded
queue overflows (GW-26).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING

import tornado.iostream

from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware._realtime import (
    Outbox,
    OutboxClosed,
    RunEventHub,
    event_frame,
    final_event_of,
    is_final,
    owned_run,
)
from kailash_nb.middleware.handlers.base import GatewayHandler, jsonable

if TYPE_CHECKING:
    from kailash_nb.middleware.gateway import Gateway
    from kailash_nb.runtime.events import Event

__all__ = ["RunEventsHandler", "sse_message"]

KEEPALIVE_SECONDS = 15.0
"""A comment line is sent after this long without events (detects gone clients)."""


def sse_message(event: Event) -> bytes:
    """One SSE message for ``event`` (``event:`` line, one ``data:`` line, blank line)."""
    kind, data = event_frame(event)
    payload = json.dumps(jsonable(data), allow_nan=False, separators=(",", ":"))
    return f"event: {kind}\ndata: {payload}\n\n".encode()


class RunEventsHandler(GatewayHandler):
    """Streams one run's events to its owner until the run ends."""

    route = "/runs/{run_id}/events"

    def initialize(self, gateway: Gateway, hub: RunEventHub) -> None:  # type: ignore[override]
        """Receive the gateway and its run-event hub."""
        super().initialize(gateway)
        self.hub = hub
        self._outbox: Outbox | None = None
        self._client_gone = False

    async def get(self, run_id: str) -> None:
        """Replay the buffered events, then stream new ones until the final event."""
        entry = owned_run(self.gateway.runs.index, run_id, self.identity)
        if entry is None:
            raise ProblemError(404, "run_not_found", "no run with that id")
        outbox = Outbox(asyncio.get_running_loop(), on_overflow=self._drop)
        self._outbox = outbox
        replay, finished = self.hub.watch(run_id, outbox.push)
        try:
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("X-Accel-Buffering", "no")
            if not replay and not finished and entry.status != "running":
                closing = final_event_of(entry)
                replay, finished = ([closing] if closing else []), True
            for event in replay:
                self.write(sse_message(event))
            if not replay:
                self.write(b": stream open\n\n")
            await outbox.guard(self.flush())
            if finished or any(is_final(event) for event in replay):
                return
            await self._stream(outbox)
        except (tornado.iostream.StreamClosedError, OutboxClosed):
            return
        finally:
            self.hub.unwatch(run_id, outbox.push)
            if not self._finished and not self._client_gone:
                with contextlib.suppress(tornado.iostream.StreamClosedError):
                    self.finish()

    async def _stream(self, outbox: Outbox) -> None:
        while True:
            event = await outbox.get(timeout=KEEPALIVE_SECONDS)
            if event is None:
                self.write(b": keepalive\n\n")
            else:
                self.write(sse_message(event))
            await outbox.guard(self.flush())
            if event is not None and is_final(event):
                return

    def _drop(self) -> None:
        """The client stopped reading and its queue overflowed: close the connection."""
        self._client_gone = True
        self.request.connection.close()  # type: ignore[union-attr]

    def on_connection_close(self) -> None:
        """Wake the stream so it unsubscribes at once when the client goes away."""
        self._client_gone = True
        if self._outbox is not None:
            self._outbox.close()
