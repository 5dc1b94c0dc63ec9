"""The notebook's output cache: reuse a node's outputs while nothing it depends on changed.

A node's cache key chains three things: the fingerprint of its own definition, the
runtime parameters it receives, and the keys of the nodes feeding it (with the
output and input names of each connection). Editing a node therefore changes its
key and the keys of everything downstream, and nothing else::

    keys = chain_keys(own={"load": "a1", "total": "b2"},
                      incoming={"total": [("rows", "load", "result")]})
    cache.store("load", keys["load"], {"result": [1, 2]})
    cache.lookup("load", keys["load"])     # {"result": [1, 2]}

Keys do not cover output values: a node that reads a changing file or a random
source looks unchanged; ``invalidate`` it (the session also drops its downstream).

Outputs are kept by reference, with a digest of their content taken when the node
completed (``content_digest``, before any node downstream could see them). A node
that mutates its inputs in place, or a cell that changes a result, changes the cached
object; ``lookup`` digests it again and, when it differs, drops the entry, so the node
runs again instead of handing on changed data. Outputs that cannot be digested
(unpicklable objects) are never reused. See "Cached outputs and in-place changes" in
docs/workflows.md for why digests rather than copies, and what they cost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from graphlib import CycleError
from typing import Any

from kailash_nb.notebook.fingerprint import combine, content_digest

__all__ = ["CacheEntry", "OutputCache", "chain_keys"]

#: ``(input name, source node, source output)`` for one connection into a node.
Incoming = tuple[str, str, str]


def chain_keys(
    own: Mapping[str, str], incoming: Mapping[str, Sequence[Incoming]]
) -> dict[str, str]:
    """Each node's key: its ``own`` digest chained with the keys of its sources.

    ``incoming`` lists the connections into each node; sources missing from ``own``
    are ignored. The connections must not form a cycle.
    """
    keys: dict[str, str] = {}
    for node_id in _sources_first(own, incoming):
        feeds = sorted(
            (name, source, output, keys[source])
            for name, source, output in incoming.get(node_id, ())
            if source in keys
        )
        keys[node_id] = combine(own[node_id], *("|".join(feed) for feed in feeds))
    return keys


def _sources_first(own: Mapping[str, str], incoming: Mapping[str, Sequence[Incoming]]) -> list[str]:
    """The nodes of ``own``, each after its sources (a depth-first walk: cheaper than
    ``graphlib`` for the long chains notebooks make).

    Raises:
        graphlib.CycleError: the connections form a cycle.
    """
    order: list[str] = []
    state: dict[str, bool] = {}  # False while being visited, True when placed
    for start in own:
        if start in state:
            continue
        stack = [(start, iter(incoming.get(start, ())))]
        state[start] = False
        while stack:
            node_id, sources = stack[-1]
            for _, source, _ in sources:
                if source not in own:
                    continue
                seen = state.get(source)
                if seen is None:
                    state[source] = False
                    stack.append((source, iter(incoming.get(source, ()))))
                    break
                if seen is False:
                    raise CycleError("nodes are in a cycle", [source, node_id])
            else:
                stack.pop()
                state[node_id] = True
                order.append(node_id)
    return order


#: ``store``'s default: digest the outputs when they are stored.
_DIGEST_NOW: Any = object()


@dataclass(frozen=True)
class CacheEntry:
    """The outputs a node produced, the key it had when it produced them, and the
    digest of their content then (``None``: they cannot be digested)."""

    key: str
    outputs: dict[str, Any]
    digest: str | None = None


class OutputCache:
    """The latest successful outputs of each node, keyed by node id (thread-safe)."""

    def __init__(self) -> None:
        self._entries: dict[str, CacheEntry] = {}
        self._lock = threading.Lock()

    def lookup(self, node_id: str, key: str) -> dict[str, Any] | None:
        """The outputs stored for ``node_id`` if they were produced under ``key`` and
        are unchanged since; changed outputs are dropped (``None``)."""
        entry = self._entries.get(node_id)
        if entry is None or entry.key != key or entry.digest is None:
            return None
        if content_digest(entry.outputs) != entry.digest:
            with self._lock:
                if self._entries.get(node_id) is entry:
                    del self._entries[node_id]
            return None
        return entry.outputs

    def store(
        self, node_id: str, key: str, outputs: dict[str, Any], digest: Any = _DIGEST_NOW
    ) -> None:
        """Remember ``outputs`` of ``node_id`` under ``key``, replacing older ones.

        ``digest`` is ``content_digest(outputs)`` taken when the node completed
        (``None`` when they could not be digested); by default it is taken now.
        """
        if digest is _DIGEST_NOW:
            digest = content_digest(outputs)
        with self._lock:
            self._entries[node_id] = CacheEntry(key, outputs, digest)

    def invalidate(self, node_ids: Iterable[str] | None = None) -> None:
        """Forget the given nodes' outputs, or every node's with ``None``."""
        with self._lock:
            if node_ids is None:
                self._entries.clear()
                return
            for node_id in node_ids:
                self._entries.pop(node_id, None)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)
