"""Refusals the server answers before a handler sees the request (GW-03, GW-18).

Tornado closes a connection whose request head outgrows ``max_header_size`` without a
word, accepts any number of header fields, and notices ``Content-Length`` together with
``Transfer-Encoding`` only when it starts reading the body, after the handler has run.
This module answers those cases itself with a problem+json response and
``Connection: close``:

- :class:`HeadLimitStream` answers ``431 Request Header Fields Too Large`` when the
  head outgrows the byte limit (one 32 KiB header, a 1 MB bearer token).
- :class:`RequestGuard` answers 431 for too many header fields, 400 for
  ``Content-Length`` with ``Transfer-Encoding`` or repeated ``Content-Length`` (request
  smuggling) and 413 for a ``Content-Length`` above 1 MiB, before the application is
  told about the request. It counts body bytes as they arrive and answers 413 (then
  closes) as soon as a body passes 1 MiB, however it is chunked (GW-02): Tornado's own
  cap checks each chunk's declared size before its bytes, and would answer a bare 400
  to a body sent in 1 MiB chunks. It also closes the connection when a request's body
  has not fully arrived ``body_timeout`` seconds after its head (GW-17): one timer per
  request that has a body, where Tornado's own ``body_timeout`` wraps every read of
  every request in a timeout future.
- :class:`HeadLimitStream` also replaces the bare ``400 Bad Request`` Tornado writes
  for a message it cannot parse (an invalid chunk size, a malformed request line) by a
  problem+json 400 ``malformed_request`` with ``X-Request-ID``.

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

from kailash_nb.middleware._limits import MAX_BODY_BYTES
from kailash_nb.middleware._problems import PROBLEM_CONTENT_TYPE, new_error_id, problem_body
from kailash_nb.middleware._request_id import REQUEST_ID_HEADER, new_request_id, request_id

__all__ = ["HeadLimitStream", "RequestGuard", "refusal_response"]

access_log = logging.getLogger("kailash_nb.middleware.access")

_REASONS = {400: "Bad Request", 413: "Payload Too Large", 431: "Request Header Fields Too Large"}
# What Tornado writes, and nothing else, when it cannot parse a request.
_TORNADO_BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"
_TOO_LARGE = (413, "payload_too_large", "the request body is above 1 MiB")
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
        #: Bytes handed to ``write`` so far: tells whether a response has begun.
        self.bytes_written = 0

    def write(self, data: bytes | memoryview) -> Any:
        """Write ``data``; Tornado's bare 400 becomes a problem+json answer."""
        if data == _TORNADO_BARE_400:
            # Tornado has logged the one line for this request (GW-14): none here.
            rid = new_request_id()
            data = refusal_response(
                400,
                "malformed_request",
                "the request is malformed (request line, header syntax or body "
                "framing such as a chunk size)",
                rid,
            )
        self.bytes_written += len(data)
        return super().write(data)

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
        self._received = 0
        self._refused = False
        self._written_at_head = 0
        self._start_line: Any = None
        self._headers: tornado.httputil.HTTPHeaders | None = None

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
                self._written_at_head = getattr(stream, "bytes_written", 0)
                self._start_line, self._headers = start_line, headers
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
        """Hand body bytes on, up to 1 MiB; past it answer 413 and close (GW-02)."""
        if self._refused:
            return None
        self._received += len(chunk)
        if self._received > MAX_BODY_BYTES:
            self._refuse_body()
            return None
        return self._delegate.data_received(chunk)

    def _refuse_body(self) -> None:
        self._refused = True
        self._disarm()
        stream = self._connection.stream
        if stream is None or stream.closed():
            return
        if getattr(stream, "bytes_written", 0) != self._written_at_head:
            return  # the application already answered; Tornado closes after its answer
        headers = self._headers if self._headers is not None else {}
        rid = request_id(headers)
        _log_refusal(
            getattr(self._start_line, "method", None),
            getattr(self._start_line, "path", None),
            413,
            rid,
        )
        written = stream.write(refusal_response(*_TOO_LARGE, rid))
        written.add_done_callback(lambda future: _close_after(stream, future))

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
        digits = length.strip()
        if digits.isascii() and digits.isdigit() and int(digits) > MAX_BODY_BYTES:
            return _TOO_LARGE
    return None
