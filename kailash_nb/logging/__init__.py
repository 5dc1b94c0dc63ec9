"""Structured logging for enterprise deployments: :class:`EnterpriseLogger`.

Built on the standard :mod:`logging` module (which ``import logging`` inside kailash_nb
still means: every import here is absolute). See :mod:`kailash_nb.logging.enterprise`
for the record layout and :mod:`kailash_nb.logging.compliance` for the hash-chained
compliance stream.
"""

from __future__ import annotations

from kailash_nb.logging._context import CONTEXT_FIELDS, context_fields, log_context
from kailash_nb.logging.compliance import (
    GENESIS_HASH,
    ComplianceChain,
    ComplianceChainError,
    ComplianceVerifyResult,
    verify_compliance_log,
)
from kailash_nb.logging.enterprise import EnterpriseLogger

__all__ = [
    "CONTEXT_FIELDS",
    "GENESIS_HASH",
    "ComplianceChain",
    "ComplianceChainError",
    "ComplianceVerifyResult",
    "EnterpriseLogger",
    "context_fields",
    "log_context",
    "verify_compliance_log",
]
