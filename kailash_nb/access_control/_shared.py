"""The conditions of one policy, shared between its rules.

Policies repeat themselves: the same department test, the same clearance test, combined
with different thresholds in different rules. A :class:`ConditionTable` is made from
every rule's condition before they are compiled; it counts each condition and
sub-condition by its :func:`spec_key`, so that compiling gives one ``Condition`` per
distinct condition and the compiler knows which sub-conditions occur more than once
(those worth evaluating once per request and remembering, see
``EvaluationContext.memo``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from kailash_nb.access_control._kailash import from_kailash
from kailash_nb.access_control.errors import PolicyError

__all__ = ["ConditionTable", "native", "spec_key"]


def spec_key(value: Any) -> Hashable:
    """A hashable key equal for two condition specs only when they mean the same.

    Mappings compare whatever their key order; every plain value carries its type (so
    ``1``, ``1.0`` and ``True``, or a list and a tuple, never share a key); a value that
    cannot be hashed is only ever equal to itself.

    Raises:
        PolicyError: the spec contains itself.
    """
    return _key(value, set())


def _key(value: Any, enclosing: set[int]) -> Hashable:
    if isinstance(value, (Mapping, list, tuple)):
        if id(value) in enclosing:
            raise PolicyError("a condition contains itself")
        enclosing.add(id(value))
        if isinstance(value, Mapping):
            items = [(_key(key, enclosing), _key(item, enclosing)) for key, item in value.items()]
            key: Hashable = ("map", tuple(sorted(items, key=repr)))
        else:
            key = (type(value), tuple(_key(item, enclosing) for item in value))
        enclosing.discard(id(value))
        return key
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))
    return (type(value), value)


class ConditionTable:
    """Compiled conditions by :func:`spec_key`, and which of them occur more than once.

    Args:
        specs: every rule's condition (anything else is skipped: the compiler reports
            what is wrong with it).
    """

    def __init__(self, specs: Iterable[Any] = ()) -> None:
        self.compiled: dict[Hashable, Any] = {}
        counts: Counter[Hashable] = Counter()
        for spec in specs:
            _count(spec, counts)
        self._repeated = frozenset(key for key, count in counts.items() if count > 1)

    def repeated(self, key: Hashable) -> bool:
        """Whether the condition with ``key`` occurs more than once in the policy."""
        return key in self._repeated


def native(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """``spec`` in this package's form (a Kailash ``{"type": ...}`` dict translated)."""
    return from_kailash(spec) if "type" in spec else spec


def _count(spec: Any, counts: Counter[Hashable]) -> None:
    if not isinstance(spec, Mapping) or not spec:
        return
    try:
        spec = native(spec)
        key = spec_key(spec)
    except PolicyError:  # compiling the rule says what is wrong, naming the rule
        return
    counts[key] += 1
    for name in ("all", "any"):
        parts = spec.get(name)
        if isinstance(parts, list):
            for part in parts:
                _count(part, counts)
    if "not" in spec:
        _count(spec["not"], counts)
