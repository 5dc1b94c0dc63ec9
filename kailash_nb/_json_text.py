"""JSON text of values that may hold what JSON cannot (results of user code).

Workflow results are usually plain JSON already, so the C encoder gets the first try;
only when it refuses (a set, a ``datetime``, a non-finite float, a non-string key,
nesting deeper than the interpreter allows) is the value walked in Python
(:func:`plain`) and encoded again. The gateway's responses, event streams, result
cache and stored runs all use it, so a value reads the same everywhere::

    json_text({"total": 3.5, "at": datetime(2026, 1, 1)})
    # '{"total": 3.5, "at": "2026-01-01 00:00:00"}'
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["MAX_PLAIN_DEPTH", "json_text", "plain"]

#: Nesting kept by :func:`plain`; deeper values become a marker string.
MAX_PLAIN_DEPTH = 64

# Built once: json.dumps with any option builds a new encoder on every call.
_ENCODE = json.JSONEncoder(allow_nan=False).encode
_ENCODE_COMPACT = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def json_text(value: Any, *, compact: bool = False) -> str:
    """``value`` as JSON text: unchanged when it is plain JSON, else its :func:`plain`
    form. ``compact`` leaves out the spaces after ``,`` and ``:``."""
    encode = _ENCODE_COMPACT if compact else _ENCODE
    try:
        return encode(value)
    except (TypeError, ValueError, RecursionError):
        return encode(plain(value))


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON data: non-finite floats become ``None``, unknown objects
    their ``str``, keys strings, sets and tuples lists, nesting beyond
    :data:`MAX_PLAIN_DEPTH` levels a marker string."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_PLAIN_DEPTH:
        return "<nested too deep>"
    if isinstance(value, dict):
        return {str(key): plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item, depth + 1) for item in value]
    return str(value)
