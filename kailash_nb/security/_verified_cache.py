"""Access tokens verified moments ago, so a client's next request skips the signature.

A gateway sees the same access token on every request of a client. Verifying it again
(base64 decoding, HMAC or RSA signature, claim checks) is most of what authentication
costs per request, so ``TokenService.verify_access`` remembers what it verified for a
short time. Entries are keyed by the SHA-256 of the token (bearer tokens are not kept in
memory as dictionary keys) and live at most ``reuse_seconds`` (1 s, the revocation
propagation bound) and never past the token's ``exp``: a key retired or a token expired
is noticed within that bound, exactly as a revocation by another process is. Revocation
itself is still checked on every hit by the caller.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

from kailash_nb.security.claims import Claims

__all__ = ["VerifiedTokenCache"]


class VerifiedTokenCache:
    """Bounded map from token digest to the token's verified claims.

    Args:
        reuse_seconds: how long a verification is reused; ``0`` disables the cache.
        capacity: entries kept; at capacity the oldest entry is dropped (memory stays
            bounded under any number of distinct tokens, LOAD-05).
        clock: seconds since the epoch (the token service's clock).
    """

    def __init__(
        self,
        reuse_seconds: float,
        *,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reuse_seconds = reuse_seconds
        self.capacity = capacity
        self._clock = clock
        self._entries: dict[bytes, tuple[Claims, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Claims | None:
        """The claims verified for ``token`` if that verification may still be reused."""
        if self.reuse_seconds <= 0:
            return None
        digest = _digest(token)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        claims, valid_until = entry
        if self._clock() < valid_until:
            return claims
        with self._lock:
            self._entries.pop(digest, None)
        return None

    def put(self, token: str, claims: Claims) -> None:
        """Remember that ``token`` verified to ``claims`` (until ``exp`` at the latest)."""
        if self.reuse_seconds <= 0:
            return
        valid_until = min(float(claims.exp), self._clock() + self.reuse_seconds)
        digest = _digest(token)
        with self._lock:
            if digest not in self._entries and len(self._entries) >= self.capacity:
                self._entries.pop(next(iter(self._entries)))
            self._entries[digest] = (claims, valid_until)

    def clear(self) -> None:
        """Forget every verification (after a key change)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
