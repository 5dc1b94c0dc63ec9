"""``kailash-nb run``: a workflow from a YAML/JSON file or a notebook, run headless.

``--param`` items are parsed by ``parse_params`` and checked against the workflow by
``check_params`` (the gateway's rule) before anything runs; a notebook's cells are run
by ``kailash_nb.notebook.serving.load_notebook_workflow`` as ``serve`` runs them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kailash_nb._json_text import plain
from kailash_nb.cli.errors import CommandError, UsageError
from kailash_nb.cli.progress import ProgressBar
from kailash_nb.cli.tables import format_table, preview

if TYPE_CHECKING:
    from kailash_nb.runtime.outcome import RunOutcome

__all__ = ["check_params", "parse_params", "run"]


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["node.key=value", "key=value"]`` -> runtime parameters.

    Values are read as YAML scalars (``3`` is an int, ``true`` a bool, ``[1, 2]`` a
    list); anything else stays a string. ``node.key`` sets a node's input, a bare
    ``key`` a workflow-level parameter.

    Raises:
        UsageError: an item without ``=`` or with an empty name.
    """
    import yaml

    parameters: dict[str, Any] = {}
    for item in items:
        name, separator, text = item.partition("=")
        if not separator or not name.strip():
            raise UsageError(f"--param {item!r} must look like node.input=value or name=value")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node_id, dot, key = name.strip().partition(".")
        if dot:
            if not key:
                raise UsageError(f"--param {item!r}: the input name after {node_id!r}. is empty")
            parameters.setdefault(node_id, {})[key] = value
        else:
            parameters[node_id] = value
    return parameters


def check_params(workflow: Any, parameters: dict[str, Any]) -> None:
    """Refuse ``--param`` names the workflow does not have, before anything runs.

    The gateway's rule: ``node.input`` must name a node and one of its declared inputs
    (``kailash-nb nodes`` lists them; a code node's are the free names of its code),
    a bare ``name`` an input some node declares. Config keys that are not inputs (a code
    node's ``code``) are refused too: they belong in the workflow file. Then every
    required input nothing provides is named, as ``--param node.input=VALUE``.

    The messages are the CLI's; the decision stays the engine's: whatever the checks
    here let through is split by the workflow's plan (``split_parameters``, which also
    knows workflow-level defaults and mapped inputs), and its refusal is a usage error.

    Raises:
        UsageError: the first unknown node or input, naming the known ones (with close
            matches), or the missing required inputs.
    """
    from kailash_nb.sdk_exceptions import WorkflowValidationError, close_matches

    nodes = workflow.nodes
    plan = workflow.plan
    declared_by = plan.declared_by
    for key, value in parameters.items():
        node = nodes.get(key)
        if node is None:
            if isinstance(value, dict):
                raise UsageError(
                    f"--param {key}.{next(iter(value), '')}: the workflow has no node {key!r}"
                    f"{close_matches(key, nodes)}; its nodes: {', '.join(nodes)}"
                )
            if key not in declared_by and key not in plan.input_mappings:
                raise UsageError(
                    f"--param {key}: no node has an input {key!r}"
                    f"{close_matches(key, [*declared_by, *nodes])}; set a node's input "
                    f"with --param NODE.INPUT=VALUE (inputs: "
                    f"{', '.join(sorted(declared_by)) or 'none'})"
                )
            continue
        if not isinstance(value, dict):
            raise UsageError(
                f"--param {key}={value!r}: {key!r} is a node; set one of its inputs with "
                f"--param {key}.INPUT=VALUE"
            )
        known = node.parameters
        for name in value:
            if name in known:
                continue
            if name in node.config_only_keys:
                raise UsageError(
                    f"--param {key}.{name}: {name!r} is part of the configuration of node "
                    f"{key!r}, not an input; change it in the workflow file"
                )
            inputs = ", ".join(sorted(known)) or "none"
            raise UsageError(
                f"--param {key}.{name}: node {key!r} ({node.type_name()}) has no input "
                f"{name!r}{close_matches(name, known)}; its inputs: {inputs}"
            )
    try:
        by_node, flat_by_node = plan.split_parameters(parameters)
    except WorkflowValidationError as exc:
        raise UsageError(f"--param: {exc}") from None
    missing = [
        f"{node_id}.{name}"
        for node_id, names in plan.unsatisfied.items()
        for name in names
        if name not in by_node.get(node_id, {}) and name not in flat_by_node.get(node_id, {})
    ]
    if missing:
        raise UsageError(
            f"required inputs are missing: {', '.join(missing)}; set them with "
            + " ".join(f"--param {name}=VALUE" for name in missing)
        )


