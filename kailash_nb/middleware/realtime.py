"""``RealtimeMiddleware``: an :class:`AgentUIMiddleware`'s events, pushed out live.

It subscribes to the middleware's events when made and passes each one to the
transports it enables: signed webhooks (``register_webhook``), and event streams
that a WebSocket or Server-Sent-Events handler writes to its client (``stream``,
``create_sse_stream``). A gateway serves its own WebSocket (``/ws``) and SSE
(``/runs/{id}/events``) routes; these streams are for an application's own server::

    realtime = RealtimeMiddleware(agent_ui)
    realtime.register_webhook("crm", "https://crm.example.com/hooks/kailash",
                              secret=crm_secret, event_types=["workflow.completed"],
                              user_id="acme:alice")
    async for frame in realtime.create_sse_stream(session_id=session):
        await response.write(frame)

Who receives what: a webhook or stream scoped to a session receives only that
session's events, and only when the owner given with it (the ``Session`` passed, or
``user_id``/``tenant_id``+``subject``, else the anonymous owner) owns the session; one
scoped to an owner receives that owner's events; one given neither receives every
event of the middleware (an operator's own endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from kailash_nb.middleware.agent_events import AgentEvent, EventFilter, EventType, event_types
from kailash_nb.middleware.agent_sessions import resolve_owner
from kailash_nb.middleware.agent_ui import AgentUIMiddleware
from kailash_nb.middleware.webhooks import WebhookManager

__all__ = ["RealtimeMiddleware", "StreamOverflowError"]

logger = logging.getLogger(__name__)

#: Events a stream holds for a client that reads slower than they come.
STREAM_CAPACITY = 1000
#: Latency samples kept for ``get_stats``.
_LATENCY_SAMPLES = 500


class StreamOverflowError(Exception):
    """A stream's client fell ``STREAM_CAPACITY`` events behind; the stream ended."""


