"""``CorsPolicy``: which browser origins may call the gateway, decided by exact match.

Origins are compared as whole strings against the configured list, never by substring,
prefix, suffix or pattern, so ``https://app.company.com.evil.io``,
``https://evilcompany.com`` and ``null`` are refused (GW-21). A credentialed policy
echoes the one matching origin and never answers ``*`` (GW-20). Framework-free: feed it
header values, send back the headers it returns::

    cors = CorsPolicy(["https://app.company.com"])
    headers = cors.preflight(origin, request_method, request_headers)   # OPTIONS
    if headers is None:
        return 403, {"Vary": "Origin"}
    return 204, headers
    ...
    response.headers.update(cors.simple(origin))                         # other methods
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["CorsPolicy"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


def _normalize_origin(origin: str) -> str:
    """The browser's serialization of a configured origin (``scheme://host[:port]``)."""
    if not isinstance(origin, str):
        raise TypeError(f"allowed origins must be strings, got {origin!r}")
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"allowed origin {origin!r} is not a URL: {error}") from error
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or origin.endswith(("?", "#"))
        or "*" in origin
        or any(ch.isspace() or ord(ch) < 0x20 for ch in origin)
    ):
        raise ValueError(
            f"allowed origin {origin!r} must be exactly scheme://host[:port] with scheme "
            "http or https, no path, wildcard or credentials (e.g. 'https://app.company.com')"
        )
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    port_suffix = "" if port is None or port == _DEFAULT_PORTS[parts.scheme] else f":{port}"
    return f"{parts.scheme}://{host}{port_suffix}"


def _token_list(values: Iterable[str], what: str, *, upper: bool) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]
    tokens: list[str] = []
    for value in values:
        token = value.strip() if isinstance(value, str) else ""
        if not token or "*" in token or any(ch in token for ch in ",\r\n\t ;"):
            raise ValueError(
                f"{what} must be explicit names (no '*', commas or blanks), got {value!r}"
            )
        token = token.upper() if upper else token
        if token not in tokens:
            tokens.append(token)
    return tuple(tokens)


class CorsPolicy:
    """Cross-origin rules for the gateway; pure functions of the request's headers.

    Args:
        allowed_origins: exact origins (``https://app.company.com``, ``http://localhost:3000``).
            Empty: CORS is off and no CORS header is ever sent. ``["*"]`` (alone) admits
            every origin, only without credentials.
        allow_credentials: let browsers send cookies and ``Authorization``; then the
            matching origin is echoed and ``*`` is refused.
        allowed_methods: methods a preflight may ask for (compared exactly, as browsers
            send them; configured names are upper-cased).
        allowed_headers: request headers a preflight may ask for (case-insensitive).
        exposed_headers: response headers scripts may read.
        max_age: seconds a browser may cache a preflight answer.

    Raises:
        ValueError: ``*`` with credentials or beside other origins; an origin that is not
            exactly ``scheme://host[:port]``; ``*`` among methods or headers; a negative
            ``max_age``.
    """

    def __init__(
        self,
        allowed_origins: Iterable[str],
        allow_credentials: bool = True,
        allowed_methods: Iterable[str] = ("GET", "POST", "PUT", "PATCH", "DELETE"),
        allowed_headers: Iterable[str] = (
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            "X-Request-ID",
        ),
        exposed_headers: Iterable[str] = ("Retry-After", "X-Request-ID"),
        max_age: int = 600,
    ) -> None:
        if isinstance(allowed_origins, str):
            allowed_origins = [allowed_origins]
        origins = list(allowed_origins)
        self.allow_credentials = bool(allow_credentials)
        self.any_origin = "*" in origins
        if self.any_origin and self.allow_credentials:
            raise ValueError(
                "allowed_origins '*' with allow_credentials=True would let every site act "
                "as the signed-in user; list the origins, or set allow_credentials=False"
            )
        if self.any_origin and len(origins) > 1:
            raise ValueError("allowed_origins '*' must stand alone")
        self.allowed_origins: frozenset[str] = (
            frozenset() if self.any_origin else frozenset(_normalize_origin(o) for o in origins)
        )
        self.enabled = self.any_origin or bool(self.allowed_origins)
        self.allowed_methods = _token_list(allowed_methods, "allowed_methods", upper=True)
        self.allowed_headers = _token_list(allowed_headers, "allowed_headers", upper=False)
        self._allowed_header_names = frozenset(h.lower() for h in self.allowed_headers)
        self.exposed_headers = _token_list(exposed_headers, "exposed_headers", upper=False)
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise ValueError(f"max_age must be an int >= 0 seconds, got {max_age!r}")
        self.max_age = max_age

    def is_allowed(self, origin: str | None) -> bool:
        """Whether ``origin`` (the ``Origin`` header as sent) may call the gateway.

        Also the check for WebSocket handshakes (GW-23). ``null`` is never allowed.
        """
        if not origin or origin == "null":
            return False
        return self.any_origin or origin in self.allowed_origins

    def _allow_origin_headers(self, origin: str) -> dict[str, str]:
        if self.any_origin:
            return {"Access-Control-Allow-Origin": "*"}
        headers = {"Access-Control-Allow-Origin": origin}
        if self.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def preflight(
        self,
        origin: str | None,
        method: str | None,
        request_headers: str | Iterable[str] | None = None,
    ) -> dict[str, str] | None:
        """Answer an ``OPTIONS`` preflight: the headers to send, or ``None`` to refuse.

        Args:
            origin: the ``Origin`` header.
            method: the ``Access-Control-Request-Method`` header.
            request_headers: the ``Access-Control-Request-Headers`` header (a
                comma-separated string) or the header names as a list.

        ``None`` when the origin is not listed, the method is not allowed, or any
        requested header is not allowed; send no ``Access-Control-Allow-*`` header then.
        """
        if origin is None or not self.is_allowed(origin) or method not in self.allowed_methods:
            return None
        if isinstance(request_headers, str):
            request_headers = request_headers.split(",")
        for name in request_headers or ():
            name = name.strip().lower()
            if name and name not in self._allowed_header_names:
                return None
        headers = self._allow_origin_headers(origin)
        headers["Access-Control-Allow-Methods"] = ", ".join(self.allowed_methods)
        if self.allowed_headers:
            headers["Access-Control-Allow-Headers"] = ", ".join(self.allowed_headers)
        headers["Access-Control-Max-Age"] = str(self.max_age)
        headers["Vary"] = _PREFLIGHT_VARY
        return headers

    def simple(self, origin: str | None) -> dict[str, str]:
        """CORS headers for an ordinary (non-preflight) response to ``origin``.

        Always ``Vary: Origin`` when origins are configured, so caches never serve one
        origin's answer to another; the ``Access-Control-*`` headers only for an allowed
        origin. Nothing when CORS is off.
        """
        if not self.enabled:
            return {}
        headers: dict[str, str] = {}
        if origin is not None and self.is_allowed(origin):
            headers = self._allow_origin_headers(origin)
            if self.exposed_headers:
                headers["Access-Control-Expose-Headers"] = ", ".join(self.exposed_headers)
        headers["Vary"] = "Origin"
        return headers
