"""Query parameters, parsed exactly as the OpenAPI document describes them.

Integers are ASCII digits only (no sign, spaces, or other scripts' digits such as
``³`` or ``٣``, which ``str.isdigit``/``int()`` would take); booleans are exactly
``true`` or ``false``. A declared parameter given twice is refused; parameters the
operation does not declare are ignored (the document says so)::

    LIMIT = IntegerQuery("limit", "at most this many sessions", 1, 1000, default=100)
    LIMIT.parse([b"50"])      # 50
    LIMIT.parse([b"%C2%B3"])  # ProblemError(400, "invalid_query", ...)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kailash_nb.middleware._problems import ProblemError

__all__ = ["BooleanQuery", "IntegerQuery", "QueryParameter", "parse_query"]

_DIGITS = re.compile(rb"[0-9]{1,18}")


def _invalid(name: str, expected: str) -> ProblemError:
    detail = f"query parameter {name} must be {expected}"
    return ProblemError(400, "invalid_query", detail, extra={"parameter": name})


@dataclass(frozen=True)
class IntegerQuery:
    """An integer query parameter from ``minimum`` to ``maximum``, ``default`` when absent."""

    name: str
    description: str
    minimum: int
    maximum: int
    default: int

    def parse(self, raw: bytes) -> int:
        """The value of ``raw`` (the undecoded query value).

        Raises:
            ProblemError: 400 ``invalid_query``: not ASCII digits, or out of range.
        """
        if _DIGITS.fullmatch(raw) is None or not self.minimum <= int(raw) <= self.maximum:
            raise _invalid(self.name, f"an integer from {self.minimum} to {self.maximum}")
        return int(raw)

    def schema(self) -> dict[str, Any]:
        """The parameter's JSON Schema."""
        return {
            "type": "integer",
            "minimum": self.minimum,
            "maximum": self.maximum,
            "default": self.default,
        }


@dataclass(frozen=True)
class BooleanQuery:
    """A boolean query parameter: exactly ``true`` or ``false``."""

    name: str
    description: str
    default: bool

    def parse(self, raw: bytes) -> bool:
        """``True`` for ``true``, ``False`` for ``false``.

        Raises:
            ProblemError: 400 ``invalid_query`` for anything else.
        """
        if raw == b"true":
            return True
        if raw == b"false":
            return False
        raise _invalid(self.name, "true or false")

    def schema(self) -> dict[str, Any]:
        """The parameter's JSON Schema."""
        return {"type": "boolean", "default": self.default}


QueryParameter = IntegerQuery | BooleanQuery


def parse_query(
    declared: Sequence[QueryParameter], arguments: Mapping[str, list[bytes]]
) -> dict[str, Any]:
    """The values of the ``declared`` parameters in ``arguments`` (Tornado's
    ``request.query_arguments``: percent-decoded bytes), defaults for absent ones.

    Raises:
        ProblemError: 400 ``invalid_query`` for a value that does not parse or a
            parameter given more than once.
    """
    values: dict[str, Any] = {}
    for parameter in declared:
        given = arguments.get(parameter.name)
        if not given:
            values[parameter.name] = parameter.default
        elif len(given) > 1:
            raise ProblemError(
                400,
                "invalid_query",
                f"query parameter {parameter.name} is given {len(given)} times; give it once",
                extra={"parameter": parameter.name},
            )
        else:
            values[parameter.name] = parameter.parse(given[0])
    return values
