"""``WS /ws``: live run events over a WebSocket (the seed's ``RealtimeMiddleware``).

Handshake: ``GET /ws`` with ``Upgrade: websocket``, ``Connection: Upgrade``, a
``Sec-WebSocket-Key`` and ``Sec-WebSocket-Version: 13``; anything else answers 400
problem+json before any upgrade (``HEAD`` too, which cannot upgrade; ``OPTIONS`` is
204 with ``Allow``, other methods 405 with ``Allow``). The access token comes in the
``Authorization: Bearer`` header or the ``token`` query parameter; without a valid one
the handshake answers 401 before any upgrade (GW-22). A browser ``Origin`` the
gateway's CORS policy does not list (or, with no CORS policy, any cross-site origin)
answers 403 (GW-23, cross-site WebSocket hijacking).

Client messages (JSON text frames)::

    {"subscribe": "<run_id>"}      -> {"subscribed": "<run_id>"}, then the run's events
    {"unsubscribe": "<run_id>"}    -> {"unsubscribed": "<run_id>"}

Events are pushed as ``{"event": "node" | "run" | "node.step", "data": {...}}`` (the
fields of the SSE stream; ``node.step`` is a step a running node reported), replaying
what the run already emitted. Only runs the caller may read are
served (its own, or any of its tenant's for a tenant admin: the rule of
``GET /runs/{id}``); any other id gets ``{"error": "not_found", "run_id": ...}``
(AUTHZ-15). Limits: frames above 64 KiB close with 1009 (GW-24); more than
``max_messages_per_second`` messages close with 1008 (GW-25); a client that stops
reading is dropped when its send queue overflows (GW-26); pings detect dead clients
(GW-27); the socket closes with 1008 at the token's ``exp`` (GW-28), and with 1008
``session revoked`` within 1 s (the revocation bound, AUTH-15) when the token's session
is revoked in any process: a logout or a refresh-token reuse (``SessionWatch``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import tornado.web
import tornado.websocket

from kailash_nb._json_text import json_text
from kailash_nb.logging import set_log_context
from kailash_nb.middleware import _request_id
from kailash_nb.middleware._json_body import parse_json_body
from kailash_nb.middleware._problems import (
    ProblemError,
    new_error_id,
    problem_body,
)
from kailash_nb.middleware._realtime import (
    ANONYMOUS_SESSION,
    Outbox,
    OutboxClosed,
    RunEventHub,
    event_frame,
    is_final,
    owned_run,
)
from kailash_nb.middleware._run_errors import ErrorView
from kailash_nb.middleware.contract import operations
from kailash_nb.middleware.handlers.base import (
    AnyMethod,
    allow_header,
    answer_options,
    method_not_allowed,
    start_problem,
    unauthorized,
)
from kailash_nb.middleware.identity import ANONYMOUS, Identity, rate_key
from kailash_nb.security.errors import AuthenticationError

if TYPE_CHECKING:
    from kailash_nb.middleware._gateway_state import GatewayState
    from kailash_nb.runtime.events import Event

__all__ = ["RealtimeHandler"]

logger = logging.getLogger("kailash_nb.middleware.access")

MAX_MESSAGE_BYTES = 64 * 1024
_RUN_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_HANDSHAKE = (
    "GET /ws is a WebSocket handshake: send Upgrade: websocket, Connection: Upgrade, "
    "Sec-WebSocket-Key (16 random bytes, base64) and Sec-WebSocket-Version: 13"
)
_UNAUTHORIZED_DETAIL = (
    "a valid bearer access token is required (Authorization header or token query parameter)"
)


class RealtimeHandler(tornado.websocket.WebSocketHandler):
    """One authenticated client's WebSocket of run events.

    Class attributes (tests may lower them on a subclass or instance):
        max_messages_per_second: client messages allowed per one-second window.
        max_subscriptions: runs one connection may watch at once.
        ping_every, pong_within: seconds between pings and to answer one (GW-27).
    """

    SUPPORTED_METHODS = AnyMethod()  # type: ignore[assignment]
    contract = operations.serving(GET=operations.REALTIME)
    #: The route, in log records and problem bodies.
    path = "/ws"
    max_messages_per_second = 20
    max_subscriptions = 32
    ping_every = 20.0
    pong_within = 10.0

    def initialize(self, gateway: GatewayState, hub: RunEventHub) -> None:
        """Receive the gateway and its run-event hub."""
        self.gateway = gateway
        self.hub = hub
        self.identity: Identity = ANONYMOUS
        self.expires_at: float | None = None
        self.session_id: str | None = None
        self._watches: dict[str, Any] = {}
        #: How each subscribed run's errors are shown (by its workflow).
        self._views: dict[str, ErrorView] = {}
        self._outbox: Outbox | None = None
        self._writer: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._window_start = 0.0
        self._window_count = 0
        self._opened = time.monotonic()

    # -- limits read by tornado -------------------------------------------------------

    @property
    def max_message_size(self) -> int:
        """Frames above 64 KiB close the connection with 1009 (GW-24)."""
        return MAX_MESSAGE_BYTES

    @property
    def ping_interval(self) -> float | None:
        """Seconds between server pings."""
        return self.ping_every

    @property
    def ping_timeout(self) -> float | None:
        """Seconds a client has to answer a ping before it is closed."""
        return self.pong_within

    # -- handshake --------------------------------------------------------------------

    @classmethod
    def allowed_methods(cls) -> tuple[str, ...]:
        """``GET, HEAD, OPTIONS`` (the ``Allow`` header)."""
        return allow_header(cls.contract)

    def set_default_headers(self) -> None:
        """No server banner; the request id (GW-13), as on every other route."""
        self.clear_header("Server")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.set_header(_request_id.REQUEST_ID_HEADER, _request_id.request_id(self.request.headers))

    async def prepare(self) -> None:
        """Refuse a method other than GET/HEAD (405; OPTIONS is answered as is), a bad
        ``Origin`` (403), then a missing or invalid token (401), before the upgrade."""
        method = self.request.method
        # As on every route (handlers.base): the connection's ids, in its own task.
        set_log_context(request_id=self._headers.get(_request_id.REQUEST_ID_HEADER))
        if method == "OPTIONS":
            return
        if method not in self.allowed_methods():
            raise method_not_allowed(method, self.allowed_methods())
        if not self._origin_allowed(self.request.headers.get("Origin")):
            raise ProblemError(403, "origin_not_allowed", "this Origin may not open a WebSocket")
        self.identity = self._authenticate()
        set_log_context(tenant_id=self.identity.tenant_id, user_id=self.identity.subject)
        limiter = self.gateway.rate_limiter
        if limiter is not None:
            decision = await limiter.acquire(rate_key(self.identity, self.request.remote_ip))
            if not decision.allowed:
                raise ProblemError(
                    429, "rate_limited", "rate limit reached", headers=decision.headers()
                )

    async def get(self, *args: str, **kwargs: str) -> None:
        """Check the handshake's headers (400 problem otherwise), then upgrade."""
        self._check_handshake()
        await super().get(*args, **kwargs)

    def head(self, *args: str) -> None:
        """What ``GET`` would answer before upgrading: a HEAD cannot upgrade (400)."""
        self._check_handshake()
        raise ProblemError(400, "websocket_upgrade_required", _HANDSHAKE)

    def options(self, *args: str) -> None:
        """204 with ``Allow``, or a CORS preflight's answer."""
        answer_options(self, self.gateway.cors, self.allowed_methods())

    def _check_handshake(self) -> None:
        headers = self.request.headers
        connection = {token.strip().lower() for token in headers.get("Connection", "").split(",")}
        if headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in connection:
            raise ProblemError(400, "websocket_upgrade_required", _HANDSHAKE)
        try:
            key = base64.b64decode(headers.get("Sec-WebSocket-Key", ""), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 16 or headers.get("Sec-WebSocket-Version") != "13":
            raise ProblemError(
                400,
                "websocket_handshake_invalid",
                _HANDSHAKE,
                headers={"Sec-WebSocket-Version": "13"},
            )

    def check_origin(self, origin: str) -> bool:
        """Tornado's own check, kept consistent with ``prepare``."""
        return self._origin_allowed(origin)

    def _origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True  # not a browser: no ambient credentials to hijack
        cors = self.gateway.cors
        if cors is not None and cors.is_allowed(origin):
            return True
        host = self.request.headers.get("Host", "").lower()
        parts = urlsplit(origin)
        return bool(parts.scheme in ("http", "https") and parts.netloc.lower() == host and host)

    def _authenticate(self) -> Identity:
        values = self.request.headers.get_list("Authorization")
        if len(values) > 1:
            raise ProblemError(400, "duplicate_authorization", "send one Authorization header")
        auth = self.gateway.auth
        if auth is None:
            return ANONYMOUS
        if values:
            scheme, _, token = values[0].strip().partition(" ")
            if scheme.lower() != "bearer":
                raise unauthorized("invalid_request", _UNAUTHORIZED_DETAIL)
        else:
            tokens = self.get_query_arguments("token")
            if len(tokens) > 1:
                raise ProblemError(400, "duplicate_token", "send one token query parameter")
            token = tokens[0] if tokens else ""
        token = token.strip()
        if not token:
            raise unauthorized(None, _UNAUTHORIZED_DETAIL)
        try:
            claims = auth.verify_token(token)
        except AuthenticationError as exc:
            logger.debug("websocket token refused: %s", exc.code)
            raise unauthorized("invalid_token", _UNAUTHORIZED_DETAIL) from None
        claimed_tenant = self.request.headers.get("X-Tenant-ID")
        if (
            self.gateway.settings.tenant_isolation
            and claimed_tenant is not None
            and claimed_tenant != claims.tenant_id
        ):
            raise ProblemError(403, "tenant_mismatch", "the tenant comes from the token")
        self.expires_at = float(claims.exp)
        self.session_id = claims.family
        return Identity(claims.sub, claims.tenant_id, tuple(claims.roles))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Refusals before the upgrade are problem+json, as on every other route."""
        error_id = new_error_id()
        status, code, detail, extra = start_problem(self, kwargs, error_id, self.allowed_methods())
        body = problem_body(
            status, code, detail, error_id=error_id, instance=self.path, extra=extra
        )
        self.finish(json_text(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Refusals are expected; anything else is logged with its trace."""
        if isinstance(value, (ProblemError, tornado.web.HTTPError)):
            return
        logger.error("unhandled error on %s", self.path, exc_info=(typ, value, tb))

    def on_finish(self) -> None:
        """One JSON log record for a handshake refused before the upgrade (GW-14)."""
        record = {
            "method": self.request.method,
            "path": self.path,
            "route": self.path,
            "status": self.get_status(),
            "subject": None if self.identity.anonymous else self.identity.subject,
        }
        logger.info(json.dumps(record, ensure_ascii=True))

    # -- connection -------------------------------------------------------------------

    def open(self, *args: str, **kwargs: str) -> None:
        """Start the writer, the close-at-expiry timer (GW-28) and the revocation watch."""
        loop = asyncio.get_running_loop()
        self._outbox = Outbox(loop, on_overflow=self._drop_slow_reader)
        self._writer = loop.create_task(self._write_loop(self._outbox))
        if self.expires_at is not None:
            delay = max(0.0, self.expires_at - time.time())
            self._expiry = loop.call_later(delay, self._expire)
        self.gateway.session_watch.watch(self.session_id or ANONYMOUS_SESSION, self._session_ended)

    def on_message(self, message: str | bytes) -> None:
        """Count the message against the flood limit, then handle one command."""
        if self.flooded():
            return
        command = _parse(message)
        if command is None:
            self._send({"error": "bad_request", "detail": 'send {"subscribe": "<run_id>"}'})
            return
        action, run_id = command
        if action == "subscribe":
            self._subscribe(run_id)
        else:
            self._unsubscribe(run_id)
            self._send({"unsubscribed": run_id})

    def flooded(self) -> bool:
        """Count one client message; past ``max_messages_per_second`` in the current
        one-second window close with 1008 and answer ``True`` (GW-25)."""
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > self.max_messages_per_second:
            self.close(1008, "too many messages")
            return True
        return False

    def on_close(self) -> None:
        """Release subscriptions, the writer, the expiry timer and the revocation watch;
        log one record."""
        for run_id in list(self._watches):
            self._unsubscribe(run_id)
        if self._outbox is not None:
            self._outbox.close()
        if self._expiry is not None:
            self._expiry.cancel()
        self.gateway.session_watch.unwatch(
            self.session_id or ANONYMOUS_SESSION, self._session_ended
        )
        record = {
            "method": "WS",
            "path": self.path,
            "route": self.path,
            "client_close_code": self.close_code,
            "seconds": round(time.monotonic() - self._opened, 3),
            "subject": None if self.identity.anonymous else self.identity.subject,
        }
        logger.info(json.dumps(record, ensure_ascii=True))

    # -- subscriptions ----------------------------------------------------------------

    def _subscribe(self, run_id: str) -> None:
        entry = owned_run(self.gateway.runs.index, run_id, self.identity)
        if entry is None:
            self._send({"error": "not_found", "run_id": run_id})
            return
        if run_id in self._watches:
            self._send({"subscribed": run_id})
            return
        if len(self._watches) >= self.max_subscriptions:
            self._send({"error": "too_many_subscriptions", "run_id": run_id})
            return
        self._views[run_id] = self.gateway.error_view(entry.workflow)
        outbox = self._outbox
        assert outbox is not None
        watcher = outbox.push
        replay, finished = self.hub.watch(run_id, watcher)
        if not finished:
            self._watches[run_id] = watcher
        self._send({"subscribed": run_id})
        if replay:
            outbox.put(replay)  # one item: a long replay does not fill the outbox

    def _unsubscribe(self, run_id: str) -> None:
        self._views.pop(run_id, None)
        watcher = self._watches.pop(run_id, None)
        if watcher is not None:
            self.hub.unwatch(run_id, watcher)

    def _send(self, frame: dict[str, Any]) -> None:
        if self._outbox is not None:
            self._outbox.put(frame)

    async def _write_loop(self, outbox: Outbox) -> None:
        try:
            while True:
                item = await outbox.get()
                if isinstance(item, dict):
                    frames = [item]
                else:
                    frames = [self._event_frame(event) for event in _as_list(item)]
                for frame in frames:
                    message = json_text(frame)
                    await outbox.guard(self.write_message(message))
        except (OutboxClosed, tornado.websocket.WebSocketClosedError):
            return

    def _event_frame(self, event: Event) -> dict[str, Any]:
        # A run unsubscribed meanwhile gets the default view (node messages hidden).
        view = self._views.get(event.run_id) or self.gateway.error_view(None)
        kind, data = event_frame(event, view)
        if is_final(event):
            self._unsubscribe(event.run_id)
        return {"event": kind, "data": data}

    def _drop_slow_reader(self) -> None:
        logger.warning("websocket client %s dropped: send queue full", self.identity.subject)
        for run_id in list(self._watches):
            self._unsubscribe(run_id)
        self.close(1008, "send queue overflow")

    def _expire(self) -> None:
        self.close(1008, "token expired")

    def _session_ended(self, code: int, reason: str) -> None:
        self.close(code, reason)


def _as_list(item: Event | list[Event]) -> list[Event]:
    return item if isinstance(item, list) else [item]


def _parse(message: str | bytes) -> tuple[str, str] | None:
    """``(action, run_id)`` of a well-formed command; ``None`` otherwise."""
    if not isinstance(message, str):
        return None
    try:
        body = parse_json_body(message.encode("utf-8", "surrogatepass"))
    except ProblemError:
        return None
    if not isinstance(body, dict) or len(body) != 1:
        return None
    action, run_id = next(iter(body.items()))
    if action not in ("subscribe", "unsubscribe") or not isinstance(run_id, str):
        return None
    if not 1 <= len(run_id) <= 64 or not set(run_id) <= _RUN_ID_CHARS:
        return None
    return action, run_id
