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

from kailash_nb._lazy_exports import lazy_exports
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


__getattr__, __dir__ = lazy_exports(__name__, _MODULES, __all__)
