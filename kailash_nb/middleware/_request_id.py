"""The id of one request: the client's ``X-Request-ID`` when it is sane, else our own (GW-13).

The gateway echoes the id in the ``X-Request-ID`` response header and in the request's
access log record, so a client's value must never be able to inject header lines or
log text. Only ``^[A-Za-z0-9._-]{1,128}$`` is taken over; anything else (CR/LF, spaces,
ANSI escapes, a second ``X-Request-ID`` header, too long) is replaced by a fresh id::

    request_id(request.headers)   # "abc-123" or a fresh 32-hex-digit id
"""

from __future__ import annotations

import os
import re
from typing import Protocol

__all__ = ["REQUEST_ID_HEADER", "new_request_id", "request_id"]

REQUEST_ID_HEADER = "X-Request-ID"

_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")


class _Headers(Protocol):
    def get(self, name: str, default: str | None = None) -> str | None: ...


def new_request_id() -> str:
    """A fresh random request id (32 hex digits)."""
    return os.urandom(16).hex()


def request_id(headers: _Headers) -> str:
    """The client's ``X-Request-ID`` when it matches ``^[A-Za-z0-9._-]{1,128}$``,
    else a fresh id.

    Tornado joins repeated headers with ``,``, which the pattern refuses, so two
    ``X-Request-ID`` headers also get a server id.
    """
    value = headers.get(REQUEST_ID_HEADER)
    if value is not None and _SANE.fullmatch(value):
        return value
    return new_request_id()
