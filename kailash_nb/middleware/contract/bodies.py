"""Request bodies validated against their published model (strict: no coercion).

A refusal is a 400 problem whose detail names each offending member by its path in
the body (``metadata.resource_limits.max_concurrent_workflows``) and what was
expected; input values are never echoed (they may be secrets)::

    body = validate_body(SessionCreate, {"metadata": None})
    # ProblemError(400, "invalid_field", "metadata: expected an object (SessionMetadata) ...")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kailash_nb.middleware._problems import ProblemError

__all__ = ["MAX_REPORTED", "describe_location", "validate_body"]

#: Most problems listed in one answer.
MAX_REPORTED = 10

_Model = TypeVar("_Model", bound=BaseModel)
_MAX_NAME = 64


def describe_location(root: str, location: tuple[Any, ...]) -> str:
    """``root.a.b[0]``: a readable path to a member (long keys shortened)."""
    text = root
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = str(part)
            text += "." + (name if len(name) <= _MAX_NAME else name[: _MAX_NAME - 3] + "...")
    return text.lstrip(".") or "body"


def validate_body(
    model: type[_Model], body: Any, member_codes: Mapping[str, str] | None = None
) -> _Model:
    """``body`` (parsed JSON) as ``model``.

    Args:
        member_codes: the code to answer when every problem lies inside one member
            (``{"metadata": "invalid_session_metadata"}``).

    Raises:
        ProblemError: 400 ``body_not_object`` when ``body`` is not a JSON object,
            ``unknown_field`` for members the model does not declare, ``missing_field``
            for absent required members, ``invalid_field`` for members of the wrong type
            or out of range (or the member's code); the detail lists each by path.
    """
    if not isinstance(body, dict):
        raise ProblemError(400, "body_not_object", "the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _problem(exc, member_codes or {}) from None


def _problem(exc: ValidationError, member_codes: Mapping[str, str]) -> ProblemError:
    errors = exc.errors(include_input=False, include_url=False)
    kinds = {error["type"] for error in errors}
    members = {error["loc"][0] if error["loc"] else None for error in errors}
    (member,) = members if len(members) == 1 else (None,)
    if kinds != {"extra_forbidden"} and member in member_codes:
        code = member_codes[str(member)]
    elif kinds == {"extra_forbidden"}:
        code = "unknown_field"
    elif kinds == {"missing"}:
        code = "missing_field"
    else:
        code = "invalid_field"
    lines = []
    for error in errors[:MAX_REPORTED]:
        where = describe_location("", tuple(error["loc"]))
        if error["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown field")
        elif error["type"] == "missing":
            lines.append(f"{where}: required")
        else:
            lines.append(f"{where}: {error['msg'][:200]}")
    more = len(errors) - MAX_REPORTED
    detail = "; ".join(lines) + (f"; and {more} more" if more > 0 else "")
    return ProblemError(400, code, detail)
