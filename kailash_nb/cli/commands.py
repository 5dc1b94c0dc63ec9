"""The ``kailash-nb`` subcommands: ``demo``, ``run`` (in ``cli.run``), ``runs``, ``nodes``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from kailash_nb.cli.errors import CommandError, UsageError
from kailash_nb.cli.run import check_params, parse_params, run
from kailash_nb.cli.tables import format_table, format_time
from kailash_nb.sdk_exceptions import NodeConfigurationError

__all__ = [
    "CommandError",
    "UsageError",
    "check_params",
    "demo",
    "list_nodes",
    "list_runs",
    "parse_params",
    "run",
    "show_run",
]


def demo(args: argparse.Namespace) -> int:
    """Build and run the demo ETL workflow and print its tables.

    Rejected rows are listed with their line and reason; the command exits 1 when the
    file cannot be used (missing, empty, a required column missing) or no row is valid.
    """
    from kailash_nb.demo import build_demo_workflow, demo_csv_path
    from kailash_nb.runtime.local import LocalRuntime

    path = Path(args.csv) if args.csv else demo_csv_path()
    if not path.is_file():
        raise CommandError(f"no CSV file {str(path)!r}")
    workflow = build_demo_workflow(path)
    started = time.perf_counter()
    with LocalRuntime() as runtime:
        outcome = runtime.execute_outcome(workflow)
    elapsed = time.perf_counter() - started
    if not outcome.succeeded:
        failure = outcome.failed_nodes[0] if outcome.failed_nodes else None
        if failure is not None and failure.node_id == "load":
            raise CommandError(failure.message)  # names the file and what is wrong with it
        raise CommandError(f"the demo failed on {path}: {outcome.error}")
    results = outcome.results
    clean = results["clean"]["result"]
    print(f"{workflow!r} from {path}")
    print(f"run {outcome.run_id}: {len(results)} nodes in {elapsed * 1000:.1f} ms")
    print(f"{len(clean['rows'])} orders kept, {clean['rejected']} rejected\n")
    if clean["rejections"]:
        print("Rejected rows")
        print(format_table(clean["rejections"], ["line", "reason"]))
        print()
    print("Revenue by region")
    print(format_table(results["by_region"]["result"], ["region", "orders", "revenue"]))
    print("\nLargest orders")
    print(
        format_table(results["top_orders"]["result"], ["order_id", "customer", "product", "amount"])
    )
    if clean["rejected"] and not clean["rows"]:
        raise CommandError(f"no valid order in {path}: every row was rejected")
    return 0


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

    catalog = {}
    for name, node_class in NodeRegistry.list().items():
        catalog[name] = _parameter_schema(node_class)
    if args.json:
        print(json.dumps(catalog, indent=2, default=str))
        return 0
    for name, parameters in catalog.items():
        print(name)
        if name in _CONFIGURED_NODES:
            print("  " + _CONFIGURED_NODES[name])
        rows = [{"parameter": key, **value} for key, value in parameters.items()]
        table = format_table(rows, ["parameter", "type", "required", "default", "description"])
        print("\n".join("  " + line for line in table.splitlines()))
        print()
    return 0


#: Node types whose inputs depend on their configuration: what ``nodes`` says of them.
_CONFIGURED_NODES = {
    "PythonCodeNode": "config: code; its inputs are the names the code reads, its output `result`",
    "AsyncPythonCodeNode": "config: code (may await); inputs and output as PythonCodeNode's",
}

#: The configuration of a code node, shown in place of its inputs.
_CODE_CONFIG = {
    "code": {
        "type": "str",
        "required": "one of code/function",
        "default": None,
        "description": "Python source; the names it reads are the node's inputs",
    },
    "function": {
        "type": "callable",
        "required": "one of code/function",
        "default": None,
        "description": "a function whose parameters are the inputs (Python only, no file)",
    },
    "input_types": {
        "type": "dict",
        "required": False,
        "default": None,
        "description": "input name -> type the input is coerced to",
    },
}


def _parameter_schema(node_class: Any) -> dict[str, Any]:
    try:
        node = node_class()
    except NodeConfigurationError:
        # Code nodes need their code: their inputs are read off it.
        return {
            key: value
            for key, value in _CODE_CONFIG.items()
            if key in getattr(node_class, "config_only_keys", ())
        }
    return node.to_dict()["parameters"]
