"""``GatewayHandler``: what every route shares.

Method check (405 with ``Allow``; ``HEAD`` on ``GET`` routes and ``OPTIONS`` everywhere),
authentication (bearer tokens, 401 with ``WWW-Authenticate: Bearer``), rate limiting
(429 with ``Retry-After``), body limits (413 before the body is read, 415, strict JSON),
the route's contract (``contract``: query parameters and bodies checked against what the
OpenAPI document publishes), CORS, problem+json errors with an ``error_id`` and no stack
trace (GW-30), metrics and one JSON log line per request.

Each request is handled inside ``log_context(request_id=...)`` (its ``X-Request-ID``)
and, once the caller is authenticated, ``tenant_id=`` and ``user_id=`` (the token's
subject): records an ``EnterpriseLogger`` writes while the verb runs, and in the runs it
starts, carry them.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import tornado.web

from kailash_nb._json_text import json_text
from kailash_nb.logging import set_log_context
from kailash_nb.middleware import _request_id
from kailash_nb.middleware._json_body import parse_json_body
from kailash_nb.middleware._limits import MAX_BODY_BYTES
from kailash_nb.middleware._problems import (
    PROBLEM_CONTENT_TYPE,
    ProblemError,
    instance_of,
    new_error_id,
    problem_body,
)
from kailash_nb.middleware.contract.bodies import validate_body
from kailash_nb.middleware.contract.query import parse_query
from kailash_nb.middleware.identity import ANONYMOUS, Identity, rate_key
from kailash_nb.middleware.ratelimit import InProcessRateLimiter
from kailash_nb.security.errors import AuthenticationError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from kailash_nb.middleware._gateway_state import GatewayState
    from kailash_nb.middleware.contract.operations import Operation

__all__ = [
    "AnyMethod",
    "GatewayHandler",
    "NotFoundHandler",
    "allow_header",
    "answer_options",
    "method_not_allowed",
    "problem_parts",
    "start_problem",
    "unauthorized",
]

logger = logging.getLogger("kailash_nb.middleware.access")

_VERBS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_Model = TypeVar("_Model", bound="BaseModel")
_JSON_TYPES = ("application/json",)
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "unavailable",
}
_CLOSE = {"Connection": "close"}
_UNAUTHORIZED_DETAIL = "a valid bearer access token is required (POST /auth/token to get one)"


class AnyMethod:
    """A ``SUPPORTED_METHODS`` that contains every method, so that Tornado hands
    ``TRACE``, ``CONNECT`` or an unknown token to ``prepare``, whose answer is a
    problem with ``Allow`` (or the 404 of an unmatched path) instead of a bare 405."""

    def __contains__(self, method: object) -> bool:
        return True


def allow_header(verbs: Mapping[str, Any] | tuple[str, ...]) -> tuple[str, ...]:
    """The methods a route with these ``verbs`` serves: them, ``HEAD`` with ``GET``,
    and ``OPTIONS``, in a fixed order."""
    served = set(verbs) | {"OPTIONS"}
    if "GET" in served:
        served.add("HEAD")
    return tuple(verb for verb in _VERBS if verb in served)


def method_not_allowed(method: str | None, allowed: tuple[str, ...]) -> ProblemError:
    """405 for ``method``, with the ``Allow`` header of the route (RFC 9110)."""
    listed = ", ".join(allowed)
    return ProblemError(
        405,
        "method_not_allowed",
        f"{(method or '')[:16]} is not served here; use {listed}",
        headers={"Allow": listed},
    )


def answer_options(
    handler: tornado.web.RequestHandler, cors: Any, allowed: tuple[str, ...]
) -> None:
    """Answer ``OPTIONS``: 204 with ``Allow``. With ``cors_origins`` configured, a CORS
    preflight (an ``Origin`` and ``Access-Control-Request-Method``) is answered by the
    policy: 204 with the CORS headers for a listed origin, 403 without them otherwise."""
    handler.set_header("Allow", ", ".join(allowed))
    origin = handler.request.headers.get("Origin")
    requested = handler.request.headers.get("Access-Control-Request-Method")
    if cors is None or origin is None or requested is None:
        handler.set_status(204)
        handler.finish()
        return
    headers = cors.preflight(
        origin, requested, handler.request.headers.get("Access-Control-Request-Headers")
    )
    handler.set_status(204 if headers is not None else 403)
    handler.set_header("Vary", "Origin")
    for name, value in (headers or {}).items():
        handler.set_header(name, value)
    handler.finish()


def problem_parts(
    exc: BaseException | None, error_id: str
) -> tuple[int, str, str, dict[str, Any], dict[str, str]]:
    """``(status, code, detail, extra, headers)`` of the problem answering ``exc``:
    a ``ProblemError`` as raised, a client-side ``HTTPError`` by its status, anything
    else a 500 that reveals only ``error_id``."""
    if isinstance(exc, ProblemError):
        return exc.status, exc.code, exc.detail, exc.extra, dict(exc.headers)
    if isinstance(exc, tornado.web.HTTPError) and exc.status_code < 500:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return exc.status_code, code, exc.reason or code.replace("_", " "), {}, {}
    detail = f"unexpected error; quote error_id {error_id} to the operator"
    return 500, "internal_error", detail, {}, {}


def start_problem(
    handler: tornado.web.RequestHandler,
    error: Mapping[str, Any],
    error_id: str,
    allowed: tuple[str, ...],
) -> tuple[int, str, str, dict[str, Any]]:
    """Set the status and headers of the problem answering ``write_error``'s
    ``error`` (its ``exc_info``), ``Allow`` for a 405; return ``(status, code, detail,
    extra)`` for the body."""
    exc = error.get("exc_info", (None, None, None))[1]
    status, code, detail, extra, headers = problem_parts(exc, error_id)
    for name, value in headers.items():
        handler.set_header(name, value)
    if status == 405:
        handler.set_header("Allow", ", ".join(allowed))
    handler.set_status(status)
    handler.set_header("Content-Type", PROBLEM_CONTENT_TYPE)
    return status, code, detail, extra


class GatewayHandler(tornado.web.RequestHandler):
    """Base of every gateway route; subclasses implement one verb.

    Routes that take a body are decorated with ``tornado.web.stream_request_body`` so
    the checks in ``prepare`` (413 above all) run before the body is read; a refusal
    there also closes the connection (``Connection: close``), since the unread body
    cannot be skipped safely.

    Class attributes:
        route: the route pattern, used as the metrics label.
        contract: the operation each verb serves (``{"GET": operations.GET_RUN}``): the
            verbs the route allows, and the query parameters and body it reads through
            :meth:`query` and :meth:`body`.
        requires_auth: verify a bearer token before the verb runs.
        rate_limited: count the request against the caller's rate budget.
    """

    SUPPORTED_METHODS = AnyMethod()  # type: ignore[assignment]
    route = "unknown"
    contract: ClassVar[Mapping[str, Operation]] = {}
    requires_auth = True
    rate_limited = True

    def initialize(self, gateway: GatewayState) -> None:
        """Receive the gateway the route belongs to."""
        self.gateway = gateway
        self._cors_headers()
        self.identity: Identity = ANONYMOUS
        self._chunks: list[bytes] = []
        self._preparing = False
        self._received = 0
        self._started = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------

    def prepare(self) -> Awaitable[None] | None:
        """Run the shared checks in order: method, CORS preflight, body size, auth,
        rate limit, content type. Synchronous unless the rate limiter must be awaited
        (shared through Redis): then the rest runs in the returned coroutine."""
        method = self.request.method or ""
        self._preparing = True
        # Tornado runs prepare and the verb in a task of the request's own, whose
        # context ends with it: nothing to reset.
        set_log_context(request_id=self.request_id)
        if method == "OPTIONS":
            # Answered by options() without credentials: a CORS preflight carries none.
            self._preparing = False
            return None
        if method not in self.allowed_methods():
            raise method_not_allowed(method, self.allowed_methods())
        self._check_body_size()
        if self.requires_auth:
            self.identity = self._authenticate()
            set_log_context(tenant_id=self.identity.tenant_id, user_id=self.identity.subject)
        limiter = self.gateway.rate_limiter
        if self.rate_limited and limiter is not None:
            if type(limiter) is not InProcessRateLimiter:
                return self._prepare_after(limiter.acquire(self._rate_key()), method)
            self._apply_rate_decision(limiter.try_acquire(self._rate_key()))
        self._prepared(method)
        return None

    async def _prepare_after(self, decision: Awaitable[Any], method: str) -> None:
        self._apply_rate_decision(await decision)
        self._prepared(method)

    def _prepared(self, method: str) -> None:
        if method in ("POST", "PUT", "PATCH"):
            self._check_content_type()
        self._preparing = False

    def data_received(self, chunk: bytes) -> None:
        """Collect the body; a chunked body that grows past the limit is a 413 (GW-02)."""
        # The gateway's server (``_head_guard.RequestGuard``) refuses such a body before
        # it gets here; this covers make_app() served by another HTTPServer.
        self._received += len(chunk)
        if self._received > MAX_BODY_BYTES:
            # Answered here: raising would only log an error and drop the connection.
            if not self._finished:
                too_large = ProblemError(
                    413, "payload_too_large", "the body is above 1 MiB", headers=_CLOSE
                )
                self.send_error(413, exc_info=(ProblemError, too_large, None))
            return
        self._chunks.append(chunk)

    def options(self, *args: str) -> None:
        """204 with ``Allow``, or a CORS preflight's answer (see :func:`answer_options`)."""
        answer_options(self, self.gateway.cors, self.allowed_methods())

    def head(self, *args: str) -> Awaitable[None] | None:
        """The ``GET`` answer's status and headers; Tornado leaves the body out."""
        return self.get(*args)

    def set_default_headers(self) -> None:
        """No server banner; CORS headers for simple requests from listed origins."""
        # Straight into the header map: these values are constants or a checked id, so
        # set_header's validation would only cost time on every request.
        headers = self._headers
        headers.pop("Server", None)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Cache-Control"] = "no-store"
        headers[_request_id.REQUEST_ID_HEADER] = self.request_id
        if hasattr(self, "gateway"):
            self._cors_headers()

    @functools.cached_property
    def request_id(self) -> str:
        """The client's ``X-Request-ID`` if sane, else a fresh id; echoed (GW-13)."""
        return _request_id.request_id(self.request.headers)

    def _cors_headers(self) -> None:
        cors = self.gateway.cors
        if cors is not None:
            for name, value in cors.simple(self.request.headers.get("Origin")).items():
                self.set_header(name, value)

    def on_finish(self) -> None:
        """Count the request and write one JSON log record (GW-14)."""
        seconds = time.monotonic() - self._started
        status = self.get_status()
        self.gateway.metrics.observe_request(self.request.method or "", self.route, status, seconds)
        if not logger.isEnabledFor(logging.INFO):
            return
        record = {
            "method": self.request.method,
            "path": self.request.path[:256],
            "route": self.route,
            "status": status,
            "ms": round(seconds * 1000, 2),
            "subject": None if self.identity.anonymous else self.identity.subject,
            "request_id": self.request_id,
        }
        logger.info(json.dumps(record, ensure_ascii=True))

    # -- helpers for verbs -------------------------------------------------------

    @classmethod
    def allowed_methods(cls) -> tuple[str, ...]:
        """The methods this route serves (the ``Allow`` header): its contract's verbs,
        ``HEAD`` where it serves ``GET``, and ``OPTIONS``."""
        allowed = cls.__dict__.get("_allowed_methods")
        if allowed is None:
            allowed = allow_header(cls.contract)
            cls._allowed_methods = allowed
        return allowed

    @property
    def operation(self) -> Operation:
        """The contract's operation for this request's verb (``HEAD`` reads ``GET``'s)."""
        method = self.request.method
        return self.contract["GET" if method == "HEAD" else method or ""]

    def query(self) -> dict[str, Any]:
        """The operation's declared query parameters, strictly parsed (defaults for
        absent ones; undeclared parameters are ignored).

        Raises:
            ProblemError: 400 ``invalid_query`` naming the parameter.
        """
        return parse_query(self.operation.query, self.request.query_arguments)

    def body(self, model: type[_Model], member_codes: Mapping[str, str] | None = None) -> _Model:
        """The request body validated as ``model`` (the operation's declared body);
        an empty body is ``{}`` unless the operation requires one. ``member_codes``:
        see ``contract.bodies.validate_body``.

        Raises:
            ProblemError: 400 for invalid JSON (``json_*`` codes), a missing required
                body, or a body the model refuses (see ``contract.bodies``).
        """
        if not self.has_body():
            if self.operation.body_required:
                raise ProblemError(400, "missing_body", "this operation needs a JSON body")
            return validate_body(model, {}, member_codes)
        return validate_body(model, self.json_body(), member_codes)

    def has_body(self) -> bool:
        """Whether the request came with body bytes."""
        return bool(self._received or self.request.body)

    def json_body(self) -> Any:
        """The request body parsed as strict JSON (``ProblemError`` 400 otherwise)."""
        body = b"".join(self._chunks) if self._chunks else self.request.body or b""
        return parse_json_body(body)

    def write_json(self, payload: Any, status: int = 200) -> None:
        """Answer ``payload`` as JSON (values JSON cannot hold by ``_json_text``'s rule)."""
        self.set_status(status)
        self._headers["Content-Type"] = "application/json"
        self.finish(json_text(payload))

    # -- errors ------------------------------------------------------------------

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer problem+json; an unexpected error becomes a 500 with only an error id."""
        error_id = getattr(self, "_error_id", None) or new_error_id()
        status, code, detail, extra = start_problem(self, kwargs, error_id, self.allowed_methods())
        if self._preparing and getattr(self, "_stream_request_body", False):
            self.set_header("Connection", "close")
        body = problem_body(
            status,
            code,
            detail,
            error_id=error_id,
            instance=instance_of(self.request.path),
            extra=extra,
        )
        self.finish(json_text(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Problems are expected (one debug line); anything else is logged with its trace
        and the error id the client sees."""
        if isinstance(value, ProblemError):
            logger.debug("problem %s on %s: %s", value.code, self.request.path[:256], value.detail)
            return
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            return
        self._error_id = new_error_id()
        logger.error(
            "unhandled error %s on %s %s",
            self._error_id,
            self.request.method,
            self.request.path[:256],
            exc_info=(typ, value, tb),
        )

    # -- checks ------------------------------------------------------------------

    def _check_body_size(self) -> None:
        length = self.request.headers.get("Content-Length")
        if length is None:
            return
        if not length.isdigit():
            raise ProblemError(400, "bad_content_length", "Content-Length must be a number")
        if int(length) > MAX_BODY_BYTES:
            raise ProblemError(
                413, "payload_too_large", f"the body is {length} bytes; the limit is 1 MiB"
            )

    def _check_content_type(self) -> None:
        if not self.request.headers.get("Content-Length", "0").strip("0") and (
            "Transfer-Encoding" not in self.request.headers
        ):
            return
        value = self.request.headers.get("Content-Type", "")
        media_type = value.split(";", 1)[0].strip().lower()
        if media_type not in _JSON_TYPES:
            raise ProblemError(
                415, "unsupported_media_type", "the body must be sent as application/json"
            )

    def _authenticate(self) -> Identity:
        values = self.request.headers.get_list("Authorization")
        if len(values) > 1:
            raise ProblemError(
                400, "duplicate_authorization", "send exactly one Authorization header"
            )
        auth = self.gateway.auth
        if auth is None:
            return ANONYMOUS
        if not values:
            raise unauthorized(None)
        scheme, _, token = values[0].strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("invalid_request")
        try:
            claims = auth.verify_token(token)
        except AuthenticationError as exc:
            logger.debug("token refused: %s", exc.code)
            raise unauthorized("invalid_token") from None
        identity = Identity(
            claims.sub,
            claims.tenant_id,
            tuple(claims.roles),
            attributes=claims.extra,
            address=self.request.remote_ip,
        )
        claimed_tenant = self.request.headers.get("X-Tenant-ID")
        if (
            self.gateway.settings.tenant_isolation
            and claimed_tenant is not None
            and claimed_tenant != identity.tenant_id
        ):
            raise ProblemError(
                403, "tenant_mismatch", "the tenant comes from the token; drop X-Tenant-ID"
            )
        return identity

    def _rate_key(self) -> str:
        return rate_key(self.identity, self.request.remote_ip)

    def _apply_rate_decision(self, decision: Any) -> None:
        if not decision.allowed:
            raise ProblemError(429, "rate_limited", decision.refusal, headers=decision.headers())
        # Names and values (decimal numbers) are known good: skip set_header's checks.
        self._headers.update(decision.headers())


class NotFoundHandler(GatewayHandler):
    """Any path no route matches: 404 problem for any method, before auth (no route
    oracle needed)."""

    route = "unmatched"
    requires_auth = False
    rate_limited = False

    async def prepare(self) -> None:
        """Refuse every request with 404."""
        raise ProblemError(404, "not_found", "no such resource; see /openapi.json")


def unauthorized(error: str | None, detail: str = _UNAUTHORIZED_DETAIL) -> ProblemError:
    """401 with a ``WWW-Authenticate: Bearer`` challenge naming ``error`` (RFC 6750)."""
    challenge = 'Bearer realm="kailash_nb"'
    if error is not None:
        challenge += f', error="{error}"'
    return ProblemError(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})
