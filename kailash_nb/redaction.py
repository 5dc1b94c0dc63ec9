"""Keeping secrets in node config out of definitions, schemas and messages (WF-13).

A config value is secret when its key says so (``password``, ``api_key``, ``token``,
``secret``, ``Authorization``, ``Cookie`` ... see ``secret_key``), at any depth (a
``headers`` dict included). Connection strings and URLs keep their shape and lose only
their credentials: the password of ``scheme://user:password@host``, secret query values
(``?api_key=...``) and ``password=...`` pairs of key-value DSNs::

    redact_config({"connection_string": "postgresql://app:hunter2@db/orders",
                   "headers": {"Authorization": "Bearer abc"}, "retries": 2})
    # {"connection_string": "postgresql://app:<redacted>@db/orders",
    #  "headers": {"Authorization": "<redacted>"}, "retries": 2}

Only strings (and bytes) are redacted: ``max_tokens=100`` is not a secret.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "looks_secret",
    "redact_config",
    "redact_value",
    "redacted_parameters",
    "redacted_paths",
    "scrub_secrets",
    "secret_key",
    "secret_values",
]

#: What a secret becomes in an exported definition; loading one refuses it.
REDACTED = "<redacted>"

_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-auth-token"}
)
# Keys whose strings are connection strings: credentials inside are masked, not the whole.
_CONNECTION_WORDS = ("connection_string", "dsn", "database_url", "db_url")
_DSN_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)(\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s;]+)")
_MAX_DEPTH = 64
# Shorter secrets are not searched for in messages: masking every "abc" would mangle them.
_MIN_SCRUBBED = 4
# A whole string that is one URL (code or prose that merely contains one is left alone).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*\Z")


_SECRET_WORDS = (
    "password",
    "authorization",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "credential",
    "connection_string",
    "dsn",
)


def looks_secret(name: str) -> bool:
    """True for parameter names whose values must never appear in messages."""
    lowered = name.lower().replace("-", "_")
    return any(word in lowered for word in _SECRET_WORDS) or lowered.endswith("_key")


def secret_key(name: str) -> bool:
    """True when a config key or header name marks its value as a secret."""
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or looks_secret(lowered.replace("-", "_"))


def _connection_key(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _CONNECTION_WORDS) or lowered.endswith("_url")


def redact_value(key: str | None, value: Any, depth: int = 0) -> Any:
    """``value`` (found under ``key``) with every secret replaced by ``REDACTED``.

    A value without secrets comes back as the same object (callers cache by identity).
    """
    if isinstance(value, Mapping):
        if depth > _MAX_DEPTH:
            return REDACTED
        redacted = {
            name: redact_value(name if isinstance(name, str) else None, item, depth + 1)
            for name, item in value.items()
        }
        unchanged = all(redacted[name] is item for name, item in value.items())
        return value if unchanged else redacted
    if isinstance(value, (list, tuple)):
        if depth > _MAX_DEPTH:
            return REDACTED
        items = [redact_value(key, item, depth + 1) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    if isinstance(value, bytes) and key is not None and secret_key(key) and value:
        return REDACTED
    if not isinstance(value, str) or not value or value == REDACTED:
        return value
    if key is not None and secret_key(key) and not _connection_key(key):
        return REDACTED
    return _redact_credentials(value, dsn=key is not None and _connection_key(key))


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a node's ``config`` with its secrets replaced by ``REDACTED``."""
    return {key: redact_value(key, value) for key, value in config.items()}


def redacted_paths(value: Any, where: str) -> Iterator[str]:
    """Where ``value`` (named ``where``) holds ``REDACTED``, as ``where['key'][0]`` paths."""
    if isinstance(value, str):
        if REDACTED in value:
            yield where
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from redacted_paths(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            yield from redacted_paths(item, f"{where}[{position}]")


def _redact_credentials(text: str, *, dsn: bool) -> str:
    if _URL.match(text):
        text = _redact_url(text)
    if dsn:
        text = _DSN_PASSWORD.sub(lambda match: f"{match[1]}{match[2]}{REDACTED}", text)
    return text


def _redact_url(text: str) -> str:
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{REDACTED}@{host}"
    query = parts.query
    if query:
        query = "&".join(
            f"{name}={REDACTED}" if sep and value and secret_key(unquote_plus(name)) else pair
            for pair in query.split("&")
            for name, sep, value in (pair.partition("="),)
        )
    if netloc == parts.netloc and query == parts.query:
        return text
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secret_values(source: Any, key: str | None = None, depth: int = 0) -> set[str]:
    """The secret strings in ``source`` (config or inputs): what ``redact_value`` hides."""
    found: set[str] = set()
    if depth > _MAX_DEPTH:
        return found
    if isinstance(source, Mapping):
        for name, item in source.items():
            found |= secret_values(item, name if isinstance(name, str) else None, depth + 1)
    elif isinstance(source, (list, tuple)):
        for item in source:
            found |= secret_values(item, key, depth + 1)
    elif isinstance(source, str) and source and source != REDACTED:
        redacted = redact_value(key, source)
        if redacted == REDACTED:
            found.add(source)
            # "Bearer <token>", "Basic <credentials>": a message may quote the credential alone.
            found.add(source.rpartition(" ")[2])
        elif redacted != source:
            found |= {part.strip("'\"") for part in _hidden_parts(source, redacted)}
    return found


def _hidden_parts(original: str, redacted: str) -> set[str]:
    """The substrings of ``original`` that became ``REDACTED`` in ``redacted``."""
    pattern = "(.*?)".join(re.escape(piece) for piece in redacted.split(REDACTED))
    match = re.fullmatch(pattern, original, flags=re.DOTALL)
    if match is None:
        return {original}
    return {unquote_plus(part) for part in match.groups() if part} | {
        part for part in match.groups() if part
    }


def scrub_secrets(text: str, *sources: Any) -> str:
    """``text`` with every secret of ``sources`` (node config, inputs) replaced by
    ``REDACTED``, for messages that may quote them (a library's exception)."""
    secrets = set().union(*(secret_values(source) for source in sources))
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SCRUBBED:
            text = text.replace(secret, REDACTED)
    return text


#: ``(parameters, snapshot, redacted)`` of the last run's parameters: a loop usually
#: passes the same object run after run, and while it still equals the snapshot its
#: redacted form is reused (``_FRESH``: seen once, no snapshot taken yet).
_last_redaction: tuple[Any, Any, Any] | None = None
_FRESH = object()


def redacted_parameters(parameters: Any) -> Any:
    """``parameters`` with their secrets replaced (``redact_value``), reusing the last
    answer when the same, unchanged object comes again."""
    global _last_redaction
    last = _last_redaction
    if last is not None and last[0] is parameters and last[1] is not _FRESH:
        try:
            if parameters == last[1]:
                return last[2]
        except (TypeError, ValueError):  # values without a plain == (arrays, frames)
            pass
    redacted = redact_value(None, parameters)
    snapshot: Any = _FRESH
    if last is not None and last[0] is parameters:
        try:
            snapshot = copy.deepcopy(parameters)
        except Exception:  # an uncopyable value only turns the reuse off
            snapshot = _FRESH
    _last_redaction = (parameters, snapshot, redacted)
    return redacted
