"""Kailash's explicit input and output checks of a node, on declared parameters.

``Node.validate_inputs`` and ``Node.validate_outputs`` call these with the node's
label (``node 'id' (Type)``) and its declared inputs or outputs; the messages keep
Kailash's phrases ("Required parameter 'x' not provided", "must be of type float")
so ported code that matches on them keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kailash_nb.nodes.types import coerce, is_any_type, type_name
from kailash_nb.redaction import looks_secret
from kailash_nb.sdk_exceptions import NodeValidationError


def checked_inputs(
    label: str, declared: Mapping[str, Any], inputs: Mapping[str, Any], *, extra_ok: bool
) -> dict[str, Any]:
    """``inputs`` coerced to the declared types; a missing required input takes its
    default when it has one. Optional inputs given as ``None`` are left out, as are
    optional inputs not given.

    Raises:
        NodeValidationError: a required input without default is missing, a value
            cannot be coerced, or (unless ``extra_ok``) an input is not declared.
    """
    unknown = sorted(name for name in inputs if name not in declared)
    if unknown and not extra_ok:
        raise NodeValidationError(
            f"{label} has no input(s) {unknown}; its inputs are {sorted(declared)}"
        )
    checked: dict[str, Any] = {name: inputs[name] for name in unknown}
    for name, parameter in declared.items():
        if name not in inputs:
            if parameter.required and parameter.default is None:
                raise NodeValidationError(
                    f"{label}: Required parameter {name!r} not provided; given "
                    f"{sorted(inputs)}{_described(parameter)}"
                )
            if parameter.required:
                checked[name] = parameter.default
            continue
        value = inputs[name]
        if value is None and not parameter.required:
            continue
        checked[name] = _coerced(label, "input", name, parameter.type, value)
    return checked


def checked_outputs(
    label: str, declared: Mapping[str, Any], outputs: dict[str, Any]
) -> dict[str, Any]:
    """``outputs`` with the declared ones checked and coerced; undeclared outputs pass.

    Raises:
        NodeValidationError: ``outputs`` is not a dict, a required output is missing,
            or a value cannot be coerced to its declared type.
    """
    if not isinstance(outputs, dict):
        raise NodeValidationError(f"{label}: outputs must be a dict, got {type(outputs).__name__}")
    checked = dict(outputs)
    for name, parameter in declared.items():
        if name not in outputs:
            if parameter.required:
                raise NodeValidationError(
                    f"{label}: Required output {name!r} not provided; the outputs are "
                    f"{sorted(outputs)}{_described(parameter)}"
                )
            continue
        value = outputs[name]
        if value is not None:
            checked[name] = _coerced(label, "Output", name, parameter.type, value)
    return checked


def parameter_schema(declared: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Declared parameters as plain dicts: type name, required, default, description."""
    return {
        name: {
            "type": "Any" if is_any_type(parameter.type) else type_name(parameter.type),
            "required": parameter.required,
            "default": parameter.default,
            "description": parameter.description,
        }
        for name, parameter in declared.items()
    }


def _coerced(label: str, kind: str, name: str, declared: Any, value: Any) -> Any:
    if is_any_type(declared):
        return value
    try:
        return coerce(declared, value, reveal=not looks_secret(name))
    except ValueError as exc:
        raise NodeValidationError(
            f"{label}: {kind} {name!r} must be of type {type_name(declared)} ({exc})"
        ) from None


def _described(parameter: Any) -> str:
    return f" ({parameter.description})" if parameter.description else ""
