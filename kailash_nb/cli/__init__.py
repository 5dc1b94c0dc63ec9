"""The ``kailash-nb`` command."""

from __future__ import annotations

import argparse
import collections.abc
import sys

from kailash_nb import run_status
from kailash_nb.cli import commands
from kailash_nb.cli.tables import format_table

__all__ = ["build_parser", "format_table", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kailash-nb``."""
    parser = argparse.ArgumentParser(
        prog="kailash-nb", description="Build, run and serve kailash_nb workflows."
    )
    from kailash_nb import __version__

    parser.add_argument("--version", action="version", version=f"kailash-nb {__version__}")
    commands_parser = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands_parser.add_parser(
        "demo",
        help="run the demo ETL workflow on the bundled orders.csv",
        description="Build and run a small ETL workflow (load, clean, revenue by region, "
        "largest orders) and print the results.",
    )
    demo.add_argument("--csv", help="run on this CSV file instead of the bundled one")
    demo.set_defaults(handler=commands.demo)

    run = commands_parser.add_parser(
        "run",
        help="run a workflow defined in a YAML or JSON file",
        description="Build the workflow in WORKFLOW (YAML, or JSON by .json suffix), run it, "
        "print each node's output, and exit 1 if a node failed.",
    )
    run.add_argument("workflow", metavar="WORKFLOW", help="path of the .yaml/.yml/.json file")
    run.add_argument(
        "--param",
        action="append",
        metavar="NODE.INPUT=VALUE",
        help="a runtime parameter (repeatable); VALUE is read as YAML, NAME=VALUE without "
        "a node sets a workflow-level parameter",
    )
    run.add_argument("--json", action="store_true", help="print the results as JSON")
    run.add_argument("--no-history", action="store_true", help="do not record the run")
    _database_option(run)
    run.set_defaults(handler=commands.run)

    runs = commands_parser.add_parser(
        "runs", help="list recorded runs", description="List recorded runs, newest first."
    )
    runs.add_argument("--limit", type=_positive_int, default=20, help="how many (default 20)")
    runs.add_argument(
        "--status",
        choices=[status for status in run_status.RUN_STATUSES if status != "queued"],
        help="only these",
    )
    _database_option(runs)
    runs.set_defaults(handler=commands.list_runs, run_command=None)
    runs_commands = runs.add_subparsers(dest="run_command", metavar="COMMAND")
    show = runs_commands.add_parser(
        "show", help="show one run and its node timeline", description="Show one recorded run."
    )
    show.add_argument("run_id", metavar="RUN_ID")
    _database_option(show)

    nodes = commands_parser.add_parser(
        "nodes",
        help="list the node types and their parameters",
        description="List every registered node type with its parameter schema.",
    )
    nodes.add_argument("--json", action="store_true", help="print the catalog as JSON")
    nodes.set_defaults(handler=commands.list_nodes)

    from kailash_nb.cli import serve

    serve.add_parser(commands_parser)

    from kailash_nb.cli import users

    users.add_parser(commands_parser)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="the run store (default: $KAILASH_NB_DATABASE_URL or a file in the user data dir)",
    )


def main(argv: collections.abc.Sequence[str] | None = None) -> int:
    """Entry point of ``kailash-nb``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from kailash_nb.sdk_exceptions import KailashException

    try:
        return args.handler(args)
    except KailashException as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
