"""Why a call to an MCP server failed, and the typed error that says so.

Failures come out of the SDK's task groups, often wrapped in exception groups; each is
sorted into one of four kinds: ``refused`` (the destination check), ``timeout`` (the
call outlasted its timeout), ``protocol`` (the server answered, with an error) and
``lost`` (no connection, or it broke: worth another attempt on a new session).
"""

from __future__ import annotations

import anyio

from kailash_nb.nodes._retry import is_transient_status
from kailash_nb.nodes._ssrf import ALLOW_NETWORKS_ENV, DestinationNotAllowedError
from kailash_nb.nodes.mcp._spec import MCPServerSpec, shown_url
from kailash_nb.nodes.mcp.errors import (
    MCPConnectionError,
    MCPProtocolError,
    MCPTimeoutError,
)
from kailash_nb.redaction import scrub_secrets

__all__ = ["classify", "describe", "failure_error"]

# JSON-RPC codes the SDK's session uses for a lost connection and a request timeout;
# 32600 (sic, positive) is what its streamable HTTP client says for an unknown session.
_CONNECTION_CLOSED = -32000
_SESSION_TERMINATED = 32600
_REQUEST_TIMEOUT = 408


def failure_error(
    subject: str,
    spec: MCPServerSpec,
    tool: str | None,
    leaf: BaseException,
    failure: str,
    attempts: int,
    timeout: float,
    allow_private_network: bool = False,
) -> Exception:
    """The typed error for a call that failed as ``failure`` (from ``classify``), its
    message led by ``subject`` and naming the server and the tool."""
    reason = _reason(leaf, spec)
    what = f"calling tool {tool!r}" if tool else "listing tools"
    head = f"{subject}: {what} on {spec.where}"
    if failure == "refused":
        assert isinstance(leaf, DestinationNotAllowedError)
        if allow_private_network or not leaf.private_network:
            advice = f"if the deployment must reach it, list its network in {ALLOW_NETWORKS_ENV}"
        else:
            advice = (
                "the workflow author may set allow_private_network=True on the node, or the "
                f"deployment may list the network in {ALLOW_NETWORKS_ENV}"
            )
        return DestinationNotAllowedError(
            f"{head} refused, nothing was sent: {leaf}; MCP nodes reach only public "
            f"addresses; {advice}",
            host=leaf.host,
            address=leaf.address,
            reason=leaf.reason,
        )
    if failure == "timeout":
        return MCPTimeoutError(
            f"{head} timed out after {timeout} s (not retried: the tool may have run); "
            "raise 'timeout' if the tool is just slow",
            server=spec.name,
            tool=tool,
            attempts=attempts,
        )
    if failure == "protocol":
        code = getattr(getattr(leaf, "error", None), "code", None)
        return MCPProtocolError(
            f"{head} failed: the server answered {reason}",
            server=spec.name,
            tool=tool,
            code=code,
            attempts=attempts,
        )
    if isinstance(leaf, TimeoutError):
        reason = f"no session within timeout={timeout} s"
    return MCPConnectionError(
        f"{head} failed after {attempts} attempt(s): {reason}; check that the "
        "server is running and its command or URL is right",
        server=spec.name,
        tool=tool,
        attempts=attempts,
    )


def classify(exc: BaseException) -> tuple[str, BaseException]:
    """What failed: ``"refused"``, ``"timeout"``, ``"protocol"`` (final) or ``"lost"``
    (retried), and the exception that says so (found inside exception groups)."""
    import httpx
    from mcp.shared.exceptions import McpError

    leaves = _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, DestinationNotAllowedError):
            return "refused", leaf
    for leaf in leaves:
        if isinstance(leaf, McpError):
            code = leaf.error.code
            if code in (_CONNECTION_CLOSED, _SESSION_TERMINATED):
                return "lost", leaf
            return ("timeout" if code == _REQUEST_TIMEOUT else "protocol"), leaf
        if isinstance(leaf, httpx.HTTPStatusError):
            status = leaf.response.status_code
            return ("lost" if is_transient_status(status) else "protocol"), leaf
    leaf = leaves[0]
    return ("lost" if _is_transport_failure(leaf) else "protocol"), leaf


def describe(exc: BaseException | None) -> str:
    if exc is None:
        return "the session closed"
    leaf = _leaves(exc)[0]
    return f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups; ``[exc]`` for any other."""
    nested = getattr(exc, "exceptions", None)
    if not nested:
        return [exc]
    return [leaf for inner in nested for leaf in _leaves(inner)]


def _is_transport_failure(exc: BaseException) -> bool:
    import httpcore
    import httpx

    try:
        from websockets.exceptions import InvalidStatus, WebSocketException
    except ImportError:  # pragma: no cover - websockets comes with the extra
        InvalidStatus = WebSocketException = ()  # type: ignore[assignment,misc]
    if isinstance(exc, InvalidStatus):
        return exc.response.status_code >= 500
    return isinstance(
        exc,
        (
            OSError,
            EOFError,
            TimeoutError,
            ConnectionError,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
            anyio.EndOfStream,
            httpx.TransportError,
            httpcore.ConnectError,
            WebSocketException,
        ),
    )


def _reason(exc: BaseException, spec: MCPServerSpec) -> str:
    """``exc`` for a message; the server's URL, which httpx quotes, shown without
    credentials or query (it may carry a token). httpx may quote it rewritten (host
    lowercased, default port dropped), so the URL's and the headers' secrets are also
    scrubbed wherever they appear."""
    text = str(exc)
    if spec.url:
        text = text.replace(spec.url, shown_url(spec.url))
        text = scrub_secrets(text, {"url": spec.url, "headers": dict(spec.headers)})
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
