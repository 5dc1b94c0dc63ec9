"""Refusals the server answers before a handler sees the request (GW-03, GW-18).

Tornado closes a connection whose request head outgrows ``max_header_size`` without a
word, accepts any number of header fields, and notices ``Content-Length`` together with
``Transfer-Encoding`` only when it starts reading the body, after the handler has run.
This module answers those cases itself with a problem+json response and
``Connection: close``:

- :class:`HeadLimitStream` answers ``431 Request Header Fields Too Large`` when the
  head outgrows the byte limit (one 32 KiB header, a 1 MB bearer token).
- :class:`RequestGuard` answers 431 for too many header fields and 400 for
  ``Content-Length`` with ``Transfer-Encoding`` or repeated ``Content-Length`` (request
  smuggling), before the application is told about the request. It also closes the
  connection when a request's body has not fully arrived ``body_timeout`` seconds
  after its head (GW-17): one timer per request that has a body, where Tornado's own
  ``body_timeout`` wraps every read of every request in a timeout future.

Each refusal writes one access record, like a handled request (GW-14).
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.httputil
import tornado.iostream

from kailash_nb.middleware._problems import PROBLEM_CONTENT_TYPE, new_error_id, problem_body
from kailash_nb.middleware._request_id import REQUEST_ID_HEADER, new_request_id, request_id

__all__ = ["HeadLimitStream", "RequestGuard", "refusal_response"]

access_log = logging.getLogger("kailash_nb.middleware.access")

_REASONS = {400: "Bad Request", 431: "Request Header Fields Too Large"}
# Bytes of an unread request drained before closing, so the kernel sends FIN rather
# than a reset that could destroy the refusal before the client reads it.
_DRAIN_BYTES = 4 * 1024 * 1024


def refusal_response(status: int, code: str, detail: str, rid: str) -> bytes:
    """A complete ``Connection: close`` problem+json response, as bytes."""
    body = json.dumps(problem_body(status, code, detail, error_id=new_error_id())).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"{REQUEST_ID_HEADER}: {rid}\r\n\r\n"
    )
    return head.encode("ascii") + body


def _log_refusal(method: str | None, path: str | None, status: int, rid: str) -> None:
    record = {
        "method": method,
        "path": None if path is None else path[:256],
        "route": "server",
        "status": status,
        "ms": 0.0,
        "subject": None,
        "request_id": rid,
    }
    access_log.info(json.dumps(record, ensure_ascii=True))


def _drain(sock: socket.socket) -> None:
    drained = 0
    try:
        while drained < _DRAIN_BYTES:
            chunk = sock.recv(65536)
            if not chunk:
                return
            drained += len(chunk)
    except OSError:  # BlockingIOError: nothing more buffered; others: already gone
        return


class HeadLimitStream(tornado.iostream.IOStream):
    """An ``IOStream`` that answers 431 before closing when the request head it was
    reading outgrew Tornado's ``max_header_size`` (instead of a silent close).

    Args:
        on_close: called once when the stream closes (connection accounting).
    """

    def __init__(self, sock: socket.socket, *, on_close: Callable[[], None], **kwargs: Any):
        super().__init__(sock, **kwargs)
        self._on_close: Callable[[], None] | None = on_close

    def close(self, exc_info: Any = False) -> None:
        """Close the stream; first answer 431 if the head was too large."""
        if not self.closed():
            error = exc_info[1] if isinstance(exc_info, tuple) else exc_info
            # Tornado reads the request head, and only the head, with read_until_regex;
            # an unsatisfiable read during it means the head outgrew max_header_size.
            if (
                isinstance(error, tornado.iostream.UnsatisfiableReadError)
                and getattr(self, "_read_regex", None) is not None
                and not self.writing()
            ):
                self._refuse_head()
        super().close(exc_info)
        callback, self._on_close = self._on_close, None
        if callback is not None:
            callback()

    def _refuse_head(self) -> None:
        rid = new_request_id()
        response = refusal_response(
            431,
            "headers_too_large",
            "the request line and headers are too large; send fewer or shorter headers",
            rid,
        )
        _log_refusal(None, None, 431, rid)  # first: the client may move on once answered
        try:
            self.socket.send(response)
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            return
        _drain(self.socket)


class RequestGuard(tornado.httputil.HTTPMessageDelegate):
    """Wraps the application's delegate for one request; refuses heads with too many
    fields (431) or ambiguous framing (400) before the application sees them.

    Args:
        delegate: the application's delegate for this request.
        connection: the request's HTTP/1 connection.
        max_header_count: most header fields accepted.
        body_timeout: seconds the body may take to arrive after the head.
    """

    def __init__(
        self,
        delegate: tornado.httputil.HTTPMessageDelegate,
        connection: Any,
        max_header_count: int,
        body_timeout: float,
    ) -> None:
        self._delegate = delegate
        self._connection = connection
        self._max_header_count = max_header_count
        self._body_timeout = body_timeout
        self._body_deadline: Any = None

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        """Refuse the request, or hand it on to the application."""
        refusal = _head_refusal(headers, self._max_header_count)
        if refusal is None:
            if "Transfer-Encoding" in headers or headers.get("Content-Length", "0") != "0":
                stream = self._connection.stream
                self._body_deadline = stream.io_loop.call_later(
                    self._body_timeout, _body_too_slow, stream, start_line, headers
                )
            return self._delegate.headers_received(start_line, headers)
        status, code, detail = refusal
        rid = request_id(headers)
        method = getattr(start_line, "method", None)
        path = getattr(start_line, "path", None)
        # Detached, Tornado neither reads the body nor writes its own bare 400 after ours.
        _log_refusal(method, path, status, rid)
        stream = self._connection.detach()
        written = stream.write(refusal_response(status, code, detail, rid))
        written.add_done_callback(lambda future: _close_after(stream, future))
        return None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        """Hand body bytes on."""
        return self._delegate.data_received(chunk)

    def finish(self) -> None:
        """The request is complete."""
        self._disarm()
        self._delegate.finish()

    def on_connection_close(self) -> None:
        """The connection closed before the request completed."""
        self._disarm()
        self._delegate.on_connection_close()

    def _disarm(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None


def _body_too_slow(
    stream: tornado.iostream.IOStream, start_line: Any, headers: tornado.httputil.HTTPHeaders
) -> None:
    # As Tornado's own body_timeout: the connection is closed and no response is sent;
    # the access record says 408 (the request timed out).
    method = getattr(start_line, "method", None)
    path = getattr(start_line, "path", None)
    _log_refusal(method, path, 408, request_id(headers))
    stream.close()


def _close_after(stream: tornado.iostream.IOStream, future: Any) -> None:
    if not future.cancelled():
        future.exception()  # a failed write only means the client is gone
    if not stream.closed():
        try:
            stream.socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        else:
            _drain(stream.socket)
    stream.close()


def _head_refusal(
    headers: tornado.httputil.HTTPHeaders, max_header_count: int
) -> tuple[int, str, str] | None:
    # get_all() counts repeated fields one by one (``len(headers)`` counts names).
    if sum(1 for _ in headers.get_all()) > max_header_count:
        return (
            431,
            "too_many_headers",
            f"the request has more than {max_header_count} header fields",
        )
    length = headers.get("Content-Length")
    if length is not None:
        if "Transfer-Encoding" in headers:
            return (
                400,
                "ambiguous_framing",
                "send either Content-Length or Transfer-Encoding, not both",
            )
        if "," in length:
            return (400, "ambiguous_framing", "send exactly one Content-Length header")
    return None
