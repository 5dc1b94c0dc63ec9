"""Field types whose pydantic validation means exactly what their JSON Schema says.

Request bodies are validated in pydantic's strict mode, so ``"5"`` or ``true`` is never
an integer. JSON Schema's ``integer`` is a *number* with no fractional part, so ``1.0``
is one; :data:`JsonInt` accepts it (as ``1``) where strict ``int`` would not, and
refuses ``1.5``, strings and booleans::

    class Limits(BaseModel):
        model_config = ConfigDict(strict=True)
        runs: JsonInt            # 2 and 2.0 -> 2; "2", true, 2.5 -> ValidationError
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, Strict, WithJsonSchema

__all__ = ["JsonInt", "UriReference", "Uuid", "json_int"]


def _integral_number(value: Any) -> Any:
    if type(value) is float and value.is_integer():
        return int(value)
    return value


#: A JSON Schema ``integer``: an int, or a float with no fractional part (``1.0``).
JsonInt = Annotated[int, BeforeValidator(_integral_number), Strict()]


def json_int(minimum: int, maximum: int) -> Any:
    """:data:`JsonInt` limited to ``minimum..maximum`` (``minimum``/``maximum`` in the schema)."""
    return Annotated[
        int, Field(ge=minimum, le=maximum), BeforeValidator(_integral_number), Strict()
    ]


#: A string published as ``format: uri-reference`` (a URL path such as ``/runs/<id>``).
UriReference = Annotated[str, WithJsonSchema({"type": "string", "format": "uri-reference"})]

#: A string published as ``format: uuid`` (run and session ids).
Uuid = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]
