"""A served workflow's ``parameters``, checked against the schema the gateway publishes.

:class:`WorkflowInputs` is built once, when the workflow is registered: it holds the
workflow's input JSON Schema (``middleware.schemas.workflow_input_schema``, which the
OpenAPI document publishes as ``<name>.parameters``), a compiled JSON Schema
(2020-12) validator for it and the sets of caller-settable inputs. Per request,
:meth:`WorkflowInputs.check` refuses, before any node runs:

- keys no caller may set (code, queries, addresses, dunders, undeclared inputs):
  400 ``parameter_not_settable`` (WF-07);
- values the schema does not allow (``"abc"`` or ``"5"`` for an ``int``, ``true`` for a
  number, a missing required input, an unknown key inside a node's object): 400
  ``invalid_parameters`` naming each path (``parameters.double.x``) and what it expects.

Values are checked as JSON: ``1.0`` is an ``integer`` (as JSON Schema says) and reaches
the node as a number its declared type accepts. Admin callers may additionally
override the code-carrying keys (``CODE_CARRYING_KEYS``) of any node or at the top
level; everything else they send is checked like anyone's. An empty ``parameters`` object
costs one flag test when the schema allows it::

    inputs = WorkflowInputs(workflow, "etl")   # at register_workflow
    inputs.check({"double": {"x": "5"}}, admin=False)   # ProblemError 400
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware.contract.bodies import MAX_REPORTED, describe_location
from kailash_nb.middleware.schemas import (
    CODE_CARRYING_KEYS,
    settable_inputs,
    settable_workflow_parameters,
    unsettable_parameters,
    workflow_input_schema,
    workflow_output_schema,
)

if TYPE_CHECKING:
    from kailash_nb.workflow.graph import Workflow

__all__ = ["WorkflowInputs"]

_JSON_TYPES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
    (type(None), "null"),
)


class WorkflowInputs:
    """The compiled input contract of one served workflow.

    Args:
        workflow: the registered workflow.
        name: the name it is served under (named in messages).

    Attributes:
        schema: the JSON Schema of ``parameters`` (with its ``$defs``), as published.
        output_schema: the JSON Schema of a run's ``results``.

    Raises:
        WorkflowValidationError: the workflow needs an input that nothing provides
            and no caller may set, so it cannot be served.
    """

    def __init__(self, workflow: Workflow, name: str) -> None:
        self.workflow_name = name
        self.schema = workflow_input_schema(workflow)
        self.output_schema = workflow_output_schema(workflow)
        self._settable = settable_inputs(workflow)
        self._workflow_level = settable_workflow_parameters(workflow)
        self._validator = Draft202012Validator(self.schema)
        self._empty_is_valid = self._validator.is_valid({})
        self._node_ids = frozenset(workflow.nodes)

    def check(self, parameters: dict[str, Any], *, admin: bool) -> None:
        """Refuse ``parameters`` the published schema does not allow.

        Raises:
            ProblemError: 400 ``parameter_not_settable`` or ``invalid_parameters`` (see
                the module docstring).
        """
        if not parameters and self._empty_is_valid:
            return
        checked = self._without_admin_overrides(parameters) if admin else parameters
        refused = unsettable_parameters(self._settable, self._workflow_level, checked)
        if refused:
            raise ProblemError(
                400,
                "parameter_not_settable",
                f"workflow {self.workflow_name!r} does not let callers set: "
                f"{', '.join(refused[:MAX_REPORTED])}. Callers may set only the inputs its "
                "input schema lists; code, queries and addresses belong in the node config",
            )
        errors = sorted(
            self._validator.iter_errors(checked), key=lambda error: list(error.absolute_path)
        )
        if errors:
            lines = [_describe(error) for error in errors[:MAX_REPORTED]]
            more = len(errors) - MAX_REPORTED
            raise ProblemError(
                400,
                "invalid_parameters",
                "; ".join(lines) + (f"; and {more} more" if more > 0 else ""),
            )

    def _without_admin_overrides(self, parameters: dict[str, Any]) -> dict[str, Any]:
        checked: dict[str, Any] = {}
        for key, value in parameters.items():
            if key in CODE_CARRYING_KEYS:
                continue
            if key in self._node_ids and isinstance(value, dict):
                value = {
                    name: item for name, item in value.items() if name not in CODE_CARRYING_KEYS
                }
            checked[key] = value
        return checked


def _json_type(value: Any) -> str:
    for python_type, name in _JSON_TYPES:
        if type(value) is python_type:
            return name
    return type(value).__name__


def _describe(error: ValidationError) -> str:
    """One line naming where ``error`` is and what was expected, without the value."""
    where = describe_location("parameters", tuple(error.absolute_path))
    kind, expected = error.validator, error.validator_value
    if kind == "type":
        names = expected if isinstance(expected, list) else [expected]
        return f"{where}: expected {' or '.join(names)}, got {_json_type(error.instance)}"
    if kind == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = [name for name in expected if name not in present]
        return "; ".join(f"{describe_location(where, (name,))}: required" for name in missing)
    if kind == "additionalProperties":
        present = error.instance if isinstance(error.instance, dict) else {}
        declared = error.schema.get("properties", {})
        unknown = [name for name in present if name not in declared]
        return "; ".join(
            f"{describe_location(where, (name,))}: unknown input" for name in unknown[:MAX_REPORTED]
        )
    if kind in ("anyOf", "oneOf") and error.context:
        if all(alternative.validator == "required" for alternative in error.context):
            # An input that may come at the top level or in its node's object.
            return " or ".join(_describe(alternative) for alternative in error.context)
        return _describe(best_match(error.context))
    if kind in ("enum", "const"):
        return f"{where}: must be {kind} {expected!r:.200}"
    return f"{where}: violates {kind} {expected!r:.100}"
