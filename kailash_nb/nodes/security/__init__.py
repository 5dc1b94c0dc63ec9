"""The security nodes. Importing this package registers them.

- :class:`GDPRComplianceNode` (``gdpr``): detect, anonymise and check personal data.
"""

from __future__ import annotations

# -- GDPR (kailash_nb.nodes.security.gdpr) ------------------------------------------
from kailash_nb.nodes.security.gdpr import GDPRComplianceNode

__all__ = ["GDPRComplianceNode"]
