"""The handlers: the list of this user's previews, and the proxy to one of them.

Both require Jupyter's authentication (token or login cookie; Jupyter's XSRF rules for
cookie-authenticated writes) and Jupyter's authorizer on the ``kernels`` resource: a
preview runs its workflows in a kernel, so reading it needs ``read`` and anything else
(running a workflow) ``execute``, as a kernel's own channels do.

The proxy forwards only to ports with a live registration in the runtime directory
(anything else is 404: never an open proxy to local ports). The browser's cookies,
authorization and other headers stay behind; only ``Content-Type``, ``Accept``, the
request id and the few headers the gateway reads go on, with a token the proxy mints
from the preview's registered key. The answer streams back with its status and
headers, less hop-by-hop headers, cookies and CORS headers (Jupyter's own apply). A
preview that is gone or refuses the connection answers 502 with a JSON problem.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Awaitable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import httputil, web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError

__all__ = ["PreviewListHandler", "PreviewProxyHandler", "preview_handlers"]

#: The request headers a preview receives from the browser (everything else, notably
#: Cookie and Authorization, is Jupyter's and stays here).
FORWARDED_REQUEST_HEADERS = (
    "Accept",
    "Content-Type",
    "Idempotency-Key",
    "Last-Event-ID",
    "X-Request-ID",
)
#: Response headers not copied back: hop-by-hop (RFC 9110 7.6.1), framing the server
#: sets itself, cookies (a preview may not set cookies on Jupyter's origin) and CORS
#: (Jupyter's own settings apply to its origin).
_DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "date",
        "server",
        "set-cookie",
        "set-cookie2",
    }
)
#: Query parameters that carry Jupyter's credentials (``?token=`` logs a browser in);
#: the preview never sees them.
_JUPYTER_QUERY_CREDENTIALS = frozenset({"token", "_xsrf"})
#: How long a proxied request may take: long runs and event streams pass.
REQUEST_TIMEOUT = 3600.0
CONNECT_TIMEOUT = 10.0
_PATH = r"kailash-nb/previews"


def preview_handlers(base_url: str, runtime_dir: str) -> list[tuple[str, type, dict[str, Any]]]:
    """The URL specs to add to the Jupyter server's application."""
    args = {"runtime_dir": runtime_dir}
    return [
        (url_path_join(base_url, _PATH), PreviewListHandler, args),
        (
            url_path_join(base_url, _PATH, r"(?P<port>[0-9]{1,5})/(?P<path>.*)"),
            PreviewProxyHandler,
            args,
        ),
    ]


@cache
def _registry() -> ModuleType:
    # Imported on the first request, not when the server starts: it loads the notebook
    # package and the token code.
    from kailash_nb.notebook import lab_previews

    return lab_previews


class _PreviewHandler(APIHandler):
    auth_resource = "kernels"

    def initialize(self, runtime_dir: str) -> None:
        """Keep the runtime directory the previews are registered in."""
        self.registry_dir = Path(runtime_dir) / _registry().PREVIEWS_DIRECTORY

    def proxied_path(self, port: int, path: str = "") -> str:
        """The URL path of ``path`` on preview ``port`` through this server."""
        return f"{url_path_join(self.base_url, _PATH, str(port))}/{path}"

    def problem(self, status: int, detail: str, **fields: Any) -> None:
        """Finish with an ``application/problem+json`` body."""
        self.set_status(status)
        body = {"type": "about:blank", "title": httputil.responses.get(status, "Error")}
        body.update(status=status, detail=detail, **fields)
        self.finish(json.dumps(body), set_content_type="application/problem+json")


