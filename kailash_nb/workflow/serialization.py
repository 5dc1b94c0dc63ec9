"""Workflow definitions as dicts, JSON and YAML, in Kailash's layout.

Definitions may come from outside, so loading is defensive: node types are
looked up in the registry only (never imported by dotted path), YAML is read with
the safe loader, and sizes are capped before anything is built.

Definitions may also go outside, so secrets in node config (passwords, API keys,
tokens, ``Authorization`` headers, the password of a connection string) are written
as ``"<redacted>"`` (security checklist WF-13), and a definition holding that marker
does not load: supply the secret (an environment variable such as
``KAILASH_NB_SQL_URL``, or a config value set in code) instead.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

from kailash_nb.redaction import REDACTED, redact_config, redacted_paths
from kailash_nb.sdk_exceptions import ExportException, WorkflowValidationError
from kailash_nb.workflow.draft import WorkflowDraft

_Draft = TypeVar("_Draft", bound=WorkflowDraft)

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_DEFINITION_BYTES",
    "MAX_NODES",
    "REDACTED",
    "dump_json",
    "dump_yaml",
    "fill_draft",
    "load_json",
    "load_yaml",
    "redact_definition",
    "workflow_arguments_from_dict",
    "workflow_to_dict",
]

MAX_NODES = 5_000
MAX_CONNECTIONS = 20_000
MAX_DEFINITION_BYTES = 4 * 1024 * 1024
_CYCLE_FIELDS = ("cycle", "cycle_id", "max_iterations", "convergence_check", "timeout")


def workflow_to_dict(workflow: Any, *, redact_secrets: bool = True) -> dict[str, Any]:
    """See ``Workflow.to_dict``: ``workflow`` (a ``Workflow``) as a definition dict;
    secrets in node config become ``REDACTED``.

    ``redact_secrets=False`` keeps them, for a definition that never leaves the
    process's trust boundary (a worker process of the same server).
    """
    nodes: dict[str, Any] = {}
    for node_id, node in workflow.nodes.items():
        for key, value in node.config.items():
            _check_portable(value, f"node {node_id!r} config {key!r}")
        entry: dict[str, Any] = {
            "node_id": node_id,
            "node_type": node.type_name(),
            "config": redact_config(node.config) if redact_secrets else dict(node.config),
        }
        options = workflow.node_options.get(node_id)
        if options is not None and options.to_dict():
            entry["options"] = options.to_dict()
        nodes[node_id] = entry
    connections = [connection.to_dict() for connection in workflow._dag_connections]
    for cycle in workflow.cycles:
        connections.extend({**c.to_dict(), **cycle.to_dict()} for c in cycle.connections)
    return {
        "workflow_id": workflow.workflow_id,
        "name": workflow.name,
        "description": workflow.description,
        "version": workflow.version,
        "author": workflow.author,
        "metadata": dict(workflow.metadata),
        "nodes": nodes,
        "connections": connections,
    }


def workflow_arguments_from_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``Workflow(...)`` for a definition (``Workflow.from_dict``).

    Accepts ``nodes`` as a dict keyed by id or a list of entries, each with
    ``node_type`` (or ``type``) and ``config``; connections with
    ``source_node``/``source_output``/``target_node``/``target_input`` (or
    ``from_node``/``from_output``/``to_node``/``to_input``).

    Raises:
        WorkflowValidationError: malformed definition, unknown node type, caps exceeded,
            or a config value holding ``REDACTED`` (a secret left out on export).
    """
    draft = fill_draft(WorkflowDraft(), data)
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise WorkflowValidationError("'metadata' must be a mapping")
    return draft.workflow_arguments(
        workflow_id=str(data.get("workflow_id") or uuid.uuid4()),
        name=data.get("name"),
        description=str(data.get("description") or ""),
        version=str(data.get("version") or "1.0.0"),
        author=str(data.get("author") or ""),
        metadata=metadata,
    )


