"""Writing a notebook workflow to a file: a portable YAML definition or a Python script.

YAML (``.yaml``/``.yml``) and JSON (``.json``) hold Kailash-layout definitions that
any runtime loads with ``Workflow.from_dict``. A function node becomes a code
string: the imports, constants and helper functions the function uses, its source
and a call, ``result = clean(rows=rows, threshold=threshold)`` (or ``summary = ...``
for a node with ``output="summary"``). Parameter defaults become config values.

A ``.py`` file is a script that defines the functions, rebuilds the workflow with
``WorkflowBuilder`` and runs it (``python flow.py threshold=3``)::

    export_workflow(kn.current(), "flow.yaml")
    workflow = Workflow.from_dict(load_yaml(Path("flow.yaml").read_text()))

Raises ``ExportError`` for what a file cannot carry: lambdas, functions whose source
is unavailable, and globals that are neither modules, importable objects,
functions defined in the notebook nor literal values (pass those as parameters).
"""

from __future__ import annotations

import inspect
import pprint
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kailash_nb.notebook._sources import FunctionSources, is_literal
from kailash_nb.notebook.errors import ExportError
from kailash_nb.workflow.graph import Workflow
from kailash_nb.workflow.serialization import dump_json, dump_yaml

if TYPE_CHECKING:
    from kailash_nb.notebook.definitions import NodeDefinition
    from kailash_nb.notebook.session import WorkflowSession

__all__ = ["export_workflow", "to_definition", "to_python", "to_yaml"]

_INPUT_TYPE_NAMES = {
    int: "int",
    float: "float",
    str: "str",
    bool: "bool",
    list: "list",
    dict: "dict",
}
_SCRIPT_NAMES = frozenset(
    {"LocalRuntime", "WorkflowBuilder", "function_node", "build_workflow", "main"}
)


def export_workflow(session: WorkflowSession, path: str | Path) -> Path:
    """Write ``session``'s workflow to ``path``; the suffix picks the format.

    Raises:
        ExportError: unknown suffix, or a node that cannot be written.
    """
    path = Path(path)
    writers = {".yaml": to_yaml, ".yml": to_yaml, ".json": _to_json, ".py": to_python}
    writer = writers.get(path.suffix.lower())
    if writer is None:
        raise ExportError(
            f"cannot export to {path.name!r}: use a .yaml, .yml, .json or .py file name"
        )
    path.write_text(writer(session), encoding="utf-8")
    return path


def to_definition(session: WorkflowSession) -> dict[str, Any]:
    """The workflow as a portable definition dict (checked by building it).

    Raises:
        ExportError: a node cannot be written (see the module docstring).
    """
    composition = session.composition
    composition.check_dangling(session.definitions, session.definitions)
    fed: dict[str, set[str]] = {}
    for _, _, target, name in composition.connections:
        fed.setdefault(target, set()).add(name)
    nodes = {}
    for node_id, definition in session.definitions.items():
        if definition.function is None:
            entry = {"node_type": definition.node_type, "config": dict(definition.config)}
        else:
            entry = _code_node(definition, fed.get(node_id, set()))
        nodes[node_id] = {"node_id": node_id, **entry}
    data = {
        "name": session.name,
        "description": "Exported from a notebook by kailash_nb",
        "nodes": nodes,
        "connections": [
            {"source_node": s, "source_output": o, "target_node": t, "target_input": i}
            for s, o, t, i in composition.connections
        ],
    }
    try:
        Workflow.from_dict(data)
    except Exception as exc:
        raise ExportError(
            f"the exported definition of {session.name!r} does not build: {exc}"
        ) from None
    return data


def to_yaml(session: WorkflowSession) -> str:
    """The workflow as YAML text (see ``to_definition``)."""
    return dump_yaml(to_definition(session))


def _to_json(session: WorkflowSession) -> str:
    return dump_json(to_definition(session)) + "\n"


