"""The HTTP server the gateway binds.

:func:`build_server` makes the gateway's ``CappedHTTPServer``: Tornado's ``HTTPServer``
with the limits of :class:`~kailash_nb.middleware._limits.ServerLimits`, a cap on open
connections overall and per peer address (GW-19), and the refusals of
:mod:`~kailash_nb.middleware._head_guard` (431, ambiguous framing).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.iostream
import tornado.web

from kailash_nb.middleware._head_guard import HeadLimitStream, RequestGuard
from kailash_nb.middleware._limits import ServerLimits
from kailash_nb.middleware._log_sampling import SampledWarning

__all__ = ["CappedHTTPServer", "build_server"]

logger = logging.getLogger(__name__)

# Tornado's own body cap is out of the way: it would refuse a chunk by its declared
# size before reading it, with a bare 400. RequestGuard counts the bytes that arrive
# and answers 413 once a body passes MAX_BODY_BYTES, whatever its chunking (GW-02).
_TORNADO_BODY_CAP = 2**62


class CappedHTTPServer(tornado.httpserver.HTTPServer):
    """An ``HTTPServer`` that closes connections beyond ``max_connections`` open ones,
    or beyond ``limits.max_connections_per_ip`` from one peer address, at once.

    Connections are counted from accept to close, WebSocket connections included.
    Refusals are logged at WARNING at most once a minute (GW-29).
    """

    max_connections: int = 1000
    limits: ServerLimits = ServerLimits()

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        """Tornado's ``HTTPServer`` set-up, plus the connection counters."""
        super().initialize(*args, **kwargs)
        self._open = 0
        self._per_peer: dict[str, int] = {}
        self._refusals = SampledWarning(logger, interval=60.0)

    def handle_stream(self, stream: Any, address: Any) -> None:
        """Serve the new connection, or close it when a connection cap is reached."""
        if type(stream) is not tornado.iostream.IOStream:
            raise TypeError("CappedHTTPServer serves plain TCP streams only (no TLS)")
        peer = _peer(address)
        if self._open >= self.max_connections:
            stream.close()
            self._refusals.warn(
                "max_connections", "refused a connection: %d connections open", self._open
            )
            return
        open_from_peer = self._per_peer.get(peer, 0)
        if open_from_peer >= self.limits.max_connections_per_ip:
            stream.close()
            self._refusals.warn(
                "max_connections_per_ip",
                "refused a connection from %s: %d connections open from that address",
                peer,
                open_from_peer,
            )
            return
        guarded = HeadLimitStream(
            stream.socket,
            on_close=lambda: self._release(peer),
            max_buffer_size=stream.max_buffer_size,
            read_chunk_size=stream.read_chunk_size,
        )
        self._per_peer[peer] = open_from_peer + 1
        self._open += 1
        super().handle_stream(guarded, address)

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        """The application's delegate behind the head checks of ``RequestGuard``."""
        delegate = super().start_request(server_conn, request_conn)
        return RequestGuard(
            delegate, request_conn, self.limits.max_header_count, self.limits.body_timeout
        )

    def open_connections(self, peer: str | None = None) -> int:
        """Connections open now, overall or from ``peer``."""
        return self._open if peer is None else self._per_peer.get(peer, 0)

    def _release(self, peer: str) -> None:
        self._open -= 1
        remaining = self._per_peer.get(peer, 0) - 1
        if remaining > 0:
            self._per_peer[peer] = remaining
        else:
            self._per_peer.pop(peer, None)


def build_server(
    app: tornado.web.Application, limits: ServerLimits, max_connections: int
) -> CappedHTTPServer:
    """The gateway's server for ``app`` under ``limits`` (not yet listening)."""
    server = CappedHTTPServer(
        app,
        max_body_size=_TORNADO_BODY_CAP,
        max_header_size=limits.max_header_bytes,
        idle_connection_timeout=limits.header_timeout,
        # The body deadline is RequestGuard's (one timer per request with a body).
        decompress_request=False,
        xheaders=False,
    )
    server.max_connections = max_connections
    server.limits = limits
    return server


def _peer(address: Any) -> str:
    # IPv4-mapped IPv6 peers count as their IPv4 address, whatever the socket family.
    if not isinstance(address, tuple) or not address:
        return ""
    host = str(address[0])
    if host.startswith("::ffff:"):
        try:
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
        except ValueError:
            return host
        return str(mapped) if mapped is not None else host
    return host
