"""Problem details (RFC 9457) the gateway answers errors with.

A handler raises :class:`ProblemError` with a stable ``code``; the base handler turns it
into an ``application/problem+json`` body whose ``type`` is ``PROBLEM_BASE + code`` and
which always carries an ``error_id`` to find the matching server log line::

    raise ProblemError(415, "unsupported_media_type", "the body must be application/json")
"""

from __future__ import annotations

import uuid
from typing import Any

from kailash_nb.sdk_exceptions import KailashException

__all__ = ["PROBLEM_BASE", "PROBLEM_CONTENT_TYPE", "ProblemError", "new_error_id", "problem_body"]

#: Prefix of every problem ``type`` URI; the suffix is the stable error code.
PROBLEM_BASE = "https://kailash-nb.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ProblemError(KailashException):
    """An HTTP error answered as problem+json.

    Args:
        status: the HTTP status code.
        code: stable, machine-readable error code (the ``type`` URI suffix).
        detail: what was wrong and what to do; never secrets or stack traces.
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``, ``Allow``).
        extra: extra body members (``run_id`` ...).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def new_error_id() -> str:
    """A fresh id that ties a problem body to its server log record."""
    return uuid.uuid4().hex


def problem_body(
    status: int,
    code: str,
    detail: str,
    *,
    error_id: str,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem+json body for ``status``/``code``."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "error_id": error_id,
    }
    if instance is not None:
        body["instance"] = instance
    if extra:
        body.update({key: value for key, value in extra.items() if key not in body})
    return body