def fill_draft(draft: _Draft, data: Mapping[str, Any]) -> _Draft:
    """Add the nodes, connections and cycles of definition ``data`` to ``draft``.

    Node entries take ``node_type`` (or ``type``) and ``config`` (or Kailash's
    ``parameters``, preferred when both are given). Connections take
    ``source_node``/``source_output``/``target_node``/``target_input``, or
    ``from_node``/``from_output``/``to_node``/``to_input``, or Kailash's short
    ``from``/``to``, whose output and input default to ``result`` and ``input``.

    Raises:
        WorkflowValidationError: malformed definition, caps exceeded, or a config
            value holding ``REDACTED``.
    """
    if not isinstance(data, Mapping):
        raise WorkflowValidationError(
            f"a workflow definition must be a mapping, got {type(data).__name__}"
        )
    node_entries = _node_entries(data.get("nodes"))
    raw_connections = data.get("connections") or []
    if not isinstance(raw_connections, list):
        raise WorkflowValidationError("'connections' must be a list")
    if len(raw_connections) > MAX_CONNECTIONS:
        raise WorkflowValidationError(
            f"definition has {len(raw_connections)} connections; the limit is {MAX_CONNECTIONS}"
        )
    for node_id, entry in node_entries:
        node_type = entry.get("node_type", entry.get("type"))
        if node_type is None:
            raise WorkflowValidationError(
                f"Node type is required for node {node_id!r}: give its 'node_type' (or "
                "'type'), a registered type name"
            )
        if not isinstance(node_type, str):
            raise WorkflowValidationError(
                f"node {node_id!r}: 'node_type' must be a registered type name, got {node_type!r}"
            )
        config = entry["parameters"] if "parameters" in entry else entry.get("config")
        config = {} if config is None else config
        if not isinstance(config, dict):
            raise WorkflowValidationError(f"node {node_id!r}: 'config' must be a mapping")
        redacted = list(redacted_paths(config, "config"))
        if redacted:
            raise WorkflowValidationError(
                f"node {node_id!r}: {', '.join(redacted[:5])} holds {REDACTED!r}, a secret "
                "left out when the definition was exported; put the real value back (or "
                "set it in code, or from an environment variable the node reads) before "
                "loading"
            )
        draft.add_node(node_type, node_id, config)
        options = entry.get("options")
        if options:
            if not isinstance(options, dict):
                raise WorkflowValidationError(f"node {node_id!r}: 'options' must be a mapping")
            draft.set_node_options(node_id, **options)
    cycles: dict[str, dict[str, Any]] = {}
    for position, raw in enumerate(raw_connections):
        connection = _connection_from(raw, position)
        if raw.get("cycle"):
            cycle_id = str(raw.get("cycle_id") or f"cycle_{len(cycles) + 1}")
            spec = cycles.setdefault(
                cycle_id, {"edges": [], **{key: raw.get(key) for key in _CYCLE_FIELDS}}
            )
            spec["edges"].append(connection)
        else:
            draft.add_connection(*connection)
    for cycle_id, spec in cycles.items():
        cycle = draft.create_cycle(cycle_id)
        for source, output, target, target_input in spec["edges"]:
            cycle.connect(source, target, {output: target_input})
        if spec.get("max_iterations") is not None:
            cycle.max_iterations(spec["max_iterations"])
        if spec.get("convergence_check"):
            cycle.converge_when(spec["convergence_check"])
        if spec.get("timeout") is not None:
            cycle.timeout(spec["timeout"])
        cycle.build()
    return draft


