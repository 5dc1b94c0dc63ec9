"""MCP sessions: who a client's session belongs to, what it negotiated, its calls.

A session is created by ``initialize`` (streamable HTTP: its id travels in the
``Mcp-Session-Id`` header; WebSocket: the connection is the session) and is bound to
the caller's tenant and subject. Another caller presenting its id, whatever its tenant,
finds nothing (a 404, no existence oracle). Sessions are capped in number, per caller
and in all, and forgotten after ``idle_seconds`` without a request.

A streamable HTTP session id is a random nonce and an HMAC of it with its caller's
tenant and subject, under a key shared by the gateway's worker processes. A worker that
never saw the session (``worker_processes > 1``: the client's next connection landed
elsewhere) adopts it for that caller and serves its calls; a call in flight can be
cancelled, and a session ended, only through the worker that holds it (an ended id is
refused by that worker from then on).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import OrderedDict
from typing import Any

from kailash_nb.middleware.execution import RunCancel
from kailash_nb.middleware.identity import Identity

__all__ = ["McpSession", "McpSessionLimitError", "McpSessions", "ToolCall"]

#: Sessions one caller (tenant and subject) may hold at once.
MAX_SESSIONS_PER_CALLER = 64
#: Sessions the gateway holds at once (streamable HTTP).
MAX_SESSIONS = 10_000
#: Seconds a streamable HTTP session lives without a request.
IDLE_SECONDS = 1800.0


class McpSessionLimitError(RuntimeError):
    """The caller holds ``MAX_SESSIONS_PER_CALLER`` sessions, or the gateway its cap."""


class ToolCall:
    """One ``tools/call`` in flight: its run's cancel handle and a future set when the
    client cancels it (``notifications/cancelled``) or its session ends."""

    __slots__ = ("cancel", "stopped")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.cancel = RunCancel()
        self.stopped: asyncio.Future[str] = loop.create_future()

    def stop(self, reason: str) -> None:
        """Cancel the run (before its next node) and wake the waiting call."""
        self.cancel.cancel(reason)
        if not self.stopped.done():
            self.stopped.set_result(reason)


class McpSession:
    """One client's MCP session.

    Attributes:
        session_id: the ``Mcp-Session-Id`` (visible ASCII: URL-safe base64 and a dot).
        identity: the verified caller who created it.
        protocol_version: what ``initialize`` negotiated (``None`` before).
        calls: ``tools/call`` requests in flight, by JSON-RPC request id.
    """

    def __init__(self, identity: Identity, session_id: str | None = None) -> None:
        self.session_id = session_id or secrets.token_urlsafe(24)
        self.identity = identity
        self.protocol_version: str | None = None
        self.calls: dict[Any, ToolCall] = {}
        self.last_used = time.monotonic()
        #: Set when a GET stream (server-to-client messages) is open on the session.
        self.stream_open = False
        #: Resolved when the session ends (DELETE, eviction): ends its GET stream.
        self.ended: asyncio.Future[None] | None = None

    def owned_by(self, identity: Identity) -> bool:
        """Whether ``identity`` is the session's caller (same tenant and subject)."""
        return (
            identity.tenant_id == self.identity.tenant_id
            and identity.subject == self.identity.subject
        )

    def end(self, reason: str = "session ended") -> None:
        """Cancel every call in flight and end the GET stream."""
        for call in list(self.calls.values()):
            call.stop(reason)
        self.calls.clear()
        if self.ended is not None and not self.ended.done():
            self.ended.set_result(None)


