"""The security nodes: second factors, threat detection and compliance checks inside a
workflow, over the store the gateway writes (users, TOTP enrolments, login throttle,
authentication events and the hash-chained audit trail).

- :class:`MultiFactorAuthNode` (``mfa``): TOTP setup, single-use verification, disable,
  status.
- :class:`ComplianceMonitorNode` (``compliance``): SOC 2-style control checks (admins
  without MFA, audit-trail integrity, access outside policy, stale keys).

Importing this package registers the nodes; ``workflow.add_node("MultiFactorAuthNode",
"mfa", {})`` imports it on first use.
"""

from __future__ import annotations

from kailash_nb.nodes.security.compliance import ComplianceMonitorNode
from kailash_nb.nodes.security.mfa import MultiFactorAuthNode

__all__ = ["ComplianceMonitorNode", "MultiFactorAuthNode"]
