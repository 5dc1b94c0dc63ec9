"""What a caller may see of a node's outputs: fields masked, or the whole output withheld.

The engine's own copy of the outputs is never changed (downstream nodes get what the
node produced); the caller gets a redacted copy. Masking sees through records: a
pydantic model or a dataclass in a masked output becomes a plain dict (as it would in
JSON) with the field masked. A value masking cannot look inside (any other object,
whose text could hold the field) is redacted whole: what cannot be checked is not shown.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import uuid
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

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


#: Values without fields: shown as they are.
_SCALARS = (
    str,
    int,
    float,
    bytes,
    type(None),
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    uuid.UUID,
)


def _record(value: Any) -> Any:
    """A pydantic model or dataclass instance as the dict of its fields; else ``value``."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _without_names(value: Any, names: frozenset[str]) -> Any:
    value = _record(value)
    if isinstance(value, dict):
        return {
            key: REDACTED if key in names else _without_names(item, names)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_without_names(item, names) for item in value]
        return tuple(items) if type(value) is tuple else items
    if isinstance(value, _SCALARS):
        return value
    return REDACTED


def _without_path(value: Any, path: list[str]) -> Any:
    value = _record(value)
    if not isinstance(value, dict) or path[0] not in value:
        return value
    head, rest = path[0], path[1:]
    copy = dict(value)
    copy[head] = REDACTED if not rest else _without_path(value[head], rest)
    return copy
