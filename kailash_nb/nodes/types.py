"""Coercion of parameter values against declared types, with cached validators."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import TypeAdapter, ValidationError

__all__ = ["coerce", "is_any_type", "type_name"]

_ADAPTERS: dict[Any, TypeAdapter] = {}
_ANY_TYPES = (Any, object, None)


def is_any_type(declared: Any) -> bool:
    """True when ``declared`` accepts every value, so coercion can be skipped."""
    return declared in _ANY_TYPES


def type_name(declared: Any) -> str:
    """A short readable name for a declared type (``int``, ``list[str]``)."""
    if isinstance(declared, type) and typing.get_origin(declared) is None:
        return declared.__name__
    return str(declared).replace("typing.", "")


def coerce(declared: Any, value: Any, *, reveal: bool = True) -> Any:
    """Return ``value`` converted to ``declared``; raise ``ValueError`` if impossible.

    With ``reveal=False`` the error message leaves the value out (for secrets).

    Values that already have the declared plain class pass through untouched (this is
    the hot path); everything else goes through pydantic's lax validation, which turns
    ``"4"`` into ``4`` and refuses ``"abc"`` for ``int``.
    """
    if declared.__class__ is type and value.__class__ is declared:
        return value
    adapter = _ADAPTERS.get(declared)
    if adapter is None:
        adapter = _ADAPTERS[declared] = TypeAdapter(declared)
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        if not reveal:
            raise ValueError(
                f"expected {type_name(declared)}, got {type(value).__name__} (value hidden)"
            ) from None
        reasons = "; ".join(error["msg"] for error in exc.errors())
        raise ValueError(
            f"expected {type_name(declared)}, got {type(value).__name__} {_short(value)}: {reasons}"
        ) from None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
