"""Structured logging for enterprise deployments: :class:`EnterpriseLogger`.

Built on the standard :mod:`logging` module (which ``import logging`` inside kailash_nb
still means: every import here is absolute). See :mod:`kailash_nb.logging.enterprise`
for the record layout and :mod:`kailash_nb.logging.compliance` for the hash-chained
compliance stream.

The logger and the compliance stream load on first use, so the engine and the gateway,
which set the ids of :func:`log_context` on every run and request, import only the
context variable.
"""

from __future__ import annotations

import importlib
from typing import Any

from kailash_nb.logging._context import (
    CONTEXT_FIELDS,
    context_fields,
    log_context,
    reset_log_context,
    set_log_context,
)

__all__ = [
    "CONTEXT_FIELDS",
    "GENESIS_HASH",
    "ComplianceChain",
    "ComplianceChainError",
    "ComplianceVerifyResult",
    "EnterpriseLogger",
    "context_fields",
    "log_context",
    "reset_log_context",
    "set_log_context",
    "verify_compliance_log",
]

_MODULES = {
    "GENESIS_HASH": "kailash_nb.logging.compliance",
    "ComplianceChain": "kailash_nb.logging.compliance",
    "ComplianceChainError": "kailash_nb.logging.compliance",
    "ComplianceVerifyResult": "kailash_nb.logging.compliance",
    "verify_compliance_log": "kailash_nb.logging.compliance",
    "EnterpriseLogger": "kailash_nb.logging.enterprise",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'kailash_nb.logging' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    # The public names only: what the module holds and what __getattr__ serves.
    return sorted(__all__)