def to_python(session: WorkflowSession) -> str:
    """A script that defines the node functions, rebuilds the workflow and runs it.

    Raises:
        ExportError: a function that cannot be written, or names that clash.
    """
    composition = session.composition
    composition.check_dangling(session.definitions, session.definitions)
    dependencies = FunctionSources()
    node_lines = []
    for node_id, definition in session.definitions.items():
        if definition.function is None:
            config = pprint.pformat(definition.config, indent=4, width=88, sort_dicts=False)
            node_lines.append(
                f"    builder.add_node({definition.node_type!r}, {node_id!r}, {config})"
            )
            continue
        function = _plain_function(definition)
        dependencies.add(function.__name__, function, node_id)
        output = "" if definition.output == "result" else f", output={definition.output!r}"
        node_lines.append(
            f"    builder.add_node(function_node({function.__name__}{output}), {node_id!r})"
        )
    clashes = _SCRIPT_NAMES & dependencies.names()
    if clashes:
        raise ExportError(
            f"cannot export {session.name!r} as a script: the notebook defines "
            f"{sorted(clashes)}, names the script itself uses; rename them"
        )
    connection_lines = [
        f"    builder.add_connection({s!r}, {o!r}, {t!r}, {i!r})"
        for s, o, t, i in composition.connections
    ]
    body = dependencies.render()
    header = "\n".join(
        [
            f'"""Workflow {session.name!r}, exported from a notebook by kailash_nb.',
            "",
            "Run it with ``python this_file.py name=value ...`` (values are Python literals",
            'or strings); ``build_workflow()`` returns the workflow for any runtime."""',
            "",
            "import ast",
            "import sys",
            "",
            "from kailash_nb import LocalRuntime, WorkflowBuilder",
            "from kailash_nb.notebook.function_node import function_node",
        ]
    )
    build = "\n".join(
        [
            "def build_workflow():",
            f'    """Build the workflow {session.name!r}."""',
            "    builder = WorkflowBuilder()",
            *node_lines,
            *connection_lines,
            f"    return builder.build(name={session.name!r})",
        ]
    )
    main = "\n".join(
        [
            "def main(parameters=None):",
            '    """Run the workflow and print each node\'s outputs."""',
            "    results, run_id = LocalRuntime().execute(build_workflow(), parameters or None)",
            "    for node_id, outputs in results.items():",
            '        print(f"{node_id}: {outputs!r}")',
            "",
            "",
            "def _value(text):",
            "    try:",
            "        return ast.literal_eval(text)",
            "    except (ValueError, SyntaxError):",
            "        return text",
            "",
            "",
            'if __name__ == "__main__":',
            "    main({name: _value(value) for name, _, value in",
            '          (argument.partition("=") for argument in sys.argv[1:])})',
        ]
    )
    sections = [header, body, build, main] if body else [header, build, main]
    return "\n\n\n".join(sections) + "\n"


# -- code nodes ------------------------------------------------------------------------------
def _code_node(definition: NodeDefinition, fed: set[str]) -> dict[str, Any]:
    function = _plain_function(definition)
    dependencies = FunctionSources()
    dependencies.add(function.__name__, function, definition.node_id)
    signature = inspect.signature(function)
    call = []
    config: dict[str, Any] = {}
    input_types: dict[str, str] = {}
    for name, parameter in signature.parameters.items():
        if parameter.kind is parameter.VAR_POSITIONAL:
            continue
        if parameter.kind is parameter.VAR_KEYWORD:
            extra = sorted(fed - signature.parameters.keys())
            call.extend(f"{extra_name}={extra_name}" for extra_name in extra)
            continue
        call.append(name if parameter.kind is parameter.POSITIONAL_ONLY else f"{name}={name}")
        if parameter.default is not parameter.empty and name not in fed:
            config[name] = _portable(parameter.default, definition, f"default of {name!r}")
        annotation = _annotation(function, name)
        if annotation in _INPUT_TYPE_NAMES:
            input_types[name] = _INPUT_TYPE_NAMES[annotation]
    clashes = dependencies.names() & {name.split("=")[0] for name in call}
    if clashes:
        raise ExportError(
            f"node {definition.node_id!r}: {sorted(clashes)} are both parameters of "
            f"{function.__name__}() and globals it uses; rename one of them"
        )
    awaiting = "await " if inspect.iscoroutinefunction(function) else ""
    lines = [
        dependencies.render(),
        "",
        f"{definition.output} = {awaiting}{function.__name__}({', '.join(call)})",
    ]
    if definition.output != "result" and dependencies.constants:
        # Without a `result` assignment every public variable is an output.
        lines.append(f"del {', '.join(dependencies.constants)}")
    config = {"code": "\n".join(lines) + "\n", **config}
    if input_types:
        config["input_types"] = input_types
    node_type = "AsyncPythonCodeNode" if awaiting else "PythonCodeNode"
    return {"node_type": node_type, "config": config}


def _plain_function(definition: NodeDefinition) -> types.FunctionType:
    function = definition.function
    if not isinstance(function, types.FunctionType) or function.__name__ == "<lambda>":
        raise ExportError(
            f"node {definition.node_id!r}: only functions defined with 'def' can be exported, "
            f"not {type(function).__name__} {getattr(function, '__name__', '')!r}".rstrip()
        )
    return function


def _annotation(function: types.FunctionType, name: str) -> Any:
    try:
        return inspect.signature(function, eval_str=True).parameters[name].annotation
    except (NameError, SyntaxError, TypeError):
        return None


def _portable(value: Any, definition: NodeDefinition, what: str) -> Any:
    if is_literal(value):
        return value
    raise ExportError(
        f"node {definition.node_id!r}: the {what} is a {type(value).__name__}, which a file "
        "cannot carry; use a literal default or pass the value as a run parameter"
    )