class PreviewListHandler(_PreviewHandler):
    """``GET kailash-nb/previews``: this user's live previews, without credentials."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        """Answer ``[{port, kernel_id, workflows: [{workflow, route, execute_path}],
        docs_path, openapi_path, base_path}]``, by port."""
        previews = []
        for record in _registry().live_previews(self.registry_dir):
            previews.append(
                {
                    "port": record.port,
                    "kernel_id": record.kernel_id,
                    "workflows": [
                        {
                            "workflow": name,
                            "route": route,
                            "execute_path": self.proxied_path(
                                record.port, f"workflows/{route}/execute"
                            ),
                        }
                        for name, route in record.workflows
                    ],
                    "base_path": self.proxied_path(record.port, ""),
                    "docs_path": self.proxied_path(record.port, "docs"),
                    "openapi_path": self.proxied_path(record.port, "openapi.json"),
                }
            )
        self.finish(json.dumps(previews))


class PreviewProxyHandler(_PreviewHandler):
    """``kailash-nb/previews/{port}/{path}``: forwards to a registered preview."""

    _client: AsyncHTTPClient | None = None
    _committed = False
    _closed = False

    @web.authenticated
    @authorized
    async def get(self, port: str, path: str) -> None:
        """Forward a GET. Like Jupyter's own pages, it sets Jupyter's ``_xsrf`` cookie,
        which a proxied page (the docs page) sends back as ``X-XSRFToken`` on its POSTs."""
        self.xsrf_token  # noqa: B018 - reading it sets the cookie when missing
        await self.forward(port, path)

    @web.authenticated
    @authorized
    async def head(self, port: str, path: str) -> None:
        """Forward a HEAD."""
        await self.forward(port, path)

    @web.authenticated
    @authorized
    async def options(self, port: str, path: str) -> None:  # type: ignore[override]
        """Forward an OPTIONS (authenticated: this is no CORS preflight answer)."""
        await self.forward(port, path)

    @web.authenticated
    @authorized("execute")
    async def post(self, port: str, path: str) -> None:
        """Forward a POST."""
        await self.forward(port, path)

    @web.authenticated
    @authorized("execute")
    async def put(self, port: str, path: str) -> None:
        """Forward a PUT."""
        await self.forward(port, path)

    @web.authenticated
    @authorized("execute")
    async def patch(self, port: str, path: str) -> None:
        """Forward a PATCH."""
        await self.forward(port, path)

    @web.authenticated
    @authorized("execute")
    async def delete(self, port: str, path: str) -> None:
        """Forward a DELETE."""
        await self.forward(port, path)

    async def forward(self, port_text: str, path: str) -> None:
        """Send this request to the preview on ``port_text`` and stream its answer back."""
        port = int(port_text)
        record = _registry().read_preview(self.registry_dir, port)
        if record is None:
            self.problem(404, f"no running preview of yours is registered on port {port}")
            return
        self._committed = False
        self._closed = False
        self._start: httputil.ResponseStartLine | None = None
        self._headers_seen = httputil.HTTPHeaders()
        request = HTTPRequest(
            self._upstream_url(record, port, path),
            method=self.request.method or "GET",
            headers=self._upstream_headers(record),
            body=self._upstream_body(),
            allow_nonstandard_methods=True,
            follow_redirects=False,
            decompress_response=False,
            connect_timeout=CONNECT_TIMEOUT,
            request_timeout=REQUEST_TIMEOUT,
            header_callback=self._upstream_header_line,
            streaming_callback=self._upstream_chunk,
        )
        try:
            await self._http_client().fetch(request, raise_error=False)
        except (OSError, HTTPClientError, StreamClosedError) as error:
            if self._closed:
                return
            if self._committed:
                # The answer has begun: no status can be sent any more, so end it short.
                self.log.warning("preview on port %d broke off its answer: %s", port, error)
                self.request.connection.close()  # type: ignore[union-attr]
                return
            self.problem(
                502,
                f"the preview on port {port} did not answer ({_reason(error)}); it may "
                "have stopped: publish again with preview=True",
                port=port,
            )
            return
        if self._closed:
            return
        self._commit()
        content_type = self._headers_seen.get("Content-Type", "application/octet-stream")
        self.finish(set_content_type=content_type)

    def on_connection_close(self) -> None:
        """The browser left: abort the upstream request at its next chunk."""
        self._closed = True
        super().on_connection_close()

    # -- the upstream request -------------------------------------------------------

    def _upstream_url(self, record: Any, port: int, path: str) -> str:
        # The raw (still percent-encoded) path goes on unchanged: the gateway judges
        # encoded names itself (GW-10), and a decoded %2F would change the route.
        prefix = self.proxied_path(port, "")
        raw = self.request.path
        raw_path = (
            raw[len(prefix) :] if raw.startswith(prefix) else urllib.parse.quote(path, safe="/")
        )
        host = f"[{record.host}]" if ":" in record.host else record.host
        url = f"http://{host}:{port}/{raw_path}"
        query = _without_jupyter_credentials(self.request.query)
        if query:
            url += f"?{query}"
        return url

    def _upstream_headers(self, record: Any) -> httputil.HTTPHeaders:
        headers = httputil.HTTPHeaders()
        for name in FORWARDED_REQUEST_HEADERS:
            for value in self.request.headers.get_list(name):
                headers.add(name, value)
        headers["Authorization"] = record.credential.authorization()
        return headers

    def _upstream_body(self) -> bytes | None:
        if self.request.method in ("POST", "PUT", "PATCH"):
            return self.request.body
        return self.request.body or None

    def _http_client(self) -> AsyncHTTPClient:
        # One client of the extension's own: event streams and long runs do not take
        # the slots of the process-wide shared client (10 by default).
        if PreviewProxyHandler._client is None:
            PreviewProxyHandler._client = AsyncHTTPClient(force_instance=True, max_clients=64)
        return PreviewProxyHandler._client

    # -- the answer -----------------------------------------------------------------

    def _upstream_header_line(self, line: str) -> None:
        line = line.rstrip("\r\n")
        if self._start is None or re.match(r"HTTP/1\.[01] ", line):
            if line:
                self._start = httputil.parse_response_start_line(line)
                self._headers_seen = httputil.HTTPHeaders()
            return
        if line:
            self._headers_seen.parse_line(line)

    def _upstream_chunk(self, chunk: bytes) -> Awaitable[None] | None:
        if self._closed:
            raise StreamClosedError()  # aborts the upstream request
        self._commit()
        self.write(chunk)
        return self.flush()

    def _commit(self) -> None:
        if self._committed:
            return
        self._committed = True
        if self._start is not None:
            self.set_status(self._start.code, self._start.reason)
        copied: set[str] = set()
        for name, value in self._headers_seen.get_all():
            lower = name.lower()
            if lower in _DROPPED_RESPONSE_HEADERS or lower.startswith("access-control-"):
                continue
            # The preview's value replaces Jupyter's default (its strict
            # Content-Security-Policy stays when the preview sends none).
            if lower in copied:
                self.add_header(name, value)
            else:
                self.set_header(name, value)
                copied.add(lower)


def _without_jupyter_credentials(query: str) -> str:
    """``query`` less Jupyter's ``token`` and ``_xsrf`` parameters (left unchanged,
    encoding included, when it has neither)."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    kept = [(name, value) for name, value in pairs if name not in _JUPYTER_QUERY_CREDENTIALS]
    if len(kept) == len(pairs):
        return query
    return urllib.parse.urlencode(kept)


def _reason(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, HTTPClientError):
        return f"HTTP {error.code}: {error.message}"
    return type(error).__name__
