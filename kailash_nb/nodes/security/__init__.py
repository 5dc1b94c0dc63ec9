"""The security nodes: second factors, threat detection and compliance checks inside a
workflow, over the store the gateway writes (users, TOTP enrolments, login throttle,
authentication events and the hash-chained audit trail).

- :class:`MultiFactorAuthNode` (``mfa``): TOTP setup, single-use verification, disable,
  status.

Importing this package registers the nodes; ``workflow.add_node("MultiFactorAuthNode",
"mfa", {})`` imports it on first use.
"""

from __future__ import annotations

from kailash_nb.nodes.security.mfa import MultiFactorAuthNode

__all__ = ["MultiFactorAuthNode"]
