"""Limits the gateway enforces on connections and requests (GW-01, GW-16, GW-17)."""

from __future__ import annotations

__all__ = [
    "BODY_TIMEOUT",
    "DRAIN_TIMEOUT",
    "HEADER_TIMEOUT",
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
]

#: Largest request body accepted (GW-01); larger ``Content-Length`` answers 413.
MAX_BODY_BYTES = 1024 * 1024
#: Largest request head (start line + headers) accepted.
MAX_HEADER_BYTES = 16 * 1024
#: Seconds a connection may take to send its headers or sit idle (GW-16).
HEADER_TIMEOUT = 30.0
#: Seconds a request body may take to arrive (GW-17).
BODY_TIMEOUT = 30.0
#: Seconds ``stop()`` waits for in-flight runs.
DRAIN_TIMEOUT = 30.0