class RealtimeMiddleware:
    """Live transports for one :class:`AgentUIMiddleware`'s events.

    Args:
        agent_ui_middleware: whose events to push.
        enable_websockets, enable_sse: allow ``stream`` and ``create_sse_stream``.
        enable_webhooks: allow ``register_webhook``.
        latency_target_ms: a webhook round longer than this is logged.
        webhook_timeout: seconds per connect, read or write of a delivery.
        webhook_retries: retries after a connection error, 5xx or 429.
        allow_private_network: also deliver webhooks to loopback and private
            addresses (default off: only public addresses, WF-09).

    Raises:
        TypeError: ``agent_ui_middleware`` is not an ``AgentUIMiddleware``.
    """

    def __init__(
        self,
        agent_ui_middleware: AgentUIMiddleware,
        enable_websockets: bool = True,
        enable_sse: bool = True,
        enable_webhooks: bool = True,
        latency_target_ms: int = 200,
        *,
        webhook_timeout: float = 10,
        webhook_retries: int = 3,
        allow_private_network: bool = False,
    ) -> None:
        if not isinstance(agent_ui_middleware, AgentUIMiddleware):
            raise TypeError(
                "RealtimeMiddleware needs an AgentUIMiddleware, got "
                f"{type(agent_ui_middleware).__name__}"
            )
        self.agent_ui = agent_ui_middleware
        self.enable_websockets = enable_websockets
        self.enable_sse = enable_sse
        self.enable_webhooks = enable_webhooks
        self.latency_target_ms = latency_target_ms
        self.webhook_manager: WebhookManager | None = (
            WebhookManager(
                webhook_retries, webhook_timeout, allow_private_network=allow_private_network
            )
            if enable_webhooks
            else None
        )
        self.events_processed = 0
        self.start_time = time.time()
        self._latencies: list[float] = []
        self._streams = 0
        self._subscriber_id = f"realtime-{uuid.uuid4()}"
        self.agent_ui.event_stream.subscribe(self._subscriber_id, self._on_event, EventFilter())

    async def initialize(self) -> None:
        """Kailash's start-up call; the subscription is already made (idempotent)."""
        self.agent_ui.event_stream.subscribe(self._subscriber_id, self._on_event, EventFilter())

    async def close(self) -> None:
        """Stop receiving events and release the webhook connections."""
        self.agent_ui.event_stream.unsubscribe(self._subscriber_id)
        if self.webhook_manager is not None:
            await self.webhook_manager.aclose()

    # -- webhooks ------------------------------------------------------------------

    def register_webhook(
        self,
        webhook_id: str,
        url: str,
        secret: str | None = None,
        event_types: Iterable[EventType | str] | None = None,
        session_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        user_id: str | None = None,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
    ) -> None:
        """POST matching events to ``url``, signed with ``secret`` (see ``webhooks``).

        Raises:
            RuntimeError: webhooks are disabled (``enable_webhooks=False``).
            ValueError: a bad id, URL, secret, header or event type.
            TypeError: only one of ``tenant_id`` and ``subject``.
        """
        if self.webhook_manager is None:
            raise RuntimeError("webhooks are disabled (enable_webhooks=False)")
        wanted = _filter(event_types, session_id, user_id, tenant_id, subject)
        self.webhook_manager.register_webhook(webhook_id, url, secret, wanted, headers)

    def unregister_webhook(self, webhook_id: str) -> None:
        """Stop delivering to ``webhook_id`` (idempotent)."""
        if self.webhook_manager is not None:
            self.webhook_manager.unregister_webhook(webhook_id)

    async def deliver_event(self, event: AgentEvent) -> list[dict[str, Any]]:
        """Deliver ``event`` to the matching webhooks now; one result per delivery."""
        if self.webhook_manager is None:
            return []
        return await self.webhook_manager.deliver_event(event)

    # -- streams -------------------------------------------------------------------

    async def stream(
        self,
        session_id: str | None = None,
        event_types: Iterable[EventType | str] | None = None,
        *,
        user_id: str | None = None,
        tenant_id: str | None = None,
        subject: str | None = None,
    ) -> AsyncIterator[AgentEvent]:
        """The matching events from now on, for a WebSocket handler to send.

        Raises:
            RuntimeError: WebSocket streams are disabled.
            SessionNotFoundError: ``session_id`` is not the owner's open session.
            StreamOverflowError: the reader fell ``STREAM_CAPACITY`` events behind.
        """
        if not self.enable_websockets:
            raise RuntimeError("WebSocket streams are disabled (enable_websockets=False)")
        events = self._events(session_id, event_types, user_id, tenant_id, subject)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    async def create_sse_stream(
        self,
        session_id: str | None = None,
        user_id: str | None = None,
        event_types: Iterable[EventType | str] | None = None,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
    ) -> AsyncIterator[str]:
        """The matching events from now on as Server-Sent-Events frames
        (``id``/``event``/``data`` lines), for a ``text/event-stream`` response.

        Raises:
            RuntimeError: SSE is disabled.
            SessionNotFoundError: ``session_id`` is not the owner's open session.
            StreamOverflowError: the reader fell ``STREAM_CAPACITY`` events behind.
        """
        if not self.enable_sse:
            raise RuntimeError("SSE streams are disabled (enable_sse=False)")
        events = self._events(session_id, event_types, user_id, tenant_id, subject)
        async with contextlib.aclosing(events):
            async for event in events:
                yield f"id: {event.id}\nevent: {event.type.value}\ndata: {event.to_json()}\n\n"

    async def _events(
        self,
        session_id: str | None,
        types: Iterable[EventType | str] | None,
        user_id: str | None,
        tenant_id: str | None,
        subject: str | None,
    ) -> AsyncIterator[AgentEvent]:
        queue: asyncio.Queue[AgentEvent | None] = asyncio.Queue(STREAM_CAPACITY)

        def put(event: AgentEvent) -> None:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.agent_ui.event_stream.unsubscribe(subscriber_id)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

        subscriber_id = f"stream-{uuid.uuid4()}"
        await self.agent_ui.subscribe_to_events(
            subscriber_id,
            put,
            session_id,
            types,
            tenant_id=tenant_id,
            subject=subject,
            user_id=user_id,
        )
        self._streams += 1
        try:
            while True:
                event = await queue.get()
                if event is None:
                    raise StreamOverflowError(
                        f"the stream's reader fell {STREAM_CAPACITY} events behind"
                    )
                yield event
        finally:
            self._streams -= 1
            self.agent_ui.event_stream.unsubscribe(subscriber_id)

    # -- statistics ----------------------------------------------------------------

    def get_stats(self) -> dict[str, Any]:
        """Counters: events processed, latency of webhook rounds, open streams,
        webhook deliveries (secrets and headers are never included)."""
        stats: dict[str, Any] = {
            "uptime_seconds": time.time() - self.start_time,
            "events_processed": self.events_processed,
            "latency_target_ms": self.latency_target_ms,
            "enabled_transports": {
                "websockets": self.enable_websockets,
                "sse": self.enable_sse,
                "webhooks": self.enable_webhooks,
            },
            "open_streams": self._streams,
        }
        if self._latencies:
            stats["latency_stats"] = {
                "avg_ms": sum(self._latencies) / len(self._latencies),
                "max_ms": max(self._latencies),
                "min_ms": min(self._latencies),
                "samples": len(self._latencies),
            }
        if self.webhook_manager is not None:
            stats["webhook_stats"] = dict(self.webhook_manager.delivery_stats)
            stats["webhooks"] = [
                webhook.describe() for webhook in self.webhook_manager.webhooks.values()
            ]
        return stats

    async def _on_event(self, event: AgentEvent) -> None:
        self.events_processed += 1
        if self.webhook_manager is None or not self.webhook_manager.webhooks:
            return
        started = time.perf_counter()
        await self.webhook_manager.deliver_event(event)
        latency_ms = (time.perf_counter() - started) * 1000
        self._latencies.append(latency_ms)
        del self._latencies[:-_LATENCY_SAMPLES]
        if latency_ms > self.latency_target_ms:
            logger.info(
                "webhook deliveries of %s took %.0f ms (target %d ms)",
                event.type.value,
                latency_ms,
                self.latency_target_ms,
            )


def _filter(
    types: Iterable[EventType | str] | None,
    session_id: str | None,
    user_id: str | None,
    tenant_id: str | None,
    subject: str | None,
) -> EventFilter:
    """The filter of a webhook: the session (of its owner), else the owner (or a whole
    tenant), else every event."""
    wanted = event_types(types)
    if session_id is not None:
        tenant_id, subject = resolve_owner(session_id, tenant_id, subject, user_id)
        return EventFilter(wanted, str(session_id), tenant_id, subject)
    if user_id is not None:
        tenant_id, subject = resolve_owner(None, tenant_id, subject, user_id)
    elif subject is not None and tenant_id is None:
        raise TypeError("a subject needs its tenant_id")
    return EventFilter(wanted, None, tenant_id, subject)
