"""The ids a log record picks up from where it was logged: run, request, tenant, user."""

from __future__ import annotations

import contextlib
import contextvars
import types
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["CONTEXT_FIELDS", "context_fields", "log_context"]

#: The ids :func:`log_context` sets and every record of an ``EnterpriseLogger`` carries.
CONTEXT_FIELDS = ("run_id", "request_id", "tenant_id", "user_id")

# Never mutated: log_context sets a new mapping.
_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "kailash_nb_log_context", default=types.MappingProxyType({})
)


@contextlib.contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Within the block (and tasks started in it), records carry these ids::

        with log_context(run_id=run_id, request_id=request_id):
            logger.info("run started")   # {"run_id": ..., "request_id": ..., ...}

    Raises:
        TypeError: a name other than ``run_id``, ``request_id``, ``tenant_id``, ``user_id``.
    """
    unknown = sorted(set(ids) - set(CONTEXT_FIELDS))
    if unknown:
        raise TypeError(f"log_context() takes {', '.join(CONTEXT_FIELDS)}; got {unknown}")
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def context_fields() -> dict[str, Any]:
    """The ids set by the enclosing :func:`log_context` blocks."""
    return dict(_CONTEXT.get())
