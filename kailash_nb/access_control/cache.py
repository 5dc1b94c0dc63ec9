"""The decision cache, and how long a change takes to show through it.

An entry is keyed by the caller's tenant, user id, role set, attributes digest, email
and permissions (``UserContext.cache_key``), the policy version, the action and the
resource (with its tenant and attributes digest). So:

- a cached decision of tenant A never answers for tenant B, nor for the same user with
  other roles or attributes;
- a revoked role stops working at the caller's next request that no longer carries it
  (the role set is in the key); a change of the policy (a rule added, removed or
  reloaded, role inheritance changed) makes a new version, which misses every entry;
- a rule stops matching at its ``expires_at``: an entry lives at most until the first
  expiry in the policy;
- nothing lives longer than ``ttl`` seconds (default 60 s): the bound for any change
  the key does not see.

A decision that read per-request data (``environment.*``, ``user.session_id``,
``user.ip_address``: time windows, address ranges) is never cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from kailash_nb.access_control.model import AccessDecision

__all__ = ["DEFAULT_CACHE_SIZE", "DEFAULT_CACHE_TTL", "DecisionCache"]

#: Seconds a cached decision lives at most.
DEFAULT_CACHE_TTL = 60.0
#: Entries kept at most; the least recently used goes first.
DEFAULT_CACHE_SIZE = 10_000


class DecisionCache:
    """A bounded, thread-safe LRU of decisions, each valid until a deadline.

    Args:
        max_entries: entries kept at most (0 turns caching off).
        ttl: seconds an entry lives at most.
    """

    def __init__(self, max_entries: int = DEFAULT_CACHE_SIZE, ttl: float = DEFAULT_CACHE_TTL):
        if max_entries < 0 or ttl < 0:
            raise ValueError("the decision cache's max_entries and ttl are >= 0")
        self.max_entries = max_entries
        self.ttl = ttl
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[AccessDecision, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, now: float) -> AccessDecision | None:
        """The decision cached under ``key`` and still valid at ``now``, or ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if now < entry[1]:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry[0]
                del self._entries[key]
            self.misses += 1
            return None

    def put(self, key: Hashable, decision: AccessDecision, valid_until: float) -> None:
        """Cache ``decision`` under ``key`` until ``valid_until`` (at most ``ttl``)."""
        if self.max_entries == 0:
            return
        with self._lock:
            self._entries[key] = (decision, valid_until)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
