"""The id of one request: the client's ``X-Request-ID`` when it is sane, else our own (GW-13).

The gateway echoes the id in the ``X-Request-ID`` response header and in the request's
access log record, so a client's value must never be able to inject header lines or
log text. Only ``^[A-Za-z0-9._-]{1,128}$`` is taken over; anything else (CR/LF, spaces,
ANSI escapes, a second ``X-Request-ID`` header, too long) is replaced by a fresh id::

    request_id(request.headers)   # "abc-123" or a fresh 32-hex-digit id
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Protocol

__all__ = ["REQUEST_ID_HEADER", "new_request_id", "request_id"]

REQUEST_ID_HEADER = "X-Request-ID"

_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_COUNTER_MASK = (1 << 64) - 1


def _reseed() -> None:
    """A new prefix and counter start: at import and in every forked worker."""
    global _PREFIX, _COUNTER
    _PREFIX = os.urandom(8).hex()
    _COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


_reseed()
os.register_at_fork(after_in_child=_reseed)


class _Headers(Protocol):
    def get(self, name: str, default: str | None = None) -> str | None: ...


def new_request_id() -> str:
    """A fresh request id (32 hex digits): this process's random 16-digit prefix and a
    16-digit counter, so ids never repeat within a process and are unguessable across
    processes, without a system call per request."""
    return f"{_PREFIX}{next(_COUNTER) & _COUNTER_MASK:016x}"


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
