"""Structured output: the schema an answer must follow, and checking the answer.

``response_format`` may be a pydantic model class, a JSON schema, or Kailash's
``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}``
(``{"type": "json_object"}`` asks only for a JSON object).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema
from pydantic import BaseModel, ValidationError

__all__ = ["OutputSchema", "output_schema"]


class SchemaMismatch(ValueError):
    """An answer does not follow the schema; ``field`` is the dotted path in error."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class OutputSchema:
    """What an answer must be: ``schema`` (JSON schema) and the model validating it."""

    name: str
    schema: dict[str, Any]
    model: type[BaseModel] | None = None

    def validate(self, content: str | None) -> dict[str, Any]:
        """The answer decoded and validated, as JSON-safe data.

        Raises:
            SchemaMismatch: not JSON, or a field is missing or of the wrong type.
        """
        try:
            data = json.loads(content or "")
        except ValueError:
            raise SchemaMismatch(
                f"the answer is not JSON: {(content or '')[:120]!r}", field=""
            ) from None
        if self.model is not None:
            try:
                return self.model.model_validate(data).model_dump(mode="json")
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(map(str, first["loc"]))
                raise SchemaMismatch(
                    f"field {field or '(answer)'!r}: {first['msg']}", field=field
                ) from None
        try:
            jsonschema.validate(data, self.schema)
        except jsonschema.ValidationError as exc:
            field = ".".join(map(str, exc.absolute_path))
            raise SchemaMismatch(
                f"field {field or '(answer)'!r}: {exc.message}", field=field
            ) from None
        return data


def output_schema(response_format: Any) -> OutputSchema | None:
    """The ``OutputSchema`` ``response_format`` asks for (``None`` for none).

    Raises:
        ValueError: ``response_format`` is none of the accepted forms, or an invalid
            JSON schema.
    """
    if response_format is None or response_format == {}:
        return None
    if isinstance(response_format, type) and issubclass(response_format, BaseModel):
        return OutputSchema(
            response_format.__name__, response_format.model_json_schema(), response_format
        )
    if not isinstance(response_format, dict):
        raise ValueError(
            f"response_format must be a pydantic model class or a JSON schema dict, not "
            f"{type(response_format).__name__}"
        )
    kind = response_format.get("type")
    if kind == "json_object":
        return OutputSchema("response", {"type": "object"})
    if kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
        inner = response_format["json_schema"]
        schema, name = inner.get("schema") or {"type": "object"}, inner.get("name", "response")
    else:
        schema, name = response_format, str(response_format.get("title", "response"))
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"response_format is not a valid JSON schema: {exc.message}") from None
    return OutputSchema(name, schema)
