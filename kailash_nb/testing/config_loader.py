"""Workflow config files: a ``Workflow.to_dict()`` definition as YAML or JSON, loaded
with errors that name the file, the line and the node.

The file is read as ``Workflow.from_dict`` reads a definition (``.json`` as JSON,
anything else as YAML; JSON is YAML too, so a JSON file named ``.yaml`` loads). When it
does not load, the error is traced back to where it was written: the node whose entry
reproduces it on its own, the connection it names, or the first node it names::

    workflow = load_workflow_config("flows/production.yaml")
    # WorkflowConfigError: flows/production.yaml, line 7, node 'clean': Failed to add
    # node 'clean' to workflow: ... (did you mean 'PythonCodeNode'?)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from kailash_nb._located import (
    DocumentError,
    LocatedDict,
    line_of,
    load_json_located,
    load_yaml_located,
)
from kailash_nb.sdk_exceptions import KailashException
from kailash_nb.testing.errors import WorkflowConfigError
from kailash_nb.workflow.draft import WorkflowDraft
from kailash_nb.workflow.graph import Workflow
from kailash_nb.workflow.serialization import MAX_DEFINITION_BYTES, fill_draft

__all__ = ["load_workflow_config"]

# What a definition can raise while it is built: kailash_nb's typed errors, and the
# TypeError/ValueError of a node class whose constructor refuses its config.
_BUILD_ERRORS = (KailashException, TypeError, ValueError)
# Node ids hold no '.', so the first '.' ends the node of a connection's "a.out -> b.in".
_CONNECTION = re.compile(r"connection ([^\s.]+)\.(\S+) -> ([^\s.]+)\.(\S+?)(?=:|\s|$)")
_CONNECTION_INDEX = re.compile(r"connections\[(\d+)\]")


def load_workflow_config(path: str | os.PathLike[str]) -> Workflow:
    """Load the workflow definition in the file at ``path`` (YAML or JSON).

    Raises:
        WorkflowConfigError: the file is missing, unreadable, too large, malformed, or
            its definition does not build; naming the file, the line and the node.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            data = handle.read(MAX_DEFINITION_BYTES + 1)
    except OSError as error:
        raise WorkflowConfigError(
            f"cannot read the workflow config: {error.strerror}", source=source
        ) from None
    if len(data) > MAX_DEFINITION_BYTES:
        raise WorkflowConfigError(f"larger than {MAX_DEFINITION_BYTES} bytes", source=source)
    try:
        if source.lower().endswith(".json"):
            document = load_json_located(data)
        else:
            document = load_yaml_located(data)
    except DocumentError as error:
        raise WorkflowConfigError(error.problem, source=source, line=error.line) from None
    if not isinstance(document, Mapping):
        raise WorkflowConfigError(
            "a workflow config is a mapping with 'nodes' and 'connections' (the layout "
            f"of Workflow.to_dict()), not {type(document).__name__}",
            source=source,
            line=line_of(document) or 1,
        )
    try:
        return Workflow.from_dict(document)
    except _BUILD_ERRORS as error:
        line, node_id = _locate(document, error)
        raise WorkflowConfigError(str(error), source=source, line=line, node_id=node_id) from error


def _locate(document: Mapping[str, Any], error: BaseException) -> tuple[int | None, str | None]:
    """Where in ``document`` the build ``error`` comes from: (line, node id)."""
    message = str(error)
    entries = _node_entries(document)
    connections = document.get("connections")
    connection_list = connections if isinstance(connections, list) else []
    index = _CONNECTION_INDEX.search(message)
    if index is not None and int(index.group(1)) < len(connection_list):
        entry = connection_list[int(index.group(1))]
        return line_of(entry) or line_of(connection_list), _target(entry)
    named = _CONNECTION.search(message)
    if named is not None:
        for entry in connection_list:
            if _fields(entry) == named.groups():
                return line_of(entry), named.group(3)
    node_id = getattr(error, "node_id", None)
    if isinstance(node_id, str) and node_id in entries:
        return entries[node_id][0], node_id
    for node_id, (line, entry) in entries.items():
        if _reproduces(node_id, entry, message):
            return line, node_id
    for node_id, (line, _) in entries.items():
        if repr(node_id) in message:
            return line, node_id
    return line_of(document, "nodes"), None


def _node_entries(document: Mapping[str, Any]) -> dict[str, tuple[int | None, Any]]:
    """``{node_id: (line, entry)}`` of the definition's nodes (a dict or a list)."""
    nodes = document.get("nodes")
    if isinstance(nodes, Mapping):
        return {str(node_id): (line_of(nodes, node_id), entry) for node_id, entry in nodes.items()}
    found = {}
    if isinstance(nodes, list):
        for entry in nodes:
            if isinstance(entry, LocatedDict):
                node_id = entry.get("node_id", entry.get("id"))
                if isinstance(node_id, str):
                    found[node_id] = (line_of(entry), entry)
    return found


def _reproduces(node_id: str, entry: Any, message: str) -> bool:
    """True when the node entry alone fails to build with the same ``message``."""
    try:
        fill_draft(WorkflowDraft(), {"nodes": {node_id: entry}}).workflow_arguments()
    except _BUILD_ERRORS as error:
        return str(error) == message
    return False


def _fields(entry: Any) -> tuple[Any, ...]:
    if not isinstance(entry, Mapping):
        return ()
    return (
        entry.get("source_node", entry.get("from_node", entry.get("from"))),
        entry.get("source_output", entry.get("from_output", "result")),
        entry.get("target_node", entry.get("to_node", entry.get("to"))),
        entry.get("target_input", entry.get("to_input", "input")),
    )


def _target(entry: Any) -> str | None:
    target = _fields(entry)[2:3]
    return target[0] if target and isinstance(target[0], str) else None
