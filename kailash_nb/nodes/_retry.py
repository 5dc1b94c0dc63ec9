"""When a request to another service is worth sending again, and after how long.

Shared by the HTTP nodes and the LLM providers, so a 429's ``Retry-After`` means the
same wait everywhere::

    delay = retry_delay(429, response.headers, attempt=1, retries=2,
                        backoff_factor=0.5, max_retry_wait=60)
    # 7.0 for "Retry-After: 7"; None when the response is final
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

__all__ = [
    "PERMANENT_5XX",
    "TRANSIENT_ERRORS",
    "backoff",
    "is_transient_status",
    "retry_after_seconds",
    "retry_delay",
]

# 501 and 505 say the server will never handle this request; another attempt cannot help.
PERMANENT_5XX = frozenset({501, 505})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
#: No connection, a timeout, or a connection dropped mid-exchange: worth another attempt.
TRANSIENT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


def is_transient_status(status: int) -> bool:
    """A 429 or a 5xx other than 501/505: the same request may succeed later."""
    return status == 429 or (status >= 500 and status not in PERMANENT_5XX)


def backoff(attempt: int, backoff_factor: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (from 1): ``factor * 2**(n-1)``."""
    return backoff_factor * 2 ** (attempt - 1)


def retry_delay(
    status: int,
    headers: Mapping[str, str],
    *,
    attempt: int,
    retries: int,
    backoff_factor: float,
    max_retry_wait: float,
) -> float | None:
    """Seconds to wait before retrying after a response with ``status``, or ``None``
    when the response is final (not transient, or ``retries`` are used up).

    A 429 or a 5xx other than 501/505 is transient; a 429/503 ``Retry-After`` (capped
    at ``max_retry_wait``) replaces the backoff.
    """
    if not is_transient_status(status) or attempt > retries:
        return None
    if status in _RETRY_AFTER_STATUSES:
        wait = retry_after_seconds(headers.get("retry-after"))
        if wait is not None:
            return min(wait, max_retry_wait)
    return backoff(attempt, backoff_factor)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None
