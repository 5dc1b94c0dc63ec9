"""The ids a log record picks up from where it was logged: run, request, tenant, user.

They live in a context variable, so they follow the code that set them into the tasks
it starts, the worker threads ``anyio.to_thread`` and ``asyncio.to_thread`` run it in,
and nowhere else. The engine sets ``run_id`` for the length of each run, the gateway
``request_id``, ``tenant_id`` and ``user_id`` for the length of each request.
"""

from __future__ import annotations

import contextlib
import contextvars
import types
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "CONTEXT_FIELDS",
    "context_fields",
    "log_context",
    "reset_log_context",
    "set_log_context",
]

#: The ids :func:`log_context` sets and every record of an ``EnterpriseLogger`` carries.
CONTEXT_FIELDS = ("run_id", "request_id", "tenant_id", "user_id")
_FIELDS = frozenset(CONTEXT_FIELDS)

# Never mutated: set_log_context sets a new mapping.
_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "kailash_nb_log_context", default=types.MappingProxyType({})
)


def set_log_context(**ids: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Set ids for the rest of the current context; ``None`` values are left out.

    For code that cannot wrap its work in a ``with`` block (a request handler whose
    ``prepare`` runs in the request's own task) or that runs on a hot path; anything
    else uses :func:`log_context`. Undo with :func:`reset_log_context` in the same
    context::

        token = set_log_context(run_id=run_id)
        try:
            ...
        finally:
            reset_log_context(token)

    Raises:
        TypeError: a name other than ``run_id``, ``request_id``, ``tenant_id``, ``user_id``.
    """
    if not ids.keys() <= _FIELDS:
        unknown = sorted(ids.keys() - _FIELDS)
        raise TypeError(f"log_context() takes {', '.join(CONTEXT_FIELDS)}; got {unknown}")
    if None in ids.values():
        ids = {key: value for key, value in ids.items() if value is not None}
    current = _CONTEXT.get()
    # ``ids`` is this call's own dict, never mutated afterwards: it can be the mapping.
    return _CONTEXT.set({**current, **ids} if current else ids)


def reset_log_context(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Restore the ids in force before the :func:`set_log_context` that returned ``token``.

    Raises:
        ValueError: ``token`` was made in another context (another task or thread).
        RuntimeError: ``token`` was used already.
    """
    _CONTEXT.reset(token)


@contextlib.contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Within the block (and tasks started in it), records carry these ids::

        with log_context(run_id=run_id, request_id=request_id):
            logger.info("run started")   # {"run_id": ..., "request_id": ..., ...}

    Raises:
        TypeError: a name other than ``run_id``, ``request_id``, ``tenant_id``, ``user_id``.
    """
    token = set_log_context(**ids)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def context_fields() -> dict[str, Any]:
    """The ids set by the enclosing :func:`log_context` blocks."""
    return dict(_CONTEXT.get())
