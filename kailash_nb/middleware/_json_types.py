"""Python types as JSON Schema, with named types collected in one ``$defs`` table."""

from __future__ import annotations

import inspect
import re
from typing import Any, Literal

from pydantic import PydanticUserError, TypeAdapter

from kailash_nb.nodes.types import is_any_type

__all__ = ["JSON_SCHEMA_DIALECT", "TypeSchemas", "relocate_refs"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFS_PREFIX = "#/$defs/"
# OpenAPI component names must match ^[a-zA-Z0-9.\-_]+$; $defs names follow suit.
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class TypeSchemas:
    """Turns declared types into JSON Schemas that share one ``$defs`` table.

    Two different types that pydantic names alike get distinct names (``Model``,
    ``Model_2``) so a reference always means one schema.

    Args:
        mode: ``"validation"`` for inputs, ``"serialization"`` for outputs.
    """

    def __init__(self, mode: Literal["validation", "serialization"]) -> None:
        self.mode = mode
        self.defs: dict[str, Any] = {}

    def schema_of(self, declared: Any) -> dict[str, Any]:
        """The JSON Schema of ``declared``; ``{}`` for ``Any``, unknown or unresolvable types.

        ``None`` as a return annotation is ``{"type": "null"}``; as a parameter type it
        means "anything", as in ``NodeParameter``.
        """
        if declared is inspect.Signature.empty or isinstance(declared, str):
            return {}
        if declared is None and self.mode == "serialization":
            return {"type": "null"}
        if is_any_type(declared):
            return {}
        try:
            schema = TypeAdapter(declared).json_schema(
                mode=self.mode, ref_template=DEFS_PREFIX + "{model}"
            )
        except (PydanticUserError, TypeError, ValueError, NameError):
            # Arbitrary classes (a DataFrame, a callable) have no JSON form to promise.
            return {}
        defs = schema.pop("$defs", {})
        renames = {name: self._free_name(name, definition) for name, definition in defs.items()}
        for name, definition in defs.items():
            self.defs[renames[name]] = relocate_refs(definition, DEFS_PREFIX, DEFS_PREFIX, renames)
        return relocate_refs(schema, DEFS_PREFIX, DEFS_PREFIX, renames)

    def sorted_defs(self) -> dict[str, Any]:
        """``defs`` with its names in sorted order (stable documents)."""
        return {name: self.defs[name] for name in sorted(self.defs)}

    def _free_name(self, name: str, definition: Any) -> str:
        base = _UNSAFE_NAME.sub("_", name) or "Type"
        candidate, counter = base, 1
        while candidate in self.defs and self.defs[candidate] != definition:
            counter += 1
            candidate = f"{base}_{counter}"
        return candidate


def relocate_refs(schema: Any, old_prefix: str, new_prefix: str, renames: dict[str, str]) -> Any:
    """A copy of ``schema`` whose ``$ref``s under ``old_prefix`` point under ``new_prefix``,
    with names mapped through ``renames`` (names not in it are kept)."""
    if isinstance(schema, dict):
        copied = {}
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(old_prefix):
                name = value[len(old_prefix) :]
                copied[key] = new_prefix + renames.get(name, name)
            else:
                copied[key] = relocate_refs(value, old_prefix, new_prefix, renames)
        return copied
    if isinstance(schema, list):
        return [relocate_refs(item, old_prefix, new_prefix, renames) for item in schema]
    return schema