class McpSessions:
    """The streamable HTTP sessions of one gateway (used on its event loop only).

    Args:
        max_sessions: sessions held at once; creating one more evicts the least
            recently used if it has been idle, else refuses.
        key: the HMAC key of session ids (default: random; the gateway passes one
            its worker processes share).
        max_per_caller: sessions one tenant and subject may hold; one more ends the
            caller's least recently used session with no call in flight (a client that
            never sent ``DELETE``), or is refused if all are busy.
        idle_seconds: a session unused this long is forgotten.
    """

    def __init__(
        self,
        max_sessions: int = MAX_SESSIONS,
        max_per_caller: int = MAX_SESSIONS_PER_CALLER,
        idle_seconds: float = IDLE_SECONDS,
        key: bytes | None = None,
    ) -> None:
        self._key = key or os.urandom(32)
        #: Ids of sessions ended here, refused from then on (the oldest forgotten).
        self._ended: OrderedDict[str, None] = OrderedDict()
        self.max_sessions = max_sessions
        self.max_per_caller = max_per_caller
        self.idle_seconds = idle_seconds
        self._sessions: OrderedDict[str, McpSession] = OrderedDict()
        self._per_caller: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, identity: Identity) -> McpSession:
        """A new session of ``identity``.

        Raises:
            McpSessionLimitError: the caller or the gateway holds too many sessions.
        """
        self._forget_idle()
        key = (identity.tenant_id, identity.subject)
        if self._per_caller.get(key, 0) >= self.max_per_caller and not self._evict_idle_of(key):
            raise McpSessionLimitError(
                f"this caller holds {self.max_per_caller} MCP sessions, each with a call in "
                "flight; end one (DELETE) first"
            )
        if len(self._sessions) >= self.max_sessions:
            raise McpSessionLimitError("the gateway holds its maximum of MCP sessions")
        nonce = secrets.token_urlsafe(16)
        return self._add(McpSession(identity, f"{nonce}.{self._sign(nonce, identity)}"))

    def _add(self, session: McpSession) -> McpSession:
        self._sessions[session.session_id] = session
        key = (session.identity.tenant_id, session.identity.subject)
        self._per_caller[key] = self._per_caller.get(key, 0) + 1
        return session

    def _sign(self, nonce: str, identity: Identity) -> str:
        message = json.dumps([nonce, identity.tenant_id, identity.subject]).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()

    def _issued_to(self, session_id: str, identity: Identity) -> bool:
        nonce, dot, signature = session_id.partition(".")
        return (
            bool(dot)
            and len(session_id) <= 64
            and hmac.compare_digest(signature.encode(), self._sign(nonce, identity).encode())
        )

    def get(
        self, session_id: str, identity: Identity, protocol_version: str = ""
    ) -> McpSession | None:
        """The session ``session_id`` if ``identity`` owns it and it is live, else
        ``None`` (unknown, ended, idle too long, or another caller's). A session another
        worker created for ``identity`` is adopted, with ``protocol_version``."""
        session = self._sessions.get(session_id)
        if session is None:
            session = self._adopt(session_id, identity, protocol_version)
        if session is None or not session.owned_by(identity):
            return None
        now = time.monotonic()
        if now - session.last_used > self.idle_seconds and not session.calls:
            self.remove(session)
            return None
        session.last_used = now
        self._sessions.move_to_end(session_id)
        return session

    def _adopt(
        self, session_id: str, identity: Identity, protocol_version: str
    ) -> McpSession | None:
        if session_id in self._ended or not self._issued_to(session_id, identity):
            return None
        self._forget_idle()
        key = (identity.tenant_id, identity.subject)
        full = len(self._sessions) >= self.max_sessions
        if full or (
            self._per_caller.get(key, 0) >= self.max_per_caller and not self._evict_idle_of(key)
        ):
            return None
        session = McpSession(identity, session_id)
        session.protocol_version = protocol_version or None
        return self._add(session)

    def remove(self, session: McpSession) -> None:
        """End ``session`` and forget it (idempotent); its id is refused from then on."""
        if self._sessions.pop(session.session_id, None) is None:
            return
        self._ended[session.session_id] = None
        if len(self._ended) > 2 * self.max_sessions:
            self._ended.popitem(last=False)
        key = (session.identity.tenant_id, session.identity.subject)
        left = self._per_caller.get(key, 1) - 1
        if left > 0:
            self._per_caller[key] = left
        else:
            self._per_caller.pop(key, None)
        session.end()

    def end_all(self) -> None:
        """End and forget every session (the gateway stops)."""
        for session in list(self._sessions.values()):
            self.remove(session)

    def _evict_idle_of(self, key: tuple[str, str]) -> bool:
        """End the caller's least recently used session without calls; ``False`` if none."""
        for session in self._sessions.values():
            identity = session.identity
            if (identity.tenant_id, identity.subject) == key and not session.calls:
                self.remove(session)
                return True
        return False

    def _forget_idle(self) -> None:
        limit = time.monotonic() - self.idle_seconds
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.last_used > limit or oldest.calls:
                return
            self.remove(oldest)
