"""Problem details (RFC 9457) the gateway answers errors with.

A handler raises :class:`ProblemError` with a stable ``code``; the base handler turns it
into an ``application/problem+json`` body whose ``type`` is ``PROBLEM_BASE + code`` and
which always carries an ``error_id`` to find the matching server log line::

    raise ProblemError(415, "unsupported_media_type", "the body must be application/json")
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from kailash_nb.sdk_exceptions import KailashException

__all__ = [
    "MAX_INSTANCE_CHARS",
    "PROBLEM_BASE",
    "PROBLEM_CONTENT_TYPE",
    "ProblemError",
    "instance_of",
    "new_error_id",
    "problem_body",
]

#: Longest ``instance`` member answered; a longer request path is cut (between escapes).
MAX_INSTANCE_CHARS = 256

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


# Characters a URI path may hold as they are (RFC 3986 pchar and "/"), a complete
# percent-escape, or any other character (escaped, so the result is a URI reference).
_PATH_PIECE = re.compile(
    r"(?P<plain>[A-Za-z0-9\-._~!$&'()*+,;=:@/]+)|(?P<escape>%[0-9A-Fa-f]{2})|(?P<other>.)",
    re.DOTALL,
)


def instance_of(path: str) -> str:
    """``path`` as a valid URI reference for a problem's ``instance``: characters a
    path may not hold are percent-escaped (a stray ``%`` too), and a path longer than
    ``MAX_INSTANCE_CHARS`` is cut between two escapes, never inside one."""
    pieces: list[str] = []
    size = 0
    for match in _PATH_PIECE.finditer(path):
        plain = match.group("plain")
        if plain is not None:
            piece = plain
        elif match.group("escape") is not None:
            piece = match.group("escape")
        else:
            raw = match.group("other").encode("utf-8", "surrogatepass")
            piece = "".join(f"%{byte:02X}" for byte in raw)
        if size + len(piece) > MAX_INSTANCE_CHARS:
            if plain is not None:
                pieces.append(plain[: MAX_INSTANCE_CHARS - size])
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces)


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
