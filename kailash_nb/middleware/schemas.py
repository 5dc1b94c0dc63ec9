"""JSON Schemas of a served workflow's execute request and response.

The gateway publishes what a caller may send (``workflow_input_schema``) and what a
run returns (``workflow_output_schema``), and refuses any parameter outside
``settable_inputs``: config keys that carry code, queries or addresses (``code``,
``query``, ``url`` ...) are never caller-settable (security checklist WF-07), and
dunder names never appear::

    schema = workflow_input_schema(workflow)
    jsonschema.validate({"double": {"x": 2}}, schema)
    check_caller_parameters(workflow, {"sql": {"query": "DROP TABLE t"}})  # raises
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

from pydantic import PydanticUserError, TypeAdapter

from kailash_nb.middleware._json_types import JSON_SCHEMA_DIALECT, TypeSchemas
from kailash_nb.nodes.code import AsyncPythonCodeNode, PythonCodeNode
from kailash_nb.nodes.types import is_any_type
from kailash_nb.redaction import looks_secret, redact_value
from kailash_nb.sdk_exceptions import WorkflowValidationError

if TYPE_CHECKING:
    from kailash_nb.nodes.base import Node, NodeParameter
    from kailash_nb.workflow.graph import Workflow

__all__ = [
    "CALLER_FORBIDDEN_KEYS",
    "CODE_CARRYING_KEYS",
    "check_caller_parameters",
    "code_overrides",
    "overrides_refusal",
    "settable_inputs",
    "settable_workflow_parameters",
    "unsettable_parameters",
    "workflow_input_schema",
    "workflow_output_schema",
]

#: Config keys no caller may set, whatever the node: they carry code, queries,
#: credentials or addresses (WF-07), or widen where a node may connect (WF-09). A node
#: class adds its own ``config_only_keys``.
CALLER_FORBIDDEN_KEYS = frozenset(
    {
        "code",
        "function",
        "connection_string",
        "url",
        "endpoint",
        "file_path",
        "query",
        "allow_private_network",
    }
)

#: Inputs that carry code, queries or addresses: only ``admin`` callers may override
#: them (anyone else gets 403); they are never part of a workflow's input schema.
CODE_CARRYING_KEYS = frozenset(
    {"code", "function", "connection_string", "url", "endpoint", "file_path", "query"}
)


def code_overrides(parameters: dict[str, Any]) -> list[str]:
    """The code-carrying inputs ``parameters`` sets (``CODE_CARRYING_KEYS``), at workflow
    level (``"query"``) or node level (``"fetch.url"``), sorted; empty if none."""
    return sorted(
        {key for key in parameters if key in CODE_CARRYING_KEYS}
        | {
            f"{node_id}.{key}"
            for node_id, inputs in parameters.items()
            if isinstance(inputs, dict)
            for key in inputs
            if key in CODE_CARRYING_KEYS
        }
    )


def overrides_refusal(parameters: dict[str, Any], admin: bool) -> str | None:
    """Why a caller who is not ``admin`` may not send ``parameters`` (they override
    code-carrying inputs), or ``None``: what REST answers 403 and MCP an error result."""
    found = [] if admin else code_overrides(parameters)
    if not found:
        return None
    return "only admin callers may override code, query or address inputs: " + ", ".join(
        name[:80] for name in found[:10]
    )


_FAILED_LEAF: dict[str, Any] = {
    "type": "object",
    "description": "the node failed and nothing depended on it, so the run went on",
    "properties": {
        "error": {"type": "string"},
        "error_type": {"type": "string"},
        "failed": {"const": True},
    },
    "required": ["error", "error_type", "failed"],
    "additionalProperties": False,
}
_MAX_NAME_IN_MESSAGE = 64


def settable_inputs(workflow: Workflow) -> dict[str, frozenset[str]]:
    """The inputs a caller may set per node, ``{node_id: names}`` (every node listed).

    A node's declared inputs minus ``CALLER_FORBIDDEN_KEYS``, the node class's
    ``config_only_keys`` and ``trusted_input_keys``, and dunder names; a node whose
    id is a dunder name takes none. Inputs a code node accepts without declaring them
    are never settable.
    """
    settable = {}
    for node_id, node in workflow.nodes.items():
        if node_id.startswith("__"):
            settable[node_id] = frozenset()
            continue
        forbidden = CALLER_FORBIDDEN_KEYS | node.config_only_keys | node.trusted_input_keys
        settable[node_id] = frozenset(
            name for name in node.parameters if name not in forbidden and not name.startswith("__")
        )
    return settable


def settable_workflow_parameters(workflow: Workflow) -> frozenset[str]:
    """Names a caller may pass at the top level of ``parameters`` (workflow-level).

    Such a value reaches every node declaring that input, so a name qualifies only
    when every declaring node lets callers set it, and it is not also a node id
    (a node id key addresses that node's inputs).
    """
    settable = settable_inputs(workflow)
    return frozenset(
        name
        for name, node_ids in workflow.plan.declared_by.items()
        if name not in workflow.nodes and all(name in settable[node_id] for node_id in node_ids)
    )


def check_caller_parameters(workflow: Workflow, parameters: Any) -> None:
    """Refuse runtime ``parameters`` a caller may not send (the gateway answers 400).

    Raises:
        WorkflowValidationError: ``parameters`` is not a dict, a node's entry is not a
            dict, or a key names an input that is not caller-settable (code, query,
            address and dunder names included), listing every offending key.
    """
    if parameters is None or parameters == {}:
        return
    if not isinstance(parameters, dict):
        raise WorkflowValidationError(
            f"parameters must be a JSON object, got {type(parameters).__name__}"
        )
    problems = unsettable_parameters(
        settable_inputs(workflow), settable_workflow_parameters(workflow), parameters
    )
    if problems:
        raise WorkflowValidationError(
            f"workflow {workflow.name!r} does not let callers set: {', '.join(problems)}. "
            "Callers may set only the inputs its input schema lists; code, queries and "
            "addresses belong in the node config"
        )


def unsettable_parameters(
    settable: dict[str, frozenset[str]],
    workflow_level: frozenset[str],
    parameters: dict[str, Any],
) -> list[str]:
    """The keys of ``parameters`` no caller may set (``parameters['node']['code']``...),
    given the workflow's ``settable_inputs`` and ``settable_workflow_parameters``."""
    problems = []
    for key, value in parameters.items():
        if key in settable:
            if not isinstance(value, dict):
                problems.append(f"parameters[{_quote(key)}] must be an object of node inputs")
                continue
            problems += [
                f"parameters[{_quote(key)}][{_quote(name)}]"
                for name in value
                if name not in settable[key]
            ]
        elif key not in workflow_level:
            problems.append(f"parameters[{_quote(key)}]")
    return problems


def workflow_input_schema(workflow: Workflow) -> dict[str, Any]:
    """JSON Schema (2020-12) of the execute request's ``parameters`` object.

    One property per node id: an object of that node's caller-settable inputs
    (``additionalProperties: false``), typed from ``NodeParameter.type``. Workflow-level
    names from ``settable_workflow_parameters`` are top-level properties. An input
    nothing else provides (``plan.unsatisfied``) is required: at the node, or, when it
    may also come as a workflow-level parameter, at either place (an ``allOf`` of
    ``anyOf`` alternatives). Named types (pydantic models) are under ``$defs``.

    Raises:
        WorkflowValidationError: a required input nothing provides and no caller may
            set (e.g. a code node reading a free name ``query``); such a workflow
            cannot be served.
    """
    settable = settable_inputs(workflow)
    workflow_level = settable_workflow_parameters(workflow)
    types = TypeSchemas(mode="validation")
    properties: dict[str, Any] = {}
    node_required: dict[str, list[str]] = {}
    alternatives: list[dict[str, Any]] = []
    for node_id in sorted(workflow.plan.unsatisfied):
        for name in sorted(workflow.plan.unsatisfied[node_id]):
            at_node, at_top = name in settable[node_id], name in workflow_level
            if at_node and at_top:
                alternatives.append(
                    {
                        "anyOf": [
                            {"required": [name]},
                            {"required": [node_id], "properties": {node_id: {"required": [name]}}},
                        ]
                    }
                )
            elif at_node:
                node_required.setdefault(node_id, []).append(name)
            elif not at_top:
                raise WorkflowValidationError(
                    f"workflow {workflow.name!r}: node {node_id!r} needs input {name!r}, which "
                    "nothing provides and callers may not set; set it in the node config or "
                    "connect an output to it"
                )
    for node_id in sorted(settable):
        if node_id.startswith("__"):
            continue
        node = workflow.nodes[node_id]
        node_schema: dict[str, Any] = {
            "type": "object",
            "description": f"inputs of node {node_id!r} ({node.type_name()})",
            "properties": {
                name: _input_schema(node.parameters[name], types)
                for name in sorted(settable[node_id])
            },
            "additionalProperties": False,
        }
        if node_id in node_required:
            node_schema["required"] = node_required[node_id]
        properties[node_id] = node_schema
    for name in sorted(workflow_level):
        declaring = workflow.plan.declared_by[name]
        variants: list[dict[str, Any]] = []
        for node_id in declaring:
            variant = types.schema_of(workflow.nodes[node_id].parameters[name].type)
            if variant not in variants:
                variants.append(variant)
        top: dict[str, Any] = variants[0] if len(variants) == 1 else {"allOf": variants}
        properties[name] = {
            **top,
            "description": f"workflow-level: delivered to node{'s' * (len(declaring) > 1)} "
            + ", ".join(map(repr, declaring)),
            **({"writeOnly": True} if looks_secret(name) else {}),
        }
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if node_required:
        schema["required"] = sorted(node_required)
    if alternatives:
        schema["allOf"] = alternatives
    if types.defs:
        schema["$defs"] = types.sorted_defs()
    return schema


def workflow_output_schema(workflow: Workflow) -> dict[str, Any]:
    """JSON Schema (2020-12) of a run's ``results``: node id -> that node's outputs.

    Function nodes type their output (``result``, or the chosen output name) from the
    return annotation; code snippets list the names they assign; other nodes are
    ``{"type": "object"}``. A node nothing depends on may instead hold the failed-leaf
    shape ``{"error", "error_type", "failed": true}`` (``anyOf``). No node is required:
    skipped nodes are absent from the results.
    """
    types = TypeSchemas(mode="serialization")
    properties: dict[str, Any] = {}
    for node_id in sorted(workflow.nodes):
        outputs = _outputs_schema(workflow.nodes[node_id], types)
        if not workflow.plan.has_dependents[node_id]:
            outputs = {"anyOf": [outputs, _FAILED_LEAF]}
        properties[node_id] = outputs
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if types.defs:
        schema["$defs"] = types.sorted_defs()
    return schema


def _input_schema(parameter: NodeParameter, types: TypeSchemas) -> dict[str, Any]:
    schema = dict(types.schema_of(parameter.type))
    if parameter.description:
        schema["description"] = parameter.description
    if looks_secret(parameter.name):
        schema["writeOnly"] = True
    elif (
        not parameter.required
        and _fits(parameter.type, parameter.default)
        # A default holding a credential (an Authorization header) is not published (WF-13).
        and redact_value(parameter.name, parameter.default) == parameter.default
    ):
        schema["default"] = parameter.default
    return schema


def _outputs_schema(node: Node, types: TypeSchemas) -> dict[str, Any]:
    if not isinstance(node, (PythonCodeNode, AsyncPythonCodeNode)):
        return {"type": "object"}
    if node._function is not None:
        declared = node._signature.return_annotation
        output = node.config.get("_output", "result")
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {output: types.schema_of(declared)},
        }
        if output != "result":
            # Only the default output passes through a returned {"result": ...} dict.
            schema["additionalProperties"] = False
        return schema
    names = ["result"] if "result" in node._bound_names else sorted(node._bound_names)
    return {
        "type": "object",
        "properties": {name: {} for name in names if not name.startswith("_")},
        "additionalProperties": False,
    }


def _fits(declared: Any, default: Any) -> bool:
    """Whether ``default`` can be published: JSON, and valid for the declared type (a
    ``None`` default of a ``str`` input means "not given", not a string)."""
    if default is None or default is inspect.Parameter.empty:
        return False
    try:
        json.dumps(default, allow_nan=False)
        if not is_any_type(declared):
            TypeAdapter(declared).validate_python(default, strict=True)
    except (TypeError, ValueError, PydanticUserError):
        return False
    return True


def _quote(name: Any) -> str:
    text = repr(name)
    return text if len(text) <= _MAX_NAME_IN_MESSAGE else text[: _MAX_NAME_IN_MESSAGE - 3] + "..."
