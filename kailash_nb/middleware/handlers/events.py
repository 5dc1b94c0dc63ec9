"""``GET /runs/{run_id}/events``: a run's node and run events as Server-Sent Events.

Each event is one SSE message, ``event: node`` or ``event: run``, whose ``data:`` is
JSON ``{"run_id", "node_id", "state", "timestamp", "duration", "error"}``, or ``event:
node.step`` for a step a running node reported (an agent's prompt, tool call, tool
result, answer), whose ``data:`` is ``{"run_id", "node_id", "step", "detail",
"timestamp"}`` (``event_frame``). The events
already seen for the run are replayed first; the stream ends after the run's final
event. Only runs the caller may read (``execution.may_read``: same tenant and subject, or a
tenant admin) are served, anything else is the same 404 as ``GET /runs/{id}``. A client
that stops reading is dropped once its bounded queue overflows (GW-26).

A run this process does not hold (started on another worker process, or before a
restart) is streamed from the store: its recorded node timeline (one event per node,
as it ended) and its final run event, then the stream ends. While it is still running
elsewhere the store is polled every ``STORE_POLL_SECONDS`` until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import tornado.iostream

from kailash_nb._json_text import json_text
from kailash_nb.middleware._realtime import (
    Outbox,
    OutboxClosed,
    RunEventHub,
    event_frame,
    final_event_of,
    is_final,
    timeline_events,
)
from kailash_nb.middleware._run_errors import ENDED, ErrorView
from kailash_nb.middleware.contract import operations
from kailash_nb.middleware.handlers.base import GatewayHandler
from kailash_nb.middleware.handlers.run_lookup import find_run, stored_gateway_run
from kailash_nb.run_status import FINAL_STATUSES
from kailash_nb.runtime.events import RunEvent

if TYPE_CHECKING:
    from kailash_nb.middleware._gateway_state import GatewayState
    from kailash_nb.runtime.events import Event
    from kailash_nb.store.run_history import GatewayRunRecord

__all__ = ["RunEventsHandler", "sse_message", "stored_events"]

KEEPALIVE_SECONDS = 15.0
"""A comment line is sent after this long without events (detects gone clients)."""
STORE_POLL_SECONDS = 0.5
"""How often a run still running on another worker is looked up again in the store."""


def sse_message(event: Event, view: ErrorView) -> bytes:
    """One SSE message for ``event`` (``event:`` line, one ``data:`` line, blank line),
    errors as ``view`` shows them."""
    kind, data = event_frame(event, view)
    payload = json_text(data, compact=True)
    return f"event: {kind}\ndata: {payload}\n\n".encode()


class RunEventsHandler(GatewayHandler):
    """Streams one run's events to its owner until the run ends."""

    route = "/runs/{run_id}/events"
    contract = operations.serving(GET=operations.RUN_EVENTS)

    def initialize(self, gateway: GatewayState, hub: RunEventHub) -> None:  # type: ignore[override]
        """Receive the gateway and its run-event hub."""
        super().initialize(gateway)
        self.hub = hub
        self._outbox: Outbox | None = None
        self._client_gone = False

    async def get(self, run_id: str) -> None:
        """Replay the buffered events, then stream new ones until the final event."""
        entry, stored = await find_run(self.gateway, self.identity, run_id)
        if entry is None:
            await self._stream_stored(stored)
            return
        self._view = self.gateway.error_view(entry.workflow)
        outbox = Outbox(asyncio.get_running_loop(), on_overflow=self._drop)
        self._outbox = outbox
        replay, finished = self.hub.watch(run_id, outbox.push)
        try:
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("X-Accel-Buffering", "no")
            if not replay and not finished and entry.status in FINAL_STATUSES:
                closing = final_event_of(entry)
                replay, finished = ([closing] if closing else []), True
            for event in replay:
                self.write(sse_message(event, self._view))
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

    async def head(self, run_id: str) -> None:  # type: ignore[override]
        """The stream's status and headers, without waiting for the run to end."""
        await find_run(self.gateway, self.identity, run_id)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("X-Accel-Buffering", "no")
        self.finish()

    async def _stream_stored(self, stored: GatewayRunRecord) -> None:
        """Stream a run this process does not hold from the store (see the module)."""
        loop = asyncio.get_running_loop()
        tenant_id, run_id = self.identity.tenant_id, stored.run_id
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("X-Accel-Buffering", "no")
        try:
            if stored.status == "running":
                self.write(b": stream open\n\n")
                await self.flush()
                quiet = 0.0
                while stored is not None and stored.status == "running":
                    await asyncio.sleep(STORE_POLL_SECONDS)
                    if self._client_gone:
                        return
                    quiet += STORE_POLL_SECONDS
                    if quiet >= KEEPALIVE_SECONDS:
                        quiet = 0.0
                        self.write(b": keepalive\n\n")
                        await self.flush()
                    stored = await loop.run_in_executor(
                        None, stored_gateway_run, self.gateway, tenant_id, run_id
                    )
                if stored is None:
                    return
            view = self.gateway.error_view(stored.workflow_name)
            for event in stored_events(stored):
                self.write(sse_message(event, view))
            self.finish()
        except tornado.iostream.StreamClosedError:
            return

    async def _stream(self, outbox: Outbox) -> None:
        while True:
            event = await outbox.get(timeout=KEEPALIVE_SECONDS)
            if event is None:
                self.write(b": keepalive\n\n")
            else:
                self.write(sse_message(event, self._view))
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


def stored_events(stored: GatewayRunRecord) -> list[Event]:
    """The events of a finished stored run: its recorded nodes (started, then how each
    ended), then the closing ``RunEvent`` in the run's final status, with the error of a
    run that did not complete."""
    events: list[Event] = [*timeline_events(stored.run_id, stored.nodes)]
    finished = stored.finished_at or stored.created_at
    status = stored.status if stored.status in FINAL_STATUSES else "failed"
    error = None
    if status != "completed":
        error = (stored.error or {}).get("message") or ENDED.get(status, ENDED["failed"])
    events.append(
        RunEvent(
            stored.run_id,
            stored.workflow_name,
            status,  # type: ignore[arg-type]
            finished,
            duration=stored.duration
            if stored.duration is not None
            else max(0.0, finished - stored.created_at),
            error=error,
        )
    )
    return events
