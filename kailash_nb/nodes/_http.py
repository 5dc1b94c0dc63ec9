"""The machinery shared by the HTTP nodes: options, the retry loop, decoding, and
keeping credentials out of messages."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping
from typing import Any, ClassVar
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import httpx

from kailash_nb.nodes._retry import TRANSIENT_ERRORS, backoff, retry_delay
from kailash_nb.nodes._ssrf import ALLOW_NETWORKS_ENV, DestinationNotAllowedError, DestinationPolicy
from kailash_nb.nodes.node import NodeParameter
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
    close_matches,
)

__all__ = ["HTTPRequestCore"]


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_RESPONSE_FORMATS = ("auto", "json", "text", "bytes")
# Query parameters whose values never appear in messages; over-matching only hides more.
_SECRET_QUERY_WORDS = (
    "token",
    "key",
    "password",
    "passwd",
    "pwd",
    "secret",
    "sig",
    "auth",
    "credential",
    "session",
)

_PARAMETERS = {
    parameter.name: parameter
    for parameter in (
        NodeParameter(name="url", type=str, required=True, description="http(s) URL"),
        NodeParameter(
            name="method", type=str, required=False, default="GET", description="/".join(_METHODS)
        ),
        NodeParameter(name="headers", type=dict, required=False, description="request headers"),
        NodeParameter(
            name="params", type=dict, required=False, description="query parameters (merged)"
        ),
        NodeParameter(name="json", required=False, description="body, sent as JSON"),
        NodeParameter(
            name="data", required=False, description="form fields (dict) or raw body (str/bytes)"
        ),
        NodeParameter(
            name="timeout",
            type=float,
            required=False,
            default=30.0,
            description="seconds per connect, read or write (None: no limit)",
        ),
        NodeParameter(
            name="retries",
            type=int,
            required=False,
            default=2,
            description="extra attempts after a connection error, timeout, 5xx or 429",
        ),
        NodeParameter(
            name="backoff_factor",
            type=float,
            required=False,
            default=0.5,
            description="retry n (from 0) waits backoff_factor * 2**n seconds",
        ),
        NodeParameter(
            name="max_retry_wait",
            type=float,
            required=False,
            default=60.0,
            description="longest Retry-After wait honored, in seconds",
        ),
        NodeParameter(name="follow_redirects", type=bool, required=False, default=True),
        NodeParameter(name="max_redirects", type=int, required=False, default=5),
        NodeParameter(
            name="response_format",
            type=str,
            required=False,
            default="auto",
            description="/".join(_RESPONSE_FORMATS),
        ),
    )
}


def _option_problems(options: Mapping[str, Any]) -> list[str]:
    """What is wrong with the request options in ``options`` (already type-coerced)."""
    problems = []
    method = options.get("method")
    if method is not None and method.upper() not in _METHODS:
        problems.append(
            f"method {method!r} is not supported{close_matches(method.upper(), _METHODS)}; "
            f"use one of {', '.join(_METHODS)}"
        )
    response_format = options.get("response_format")
    if response_format is not None and response_format not in _RESPONSE_FORMATS:
        problems.append(
            f"response_format {response_format!r} is not one of {', '.join(_RESPONSE_FORMATS)}"
        )
    for name in ("retries", "max_redirects", "backoff_factor", "max_retry_wait"):
        value = options.get(name)
        if value is not None and value < 0:
            problems.append(f"{name} must be 0 or more, got {value!r}")
    timeout = options.get("timeout")
    if timeout is not None and not timeout > 0:
        problems.append(f"timeout must be a positive number of seconds (or None), got {timeout!r}")
    data = options.get("data")
    if data is not None and not isinstance(data, (dict, str, bytes)):
        problems.append(f"data must be a dict of form fields, str or bytes, not {type(data)}")
    if data is not None and options.get("json") is not None:
        problems.append("give the body as either 'json' or 'data', not both")
    return problems


class HTTPRequestCore:
    """What both HTTP nodes share: parameters, option checks, the retry loop, decoding.

    A node keeps its clients in ``_clients`` (created on first use, guarded by
    ``_lock``): one per ``max_redirects`` value, which httpx fixes per client, and for
    the async node also per event loop.
    """

    _client_store: ClassVar[type] = dict
    #: Set by the workflow author only: never an input, so no caller can set it (WF-09).
    config_only_keys: ClassVar[frozenset[str]] = frozenset({"allow_private_network"})

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        problems = _option_problems(self.config)
        allow_private_network = self.config.get("allow_private_network", False)
        if not isinstance(allow_private_network, bool):
            problems.append(
                f"allow_private_network must be True or False, got {allow_private_network!r}"
            )
        if problems:
            raise NodeConfigurationError(
                f"node {self.id!r} ({self.type_name()}): {'; '.join(problems)}"
            )
        self._policy = DestinationPolicy(allow_private_network=allow_private_network)
        self._lock = threading.Lock()
        self._clients = self._client_store()

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The request options; only ``url`` is required."""
        return dict(_PARAMETERS)

    def _checked(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        problems = _option_problems(kwargs)
        if not isinstance(kwargs["url"], str) or not kwargs["url"]:
            problems.insert(0, "url must be a non-empty string")
        if problems:
            raise NodeValidationError(
                f"node {self.id!r} ({self.type_name()}): {'; '.join(problems)}"
            )
        return {**kwargs, "method": kwargs["method"].upper()}

    def _exchange(
        self, client: httpx.Client | httpx.AsyncClient, options: dict[str, Any]
    ) -> Generator[httpx.Request | float, httpx.Response | None, dict[str, Any]]:
        """The request's life: yields a request to send (the driver sends back the
        response, or throws the ``httpx.HTTPError`` raised) or seconds to wait; returns
        the node's outputs."""
        method, url = options["method"], options["url"]
        data = options["data"]
        try:
            # httpx 0.28 drops the URL's own query when given params (encode/httpx#3433);
            # merge them, as requests and Kailash do.
            target = httpx.URL(url)
            if options["params"]:
                target = target.copy_merge_params(options["params"])
            request = client.build_request(
                method,
                target,
                headers=options["headers"],
                json=options["json"],
                data=data if isinstance(data, dict) else None,
                content=data if isinstance(data, (str, bytes)) else None,
                timeout=options["timeout"],
            )
        except httpx.InvalidURL as exc:
            raise self._failure(
                options, url, f"has an invalid URL ({exc})", "check the URL's host and port"
            ) from None
        shown = str(request.url)
        if request.url.scheme not in ("http", "https") or not request.url.host:
            raise self._failure(
                options, shown, "is not an absolute http:// or https:// URL", "fix the URL"
            )
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = yield request
            except DestinationNotAllowedError as exc:
                raise self._refused(options, shown, exc) from None
            except httpx.TooManyRedirects as exc:
                raise self._failure(
                    options,
                    shown,
                    f"was redirected more than max_redirects={options['max_redirects']} times",
                    "raise max_redirects, or set follow_redirects=False to get the redirect "
                    "response itself",
                ) from exc
            except TRANSIENT_ERRORS as exc:
                if attempt > options["retries"]:
                    what, advice = _explain(exc, options["timeout"])
                    raise self._failure(
                        options, shown, f"failed after {attempt} attempt(s): {what}", advice
                    ) from exc
                delay = backoff(attempt, options["backoff_factor"])
            except httpx.HTTPError as exc:
                raise self._failure(
                    options, shown, f"failed: {_reason(exc)}", "check the URL and the request"
                ) from exc
            else:
                delay = _retry_delay(response, attempt, options)
                if delay is None:
                    return self._outputs(response, options, shown, started, attempt)
            yield delay

    def _outputs(
        self,
        response: httpx.Response,
        options: dict[str, Any],
        shown: str,
        started: float,
        attempts: int,
    ) -> dict[str, Any]:
        try:
            content = _decode(response, options["response_format"])
        except ValueError as exc:
            raise self._failure(
                options,
                shown,
                f"answered {response.status_code} with a body that is not JSON ({exc})",
                "use response_format='text' or 'auto'",
            ) from None
        return {
            "status_code": response.status_code,
            "headers": dict(response.headers),
            "content": content,
            "url": str(response.url.copy_with(userinfo=b"")),
            "success": response.is_success,
            "elapsed": time.perf_counter() - started,
            "attempts": attempts,
        }

    def _refused(
        self, options: dict[str, Any], url: str, refusal: DestinationNotAllowedError
    ) -> DestinationNotAllowedError:
        if self._policy.allow_private_network or not refusal.private_network:
            advice = f"if the deployment must reach it, list its network in {ALLOW_NETWORKS_ENV}"
        else:
            advice = (
                "the workflow author may set allow_private_network=True on the node to reach "
                f"internal services, or the deployment may list the network in {ALLOW_NETWORKS_ENV}"
            )
        return DestinationNotAllowedError(
            f"node {self.id!r} ({self.type_name()}): {options['method']} {_shown_url(url)} "
            f"refused, nothing was sent: {refusal}; HTTP nodes reach only public addresses; "
            f"{advice}",
            host=refusal.host,
            address=refusal.address,
            reason=refusal.reason,
        )

    def _subject(self) -> str:
        """Who a failure message names (the node; a subclass may name another sender)."""
        return f"node {self.id!r} ({self.type_name()})"

    def _failure(
        self, options: dict[str, Any], url: str, what: str, advice: str
    ) -> NodeExecutionError:
        secrets = _secrets(options["url"], options["params"])
        return NodeExecutionError(
            f"{self._subject()}: {options['method']} {_shown_url(url)} "
            f"{_scrub(what, secrets)}; {advice}"
        )


def _retry_delay(response: httpx.Response, attempt: int, options: dict[str, Any]) -> float | None:
    """Seconds to wait before retrying after ``response``, or ``None`` to keep it."""
    return retry_delay(
        response.status_code,
        response.headers,
        attempt=attempt,
        retries=options["retries"],
        backoff_factor=options["backoff_factor"],
        max_retry_wait=options["max_retry_wait"],
    )


def _decode(response: httpx.Response, response_format: str) -> Any:
    """The body as ``response_format`` asks; raises ``ValueError`` for a successful
    response that ``"json"`` cannot parse."""
    if response_format == "bytes":
        return response.content
    if response_format == "text":
        return response.text
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    is_json = media_type in ("application/json", "text/json") or media_type.endswith("+json")
    if response_format == "json" or is_json:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            # "auto" trusts the content type only as far as the body parses; an error
            # page is still returned rather than raised.
            if response_format == "json" and response.is_success:
                raise
    return response.text


def _explain(exc: Exception, timeout: float | None) -> tuple[str, str]:
    """What a transport failure means and what to do about it."""
    if isinstance(exc, httpx.TimeoutException):
        return (
            f"timed out ({type(exc).__name__}, timeout={timeout} s)",
            "raise 'timeout' if the server is just slow",
        )
    if isinstance(exc, httpx.ConnectError):
        return (
            f"could not connect ({_reason(exc)})",
            "check that the server is running and that the URL's host and port are right",
        )
    return f"the connection failed ({_reason(exc)})", "check the server and the network"


def _reason(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_QUERY_WORDS)


def _shown_url(url: str) -> str:
    """``url`` fit for messages: no user or password, no fragment, secret query values
    replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    query = "&".join(
        f"{name}=***" if sep and _secret_name(unquote_plus(name)) else f"{name}{sep}{value}"
        for name, sep, value in (pair.partition("=") for pair in parts.query.split("&"))
    )
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, query if parts.query else "", ""))


def _secrets(url: str, params: Mapping[str, Any] | None) -> list[str]:
    """Credentials in the URL and secret query values, longest first, to scrub from
    text that may quote them (httpx's error messages)."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        for credential in (parts.username or "", parts.password or ""):
            found += [credential, unquote_plus(credential)]
        for pair in parts.query.split("&"):
            name, _, value = pair.partition("=")
            if _secret_name(unquote_plus(name)):
                found += [value, unquote_plus(value)]
    except ValueError:
        pass
    for name, value in (params or {}).items():
        if _secret_name(str(name)):
            found.append(str(value))
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
