"""Results schemas as a gateway under an access policy answers them.

An ``AccessControlledRuntime`` may withhold a node's whole output
(``{"_access_denied": true}``) and mask any field of it, at any depth, as
``"<redacted>"``; the document must say so, or a masked answer breaks the schema it
publishes. :func:`redactable_results` turns a workflow's results schema into one that
admits both, and leaves the original shape intact otherwise::

    schema = redactable_results(inputs.output_schema)
"""

from __future__ import annotations

import copy
from typing import Any

from kailash_nb.redaction import REDACTED

__all__ = ["REDACTED_FIELD", "WITHHELD_OUTPUT", "redactable_results"]

#: A field the caller may not read.
REDACTED_FIELD = {"const": REDACTED, "description": "masked by the access policy"}
#: A node output the caller may not read at all.
WITHHELD_OUTPUT = {
    "type": "object",
    "description": "the access policy withholds this node's output from the caller",
    "properties": {"_access_denied": {"const": True}},
    "required": ["_access_denied"],
    "additionalProperties": False,
}
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def redactable_results(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a results schema (``{node_id: output schema}`` under ``properties``,
    models under ``$defs``) in which each node's output may be withheld and each of its
    fields, at any depth, may be ``"<redacted>"``."""
    result = copy.deepcopy(schema)
    nodes = result.get("properties", {})
    for node_id, output in nodes.items():
        nodes[node_id] = {"anyOf": [_fields_redactable(output), WITHHELD_OUTPUT]}
    definitions = result.get("$defs", {})
    for name, definition in definitions.items():
        definitions[name] = _fields_redactable(definition)
    return result


def _fields_redactable(schema: Any) -> Any:
    """``schema`` with every property value (named, pattern or additional) also allowed
    to be ``REDACTED``, recursively."""
    if not isinstance(schema, dict):
        return schema
    result = dict(schema)
    for key in ("properties", "patternProperties"):
        if isinstance(result.get(key), dict):
            result[key] = {name: _or_redacted(value) for name, value in result[key].items()}
    if isinstance(result.get("additionalProperties"), dict):
        result["additionalProperties"] = _or_redacted(result["additionalProperties"])
    if isinstance(result.get("items"), dict):
        result["items"] = _fields_redactable(result["items"])
    for key in _SCHEMA_LISTS:
        if isinstance(result.get(key), list):
            result[key] = [_fields_redactable(item) for item in result[key]]
    return result


def _or_redacted(schema: Any) -> dict[str, Any]:
    return {"anyOf": [_fields_redactable(schema), REDACTED_FIELD]}
