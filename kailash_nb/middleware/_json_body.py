"""Strict JSON request bodies (GW-04..GW-09).

``parse_json_body`` refuses what a lenient parser would accept and a second parser might
read differently: invalid UTF-8, ``NaN``/``Infinity``, huge numbers, duplicate keys, too
deep nesting and too many keys. Each refusal is a :class:`ProblemError` (400) with a
stable code::

    payload = parse_json_body(request.body)   # dict, or ProblemError(400, ...)
"""

from __future__ import annotations

import contextvars
import json
from typing import Any

from kailash_nb.middleware._problems import ProblemError

__all__ = ["MAX_DEPTH", "MAX_KEYS", "MAX_NUMBER_CHARS", "parse_json_body"]

#: Deepest nesting of arrays/objects accepted.
MAX_DEPTH = 64
#: Most object keys accepted in one body, all objects together.
MAX_KEYS = 10_000
#: Longest number literal accepted (digits, sign, exponent).
MAX_NUMBER_CHARS = 100


def _bad(code: str, detail: str) -> ProblemError:
    return ProblemError(400, code, detail)


def _check_depth(text: str) -> None:
    # Counted on the text before parsing, so a 100 000-deep array never reaches the
    # recursive parser (no RecursionError path at all).
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # cannot nest deeper than that (brackets in strings only over-count)
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _bad("json_too_deep", f"JSON nesting is deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1


class _Limits:
    def __init__(self) -> None:
        self.keys = 0

    def pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        self.keys += len(pairs)
        if self.keys > MAX_KEYS:
            raise _bad("json_too_many_keys", f"the body has more than {MAX_KEYS} object keys")
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise _bad("json_duplicate_key", f"duplicate object key {key[:64]!r}")
            result[key] = value
        return result


def _constant(name: str) -> Any:
    raise _bad("json_invalid_number", f"{name} is not valid JSON; send a finite number")


def _number(kind: type) -> Any:
    def parse(literal: str) -> Any:
        if len(literal) > MAX_NUMBER_CHARS:
            raise _bad(
                "json_invalid_number", f"a number is longer than {MAX_NUMBER_CHARS} characters"
            )
        value = kind(literal)
        if kind is float and value in (float("inf"), float("-inf")):
            raise _bad("json_invalid_number", f"the number {literal[:32]} is out of range")
        return value

    return parse


# One decoder for every body (building one per call costs a scanner each time); the
# per-body key count lives in a context variable.
_LIMITS: contextvars.ContextVar[_Limits] = contextvars.ContextVar("kailash_nb_json_limits")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return _LIMITS.get().pairs(pairs)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs,
    parse_constant=_constant,
    parse_int=_number(int),
    parse_float=_number(float),
)


def parse_json_body(body: bytes) -> Any:
    """Decode and parse a JSON body under the limits above.

    Raises:
        ProblemError: 400 with code ``json_invalid_utf8``, ``json_invalid``,
            ``json_too_deep``, ``json_too_many_keys``, ``json_duplicate_key`` or
            ``json_invalid_number``.
    """
    try:
        text = body.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _bad("json_invalid_utf8", "the body is not valid UTF-8") from None
    _check_depth(text)
    limits = _LIMITS.set(_Limits())
    try:
        if text.startswith("\ufeff"):  # as json.loads does
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except ProblemError:
        raise
    except (ValueError, RecursionError) as exc:
        raise _bad("json_invalid", f"the body is not valid JSON ({_position(exc)})") from None
    finally:
        _LIMITS.reset(limits)
    _check_strings(value, 0)
    return value


def _position(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "unparseable"


def _check_strings(value: Any, depth: int) -> None:
    # Lone surrogates ("\ud800") parse but cannot be encoded again (GW-08).
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, depth + 1)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad("json_invalid_utf8", "a string holds a lone surrogate escape") from None
