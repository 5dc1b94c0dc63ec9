"""JSON text of values that may hold what JSON cannot (results of user code).

Workflow results are usually plain JSON already, so the C encoder gets the first try;
only when it refuses is the value walked in Python (:func:`plain`) and encoded again.
The gateway's responses, event streams, result cache and stored runs all use it, so a
value reads the same everywhere, and encoding never fails::

    json_text({"total": 3.5, "at": datetime(2026, 1, 1)})
    # '{"total": 3.5, "at": "2026-01-01 00:00:00"}'

The one rule for values JSON cannot hold (:func:`plain`):

- ``NaN``, ``Infinity`` and ``-Infinity`` become ``null`` (as JavaScript's
  ``JSON.stringify`` writes them);
- an integer longer than Python writes in decimal by default (4,300 digits,
  ``sys.get_int_max_str_digits()``), which JSON readers such as Python's refuse, becomes
  a string of its decimal digits; above :data:`MAX_INT_DIGITS` digits, a marker string
  ``"<int of N bits>"`` (writing it out would take seconds);
- tuples, sets and frozensets become arrays, and keys become strings;
- any other object becomes its ``str()`` (``"<unprintable TypeName>"`` when that fails);
- nesting deeper than :data:`MAX_PLAIN_DEPTH` levels becomes ``"<nested too deep>"``.
"""

from __future__ import annotations

import decimal
import json
import math
from typing import Any

__all__ = ["MAX_INT_DIGITS", "MAX_PLAIN_DEPTH", "json_text", "plain"]

#: Nesting kept by :func:`plain`; deeper values become a marker string.
MAX_PLAIN_DEPTH = 64
#: Longest integer (in decimal digits) :func:`plain` writes out as a string of digits;
#: decimal conversion takes time quadratic in the length (about 0.2 s at this size).
MAX_INT_DIGITS = 100_000
_MAX_INT_BITS = int(MAX_INT_DIGITS / math.log10(2))
#: Integers below this many bits are always within Python's decimal conversion limit.
_SHORT_INT_BITS = 4_000

# Built once: json.dumps with any option builds a new encoder on every call.
_ENCODE = json.JSONEncoder(allow_nan=False).encode
_ENCODE_COMPACT = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def json_text(value: Any, *, compact: bool = False) -> str:
    """``value`` as JSON text: unchanged when it is plain JSON, else its :func:`plain`
    form. ``compact`` leaves out the spaces after ``,`` and ``:``. Never raises for the
    value's content."""
    encode = _ENCODE_COMPACT if compact else _ENCODE
    try:
        return encode(value)
    except (TypeError, ValueError, RecursionError):
        return encode(plain(value))


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON data, by the module's rule for what JSON cannot hold."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return _integer(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_PLAIN_DEPTH:
        return "<nested too deep>"
    if isinstance(value, dict):
        return {_key(key): plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item, depth + 1) for item in value]
    return _text(value)


def _integer(value: int) -> int | str:
    value = int(value)  # an int subclass may carry its own (failing) repr
    bits = value.bit_length()
    if bits < _SHORT_INT_BITS:
        return value
    try:
        str(value)  # within the interpreter's decimal conversion limit: a JSON number
        return value
    except ValueError:
        pass
    if bits > _MAX_INT_BITS:
        return f"<int of {bits} bits>"
    return str(decimal.Decimal(value))


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        converted = plain(key)  # as JSON writes such keys: "true", "null", "3"
        return converted if isinstance(converted, str) else _ENCODE(converted)
    return _text(key)


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
