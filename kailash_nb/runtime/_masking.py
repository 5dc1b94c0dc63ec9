"""What a caller may see of a node's outputs: fields masked, or the whole output withheld.

The engine's own copy of the outputs is never changed (downstream nodes get what the
node produced); the caller gets a redacted copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kailash_nb.redaction import REDACTED

__all__ = ["ACCESS_DENIED", "masked_outputs"]

#: What a node's whole output becomes for a caller who may not read it (Kailash's marker).
ACCESS_DENIED = {"_access_denied": True}


def masked_outputs(outputs: Any, fields: Iterable[str]) -> Any:
    """A copy of ``outputs`` with each of ``fields`` replaced by ``REDACTED``.

    A dotted field (``result.ssn``) is a path from the output's top; a plain name
    (``ssn``) is that key wherever it occurs (nested dicts, lists and tuples of records
    included). ``"*"`` withholds the whole output (``ACCESS_DENIED``).
    """
    fields = tuple(fields)
    if "*" in fields:
        return dict(ACCESS_DENIED)
    names = frozenset(field for field in fields if "." not in field)
    if names:
        outputs = _without_names(outputs, names)
    for field in fields:
        if "." in field:
            outputs = _without_path(outputs, field.split("."))
    return outputs


def _without_names(value: Any, names: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if key in names else _without_names(item, names)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_without_names(item, names) for item in value)
    return value


def _without_path(value: Any, path: list[str]) -> Any:
    if not isinstance(value, dict) or path[0] not in value:
        return value
    head, rest = path[0], path[1:]
    copy = dict(value)
    copy[head] = REDACTED if not rest else _without_path(value[head], rest)
    return copy
