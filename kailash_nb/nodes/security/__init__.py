"""The security nodes: second factors, threat detection, compliance checks and personal
data inside a workflow, over the store the gateway writes (users, TOTP enrolments, login
throttle, authentication events and the hash-chained audit trail).

- :class:`MultiFactorAuthNode` (``mfa``): TOTP setup, single-use verification, disable,
  status.
- :class:`ComplianceMonitorNode` (``compliance``): SOC 2-style control checks (admins
  without MFA, audit-trail integrity, access outside policy, stale keys).
- :class:`ThreatDetectionNode` (``threats``): brute force, credential stuffing, a new
  address at an unusual hour and token replay over a window of auth events; optionally
  blocks through the gateway's sign-in lockout.
- :class:`GDPRComplianceNode` (``gdpr``): detect, anonymise and check personal data;
  export and erase one data subject's data in the store.

Importing this package registers the nodes; ``workflow.add_node("MultiFactorAuthNode",
"mfa", {})`` imports it on first use.
"""

from __future__ import annotations

from kailash_nb.nodes.security.compliance import ComplianceMonitorNode
from kailash_nb.nodes.security.gdpr import GDPRComplianceNode, SubjectErasureError
from kailash_nb.nodes.security.mfa import MultiFactorAuthNode
from kailash_nb.nodes.security.threats import ThreatDetectionNode

__all__ = [
    "ComplianceMonitorNode",
    "GDPRComplianceNode",
    "MultiFactorAuthNode",
    "SubjectErasureError",
    "ThreatDetectionNode",
]
