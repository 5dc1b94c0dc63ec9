"""The ``kailash-nb`` command.

Every error ends the command with one line on stderr, ``error: ...`` (or
``kailash-nb COMMAND: error: ...`` for a malformed command line), and one of these
exit codes (docs/cli.md lists them too):

- ``0``: done; for ``run``, every node completed.
- ``1``: the command could not be carried out or the run failed: a node failed, a
  file is missing or invalid, a notebook cell raised, a port is taken, a setting
  (``KAILASH_NB_JWT_SECRET``, ``--workers``) is refused.
- ``2``: the command line is wrong: unknown command or option, a malformed or
  out-of-range value (``--port 99999``), a ``--param`` naming no node or input, a
  required input left unset.
- ``70``: an unexpected internal error (a bug; ``KAILASH_NB_DEBUG=1`` shows the
  traceback).
- ``130``: interrupted (Ctrl-C).
- ``141``: stdout was closed early (``kailash-nb nodes --json | head -1``), as for a
  process ended by SIGPIPE; nothing is printed.
"""

from __future__ import annotations

import argparse
import collections.abc
import os
import sys
import typing

from kailash_nb import run_status
from kailash_nb.cli import arguments, commands
from kailash_nb.cli.tables import format_table

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "format_table",
    "main",
]

#: Exit code: done.
EXIT_OK = 0
#: Exit code: the command could not be carried out, or the run failed.
EXIT_ERROR = 1
#: Exit code: the command line is wrong.
EXIT_USAGE = 2
#: Exit code: an unexpected internal error.
EXIT_INTERNAL = 70
#: Exit code: interrupted by Ctrl-C.
EXIT_INTERRUPTED = 130
#: Exit code: stdout was closed before everything was written.
EXIT_BROKEN_PIPE = 141

_DEBUG_ENV = "KAILASH_NB_DEBUG"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``--help`` shows the usage)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kailash-nb``."""
    parser = _Parser(prog="kailash-nb", description="Build, run and serve kailash_nb workflows.")
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
        help="run a workflow from a YAML/JSON file or a notebook",
        description="Build the workflow in WORKFLOW (YAML, JSON by .json suffix, or a "
        "notebook by .ipynb suffix), run it, print each node's output, and exit 1 if a "
        "node failed. A notebook's code cells run first as `kailash-nb serve` runs them "
        "(display and export statements skipped); its current workflow at the end, or "
        "--workflow NAME, is then run.",
    )
    run.add_argument(
        "workflow", metavar="WORKFLOW", help="path of the .yaml/.yml/.json or .ipynb file"
    )
    run.add_argument(
        "--workflow",
        dest="workflow_name",
        metavar="NAME",
        help="for a notebook: the notebook workflow to run (default: the current one)",
    )
    run.add_argument(
        "--param",
        action="append",
        metavar="NODE.INPUT=VALUE",
        help="a runtime parameter (repeatable); VALUE is read as YAML, NAME=VALUE without "
        "a node sets that input on every node declaring it; unknown names are refused",
    )
    run.add_argument("--json", action="store_true", help="print the results as JSON")
    run.add_argument("--no-history", action="store_true", help="do not record the run")
    arguments.add_database_option(run, "the run store")
    run.set_defaults(handler=commands.run)

    runs = commands_parser.add_parser(
        "runs", help="list recorded runs", description="List recorded runs, newest first."
    )
    runs.add_argument(
        "--limit", type=arguments.positive_int, default=20, help="how many (default 20)"
    )
    runs.add_argument(
        "--status",
        choices=[status for status in run_status.RUN_STATUSES if status != "queued"],
        help="only these",
    )
    arguments.add_database_option(runs, "the run store")
    runs.set_defaults(handler=commands.list_runs, run_command=None)
    runs_commands = runs.add_subparsers(dest="run_command", metavar="COMMAND")
    show = runs_commands.add_parser(
        "show", help="show one run and its node timeline", description="Show one recorded run."
    )
    show.add_argument("run_id", metavar="RUN_ID")
    arguments.add_database_option(show, "the run store")

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

    from kailash_nb.cli import audit

    audit.add_parser(commands_parser)

    from kailash_nb.cli import tx

    tx.add_parser(commands_parser)
    return parser


def main(argv: collections.abc.Sequence[str] | None = None) -> int:
    """Entry point of ``kailash-nb``; returns the process exit code."""
    try:
        return _main(argv)
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: collections.abc.Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    from kailash_nb.sdk_exceptions import KailashException

    try:
        code = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return int(code)
    except commands.UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KailashException as exc:
        _error(str(exc))
        return EXIT_ERROR
    except (BrokenPipeError, KeyboardInterrupt):
        raise
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}")
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get(_DEBUG_ENV):
            raise
        _error(
            f"internal error: {type(exc).__name__}: {_one_line(str(exc))} "
            f"(set {_DEBUG_ENV}=1 for the traceback, and please report it)"
        )
        return EXIT_INTERNAL


def _error(message: str) -> None:
    """``error: MESSAGE`` on stderr."""
    print(f"error: {message}", file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (captured output)
        pass
