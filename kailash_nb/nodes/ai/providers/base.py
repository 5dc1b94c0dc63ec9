"""``ChatProvider``: the base class of LLM providers, with the HTTP machinery they share.

A provider says how a :class:`ChatRequest` looks on its wire and how to read the
answer; the base class sends it through the HTTP nodes' guarded transport (only
public addresses unless the config allows more), with their timeouts and their
retries (connection errors, timeouts, 429 and 5xx, a 429/503 ``Retry-After``
honored up to ``max_retry_wait``)::

    provider = get_provider("openai")(api_key_env="OPENAI_API_KEY")
    result = provider.chat(ChatRequest(model="gpt-4o-mini", messages=[...]))
    result = await provider.achat(request)   # the async twin

Nothing is contacted until the first ``chat``; the API key is read then, from the
config or the environment.

An implementer sets ``name``, ``default_base_url``, ``path`` and writes ``body``,
``parse``, ``stream_decoder`` and ``error_detail`` (and ``headers`` to authenticate).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import weakref
from collections.abc import Generator, Mapping
from typing import Any, ClassVar, Protocol

import httpx

from kailash_nb.nodes._exchange import adrive, drive
from kailash_nb.nodes._retry import TRANSIENT_ERRORS, backoff, retry_delay
from kailash_nb.nodes._ssrf import (
    DestinationNotAllowedError,
    DestinationPolicy,
    async_guarded_transport,
    guarded_transport,
)
from kailash_nb.nodes.ai.providers.types import ChatRequest, ChatResult, ProviderError
from kailash_nb.sdk_exceptions import NodeConfigurationError

__all__ = ["ChatProvider", "StreamDecoder"]

_Reply = httpx.Response | ChatResult


class StreamDecoder(Protocol):
    """Assembles a streamed answer: ``feed`` each line of the body, then ``result``."""

    def feed(self, line: str) -> None:
        """Take one line of the streamed body (raises ``ProviderError`` on an error event)."""

    def result(self) -> ChatResult:
        """The whole answer, once the stream ended."""


class ChatProvider:
    """Base class of LLM providers; see the module docstring.

    Args:
        base_url: the API's root URL (default ``default_base_url``).
        api_key: the key itself; prefer ``api_key_env``, which keeps it out of the
            workflow's definition.
        api_key_env: the environment variable holding the key (default
            ``default_api_key_env``), read at each request.
        allow_private_network: also reach loopback and private addresses (a
            self-hosted, OpenAI-compatible server); set by the workflow author only.
        allow_loopback: reach loopback without ``allow_private_network``; ``None``
            (default): the provider's own default (``allows_loopback``).
        timeout: seconds per connect, read or write.
        max_retries: extra attempts after a transient failure.
        backoff_factor: retry n (from 0) waits ``backoff_factor * 2**n`` seconds.
        max_retry_wait: the longest ``Retry-After`` honored, in seconds.

    Raises:
        NodeConfigurationError: a base URL that is not absolute http(s), or a negative
            timeout, count or wait.
    """

    #: The name the provider is registered under.
    name: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    #: The environment variable holding the API key; ``None``: no key is needed.
    default_api_key_env: ClassVar[str | None] = None
    #: Loopback destinations allowed without ``allow_private_network``.
    allows_loopback: ClassVar[bool] = False
    #: The chat endpoint, relative to the base URL.
    path: ClassVar[str] = ""
    #: USD per million (prompt, completion) tokens, by model name.
    prices: ClassVar[Mapping[str, tuple[float, float]]] = {}

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        allow_private_network: bool = False,
        allow_loopback: bool | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        max_retry_wait: float = 60.0,
    ) -> None:
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        url = httpx.URL(self.base_url)
        problems = []
        if url.scheme not in ("http", "https") or not url.host:
            problems.append(f"base_url {self.base_url!r} is not an absolute http(s) URL")
        if not timeout > 0:
            problems.append(f"timeout must be a positive number of seconds, got {timeout!r}")
        for label, value in (
            ("max_retries", max_retries),
            ("backoff_factor", backoff_factor),
            ("max_retry_wait", max_retry_wait),
        ):
            if value < 0:
                problems.append(f"{label} must be 0 or more, got {value!r}")
        if problems:
            raise NodeConfigurationError(f"{self.name} provider: {'; '.join(problems)}")
        self._api_key = api_key
        self.api_key_env = api_key_env or self.default_api_key_env
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_factor = float(backoff_factor)
        self.max_retry_wait = float(max_retry_wait)
        self._policy = DestinationPolicy(
            allow_private_network=allow_private_network,
            allow_loopback=self.allows_loopback if allow_loopback is None else allow_loopback,
        )
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._async_clients: weakref.WeakKeyDictionary[Any, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    # -- what a provider implements ------------------------------------------------
    def headers(self, request: ChatRequest) -> dict[str, str]:
        """Request headers (authentication included); raises ``ProviderError`` when a
        needed API key is missing."""
        return {}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body asking for ``request``."""
        raise NotImplementedError

    def parse(self, payload: Any, request: ChatRequest) -> ChatResult:
        """The answer in a successful, non-streamed JSON body."""
        raise NotImplementedError

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        """A fresh decoder for one streamed answer."""
        raise NotImplementedError

    def error_detail(self, payload: Any) -> tuple[str, str | None, str | None]:
        """(message, type, code) from an error body (decoded JSON, or text)."""
        return str(payload), None, None

    # -- public API ----------------------------------------------------------------
    def price(self, model: str) -> tuple[float, float] | None:
        """USD per million (prompt, completion) tokens for ``model``, or ``None`` when
        unknown. A dated snapshot (``gpt-4o-mini-2024-07-18``) takes its family's price."""
        for name in sorted(self.prices, key=len, reverse=True):
            if model == name or model.startswith(name + "-"):
                return self.prices[name]
        return None

    def api_key(self) -> str | None:
        """The API key for the next request: the config's, else the environment's
        (``None`` when neither is set)."""
        return self._api_key or (os.environ.get(self.api_key_env) if self.api_key_env else None)

    def chat(self, request: ChatRequest) -> ChatResult:
        """Send ``request`` and return the answer (streamed or not, assembled).

        Raises:
            ProviderError: the provider answered with an error (after the retries), the
                connection failed or timed out after the retries, the destination is
                not allowed, or the answer could not be read.
        """
        return drive(self._exchange(request), functools.partial(self._send, request=request))

    async def achat(self, request: ChatRequest) -> ChatResult:
        """The async twin of :meth:`chat`; waiting holds no thread."""
        return await adrive(
            self._exchange(request), functools.partial(self._asend, request=request)
        )

    def close(self) -> None:
        """Close the pooled connections of sync requests."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the pooled connections of async requests made on the running loop."""
        with self._lock:
            client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    # -- internals -----------------------------------------------------------------
    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    transport=guarded_transport(self._policy), timeout=self.timeout
                )
                # A provider dropped without close() releases its sockets when collected.
                weakref.finalize(self, self._client.close)
            return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.get(loop)
            if client is None:
                client = self._async_clients[loop] = httpx.AsyncClient(
                    transport=async_guarded_transport(self._policy), timeout=self.timeout
                )
            return client

    def _send(self, http_request: httpx.Request, request: ChatRequest) -> _Reply:
        response = self._sync_client().send(http_request, stream=True)
        try:
            if request.stream and response.is_success:
                decoder = self.stream_decoder(request)
                for line in response.iter_lines():
                    decoder.feed(line)
                return decoder.result()
            response.read()
            return response
        finally:
            response.close()

    async def _asend(self, http_request: httpx.Request, request: ChatRequest) -> _Reply:
        response = await self._async_client().send(http_request, stream=True)
        try:
            if request.stream and response.is_success:
                decoder = self.stream_decoder(request)
                async for line in response.aiter_lines():
                    decoder.feed(line)
                return decoder.result()
            await response.aread()
            return response
        finally:
            await response.aclose()

    def _http_request(self, request: ChatRequest) -> httpx.Request:
        headers = {"content-type": "application/json", **self.headers(request)}
        return httpx.Request(
            "POST", self.base_url + self.path, headers=headers, json=self.body(request)
        )

    def _exchange(
        self, request: ChatRequest
    ) -> Generator[httpx.Request | float, _Reply | None, ChatResult]:
        """The request's life: yields a request to send (the driver sends back the
        response or the assembled streamed answer, or throws the error raised) or
        seconds to wait; returns the answer."""
        http_request = self._http_request(request)
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = yield http_request
            except DestinationNotAllowedError as refusal:
                raise self.error(
                    request,
                    f"{self.base_url} refused, nothing was sent: {refusal}; set "
                    "allow_private_network=True in the node's config to reach a server on "
                    "this machine or a private network",
                ) from None
            except TRANSIENT_ERRORS as exc:
                if attempt > self.max_retries:
                    raise self.error(
                        request,
                        f"no answer from {self.base_url} after {attempt} attempt(s) "
                        f"({type(exc).__name__}: {exc}); check that the server is running "
                        "and reachable, or raise timeout",
                    ) from exc
                delay = backoff(attempt, self.backoff_factor)
            except httpx.HTTPError as exc:
                raise self.error(
                    request, f"request to {self.base_url} failed ({type(exc).__name__}: {exc})"
                ) from exc
            else:
                if isinstance(reply, ChatResult):
                    return reply
                assert reply is not None
                delay = retry_delay(
                    reply.status_code,
                    reply.headers,
                    attempt=attempt,
                    retries=self.max_retries,
                    backoff_factor=self.backoff_factor,
                    max_retry_wait=self.max_retry_wait,
                )
                if delay is None:
                    return self._final(reply, request, attempt)
            yield delay

    def _final(self, response: httpx.Response, request: ChatRequest, attempts: int) -> ChatResult:
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        if response.is_success:
            if not isinstance(payload, dict):
                raise self.error(request, f"answered {response.status_code} with a non-JSON body")
            return self.parse(payload, request)
        detail, error_type, code = self.error_detail(payload)
        kind = "/".join(part for part in (error_type, code) if part)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        raise self.error(
            request,
            f"HTTP {response.status_code}{f' ({kind})' if kind else ''}{tries}: {detail}",
            status=response.status_code,
            detail=detail,
            error_type=error_type,
            code=code,
        )

    def error(
        self,
        request: ChatRequest,
        what: str,
        *,
        status: int | None = None,
        detail: str = "",
        error_type: str | None = None,
        code: str | None = None,
    ) -> ProviderError:
        """A ``ProviderError`` naming this provider and the model, with the API key
        (were the provider to echo it) masked."""
        key = self.api_key()
        if key and len(key) >= 4:
            what, detail = what.replace(key, "***"), detail.replace(key, "***")
        return ProviderError(
            f"{self.name} provider, model {request.model!r}: {what}",
            provider=self.name,
            model=request.model,
            status=status,
            detail=detail,
            error_type=error_type,
            code=code,
        )
