"""Limits the gateway enforces on connections and requests (GW-01, GW-16..GW-19).

The per-connection limits are a :class:`ServerLimits` on ``gateway.limits``; set it
before ``start()`` (it is read once, when the server is built)::

    gateway = create_gateway(...)
    gateway.limits = ServerLimits(header_timeout=10, max_connections_per_ip=64)
    gateway.run()
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BODY_TIMEOUT",
    "DRAIN_TIMEOUT",
    "HEADER_TIMEOUT",
    "MAX_BODY_BYTES",
    "MAX_CONNECTIONS_PER_IP",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_COUNT",
    "ServerLimits",
]

#: Largest request body accepted (GW-01); larger ``Content-Length`` answers 413.
MAX_BODY_BYTES = 1024 * 1024
#: Largest request head (start line + headers) accepted; larger answers 431 (GW-18).
MAX_HEADER_BYTES = 16 * 1024
#: Most header fields accepted in one request; more answers 431 (GW-18).
MAX_HEADER_COUNT = 100
#: Seconds a connection may take to send its headers or sit idle (GW-16).
HEADER_TIMEOUT = 30.0
#: Seconds a request body may take to arrive (GW-17).
BODY_TIMEOUT = 30.0
#: Open connections accepted from one peer address (GW-19).
MAX_CONNECTIONS_PER_IP = 256
#: Seconds ``stop()`` waits for in-flight runs.
DRAIN_TIMEOUT = 30.0


class ServerLimits(BaseModel):
    """Connection and request-head limits of one gateway server.

    Attributes:
        header_timeout: seconds from the first byte a connection may wait to send the
            whole request head, and how long a keep-alive connection may sit idle;
            then it is closed (slowloris, GW-16).
        body_timeout: seconds the whole request body may take to arrive; then the
            connection is closed (GW-17).
        max_connections_per_ip: open connections (HTTP and WebSocket) accepted from
            one peer address; further ones are closed at once (GW-19).
        max_header_count: header fields accepted in one request (431 above, GW-18).
        max_header_bytes: bytes of request line + headers accepted (431 above, GW-18).

    Raises:
        pydantic.ValidationError: a value that is not a positive number, or an unknown
            field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    header_timeout: float = Field(default=HEADER_TIMEOUT, gt=0, le=3600)
    body_timeout: float = Field(default=BODY_TIMEOUT, gt=0, le=3600)
    max_connections_per_ip: int = Field(default=MAX_CONNECTIONS_PER_IP, ge=1)
    max_header_count: int = Field(default=MAX_HEADER_COUNT, ge=8, le=10_000)
    max_header_bytes: int = Field(default=MAX_HEADER_BYTES, ge=1024, le=1024 * 1024)
