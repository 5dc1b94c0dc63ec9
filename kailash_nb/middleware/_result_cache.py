"""Results of synchronous workflow runs, kept for ``cache_ttl`` seconds.

With ``create_gateway(cache_enabled=True, cache_ttl=300)`` a successful
``POST /workflows/{name}/execute`` (waiting, no ``session_id``) is remembered under
``(tenant, workflow name, canonical JSON of the parameters)``; the same request from the
same tenant within the TTL is answered from memory without running, with
``X-Cache: hit``, the original ``run_id`` and ``"cached": true``. Tenants never share
entries (the tenant is part of the key). Workflows registered with ``cache=False``,
``?wait=false`` runs and runs in a session are never cached.

Memory is bounded whatever the traffic (LOAD-05): at most ``max_entries`` entries and
``max_bytes`` of result JSON, least recently used evicted first; keys are SHA-256
digests, and a result whose JSON exceeds ``max_entry_bytes`` is not kept. The cache
lives in one process and is touched only from the gateway's event loop.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

from kailash_nb._json_text import json_text
from kailash_nb.middleware.execution import RunEntry

__all__ = ["CacheLookup", "CachedResult", "ResultCache", "check_ttl"]


class CachedResult(NamedTuple):
    """A remembered successful run: its id, its results as JSON text, when it expires."""

    run_id: str
    results_json: str
    expires_at: float


class ResultCache:
    """Bounded LRU of run results with a time to live.

    Args:
        ttl: seconds an entry is served after the run finished.
        max_entries: entries kept at most.
        max_bytes: result JSON kept at most, in characters, over all entries.
        max_entry_bytes: a larger result is not kept.
        clock: monotonic seconds (tests pass their own).

    Raises:
        ValueError: a ``ttl`` that is not a positive finite number.
    """

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_entry_bytes: int = 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = check_ttl(ttl)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._clock = clock
        self._entries: OrderedDict[bytes, CachedResult] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(tenant_id: str, workflow: str, parameters: Any) -> bytes:
        """The digest naming one tenant's run of ``workflow`` with ``parameters``."""
        canonical = json.dumps(
            [tenant_id, workflow, parameters],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes) -> CachedResult | None:
        """The live entry under ``key`` (marked recently used), else ``None``."""
        found = self._entries.get(key)
        if found is None:
            return None
        if found.expires_at <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return found

    def put(self, key: bytes, run_id: str, results: Any) -> bool:
        """Remember ``results`` of run ``run_id``; ``False`` when too large to keep."""
        text = json_text(results)
        if len(text) > self.max_entry_bytes:
            return False
        self._drop(key)
        self._entries[key] = CachedResult(run_id, text, self._clock() + self.ttl)
        self.bytes += len(text)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return True

    def _drop(self, key: bytes) -> None:
        gone = self._entries.pop(key, None)
        if gone is not None:
            self.bytes -= len(gone.results_json)


class CacheLookup:
    """One execute request's use of the cache: ``answered`` when a hit was written;
    otherwise :meth:`store` keeps the run's results once it completed."""

    def __init__(self, cache: ResultCache | None, key: bytes | None, answered: bool) -> None:
        self._cache = cache
        self._key = key
        self.answered = answered

    def store(self, entry: RunEntry) -> None:
        """Keep a completed run's results (no-op when the cache does not apply)."""
        if self._cache is not None and self._key is not None:
            self._cache.put(self._key, entry.run_id, entry.results)


def check_ttl(ttl: object) -> float:
    """``ttl`` as seconds.

    Raises:
        ValueError: not an int or float, not finite, or not above 0.
    """
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or ttl <= 0
    ):
        raise ValueError(f"cache_ttl must be a number of seconds above 0, got {ttl!r}")
    return float(ttl)