def _node_entries(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(raw, Mapping):
        items = [(node_id, entry) for node_id, entry in raw.items()]
    elif isinstance(raw, list):
        items = []
        for position, entry in enumerate(raw):
            if not isinstance(entry, Mapping):
                raise WorkflowValidationError(f"nodes[{position}] must be a mapping")
            items.append((entry.get("node_id", entry.get("id")), entry))
    else:
        raise WorkflowValidationError("'nodes' must be a mapping of node id to entry, or a list")
    if len(items) > MAX_NODES:
        raise WorkflowValidationError(
            f"definition has {len(items)} nodes; the limit is {MAX_NODES}"
        )
    for node_id, entry in items:
        if node_id is None:
            raise WorkflowValidationError(
                "Node ID is required (node id None): every node entry needs an 'id' (or 'node_id')"
            )
        if not isinstance(node_id, str) or not node_id:
            raise WorkflowValidationError(f"node id {node_id!r} must be a non-empty string")
        if not isinstance(entry, Mapping):
            raise WorkflowValidationError(f"node {node_id!r}: entry must be a mapping")
    return items


def _connection_from(raw: Any, position: int) -> tuple[str, str, str, str]:
    if not isinstance(raw, Mapping):
        raise WorkflowValidationError(f"connections[{position}] must be a mapping")
    source = raw.get("source_node", raw.get("from_node"))
    target = raw.get("target_node", raw.get("to_node"))
    output = raw.get("source_output", raw.get("from_output"))
    target_input = raw.get("target_input", raw.get("to_input"))
    if source is None and "from" in raw:
        source, output = raw["from"], output or "result"
    if target is None and "to" in raw:
        target, target_input = raw["to"], target_input or "input"
    fields = (source, output, target, target_input)
    if source is None and target is None:
        raise WorkflowValidationError(
            f"Invalid connection: missing from_node and to_node in connections[{position}]: "
            f"{dict(raw)!r}"
        )
    if not all(isinstance(value, str) and value for value in fields):
        raise WorkflowValidationError(
            f"Invalid connection: connections[{position}] needs source_node, source_output, "
            "target_node and "
            f"target_input as strings, got {dict(raw)!r}"
        )
    return fields  # type: ignore[return-value]


def _check_portable(value: Any, where: str, depth: int = 0) -> None:
    if depth > 64:
        raise ExportException(f"{where} is nested more than 64 levels deep")
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExportException(f"{where} is {value!r}, which JSON cannot carry")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_portable(item, where, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ExportException(f"{where} has a non-string key {key!r}")
            _check_portable(item, where, depth + 1)
        return
    raise ExportException(
        f"{where} holds a {type(value).__name__}, which a definition cannot carry; use a "
        "code string instead of a function, or plain data"
    )


def redact_definition(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a definition dict with the secrets in its nodes' config redacted."""
    nodes = data.get("nodes")
    if isinstance(nodes, Mapping):
        nodes = {node_id: _redacted_entry(entry) for node_id, entry in nodes.items()}
    elif isinstance(nodes, list):
        nodes = [_redacted_entry(entry) for entry in nodes]
    else:
        return dict(data)
    return {**data, "nodes": nodes}


def _redacted_entry(entry: Any) -> Any:
    if isinstance(entry, Mapping) and isinstance(entry.get("config"), Mapping):
        return {**entry, "config": redact_config(entry["config"])}
    return entry


def dump_json(data: dict[str, Any], indent: int | None = 2) -> str:
    """JSON text of a definition, secrets in node config redacted."""
    return json.dumps(redact_definition(data), indent=indent, allow_nan=False)


def load_json(text: str | bytes) -> Any:
    """Parse definition JSON, capped in size, rejecting NaN/Infinity and duplicate keys.

    Raises:
        WorkflowValidationError: too large or malformed (with line and column).
    """
    _check_size(text)

    def reject_constant(name: str) -> Any:
        raise WorkflowValidationError(f"definition JSON contains {name}, which is not allowed")

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise WorkflowValidationError(f"definition JSON repeats the key {key!r}")
            result[key] = value
        return result

    try:
        return json.loads(text, parse_constant=reject_constant, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise WorkflowValidationError(
            f"definition is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise WorkflowValidationError("definition JSON is nested too deeply") from None


def dump_yaml(data: dict[str, Any]) -> str:
    """YAML text of a definition (block style, keys in insertion order), secrets in
    node config redacted."""
    import yaml

    return yaml.safe_dump(redact_definition(data), sort_keys=False, allow_unicode=True)


def load_yaml(text: str | bytes) -> Any:
    """Parse definition YAML with the safe loader, capped in size.

    Raises:
        WorkflowValidationError: too large or malformed (with line and column), or
            a tag such as ``!!python/object`` that the safe loader refuses.
    """
    import yaml

    _check_size(text)
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise WorkflowValidationError(
            f"definition is not valid YAML{where}: {exc.problem or exc}"
        ) from None
    except yaml.YAMLError as exc:
        raise WorkflowValidationError(f"definition is not valid YAML: {exc}") from None
    except RecursionError:
        raise WorkflowValidationError("definition YAML is nested too deeply") from None


def _check_size(text: str | bytes) -> None:
    if len(text) > MAX_DEFINITION_BYTES:
        raise WorkflowValidationError(
            f"definition is {len(text)} bytes; the limit is {MAX_DEFINITION_BYTES}"
        )