def run(args: argparse.Namespace) -> int:
    """Build a workflow from a YAML/JSON file or a notebook, run it and print its
    results."""
    from kailash_nb.runtime.local import LocalRuntime

    path = Path(args.workflow)
    parameters = parse_params(args.param or [])
    if path.suffix.lower() == ".ipynb":
        workflow = _notebook_workflow(path, args.workflow_name)
    else:
        if args.workflow_name is not None:
            raise UsageError(
                "--workflow selects a workflow of a notebook; "
                f"{str(path)!r} holds exactly one workflow"
            )
        workflow = _file_workflow(path)
    check_params(workflow, parameters)
    progress = ProgressBar(len(workflow.nodes))
    runtime = LocalRuntime(history=not args.no_history, database_url=args.database_url)
    runtime.events.subscribe(progress, runs=False)
    try:
        outcome = runtime.execute_outcome(workflow, parameters=parameters)
    finally:
        progress.finish()
        runtime.close()
    if outcome.stopped_at is not None or outcome.status not in ("completed", "failed"):
        _report_stopped(args, outcome)
        return 1
    failed = {failure.node_id: failure for failure in outcome.failed_nodes}
    if args.json:
        print(
            _json_report(
                {"run_id": outcome.run_id, "status": outcome.status, "results": outcome.results}
            )
        )
    else:
        print(f"{workflow!r}: run {outcome.run_id} {outcome.status}")
        rows = [
            {
                "node": node_id,
                "status": "failed" if node_id in failed else "completed",
                "output": preview(output),
            }
            for node_id, output in outcome.results.items()
        ]
        print(format_table(rows, ["node", "status", "output"]))
    for node_id, failure in failed.items():
        print(
            f"error: node {node_id!r} failed: {failure.error_type}: {failure.message}",
            file=sys.stderr,
        )
    return 0 if outcome.succeeded else 1


def _file_workflow(path: Path) -> Any:
    from kailash_nb.workflow.graph import Workflow

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read workflow file {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"workflow file {str(path)!r} is not UTF-8 text") from None
    loader = Workflow.from_json if path.suffix.lower() == ".json" else Workflow.from_yaml
    return loader(text)


def _notebook_workflow(path: Path, name: str | None) -> Any:
    """Run the notebook's cells as ``serve`` does (from its directory, which is put on
    ``sys.path``), then build ``name`` or the notebook's current workflow."""
    import os

    from kailash_nb.notebook.serving import load_notebook_workflow

    path = path.resolve()
    if not path.is_file():
        raise CommandError(f"no notebook file {str(path)!r}")
    os.chdir(path.parent)
    sys.path.insert(0, str(path.parent))
    chosen, workflow, skipped = load_notebook_workflow(path, name)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    print(f"running notebook workflow {chosen!r}", file=sys.stderr)
    return workflow


def _report_stopped(args: argparse.Namespace, outcome: RunOutcome) -> None:
    """A run that stopped at a failed node, timed out or was cancelled."""
    if args.json:
        print(
            _json_report(
                {
                    "run_id": outcome.run_id,
                    "status": outcome.status,
                    "failed_node": outcome.stopped_at,
                    "error": outcome.error,
                    "results": outcome.results,
                }
            )
        )
    print(f"error: {outcome.error}", file=sys.stderr)


def _json_report(report: dict[str, Any]) -> str:
    # Values JSON cannot hold follow the one rule the gateway and the store use too.
    return json.dumps(plain(report), indent=2)
