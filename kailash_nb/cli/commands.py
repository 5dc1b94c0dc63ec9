"""The ``kailash-nb`` subcommands: ``demo``, ``run``, ``runs``, ``nodes``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kailash_nb._json_text import plain
from kailash_nb.cli.progress import ProgressBar
from kailash_nb.cli.tables import format_table, format_time, preview
from kailash_nb.sdk_exceptions import (
    KailashException,
    NodeConfigurationError,
)

if TYPE_CHECKING:
    from kailash_nb.runtime.outcome import RunOutcome

__all__ = ["demo", "list_nodes", "list_runs", "parse_params", "run", "show_run"]


class UsageError(KailashException):
    """A command-line argument is malformed."""


def demo(args: argparse.Namespace) -> int:
    """Build and run the demo ETL workflow and print its tables."""
    from kailash_nb.demo import build_demo_workflow, demo_csv_path
    from kailash_nb.runtime.local import LocalRuntime

    path = args.csv or demo_csv_path()
    workflow = build_demo_workflow(path)
    started = time.perf_counter()
    with LocalRuntime() as runtime:
        results, run_id = runtime.execute(workflow)
    elapsed = time.perf_counter() - started
    clean = results["clean"]["result"]
    print(f"{workflow!r} from {path}")
    print(f"run {run_id}: {len(results)} nodes in {elapsed * 1000:.1f} ms")
    print(f"{len(clean['rows'])} orders kept, {clean['rejected']} rejected\n")
    print("Revenue by region")
    print(format_table(results["by_region"]["result"], ["region", "orders", "revenue"]))
    print("\nLargest orders")
    print(
        format_table(results["top_orders"]["result"], ["order_id", "customer", "product", "amount"])
    )
    return 0


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


def run(args: argparse.Namespace) -> int:
    """Build a workflow from a YAML/JSON file, run it and print its results."""
    from kailash_nb.runtime.local import LocalRuntime
    from kailash_nb.workflow.graph import Workflow

    path = Path(args.workflow)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read workflow file {str(path)!r}: {exc.strerror}") from None
    loader = Workflow.from_json if path.suffix.lower() == ".json" else Workflow.from_yaml
    workflow = loader(text)
    parameters = parse_params(args.param or [])
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


def list_runs(args: argparse.Namespace) -> int:
    """Print the most recent runs from the store."""
    from kailash_nb.store.run_history import RunStore

    store = RunStore(args.database_url)
    if args.run_command == "show":
        return show_run(store, args.run_id)
    runs = store.list_runs(limit=args.limit, status=args.status)
    rows = [
        {
            "run_id": run.run_id,
            "workflow": run.workflow_name,
            "status": run.status,
            "started": format_time(run.started_at),
            "duration_ms": None if run.duration is None else round(run.duration * 1000, 1),
        }
        for run in runs
    ]
    print(format_table(rows, ["run_id", "workflow", "status", "started", "duration_ms"]))
    return 0


def show_run(store: Any, run_id: str) -> int:
    """Print one run with its node timeline."""
    run = store.get_run(run_id)
    print(f"run {run.run_id}")
    print(f"  workflow  {run.workflow_name} ({run.workflow_id})")
    print(f"  status    {run.status}")
    print(f"  started   {format_time(run.started_at)}")
    if run.duration is not None:
        print(f"  duration  {run.duration * 1000:.1f} ms")
    if run.parameters:
        print(f"  params    {json.dumps(run.parameters)}")
    if run.error:
        print(f"  error     {run.error}")
    rows = [
        {
            "node": node.node_id,
            "state": node.state,
            "start_ms": round((node.started_at - run.started_at) * 1000, 2),
            "duration_ms": round(node.duration * 1000, 2),
            "iteration": node.iteration,
            "error": node.error,
        }
        for node in run.nodes
    ]
    print()
    print(format_table(rows, ["node", "state", "start_ms", "duration_ms", "iteration", "error"]))
    return 0


def list_nodes(args: argparse.Namespace) -> int:
    """Print every registered node type with its parameters."""
    from kailash_nb.nodes.registry import NodeRegistry
    from kailash_nb.nodes.types import type_name

    catalog = {}
    for name, node_class in NodeRegistry.list().items():
        catalog[name] = _parameter_schema(node_class, type_name)
    if args.json:
        print(json.dumps(catalog, indent=2, default=str))
        return 0
    for name, parameters in catalog.items():
        print(name)
        if parameters is None:
            print("  (parameters depend on its configuration)\n")
            continue
        rows = [{"parameter": key, **value} for key, value in parameters.items()]
        table = format_table(rows, ["parameter", "type", "required", "default", "description"])
        print("\n".join("  " + line for line in table.splitlines()))
        print()
    return 0


def _parameter_schema(node_class: Any, type_name: Any) -> dict[str, Any] | None:
    try:
        declared = node_class().parameters
    except NodeConfigurationError:
        return None  # code nodes need their code: their inputs are read off it
    return {
        key: {
            "type": type_name(parameter.type) if parameter.type is not None else "Any",
            "required": parameter.required,
            "default": parameter.default,
            "description": parameter.description,
        }
        for key, parameter in declared.items()
    }
